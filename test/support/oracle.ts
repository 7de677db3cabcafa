import type pg from 'pg';
import { sourceChecksum } from './model.js';

export interface TableShape {
  schema: string;
  name: string;
  columns: string[];
}

/** The user tables of a database and their columns, as the catalog has them now. */
export async function userTables(client: pg.Client): Promise<TableShape[]> {
  const { rows } = await client.query<{ schema: string; name: string; columns: string[] }>(
    `select n.nspname as schema, c.relname as name, array_agg(a.attname::text order by a.attnum) as columns
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
      group by 1, 2 order by 1, 2`,
  );
  return rows;
}

/** Checksums of every user table (docs/ARCHITECTURE.md, How correctness and speed are shown): the oracle both sides are compared with. */
export async function checksums(client: pg.Client, tables?: TableShape[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of tables ?? (await userTables(client)))
    out[`${t.schema}.${t.name}(${t.columns.join(',')})`] = await sourceChecksum(client, t.schema, t.name, t.columns);
  return out;
}
