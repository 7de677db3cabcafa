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

interface SlotRow {
  plugin: string;
  slot_type: string;
  database: string;
  confirmed: string | null;
  active_pid: number | null;
}

async function lookupSlot(client: pg.Client, slot: string): Promise<SlotRow | undefined> {
  const { rows } = await client.query<SlotRow>(
    `select plugin, slot_type, database, confirmed_flush_lsn::text as confirmed, active_pid
       from pg_replication_slots where slot_name = $1`,
    [slot],
  );
  return rows[0];
}

/** A slot of that name that can never be this archive's (another kind, another database), or undefined. */
function foreignSlot(slot: string, existing: SlotRow, database: string): UserError | undefined {
  if (existing.slot_type !== 'logical' || existing.plugin !== 'pgoutput') {
    return new UserError(
      `replication slot ${quoteIdent(slot)} exists but is a ${existing.slot_type} slot of plugin ${existing.plugin ?? 'none'}`,
      'choose another --slot',
    );
  }
  if (existing.database !== database) {
    return new UserError(
      `replication slot ${quoteIdent(slot)} belongs to database ${quoteIdent(existing.database)}, not ${quoteIdent(database)}`,
      'choose another --slot',
    );
  }
  return undefined;
}

/**
 * Refuses a slot of that name that can never be ours, without waiting or writing: checked before
 * the archiver writes anything, so that such a start leaves the store and the source untouched.
 */
export async function refuseForeignSlot(client: pg.Client, slot: string, database: string): Promise<void> {
  const existing = await lookupSlot(client, slot);
  const problem = existing && foreignSlot(slot, existing, database);
  if (problem) throw problem;
}

/** Finds the logical slot; undefined when there is none. Refuses a slot that cannot be ours. */
export async function findSlot(client: pg.Client, slot: string, database: string, log: Logger): Promise<SlotState | undefined> {
  let existing = await lookupSlot(client, slot);
  // After a crash or a kill, the old walsender may hold the slot until it notices its client is gone.
  for (let waited = 0; existing?.active_pid != null && waited < SLOT_RELEASE_WAIT_MS; waited += 250) {
    if (waited === 0) log.info({ slot, pid: existing.active_pid }, 'slot is still active; waiting for it to be released');
    await sleep(250);
    existing = await lookupSlot(client, slot);
  }
  if (!existing) return undefined;
  const problem = foreignSlot(slot, existing, database);
  if (problem) throw problem;
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
