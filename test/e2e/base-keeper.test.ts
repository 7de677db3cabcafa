import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveArgs, logLines, pgtape, startPgtape } from '../support/cli.js';
import { sleep, until, useSource } from '../support/fixture.js';
import { checksums } from '../support/oracle.js';
import { replayIntoFresh } from '../support/replay-into.js';
import { describeSchema } from '../support/schema.js';
import { startS3, type TestS3 } from '../support/s3rver.js';
import { listBases } from '../../src/log/bases.js';
import { listIndexObjects } from '../../src/log/segment-index.js';
import { openStore } from '../../src/store/open.js';
import { rowsAndSchema } from '../support/script-points.js';

/**
 * `pgtape archive --base-every` keeps bases fresh from the archive (issue 15): while a workload
 * runs, the archiver compacts new bases in the background; replay of `latest` starts from the
 * newest and equals the source; expire then removes what only older points needed, and the
 * archive still replays and verifies. On a directory and on S3 (s3rver).
 */
describe.each(['directory', 's3'] as const)('bases kept fresh by the archiver, then expired (%s)', (kind) => {
  const source = useSource(`
    create table accounts (id int primary key, balance numeric not null, note text);
    insert into accounts select g, 100, 'opened' from generate_series(1, 200) g;
    create table events (id bigserial primary key, account int references accounts, at timestamptz default now());
  `);
  let s3: TestS3 | undefined;
  let env: NodeJS.ProcessEnv = {};
  const store = () => (kind === 's3' ? 's3://keeper/tape' : source.store.dir);
  // The archiver's own temporary directory: its compactions' scratch clusters must not stay there.
  const scratch = mkdtempSync(join(tmpdir(), 'pgtape-keeper-'));
  // As root, the scratch cluster's server runs as postgres, which must reach it (as under /tmp).
  chmodSync(scratch, 0o755);

  beforeAll(async () => {
    if (kind !== 's3') return;
    s3 = await startS3();
    await s3.createBucket('keeper');
    env = s3.env;
  });
  afterAll(async () => {
    await s3?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('compacts bases in the background while archiving; replay of latest starts from the newest and equals the source', async () => {
    Object.assign(process.env, env);
    const args = archiveArgs(source.db.url(), store(), '--create-publication', '--segment-seconds', '1');
    const archiver = startPgtape([...args, '--base-every', '2s', '--index-every', '5'], { ...env, TMPDIR: scratch });
    const client = await source.db.client();
    const bases = async () => (await listBases(openStore(store()))).length;
    let round = 0;
    const stopWriting = { now: false };
    const writing = (async () => {
      while (!stopWriting.now) {
        round++;
        await client.query('begin');
        await client.query('update accounts set balance = balance + 1, note = $1 where id % 7 = $2', [`round ${round}`, round % 7]);
        await client.query('insert into events (account) select id from accounts where id % 50 = $1', [round % 50]);
        await client.query('commit');
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      // Bases compacted, and index objects written as the segments come (one for every 5).
      await until(
        async () => (await bases()) >= 3 && (await listIndexObjects(openStore(store()))).filter((o) => o.group === 5).length >= 2,
        120_000,
      );
    } catch (err) {
      archiver.kill('SIGKILL');
      const keeper = logLines(archiver.output.stderr).filter((l) => /base|compact/.test(String(l.msg)));
      throw new Error(`${(err as Error).message}: ${JSON.stringify(keeper.slice(-6))}`);
    } finally {
      stopWriting.now = true;
      await writing;
    }
    // Everything written is archived before the archiver stops.
    const { rows } = await source.admin.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
    await until(
      async () =>
        (
          await source.admin.query(`select 1 from pg_replication_slots where slot_name = 'pgtape' and confirmed_flush_lsn >= $1`, [
            rows[0]!.lsn,
          ])
        ).rowCount === 1,
      60_000,
    );
    // Idle now: the interval passes a few times, and no base is made again for nothing.
    await sleep(7_000);
    archiver.kill('SIGTERM');
    const done = await archiver.done;
    expect(done.code, done.stderr).toBe(0);
    const compacted = logLines(done.stderr).filter((l) => l.msg === 'stored a base compacted from the archive');
    expect(compacted.length).toBeGreaterThanOrEqual(2);
    expect(new Set(compacted.map((l) => l.base)).size, 'each compaction a new base').toBe(compacted.length);
    const indexed = await pgtape(['verify', '--store', store(), '--json'], env);
    expect(indexed.code, indexed.stdout).toBe(0);
    expect(indexed.stdout).toMatch(/"object":"index\//);
    // Nothing left running or on disk by the compactions.
    expect(readdirSync(scratch).filter((f) => f.startsWith('pgtape-pg-'))).toEqual([]);

    const want = { sums: await checksums(client), schema: await describeSchema(client) };
    const newest = (await listBases(openStore(store()))).at(-1)!;
    const { r, seen } = await replayIntoFresh(source, ['--store', store()], rowsAndSchema, env);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { base: { key: string } }).base.key).toBe(newest.prefix);
    expect(seen).toEqual(want);
  });

  it('expire keeps the newest base and what follows it: latest still replays, verify passes', async () => {
    const before = (await listBases(openStore(store()))).length;
    const r = await pgtape(['expire', '--store', store(), '--keep-bases', '1', '--confirm', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { bases: number }).bases).toBe(before - 1);
    expect(await listBases(openStore(store()))).toHaveLength(1);
    const client = await source.db.client();
    const want = await checksums(client);
    const { r: replayed, seen } = await replayIntoFresh(source, ['--store', store()], (c) => checksums(c), env);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(seen).toEqual(want);
    const verified = await pgtape(['verify', '--store', store()], env);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const log = await pgtape(['log', '--store', store(), '--json'], env);
    expect(log.code, log.stderr).toBe(0);
  });
});
