import type pg from 'pg';

// The transactional logical messages pgtape writes into the history, by prefix. Both travel in
// the transaction that wrote them, so a reader meets them at their point in commit order.

/** A named point of the history (`pgtape mark`; `replay --to name:<mark>`). */
export const MARK_PREFIX = 'pgtape';

/** A DDL command's effect on the published tables, written by the event triggers of `--capture-ddl`. */
export const DDL_PREFIX = 'pgtape-ddl';

/**
 * Every sequence's value (`{"schema.name": "42"}`), written with each mark and every minute by an
 * archiver whose source has `--capture-ddl` installed: a replay to a point sets each sequence to
 * its value there or just after (never below what its columns hold).
 */
export const SEQUENCES_PREFIX = 'pgtape-sequences';

/** The statement that writes the sequences' values into the history, where --capture-ddl installed pgtape.sequence_values(). */
export const EMIT_SEQUENCES_SQL = `select pg_logical_emit_message(true, '${SEQUENCES_PREFIX}', pgtape.sequence_values()::text)`;

/**
 * Records the sequences' values every time it is called, when they changed since the last call
 * (the first call always): an idle database gets no message, and so no WAL, from it.
 */
export function sequenceRecorder(): (client: pg.Client) => Promise<void> {
  let last: string | null = null;
  return async (client) => {
    const { rows } = await client.query<{ v: string }>(
      `select v, pg_logical_emit_message(true, '${SEQUENCES_PREFIX}', v) from (select pgtape.sequence_values()::text as v) s
        where v is distinct from $1`,
      [last],
    );
    if (rows[0]) last = rows[0].v;
  };
}

/** Whether the source has what EMIT_SEQUENCES_SQL needs. */
export async function recordsSequences(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(`select to_regprocedure('pgtape.sequence_values()') is not null as ok`);
  return rows[0]!.ok;
}

/** The longest mark name: a name is something to type after `name:`, not a payload. */
export const MARK_NAME_MAX = 200;

/** Why a mark name is refused, if it is. */
export function markNameProblem(name: string): string | undefined {
  if (!name.trim()) return 'a mark needs a name';
  if (name.length > MARK_NAME_MAX) return `a mark's name is at most ${MARK_NAME_MAX} characters (this one has ${name.length})`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "a mark's name holds no control characters (newlines, tabs)";
  return undefined;
}

/**
 * Why a mark written on this database would never reach an archive, if it would not: logical
 * decoding off, or no slot of that name decoding this database with pgoutput.
 */
export async function markProblem(client: pg.Client, slot: string): Promise<string | undefined> {
  const { rows } = await client.query<{ wal_level: string; database: string; found: boolean }>(
    `select current_setting('wal_level') as wal_level, current_database() as database,
            exists (select 1 from pg_replication_slots where slot_name = $1 and database = current_database() and plugin = 'pgoutput') as found`,
    [slot],
  );
  const r = rows[0]!;
  if (r.wal_level !== 'logical')
    return `wal_level is ${r.wal_level}, not logical: no archive records this database's changes, marks included`;
  if (!r.found)
    return `no pgtape slot ${JSON.stringify(slot)} decodes database ${JSON.stringify(r.database)}: no archive would record the mark`;
  return undefined;
}

/** Writes a mark; resolves to the LSN of its message. */
export async function emitMark(client: pg.Client, name: string): Promise<string> {
  // Transactional, so the mark sits between the transactions committed before and after it; with
  // the sequences' values in the same transaction, where they are recorded.
  const sequences = await recordsSequences(client);
  await client.query('begin');
  try {
    if (sequences) await client.query(EMIT_SEQUENCES_SQL);
    const { rows } = await client.query<{ lsn: string }>(`select pg_logical_emit_message(true, $1, $2)::text as lsn`, [MARK_PREFIX, name]);
    await client.query('commit');
    return rows[0]!.lsn;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  }
}
