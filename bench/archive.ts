// bench/archive: pgtape archive against pg_recvlogical draining the same slot workload.
// docs/ARCHITECTURE.md, How correctness and speed are shown: ratios against an anchor measured in the same run on the same machine.
//   npm run build && node dist/bench/archive.js [--rows 1000000] [--transactions 100000]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { LocalCluster } from '../src/local-pg/local-cluster.js';
import { compressionTable, readRawBodies } from './compression.js';
import { startS3, type TestS3 } from '../test/support/s3rver.js';
import { arg, bin, machine } from './run.js';

const ROWS = arg('rows', 1_000_000);
const TRANSACTIONS = arg('transactions', 100_000);
const SESSIONS = 4;

interface Run {
  seconds: number;
  /** User and system CPU seconds of the process. */
  cpuSeconds: number;
  peakRssMiB: number;
  stdout: string;
  stderr: string;
}

function timed(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  // GNU time reports the child's wall time, peak RSS in KiB and CPU seconds on its last stderr line.
  const child = spawn('/usr/bin/time', ['-f', '%e %M %U %S', command, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) =>
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`${command} exited ${code}: ${stderr.slice(-2000)}`));
      const last = stderr.trim().split('\n').at(-1)!.split(' ');
      resolve({
        seconds: Number(last[0]),
        peakRssMiB: Math.round(Number(last[1]) / 1024),
        cpuSeconds: Number(last[2]) + Number(last[3]),
        stdout,
        stderr,
      });
    }),
  );
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

interface Row {
  workload: string;
  changes: number;
  recvSeconds: number;
  /** pg_recvlogical with protocol 1: no streaming of transactions in progress. */
  recvProtocol1Seconds: number;
  pgtapeSeconds: number;
  pgtapeRss: number;
  pgtapeCpu: number;
  /** From the archiver's own log: its first "archiving" line to "archive stopped" (no process start). */
  pgtapeStreaming: number;
  s3Seconds: number;
  /** The same to a directory with --encrypt (a public key), and its CPU seconds. */
  encryptedSeconds: number;
  encryptedCpu: number;
  recvRss: number;
  pgoutputBytes: number;
  storedBytes: number;
}

async function scenario(
  cluster: LocalCluster,
  s3: TestS3,
  slot: string,
  name: string,
  workload: (db: pg.Client) => Promise<number>,
  publicKey: string,
): Promise<{ row: Row; store: string }> {
  const db = new pg.Client({ connectionString: cluster.url() });
  db.on('error', () => {});
  await db.connect();
  await db.query(`drop table if exists bench; create table bench (id int primary key, v text, n numeric, t timestamptz default now())`);
  // Both slots start at the same point and decode the same WAL.
  // All slots start at the same point and decode the same WAL. pg_recvlogical drains it once
  // before and once after pgtape; the faster of the two is the anchor, so order favours no one.
  for (const s of ['recv1', 'pgtape', 'pgtape_s3', 'pgtape_enc', 'recv2', 'recvp1'])
    await db.query(`select pg_create_logical_replication_slot($1, 'pgoutput')`, [`${slot}_${s}`]);
  process.stderr.write(`[${name}] running the workload…\n`);
  const changes = await workload(db);
  await db.query('checkpoint');
  const { rows } = await db.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
  const until = rows[0]!.lsn;
  await db.end();

  const recvlogical = (s: string, protocol = 2) => {
    process.stderr.write(`[${name}] pg_recvlogical -E ${until} (protocol ${protocol})…\n`);
    return timed('pg_recvlogical', [
      '-d',
      cluster.url(),
      '--slot',
      s,
      '--start',
      '-E',
      until,
      '--no-loop',
      // The protocol pgtape speaks: version 2, large transactions streamed while in progress; or
      // version 1, where the walsender holds each transaction (spilling it to disk) until its commit.
      '-o',
      `proto_version=${protocol}`,
      ...(protocol === 2 ? ['-o', 'streaming=on'] : []),
      '-o',
      'publication_names=pgtape',
      '-o',
      'messages=true',
      '-f',
      '/dev/null',
    ]);
  };
  const recv1 = await recvlogical(`${slot}_recv1`);
  const store = join(tmpdir(), `pgtape-bench-${slot}`);
  rmSync(store, { recursive: true, force: true });
  // An archiver on an empty store takes a base first (a snapshot of every table): pg_recvlogical
  // does nothing of the kind, so the base is taken before the timed run, as a sidecar has it.
  const base = (where: string, env: NodeJS.ProcessEnv = {}) =>
    timed(process.execPath, [bin, 'base', '--source', cluster.url(), '--store', where], env);
  await base(store);
  await base(`s3://bench/${slot}`, s3.env);
  process.stderr.write(`[${name}] pgtape archive --until ${until}…\n`);
  // PGTAPE_BENCH_PROFILE=<dir>: a CPU profile of the archiver's run to a directory, per workload.
  const profile = process.env.PGTAPE_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(process.env.PGTAPE_BENCH_PROFILE, slot)}`] : [];
  const tape = await timed(
    process.execPath,
    [...profile, bin, 'archive', '--source', cluster.url(), '--store', store, '--slot', `${slot}_pgtape`, '--until', until],
    {
      PGTAPE_LOG_FORMAT: 'json',
      ...(process.env.PGTAPE_BENCH_PROFILE ? { PGTAPE_LOG_LEVEL: 'debug' } : {}),
    },
  );
  // With a profile, the archiver's log beside it: where its time outside the stream went.
  if (process.env.PGTAPE_BENCH_PROFILE) writeFileSync(join(process.env.PGTAPE_BENCH_PROFILE, slot, 'archive.log'), tape.stderr);
  process.stderr.write(`[${name}] pgtape archive to S3 (s3rver on loopback)…\n`);
  const toS3 = await timed(
    process.execPath,
    [bin, 'archive', '--source', cluster.url(), '--store', `s3://bench/${slot}`, '--slot', `${slot}_pgtape_s3`, '--until', until],
    {
      PGTAPE_LOG_FORMAT: 'json',
      ...s3.env,
    },
  );
  process.stderr.write(`[${name}] pgtape archive --encrypt (a public key)…\n`);
  const sealedStore = `${store}-encrypted`;
  rmSync(sealedStore, { recursive: true, force: true });
  await timed(process.execPath, [bin, 'base', '--source', cluster.url(), '--store', sealedStore, '--encrypt', publicKey]);
  const sealed = await timed(
    process.execPath,
    [
      bin,
      'archive',
      '--source',
      cluster.url(),
      '--store',
      sealedStore,
      '--slot',
      `${slot}_pgtape_enc`,
      '--until',
      until,
      '--encrypt',
      publicKey,
    ],
    { PGTAPE_LOG_FORMAT: 'json' },
  );
  rmSync(sealedStore, { recursive: true, force: true });
  const recv2 = await recvlogical(`${slot}_recv2`);
  const recv = recv1.seconds <= recv2.seconds ? recv1 : recv2;
  const protocol1 = await recvlogical(`${slot}_recvp1`, 1);
  const logLines = tape.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; time: number; pgoutputBytes?: number });
  const done = logLines.find((l) => l.pgoutputBytes !== undefined)!;
  const started = logLines.find((l) => l.msg === 'archiving')!;
  return {
    store,
    row: {
      workload: name,
      changes,
      recvSeconds: recv.seconds,
      recvProtocol1Seconds: protocol1.seconds,
      pgtapeSeconds: tape.seconds,
      pgtapeRss: tape.peakRssMiB,
      pgtapeCpu: tape.cpuSeconds,
      pgtapeStreaming: (done.time - started.time) / 1000,
      s3Seconds: toS3.seconds,
      encryptedSeconds: sealed.seconds,
      encryptedCpu: sealed.cpuSeconds,
      recvRss: recv.peakRssMiB,
      pgoutputBytes: done.pgoutputBytes!,
      storedBytes: dirBytes(join(store, 'segments')),
    },
  };
}

async function bulk(db: pg.Client): Promise<number> {
  await db.query(`insert into bench (id, v, n) select g, md5(g::text) || ' nut ' || (g % 97), g * 1.25 from generate_series(1, $1) g`, [
    ROWS,
  ]);
  await db.query(`update bench set n = n + 1, v = v || '!' where id % 2 = 0`);
  await db.query(`delete from bench where id % 10 = 3`);
  return ROWS + Math.floor(ROWS / 2) + Math.floor(ROWS / 10);
}

async function small(db: pg.Client, url: string): Promise<number> {
  await db.query(`insert into bench (id, v, n) select g, 'seed ' || g, g from generate_series(1, 10000) g`);
  const perSession = Math.floor(TRANSACTIONS / SESSIONS);
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, s) => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      for (let i = 0; i < perSession; i++) {
        if (i % 3 === 0) await c.query('update bench set n = n + 1 where id = $1', [1 + ((i * 7 + s) % 10000)]);
        else await c.query('insert into bench (id, v, n) values ($1, $2, $3)', [20000 + s * perSession + i, `order ${s}-${i}`, i]);
      }
      await c.end();
    }),
  );
  return 10000 + perSession * SESSIONS;
}

/**
 * Bulk transactions interleaved with small ones: two sessions commit single-row transactions
 * throughout while a third runs three bulk transactions (each streamed while the others commit).
 */
async function mixed(db: pg.Client, url: string): Promise<number> {
  await db.query(`insert into bench (id, v, n) select g, 'seed ' || g, g from generate_series(1, 10000) g`);
  const perSession = Math.floor(TRANSACTIONS / 5);
  const bulkRows = Math.floor(ROWS / 5);
  let done = 0;
  const bulkSession = (async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    for (let b = 0; b < 3; b++) {
      const from = 1_000_000_000 + b * bulkRows;
      await c.query(`insert into bench (id, v, n) select g, md5(g::text), g from generate_series($1::int, $2::int) g`, [
        from,
        from + bulkRows - 1,
      ]);
    }
    await c.end();
  })();
  const smallSessions = Array.from({ length: 2 }, async (_, s) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    for (let i = 0; i < perSession; i++) {
      if (i % 4 === 0) await c.query('update bench set n = n + 1 where id = $1', [1 + ((i * 7 + s) % 10000)]);
      else await c.query('insert into bench (id, v, n) values ($1, $2, $3)', [20000 + s * perSession + i, `order ${s}-${i}`, i]);
      done++;
    }
    await c.end();
  });
  await Promise.all([bulkSession, ...smallSessions]);
  return 10000 + 3 * bulkRows + done;
}

const mb = (n: number) => (n / 1e6).toFixed(1);

async function main(): Promise<void> {
  if (spawnSync('pg_recvlogical', ['--version']).status !== 0) {
    throw new Error('pg_recvlogical not found: install it (Debian: apt-get install postgresql-client)');
  }
  const cluster = await LocalCluster.create({ unsafeFast: true, settings: { max_wal_size: "'4GB'" } });
  const s3 = await startS3();
  await s3.createBucket('bench');
  try {
    const admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    await admin.query('create table bench (id int primary key)');
    await admin.query('create publication pgtape for all tables');
    await admin.end();
    // The key pair the encrypted runs archive for (the archiver holds the public half only).
    const keys = mkdtempSync(join(tmpdir(), 'pgtape-bench-keys-'));
    const publicKey = join(keys, 'bench.pub');
    await timed(process.execPath, [bin, 'keygen', '--public', publicKey, '--private', join(keys, 'bench.private')]);
    const results = [
      await scenario(cluster, s3, 'a', `a: 1 transaction of ${ROWS} inserts, then half updated, a tenth deleted`, bulk, publicKey),
      await scenario(
        cluster,
        s3,
        'b',
        `b: ${TRANSACTIONS} small transactions from ${SESSIONS} sessions`,
        (db) => small(db, cluster.url()),
        publicKey,
      ),
      await scenario(
        cluster,
        s3,
        'c',
        `c: mixed, 3 bulk transactions of ${Math.floor(ROWS / 5)} inserts while 2 sessions commit ${2 * Math.floor(TRANSACTIONS / 5)} small ones`,
        (db) => mixed(db, cluster.url()),
        publicKey,
      ),
    ];
    rmSync(keys, { recursive: true, force: true });
    const lines = [
      `Measured on ${machine()}.`,
      '',
      '| workload | changes | pg_recvlogical | pg_recvlogical protocol 1 | pgtape | ratio | pgtape streaming alone (ratio) | pgtape CPU s per M changes | pgtape changes/s | peak RSS pgtape / pg_recvlogical | pgoutput bytes | stored bytes | stored / pgoutput |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...results.map(
        ({ row: r }) =>
          `| ${r.workload} | ${r.changes} | ${r.recvSeconds.toFixed(2)} s | ${r.recvProtocol1Seconds.toFixed(2)} s | ${r.pgtapeSeconds.toFixed(2)} s | ${(r.pgtapeSeconds / r.recvSeconds).toFixed(2)} | ` +
          `${r.pgtapeStreaming.toFixed(2)} s (${(r.pgtapeStreaming / r.recvSeconds).toFixed(2)}) | ${((r.pgtapeCpu * 1e6) / r.changes).toFixed(1)} | ` +
          `${Math.round(r.changes / r.pgtapeSeconds)} | ${r.pgtapeRss} / ${r.recvRss} MiB | ${mb(r.pgoutputBytes)} MB | ${mb(r.storedBytes)} MB | ${(r.storedBytes / r.pgoutputBytes).toFixed(3)} |`,
      ),
      '',
      '"pgtape" is the process from start to exit (Node starting, connecting, the slot, the stream, the last upload);',
      '"streaming alone" is its own log from "archiving" to "archive stopped". The base an archiver takes on an',
      'empty store is taken before the timed run. The ratio is against pg_recvlogical with the protocol pgtape',
      'speaks (2, streaming on; the faster of a run before and after pgtape); protocol 1 is shown beside it.',
    ];
    lines.push(
      '',
      '| workload | pgtape to a directory | pgtape to S3 (s3rver) | S3 / directory |',
      '|---|---:|---:|---:|',
      ...results.map(
        ({ row: r }) =>
          `| ${r.workload} | ${r.pgtapeSeconds.toFixed(2)} s | ${r.s3Seconds.toFixed(2)} s | ${(r.s3Seconds / r.pgtapeSeconds).toFixed(2)} |`,
      ),
    );
    lines.push(
      '',
      '| workload | pgtape to a directory | the same with --encrypt (public key) | encrypted / clear | CPU s clear / encrypted |',
      '|---|---:|---:|---:|---:|',
      ...results.map(
        ({ row: r }) =>
          `| ${r.workload} | ${r.pgtapeSeconds.toFixed(2)} s | ${r.encryptedSeconds.toFixed(2)} s | ${(r.encryptedSeconds / r.pgtapeSeconds).toFixed(2)} | ${r.pgtapeCpu.toFixed(2)} / ${r.encryptedCpu.toFixed(2)} |`,
      ),
    );
    process.stdout.write(`\n${lines.join('\n')}\n`);
    const raw = await readRawBodies(
      results.map((r) => join(r.store, 'segments')),
      64 << 20,
    );
    process.stdout.write(
      `\nSegment body compression (${mb(raw.length)} MB of raw bodies from both workloads):\n\n${await compressionTable(raw)}\n`,
    );
    for (const r of results) rmSync(r.store, { recursive: true, force: true });
  } finally {
    await cluster.destroy();
    await s3.close();
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
