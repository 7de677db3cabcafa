import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { archiveArgs, logLines, pgtape, startPgtape } from '../support/cli.js';
import { ArchiveModel, sourceChecksum } from '../support/model.js';
import { sleep, until, useSource } from '../support/fixture.js';
import { seededRandom, TEST_SEED } from '../support/random.js';
import { tempStore, transaction } from '../support/tape.js';
import { checksums } from '../support/oracle.js';
import { replayIntoFresh } from '../support/replay-into.js';

/** A client that comes back after the server restarts; `null` while it is away. */
async function connectRetrying(url: string): Promise<pg.Client> {
  for (;;) {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => {});
    try {
      await c.connect();
      return c;
    } catch {
      await c.end().catch(() => {});
      await sleep(100);
    }
  }
}

describe('pgtape archive across Postgres restarts and dropped connections', () => {
  const source = useSource(
    `
    create table accounts (id int primary key, owner text, balance numeric);
    create table ledger (id bigserial primary key, account int, amount numeric);
  `,
    { settings: { synchronous_commit: 'on' } },
  ); // a COMMIT that returned survives the immediate shutdown

  it('reconnects with backoff and loses or duplicates nothing (walsender killed, fast and immediate restarts)', async () => {
    const cluster = source.db.cluster;
    if (!cluster) return; // restarts need the embedded server
    const args = archiveArgs(
      source.db.url(),
      source.store.dir,
      '--create-publication',
      '--segment-seconds',
      '0.3',
      '--segment-bytes',
      '16kB',
    );
    const setup = await pgtape([...args, '--until', 'now']);
    expect(setup.code, setup.stderr).toBe(0);
    const archiver = startPgtape(args);
    await until(() => archiver.output.stderr.includes('"msg":"archiving"'));

    // Three sessions commit small transactions all along, reconnecting when the server goes away.
    const committed: number[] = [];
    let running = true;
    const workload = [0, 1, 2].map((s) =>
      (async () => {
        const r = seededRandom(TEST_SEED + 10 + s);
        let c = await connectRetrying(source.db.url());
        while (running) {
          try {
            const xid = await transaction(c, async (q) => {
              const id = Math.floor(r() * 200);
              await q.query(
                `insert into accounts values ($1, $2, $3) on conflict (id) do update set balance = accounts.balance + excluded.balance`,
                [id, `o${id}`, (r() * 100).toFixed(2)],
              );
              await q.query(`insert into ledger (account, amount) select $1, $2 from generate_series(1, $3)`, [
                id,
                (r() * 10).toFixed(3),
                1 + Math.floor(r() * 10),
              ]);
            });
            committed.push(xid!);
          } catch {
            // The server went away: whether the last commit happened is the source's to say (checked at the end).
            await c.end().catch(() => {});
            c = await connectRetrying(source.db.url());
          }
        }
        await c.end();
      })(),
    );

    try {
      await sleep(1500);
      const admin = await connectRetrying(source.db.url());
      const { rows } = await admin.query<{ n: number }>(
        `select count(pg_terminate_backend(active_pid))::int as n from pg_replication_slots where slot_name = 'pgtape' and active_pid is not null`,
      );
      expect(rows[0]!.n).toBe(1);
      await admin.end();
      await sleep(2500);
      await cluster.restart('fast');
      await sleep(3000);
      await cluster.restart('immediate');
      await sleep(3000);
    } finally {
      running = false;
      await Promise.all(workload);
    }
    // It is still running: it never gave up.
    expect(archiver.exitCode).toBeNull();
    await until(() => logLines(archiver.output.stderr).filter((l) => l.msg === 'replication reconnected').length === 3, 60_000);
    archiver.kill('SIGTERM');
    const stopped = await archiver.done;
    expect(stopped.code, stopped.stderr).toBe(0);
    const lines = logLines(stopped.stderr);
    // Once per outage, not once per retry.
    expect(lines.filter((l) => String(l.msg).startsWith('replication connection lost')).length).toBe(3);
    expect(lines.filter((l) => l.level === 50)).toEqual([]);

    const rest = await pgtape([...args, '--until', 'now']);
    expect(rest.code, rest.stderr).toBe(0);
    expect(committed.length).toBeGreaterThan(100);
    const model = await ArchiveModel.load(source.store.dir);
    const stored = model.transactions.map((t) => t.xid);
    expect(new Set(stored).size, 'a transaction stored twice').toBe(stored.length);
    const storedSet = new Set(stored);
    expect(
      committed.filter((x) => !storedSet.has(x)),
      'committed but not stored',
    ).toEqual([]);
    const check = await connectRetrying(source.db.url());
    try {
      for (const [table, columns] of [
        ['accounts', ['id', 'owner', 'balance']],
        ['ledger', ['id', 'account', 'amount']],
      ] as const) {
        expect(model.checksum('public', table, [...columns]), table).toBe(await sourceChecksum(check, 'public', table, [...columns]));
      }
    } finally {
      await check.end();
    }
  });

  it('stops at SIGTERM while its source is down, storing what is whole, and the next run loses nothing', async () => {
    const cluster = source.db.cluster;
    if (!cluster) return; // stopping the server needs the embedded one
    const store = tempStore();
    try {
      const args = archiveArgs(source.db.url(), store.dir, '--slot', 'down', '--segment-seconds', '0.2');
      const setup = await pgtape([...args, '--until', 'now']);
      expect(setup.code, setup.stderr).toBe(0);
      const archiver = startPgtape(args);
      await until(() => archiver.output.stderr.includes('"msg":"archiving"'));
      const client = await connectRetrying(source.db.url());
      await client.query(`insert into accounts values (100001, 'down', 1) on conflict (id) do nothing`);
      await client.end();
      await sleep(1000);
      await cluster.stop('fast');
      try {
        await until(() => archiver.output.stderr.includes('replication connection lost'));
        const asked = Date.now();
        archiver.kill('SIGTERM');
        const stopped = await archiver.done;
        expect(stopped.code, stopped.stderr).toBe(0);
        // It did not wait for the source to come back.
        expect(Date.now() - asked).toBeLessThan(5000);
      } finally {
        await cluster.start();
      }
      const rest = await pgtape([...args, '--until', 'now']);
      expect(rest.code, rest.stderr).toBe(0);
      // The fixture's own client did not survive the stop: a new one.
      const admin = await connectRetrying(source.db.url());
      const expected = await checksums(admin);
      const { r, seen } = await replayIntoFresh({ ...source, admin }, ['--store', store.dir], (c) => checksums(c)).finally(() =>
        admin.end(),
      );
      expect(r.code, r.stderr).toBe(0);
      expect(seen).toEqual(expected);
    } finally {
      store.cleanup();
    }
  });
});
