import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { parseLsn } from '../core/lsn.js';
import { quoteIdent } from '../core/sql.js';
import { clientConfig, connectionError } from './connection.js';

export interface SlotState {
  name: string;
  /** Where Postgres will resume: nothing before it will be sent again. */
  confirmedFlushLsn: bigint;
}

const SLOT_RELEASE_WAIT_MS = 15_000;

/** Finds the logical slot; undefined when there is none. Refuses a slot that cannot be ours. */
export async function findSlot(client: pg.Client, slot: string, database: string, log: Logger): Promise<SlotState | undefined> {
  const lookup = async () =>
    (
      await client.query<{ plugin: string; slot_type: string; database: string; confirmed: string | null; active_pid: number | null }>(
        `select plugin, slot_type, database, confirmed_flush_lsn::text as confirmed, active_pid
           from pg_replication_slots where slot_name = $1`,
        [slot],
      )
    ).rows[0];
  let existing = await lookup();
  // After a crash or a kill, the old walsender may hold the slot until it notices its client is gone.
  for (let waited = 0; existing?.active_pid != null && waited < SLOT_RELEASE_WAIT_MS; waited += 250) {
    if (waited === 0) log.info({ slot, pid: existing.active_pid }, 'slot is still active; waiting for it to be released');
    await sleep(250);
    existing = await lookup();
  }
  if (!existing) return undefined;
  if (existing.slot_type !== 'logical' || existing.plugin !== 'pgoutput') {
    throw new UserError(
      `replication slot ${quoteIdent(slot)} exists but is a ${existing.slot_type} slot of plugin ${existing.plugin ?? 'none'}`,
      'choose another --slot',
    );
  }
  if (existing.database !== database) {
    throw new UserError(
      `replication slot ${quoteIdent(slot)} belongs to database ${quoteIdent(existing.database)}, not ${quoteIdent(database)}`,
      'choose another --slot',
    );
  }
  if (existing.active_pid !== null) {
    throw new UserError(
      `replication slot ${quoteIdent(slot)} is in use by another connection (pid ${existing.active_pid})`,
      'another pgtape archive may be running for this slot; stop it first',
    );
  }
  return { name: slot, confirmedFlushLsn: parseLsn(existing.confirmed!) };
}

export interface ExportedSnapshot {
  slot: string;
  /** The slot's consistent point: the snapshot holds exactly the transactions committed before it. */
  lsn: bigint;
  snapshot: string;
  /** Ends the replication connection; the snapshot is valid until then. */
  release(): Promise<void>;
}

/**
 * Creates a logical slot on a replication connection with an exported snapshot. The connection
 * must run nothing else while the snapshot is in use, so it is held here until release().
 * The pre-15 syntax (EXPORT_SNAPSHOT) is used because every supported version accepts it.
 */
export async function createSlotWithSnapshot(url: string, slot: string, options: { temporary: boolean }): Promise<ExportedSnapshot> {
  const client = new pg.Client({ ...clientConfig(url), replication: 'database' } as pg.ClientConfig);
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    throw connectionError(url, err);
  }
  try {
    const r = await client.query<{ consistent_point: string; snapshot_name: string }>(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} ${options.temporary ? 'TEMPORARY ' : ''}LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    const row = r.rows[0]!;
    return { slot, lsn: parseLsn(row.consistent_point), snapshot: row.snapshot_name, release: () => client.end().catch(() => {}) };
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
}

/** Drops a slot this run made and can no longer use; a failure to drop is logged, not thrown over the cause. */
export async function dropSlot(url: string, slot: string, log: Logger): Promise<void> {
  const client = new pg.Client(clientConfig(url));
  client.on('error', () => {});
  try {
    await client.connect();
    // The walsender that made it may hold it for a moment after its connection ends.
    for (let waited = 0; ; waited += 250) {
      try {
        await client.query('select pg_drop_replication_slot($1)', [slot]);
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== '55006' || waited >= SLOT_RELEASE_WAIT_MS) throw err;
        await sleep(250);
      }
    }
    log.info({ slot }, 'dropped the replication slot made for the failed base');
  } catch (err) {
    log.warn({ slot, err: (err as Error).message }, 'could not drop the replication slot made for the failed base: drop it by hand');
  } finally {
    await client.end().catch(() => {});
  }
}
