import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Tuple } from '../../src/pgoutput/messages.js';
import type { RelationDef } from '../../src/segment/format.js';
import { readLog } from '../../src/log/change-log.js';
import { DirectoryStore } from '../../src/store/directory.js';
import { quoteIdent, quoteQualified } from '../../src/core/sql.js';

type Row = Record<string, string | null>;

/**
 * A deliberately simple, independent reading of an archive: folds every stored change into
 * in-memory tables, so tests can compare the archive with the source before replay exists.
 * Rows are keyed by the replica identity; REPLICA IDENTITY FULL tables are multisets.
 */
export class ArchiveModel {
  readonly tables = new Map<string, { def: RelationDef; rows: Row[] }>();
  readonly transactions: { xid: number; commitLsn: bigint; endLsn: bigint; marks: string[] }[] = [];

  static async load(dir: string, upToLsn?: bigint): Promise<ArchiveModel> {
    const model = new ArchiveModel();
    let pending: (() => void)[] = [];
    let current: { xid: number; commitLsn: bigint; marks: string[] } | undefined;
    for await (const entries of readLog(new DirectoryStore(dir)))
      for (const e of entries) {
        switch (e.kind) {
          case 'begin':
            current = { xid: e.xid, commitLsn: e.commitLsn, marks: [] };
            pending = [];
            break;
          case 'message':
            current!.marks.push(e.content.toString());
            break;
          case 'insert':
            pending.push(() => model.table(e.relation).rows.push(toRow(e.relation, e.new)));
            break;
          case 'update':
            pending.push(() => {
              const t = model.table(e.relation);
              const i = model.find(t, e.relation, e.old ?? e.key ?? e.new, !!e.old);
              t.rows[i] = toRow(e.relation, e.new, t.rows[i]);
            });
            break;
          case 'delete':
            pending.push(() => {
              const t = model.table(e.relation);
              t.rows.splice(model.find(t, e.relation, (e.old ?? e.key)!, !!e.old), 1);
            });
            break;
          case 'truncate':
            for (const def of e.relations) pending.push(() => (model.table(def).rows = []));
            break;
          case 'commit':
            if (upToLsn === undefined || e.commitLsn <= upToLsn) {
              pending.forEach((p) => p());
              model.transactions.push({ ...current!, endLsn: e.endLsn });
            }
            break;
        }
      }
    return model;
  }

  private table(def: RelationDef) {
    const name = `${def.schema}.${def.name}`;
    let t = this.tables.get(name);
    if (!t) this.tables.set(name, (t = { def, rows: [] }));
    t.def = def;
    return t;
  }

  private find(t: { rows: Row[] }, def: RelationDef, identity: Tuple, wholeRow: boolean): number {
    const probe = toRow(def, identity, {});
    const columns = wholeRow ? def.columns : def.columns.filter((c) => c.key);
    const i = t.rows.findIndex((r) => columns.every((c) => r[c.name] === probe[c.name]));
    if (i < 0) throw new Error(`model: row ${JSON.stringify(probe)} of ${def.schema}.${def.name} not found`);
    return i;
  }

  /** Checksum of one table, comparable with sourceChecksum. */
  checksum(schema: string, name: string, columns: string[]): string {
    const rows = this.tables.get(`${schema}.${name}`)?.rows ?? [];
    return checksum(rows.map((r) => columns.map((c) => r[c] ?? null)));
  }
}

function toRow(def: RelationDef, tuple: Tuple, previous?: Row): Row {
  const row: Row = {};
  let v = 0;
  def.columns.forEach((c, i) => {
    const kind = String.fromCharCode(tuple.kinds[i]!);
    if (kind === 'n') row[c.name] = null;
    else if (kind === 'u') {
      if (!previous) throw new Error(`model: unchanged TOAST value without a previous row in ${def.name}.${c.name}`);
      row[c.name] = previous[c.name] ?? null;
    } else row[c.name] = tuple.values[v++]!.toString('utf8');
  });
  return row;
}

/** An order-independent hash of rows given as text values (the oracle of docs/ARCHITECTURE.md). */
export function checksum(rows: (string | null)[][]): string {
  const lines = rows.map((r) => JSON.stringify(r)).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

export async function sourceChecksum(client: pg.Client, schema: string, name: string, columns: string[]): Promise<string> {
  const select = columns.map((c) => `${quoteIdent(c)}::text`).join(', ');
  const { rows } = await client.query({ text: `select ${select} from ${quoteQualified(schema, name)}`, rowMode: 'array' });
  return checksum(rows as (string | null)[][]);
}
