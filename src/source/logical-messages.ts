import type pg from 'pg';

// The transactional logical messages pgtape writes into the history, by prefix. Both travel in
// the transaction that wrote them, so a reader meets them at their point in commit order.

/** A named point of the history (`pgtape mark`; `replay --to name:<mark>`). */
export const MARK_PREFIX = 'pgtape';

/** A DDL command's effect on the published tables, written by the event triggers of `--capture-ddl`. */
export const DDL_PREFIX = 'pgtape-ddl';

/** Writes a mark; resolves to the LSN of its message. */
export async function emitMark(client: pg.Client, name: string): Promise<string> {
  // Transactional, so the mark sits between the transactions committed before and after it.
  const { rows } = await client.query<{ lsn: string }>(`select pg_logical_emit_message(true, $1, $2)::text as lsn`, [MARK_PREFIX, name]);
  return rows[0]!.lsn;
}
