import { join } from 'node:path';
import type pg from 'pg';
import { formatLsn, parseLsn } from '../../src/core/lsn.js';
import { listSegments } from '../../src/log/segments.js';
import type { Store } from '../../src/store/store.js';
import { scratchDir } from './scratch.js';

/**
 * A fresh store directory, removed by the returned cleanup — and when the test process exits, for
 * a describe block filtered out by -t, whose afterAll never runs.
 */
export function tempStore(): { dir: string; cleanup: () => void } {
  const parent = scratchDir('pgtape-test-');
  return { dir: join(parent.dir, 'tape'), cleanup: parent.remove };
}

export async function confirmedFlush(client: pg.Client, slot = 'pgtape'): Promise<bigint | undefined> {
  const { rows } = await client.query<{ lsn: string | null }>(
    'select confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1',
    [slot],
  );
  return rows[0]?.lsn ? parseLsn(rows[0].lsn) : undefined;
}

/** Runs fn in a transaction and returns its xid, or undefined when it rolled back. */
export async function transaction(client: pg.Client, fn: (c: pg.Client) => Promise<void>, rollback = false): Promise<number | undefined> {
  await client.query('begin');
  try {
    await fn(client);
    const { rows } = await client.query<{ xid: string }>('select txid_current()::text as xid');
    await client.query(rollback ? 'rollback' : 'commit');
    return rollback ? undefined : Number(BigInt(rows[0]!.xid) & 0xffffffffn);
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  }
}

/**
 * Polls the slot while a test runs: its confirmed position must never pass the end of what the
 * store holds (invariant 1). Returns the violations seen, once stopped.
 */
export function watchAcknowledgements(admin: pg.Client, slot: string, store: Store, floor: bigint): { stop(): Promise<string[]> } {
  const violations: string[] = [];
  let watching = true;
  const watching$ = (async () => {
    while (watching) {
      // Confirmed first, then the store: stored ends only grow, so this order cannot misfire.
      const confirmed = (await confirmedFlush(admin, slot))!;
      const stored = (await listSegments(store)).at(-1)?.endLsn ?? floor;
      if (confirmed > stored) violations.push(`confirmed ${formatLsn(confirmed)} > stored ${formatLsn(stored)}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  return {
    stop: async () => {
      watching = false;
      await watching$;
      return violations;
    },
  };
}

/** Drops a slot once the walsender of a finished archiver has let it go (it may hold it for a moment). */
export async function dropSlotWhenFree(client: pg.Client, slot: string): Promise<void> {
  for (let waited = 0; ; waited += 100) {
    try {
      await client.query('select pg_drop_replication_slot($1)', [slot]);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '55006' || waited > 15_000) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
