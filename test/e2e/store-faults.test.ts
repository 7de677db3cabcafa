import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { archiveArgs, pgtape, startPgtape, type CliResult } from '../support/cli.js';
import { sleep, until, useSource } from '../support/fixture.js';
import { startGatewayProxy, type GatewayProxy } from '../support/gateway-proxy.js';
import { checksums } from '../support/oracle.js';
import { seededRandom, TEST_SEED } from '../support/random.js';
import { startS3, type TestS3 } from '../support/s3rver.js';
import { confirmedFlush, transaction, watchAcknowledgements } from '../support/tape.js';
import { createLogger } from '../../src/core/log.js';
import { parseLsn } from '../../src/core/lsn.js';
import { openStore } from '../../src/store/open.js';
import { listSegments } from '../../src/log/segments.js';
import { replayIntoDatabase } from '../../replay/outputs.js';
import { parseTarget } from '../../src/log/target.js';

describe('archiving through a Pachyderm-like gateway that misbehaves', () => {
  const source = useSource(`
    create table accounts (id int primary key, owner text, balance numeric);
    create table ledger (id bigserial primary key, account int, amount numeric);
  `);
  let s3: TestS3;
  let proxy: GatewayProxy;
  // pgtape talks to the gateway; the test reads the bucket behind it directly, without faults.
  const gatewayEnv = () => ({ PACH_TOKEN: 'S3RVER', PACHD_S3_ENDPOINT: proxy.endpoint });
  const direct = (prefix: string) => openStore(`s3://main.tape/${prefix}`);

  beforeAll(async () => {
    s3 = await startS3();
    await s3.createBucket('main.tape');
    proxy = await startGatewayProxy(s3.endpoint, TEST_SEED);
    Object.assign(process.env, s3.env);
  });
  afterAll(async () => {
    await proxy?.close();
    await s3?.close();
  });

  /** Commits small transactions from two sessions until stopped; returns their xids. */
  function workload(seed: number) {
    const committed: number[] = [];
    let running = true;
    const done = (async () => {
      const sessions = await Promise.all([source.db.client(), source.db.client()]);
      await Promise.all(
        sessions.map(async (s, k) => {
          const r = seededRandom(seed + k);
          while (running) {
            const xid = await transaction(
              s,
              async (q) => {
                const id = Math.floor(r() * 200);
                await q.query(`insert into accounts values ($1, $2, $3) on conflict (id) do update set balance = accounts.balance + 1`, [
                  id,
                  `o${id}`,
                  r().toFixed(2),
                ]);
                await q.query(`insert into ledger (account, amount) select $1, g from generate_series(1, $2) g`, [
                  id,
                  1 + Math.floor(r() * 10),
                ]);
              },
              r() < 0.1,
            );
            if (xid !== undefined) committed.push(xid);
          }
        }),
      );
    })();
    return { committed, stop: async () => ((running = false), await done) };
  }

  async function untilSuccess(args: string[]): Promise<CliResult> {
    for (let attempt = 0; ; attempt++) {
      const r = await pgtape(args, gatewayEnv());
      if (r.code === 0 || attempt === 5) return r;
    }
  }

  async function loggedXids(store: string): Promise<number[]> {
    const r = await pgtape(['log', '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    // Mark transactions (written by the test itself) are not part of the workload.
    const logged = r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { xid: number; marks: string[] });
    return logged.filter((t) => t.marks.length === 0).map((t) => t.xid);
  }

  it('loses, duplicates and corrupts nothing under 500s, resets and stalls, killed and restarted', async () => {
    const store = 'pfs://tape@main/faults';
    const args = archiveArgs(
      source.db.url(),
      store,
      '--create-publication',
      '--slot',
      'faults',
      '--segment-seconds',
      '0.3',
      '--segment-bytes',
      '16kB',
    );
    proxy.faults.rate = 0.15;
    const setup = await untilSuccess([...args, '--until', 'now']);
    expect(setup.code, setup.stderr).toBe(0);
    const slotStart = (await confirmedFlush(source.admin, 'faults'))!;
    const load = workload(TEST_SEED);
    const watchdog = watchAcknowledgements(source.admin, 'faults', direct('faults'), slotStart);
    const random = seededRandom(TEST_SEED + 7);
    try {
      for (let k = 0; k < 5; k++) {
        const child = startPgtape(args, gatewayEnv());
        await sleep(1500 + random() * 2000);
        child.kill('SIGKILL');
        await child.done;
      }
    } finally {
      await load.stop();
    }
    let violations: string[];
    try {
      const final = await untilSuccess([...args, '--until', 'now']);
      expect(final.code, final.stderr).toBe(0);
    } finally {
      violations = await watchdog.stop();
    }
    expect(violations).toEqual([]);
    expect(proxy.violations).toEqual([]);
    expect(proxy.injected).toBeGreaterThan(10);

    // Read back directly: every segment decodes and checks, each xid once.
    const stored = await loggedXids('s3://main.tape/faults');
    expect(new Set(stored).size).toBe(stored.length);
    expect(new Set(stored)).toEqual(new Set(load.committed));
    const db = 'after_faults';
    await source.admin.query(`create database ${db}`);
    const url = new URL(source.db.url());
    url.pathname = `/${db}`;
    await replayIntoDatabase(url.toString(), {
      store: direct('faults'),
      target: parseTarget('latest'),
      exclusive: false,
      log: createLogger({ level: 'warn', pretty: false }),
    });
    const replayed = new pg.Client({ connectionString: url.toString() });
    await replayed.connect();
    expect(await checksums(replayed)).toEqual(await checksums(source.admin));
    await replayed.end();
  });

  it('waits while the store refuses writes for 30 s, acknowledging nothing, then catches up', async () => {
    proxy.faults.rate = 0;
    const store = 'pfs://tape@main/refusing';
    const args = archiveArgs(source.db.url(), store, '--create-publication', '--slot', 'refusing', '--segment-seconds', '0.5');
    const child = startPgtape(args, gatewayEnv());
    await until(() => child.output.stderr.includes('"msg":"archiving"'));
    const load = workload(TEST_SEED + 100);
    await sleep(1000);
    await until(async () => (await listSegments(direct('refusing'))).length > 0);
    proxy.refuseWritesFor(30_000);
    await sleep(1000); // a segment may have been on its way when the refusal began
    const storedBefore = (await listSegments(direct('refusing'))).at(-1)!.endLsn;
    const refusedUntil = Date.now() + 28_000;
    let sawAhead = false;
    while (Date.now() < refusedUntil) {
      const confirmed = (await confirmedFlush(source.admin, 'refusing'))!;
      if (confirmed > storedBefore) sawAhead = true;
      await sleep(200);
    }
    expect(sawAhead).toBe(false);
    expect((await listSegments(direct('refusing'))).at(-1)!.endLsn).toBe(storedBefore);
    await load.stop();
    // Writes are accepted again: the archiver catches up by itself, up to a mark written now.
    const { rows } = await source.admin.query<{ lsn: string }>(`select pg_logical_emit_message(true, 'pgtape', 'caught-up')::text as lsn`);
    await until(async () => (await confirmedFlush(source.admin, 'refusing'))! > parseLsn(rows[0]!.lsn), 60_000);
    child.kill('SIGTERM');
    const r = await child.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/storing segment failed; retrying/);
    const last = await untilSuccess([...args, '--until', 'now']);
    expect(last.code, last.stderr).toBe(0);
    const stored = await loggedXids('s3://main.tape/refusing');
    if (new Set(stored).size !== new Set(load.committed).size) {
      const segments = await listSegments(direct('refusing'));
      console.error('diagnostics', {
        segments: segments.length,
        lastEnd: segments.at(-1)?.endLsn,
        confirmed: await confirmedFlush(source.admin, 'refusing'),
        stored: stored.length,
        committed: load.committed.length,
        mark: rows[0]!.lsn,
        stderr: r.stderr.slice(-3000),
      });
    }
    expect(new Set(stored).size).toBe(stored.length);
    expect(new Set(stored)).toEqual(new Set(load.committed));
  });
});
