import type pg from 'pg';

/**
 * Runs statements in a savepoint of the replay's one transaction: a statement the replay
 * database refuses is returned (for the caller to report or act on), and the transaction goes on.
 */
/** What a refused statement threw: the server's errors carry their SQLSTATE. */
export type AttemptError = Error & { code?: string };

export async function attempt(client: pg.Client, sql: string | string[], params: unknown[] = []): Promise<AttemptError | undefined> {
  await client.query('savepoint pgtape_attempt');
  try {
    for (const statement of typeof sql === 'string' ? [sql] : sql) await client.query(statement, params);
    await client.query('release savepoint pgtape_attempt');
    return undefined;
  } catch (err) {
    await client.query('rollback to savepoint pgtape_attempt');
    return err as AttemptError;
  }
}
