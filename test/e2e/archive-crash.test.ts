import { describe, expect, it } from 'vitest';
import { archiveArgs, finished, pgtape, startPgtape } from '../support/cli.js';
import { ArchiveModel, sourceChecksum } from '../support/model.js';
import { sleep, useSource } from '../support/fixture.js';
import { seededRandom, TEST_SEED } from '../support/random.js';
import { confirmedFlush, transaction, watchAcknowledgements } from '../support/tape.js';
import { DirectoryStore } from '../../src/store/directory.js';
import { listSegments } from '../../src/log/segments.js';

describe('pgtape archive killed or stopped at random moments', () => {
  const source = useSource(`
    create table accounts (id int primary key, owner text, balance numeric, note text);
    create table ledger (id bigserial primary key, account int, amount numeric, at timestamptz default now());
  `);
  const { store } = source;

  it('stores every committed transaction exactly once and never acknowledges past the store', async () => {
    const random = seededRandom(TEST_SEED);
    const args = archiveArgs(source.db.url(), store.dir, '--create-publication', '--segment-seconds', '0.3', '--segment-bytes', '16kB');
    const setup = await pgtape([...args, '--until', 'now']);
    expect(setup.code, setup.stderr).toBe(0);
    const slotStart = (await confirmedFlush(source.admin))!;

    // The workload: three sessions committing (and sometimes rolling back) small transactions.
    const committed: number[] = [];
    let running = true;
    const sessions = await Promise.all([source.db.client(), source.db.client(), source.db.client()]);
    const workload = sessions.map((session, s) =>
      (async () => {
        const r = seededRandom(TEST_SEED + s + 1);
        while (running) {
          // Two sessions can lock the same two rows in opposite orders: Postgres then aborts one
          // transaction as a deadlock, and it is simply not committed.
          const xid = await transaction(
            session,
            async (q) => {
              const id = Math.floor(r() * 300);
              await q.query(
                `insert into accounts values ($1, $2, $3, null) on conflict (id) do update set balance = accounts.balance + excluded.balance`,
                [id, `owner-${id}`, (r() * 100).toFixed(2)],
              );
              await q.query(`insert into ledger (account, amount) select $1, $2 from generate_series(1, $3)`, [
                id,
                (r() * 10).toFixed(3),
                1 + Math.floor(r() * 20),
              ]);
              if (r() < 0.2) await q.query(`delete from accounts where id = $1`, [Math.floor(r() * 300)]);
            },
            r() < 0.1,
          ).catch((err: { code?: string }) => {
            if (err.code === '40P01') return undefined;
            throw err;
          });
          if (xid !== undefined) committed.push(xid);
        }
      })(),
    );

    // The watchdog: the slot's confirmed position must never pass the end of what is stored.
    const watchdog = watchAcknowledgements(source.admin, 'pgtape', new DirectoryStore(store.dir), slotStart);

    try {
      // Killed, or stopped by SIGTERM or SIGINT (which store what is whole and exit 0): either
      // way, nothing is lost or stored twice (checked at the end).
      const kills = 15;
      for (let k = 0; k < kills; k++) {
        const signal = (['SIGKILL', 'SIGTERM', 'SIGINT'] as const)[k % 3]!;
        const child = startPgtape(args);
        await sleep(400 + random() * 1600);
        child.kill(signal);
        const r = await finished(child);
        if (signal === 'SIGKILL') expect(r.signal, `run ${k} ended by itself: ${r.stderr}`).toBe('SIGKILL');
        // Before Node has installed its handlers, the signal's default action ends it.
        else if (r.signal === null) expect(r.code, `run ${k} (${signal}): ${r.stderr.slice(-800)}`).toBe(0);
        else expect(r.signal).toBe(signal);
      }
    } finally {
      running = false;
      await Promise.all(workload);
    }
    let violations: string[];
    try {
      const final = await pgtape([...args, '--until', 'now']);
      expect(final.code, final.stderr).toBe(0);
    } finally {
      violations = await watchdog.stop();
    }
    expect(violations).toEqual([]);
    expect(committed.length).toBeGreaterThan(200);
    const model = await ArchiveModel.load(store.dir);
    const stored = model.transactions.map((t) => t.xid);
    expect(new Set(stored).size).toBe(stored.length);
    expect(new Set(stored)).toEqual(new Set(committed));
    expect(model.checksum('public', 'accounts', ['id', 'owner', 'balance', 'note'])).toBe(
      await sourceChecksum(source.admin, 'public', 'accounts', ['id', 'owner', 'balance', 'note']),
    );
    expect(model.checksum('public', 'ledger', ['id', 'account', 'amount', 'at'])).toBe(
      await sourceChecksum(source.admin, 'public', 'ledger', ['id', 'account', 'amount', 'at']),
    );
    const refs = await listSegments(new DirectoryStore(store.dir));
    refs.forEach((ref, i) => i > 0 && expect(ref.startLsn).toBe(refs[i - 1]!.endLsn));
  });
});
