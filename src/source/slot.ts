import type pg from 'pg';
import { UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { parseLsn } from '../core/lsn.js';
import { quoteIdent } from '../core/sql.js';

export interface SlotState {
  name: string;
  /** Where Postgres will resume: nothing before it will be sent again. */
  confirmedFlushLsn: bigint;
  created: boolean;
}

const SLOT_RELEASE_WAIT_MS = 15_000;

/** Finds the logical slot, or creates it (pgoutput) when missing. */
export async function ensureSlot(client: pg.Client, slot: string, database: string, log: Logger): Promise<SlotState> {
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
    await new Promise((r) => setTimeout(r, 250));
    existing = await lookup();
  }
  if (existing) {
    if (existing.slot_type !== 'logical' || existing.plugin !== 'pgoutput') {
      throw new UserError(`replication slot ${quoteIdent(slot)} exists but is a ${existing.slot_type} slot of plugin ${existing.plugin ?? 'none'}`, 'choose another --slot');
    }
    if (existing.database !== database) {
      throw new UserError(`replication slot ${quoteIdent(slot)} belongs to database ${quoteIdent(existing.database)}, not ${quoteIdent(database)}`, 'choose another --slot');
    }
    if (existing.active_pid !== null) {
      throw new UserError(
        `replication slot ${quoteIdent(slot)} is in use by another connection (pid ${existing.active_pid})`,
        'another pgtape archive may be running for this slot; stop it first',
      );
    }
    return { name: slot, confirmedFlushLsn: parseLsn(existing.confirmed!), created: false };
  }
  const created = await client.query<{ lsn: string }>(`select lsn::text as lsn from pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
  log.info({ slot, lsn: created.rows[0]!.lsn }, 'created replication slot');
  return { name: slot, confirmedFlushLsn: parseLsn(created.rows[0]!.lsn), created: true };
}
