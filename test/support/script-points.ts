import type pg from 'pg';
import { checksums } from './oracle.js';
import { describeSchema, schemaDifferences, type SchemaDescription } from './schema.js';

// Points recorded along a script run on a source (others' SQL run as psql would), and how a
// replay at one differs from it: the rows of each table and the whole schema.

/** The source as a connection sees it now: where WAL is, every table's checksum, its schema. */
export interface SourceState {
  lsn: string;
  sums: Record<string, string>;
  schema: SchemaDescription;
}

export async function sourceNow(client: pg.Client): Promise<SourceState> {
  return {
    lsn: (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!.lsn,
    ...(await rowsAndSchema(client)),
  };
}

/** What a database holds: every table's checksum, and its schema — what an oracle compares. */
export async function rowsAndSchema(client: pg.Client): Promise<Omit<SourceState, 'lsn'>> {
  return { sums: await checksums(client), schema: await describeSchema(client) };
}

/**
 * Whether a connection is between transactions: node-postgres keeps the server's transaction
 * status ('I': idle). A point is recorded only there, where what another connection sees is all committed.
 */
export function betweenTransactions(client: pg.Client): boolean {
  return (client as pg.Client & { _txStatus?: string })._txStatus === 'I';
}

/** What a replay (`seen`) holds that differs from the source at a point: tables' rows, then the schema's objects. */
export function differences(want: Omit<SourceState, 'lsn'>, seen: Omit<SourceState, 'lsn'>): string[] {
  const tables = new Set([...Object.keys(want.sums), ...Object.keys(seen.sums)]);
  const rows = [...tables].filter((t) => want.sums[t] !== seen.sums[t]).map((t) => `rows of ${t}`);
  return [...rows, ...schemaDifferences(want.schema, seen.schema)];
}
