// bench/replay: pgtape replay --to latest --into an empty database, against COPY-loading the
// same final rows into an empty database (the anchor), in one run on the same machine.
//   npm run build && node dist/bench/replay.js [--rows 1000000] [--changes 1000000] [--append] [--tables 1]
import { spawnSync } from 'node:child_process';
import { chmodSync, createReadStream, createWriteStream, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { formatLsn, parseLsnKey } from '../src/core/lsn.js';
import { LocalCluster } from '../src/local-pg/local-cluster.js';
import { DirectoryStore } from '../src/store/directory.js';
import { S3Store } from '../src/store/s3.js';
import { startS3 } from '../test/support/s3rver.js';
import { arg, machine, measured } from './run.js';

/**
 * Debian's client programs (pg_dump, pg_restore, pg_basebackup) of the newest major installed:
 * the bench's server is then of that major (pg_dump refuses a newer server). None: the
 * comparisons with them are skipped, said so.
 */
function debianClient(): { major: number; bin: string } | undefined {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .map(Number)
        .filter((m) => existsSync(join(root, String(m), 'bin', 'pg_dump')) && existsSync(join(root, String(m), 'bin', 'postgres')))
    : [];
  const major = Math.max(...majors);
  return Number.isFinite(major) ? { major, bin: join(root, String(major), 'bin') } : undefined;
}

const CLIENT = debianClient();
const ROWS = arg('rows', 1_000_000);
const CHANGES = arg('changes', 1_000_000);
const APPEND = process.argv.includes('--append');
// --tables N: the rows spread over N tables of different sizes, as a real schema has a few large
// tables and many small ones (the i-th holds 1/i of the first's share: Zipf-like).
const TABLES = arg('tables', 1);
const NAMES = TABLES === 1 ? ['bench'] : Array.from({ length: TABLES }, (_, i) => `bench_${i + 1}`);
const WEIGHTS = NAMES.map((_, i) => 1 / (i + 1));
const share = (n: number, i: number) => Math.floor((n * WEIGHTS[i]!) / WEIGHTS.reduce((a, b) => a + b, 0));
const tableDef = (name: string) => `create table ${name} (id int, v text, n numeric, t timestamptz)`;

/** Runs pgtape and returns its wall time. Asynchronously: the S3 server runs in this process. */
async function pgtape(args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  return (await measured(args, env)).seconds;
}

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'pgtape-bench-replay-'));
  const store = join(work, 'tape');
  // No autovacuum: a worker analyzing one run's freshly loaded table must not slow the next run down.
  const cluster = await LocalCluster.create({
    major: CLIENT?.major,
    unsafeFast: true,
    settings: { max_wal_size: "'4GB'", autovacuum: 'off' },
  });
  try {
    const source = cluster.url();
    process.stderr.write(`source: ${ROWS} rows in ${TABLES} table(s), then ${CHANGES} changes after the base…\n`);
    for (const [i, name] of NAMES.entries()) {
      await query(
        source,
        `${tableDef(name)}; alter table ${name} add primary key (id);
        insert into ${name} select g, md5(g::text), g * 1.5, '2026-11-24 00:00+00'::timestamptz + g * interval '1 second' from generate_series(1, ${share(ROWS, i)}) g`,
      );
    }
    await pgtape(['archive', '--source', source, '--store', store, '--create-publication', '--until', 'now']);
    // The same history into an encrypted store (a key pair; replays read with the private half).
    const sealedStore = join(work, 'tape-encrypted');
    const [publicKey, privateKey] = [join(work, 'bench.pub'), join(work, 'bench.private')];
    await pgtape(['keygen', '--public', publicKey, '--private', privateKey]);
    const sealedArchive = ['archive', '--source', source, '--store', sealedStore, '--slot', 'pgtape_sealed', '--encrypt', publicKey];
    await pgtape([...sealedArchive, '--until', 'now']);
    // Updates of half the changes, inserts of four tenths, deletes of one tenth, in transactions of
    // 100k; with --append, inserts only (an append-mostly history: events, logs, measurements).
    const updates = APPEND ? 0 : Math.floor(CHANGES / 2);
    const inserts = APPEND ? CHANGES : Math.floor((CHANGES * 4) / 10);
    const deletes = CHANGES - updates - inserts;
    for (const [t, name] of NAMES.entries()) {
      const [rows, tableUpdates, tableInserts, tableDeletes] = [ROWS, updates, inserts, deletes].map((n) => share(n, t)) as [
        number,
        number,
        number,
        number,
      ];
      for (let i = 0; i < tableUpdates; i += 100_000) {
        await query(
          source,
          `update ${name} set v = v || '+', n = n + 1 where id > ${i * 2} and id <= ${Math.min(tableUpdates, i + 100_000) * 2} and id % 2 = 0`,
        );
      }
      for (let i = 0; i < tableInserts; i += 100_000) {
        await query(
          source,
          `insert into ${name} select g, 'new ' || g, g, now() from generate_series(${rows + i + 1}, ${rows + Math.min(tableInserts, i + 100_000)}) g`,
        );
      }
      if (tableDeletes)
        await query(source, `delete from ${name} where id in (select id from ${name} where id % 2 = 1 order by id limit ${tableDeletes})`);
    }
    await pgtape(['archive', '--source', source, '--store', store, '--until', 'now']);
    await pgtape([...sealedArchive, '--until', 'now']);
    let finalRows = 0;
    for (const name of NAMES) finalRows += Number((await query(source, `select count(*) from ${name}`)).rows[0].count);

    // The anchor's input: the same final rows, dumped by COPY.
    const dump = (name: string) => join(work, `${name}.copy`);
    {
      const c = new pg.Client({ connectionString: source });
      await c.connect();
      for (const name of NAMES) await pipeline(c.query(copyTo(`copy ${name} to stdout`)), createWriteStream(dump(name)));
      await c.end();
    }
    // The workload leaves a vacuum to do: done now, not during a measurement. The slot is not
    // needed any more: dropped, the WAL the runs write is recycled instead of kept.
    await query(source, 'vacuum analyze');
    await query(source, `select pg_drop_replication_slot(slot_name) from pg_replication_slots`);
    let database = 0;
    const anchorRun = async (): Promise<number> => {
      const db = `anchor_${database++}`;
      await query(source, `create database ${db}`);
      const anchor = new pg.Client({ connectionString: cluster.url(db) });
      await anchor.connect();
      const started = process.hrtime.bigint();
      for (const name of NAMES) {
        await anchor.query(tableDef(name));
        await pipeline(createReadStream(dump(name)), anchor.query(copyFrom(`copy ${name} from stdin`)));
        await anchor.query(`alter table ${name} add primary key (id)`);
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      await anchor.end();
      return seconds;
    };
    const replayRun = async (...from: string[]): Promise<number> => {
      const db = `replayed_${database++}`;
      await query(source, `create database ${db}`);
      return pgtape(['replay', '--store', store, '--to', 'latest', '--into', cluster.url(db), ...from]);
    };
    // Interleaved, three times each; the best of each is compared (the machine's noise is not pgtape's).
    process.stderr.write(
      'anchor (COPY the same final rows into an empty database) and pgtape replay --to latest --into an empty database, interleaved…\n',
    );
    const anchorTimes: number[] = [];
    const replayTimes: number[] = [];
    const sealedTimes: number[] = [];
    // Each run starts from a checkpoint: none inherits the dirty buffers of the one before it.
    for (let i = 0; i < 3; i++) {
      await query(source, 'checkpoint');
      anchorTimes.push(await anchorRun());
      await query(source, 'checkpoint');
      replayTimes.push(await replayRun());
      await query(source, 'checkpoint');
      sealedTimes.push(await replayRun('--store', sealedStore, '--key-file', privateKey));
    }
    const sealedSeconds = Math.min(...sealedTimes);
    const anchorSeconds = Math.min(...anchorTimes);
    const replaySeconds = Math.min(...replayTimes);

    // replay --pgdata: a new cluster of its own (initdb, load without WAL or fsync, sync, hand over).
    process.stderr.write('pgtape replay --pgdata (a new cluster, loaded without WAL, synced once)…\n');
    // With its parallel jobs (one per core, the default) and with --jobs 1, interleaved.
    const pgdataTimes: number[] = [];
    const oneJobTimes: number[] = [];
    const pgdataRun = async (...more: string[]): Promise<number> => {
      const parent = mkdtempSync(join(tmpdir(), 'pgtape-bench-pgdata-'));
      chmodSync(parent, 0o755);
      try {
        return await pgtape(['replay', '--store', store, '--to', 'latest', '--pgdata', join(parent, 'pgdata'), ...more]);
      } finally {
        rmSync(parent, { recursive: true, force: true });
      }
    };
    for (let i = 0; i < 2; i++) {
      pgdataTimes.push(await pgdataRun());
      oneJobTimes.push(await pgdataRun('--jobs', '1'));
    }
    const pgdataSeconds = Math.min(...pgdataTimes);
    const oneJobSeconds = Math.min(...oneJobTimes);

    // What a user would do instead: a dump taken at the point, restored; or a copy of the whole PGDATA.
    const instead: string[] = [];
    if (CLIENT) {
      process.stderr.write(`pg_dump / pg_restore and pg_basebackup (PostgreSQL ${CLIENT.major})…\n`);
      const timed = (program: string, args: string[]): number => {
        const started = process.hrtime.bigint();
        const r = spawnSync(join(CLIENT.bin, program), args, { encoding: 'utf8', env: { ...process.env, PGPASSWORD: cluster.password } });
        if (r.status !== 0) throw new Error(`${program} failed: ${r.stderr}`);
        return Number(process.hrtime.bigint() - started) / 1e9;
      };
      const conn = ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres'];
      const dumpFile = join(work, 'bench.dump');
      const dumpSeconds = timed('pg_dump', [...conn, '-d', 'postgres', '-t', 'bench*', '-Fc', '-f', dumpFile]);
      const restoreTimes: number[] = [];
      for (let i = 0; i < 2; i++) {
        const db = `restored_${database++}`;
        await query(source, `create database ${db}`);
        await query(source, 'checkpoint');
        restoreTimes.push(timed('pg_restore', [...conn, '-d', db, '-j', '2', dumpFile]));
      }
      const backup = join(work, 'basebackup');
      await query(source, 'checkpoint');
      const backupSeconds = timed('pg_basebackup', [...conn, '-D', backup, '-X', 'stream', '-c', 'fast']);
      const backupBytes = Number(spawnSync('du', ['-sb', backup], { encoding: 'utf8' }).stdout.split('\t')[0]);
      rmSync(backup, { recursive: true, force: true });
      const restoreSeconds = Math.min(...restoreTimes);
      instead.push(
        `| pg_restore -j 2 of a pg_dump -Fc taken at the point (dump: ${dumpSeconds.toFixed(2)} s) | ${restoreSeconds.toFixed(2)} s | ${(restoreSeconds / anchorSeconds).toFixed(2)} |`,
        `| pg_basebackup of the whole source PGDATA (${(backupBytes / 2 ** 20).toFixed(0)} MiB, every database of the bench) | ${backupSeconds.toFixed(2)} s | ${(backupSeconds / anchorSeconds).toFixed(2)} |`,
      );
    } else {
      process.stderr.write(
        'no pg_dump/pg_restore under /usr/lib/postgresql (Debian postgresql-client): the comparison with them is skipped\n',
      );
      instead.push('| pg_dump / pg_restore, pg_basebackup | skipped: no Debian postgresql-client | |');
    }

    process.stderr.write('pgtape log and diff over the same changes…\n');
    const base = `lsn:${formatLsn(parseLsnKey(readdirSync(join(store, 'base'))[0]!)!)}`;
    const audits: [string, string[]][] = [
      ['log (one line per transaction)', ['log', '--store', store]],
      ['log --rows --json (one line per change)', ['log', '--store', store, '--rows', '--json']],
      ['diff --summary (base → latest)', ['diff', '--store', store, '--from', base, '--to', 'latest', '--summary']],
      ['diff --format jsonl (base → latest)', ['diff', '--store', store, '--from', base, '--to', 'latest', '--format', 'jsonl']],
      ['diff --summary --memory 128MiB', ['diff', '--store', store, '--from', base, '--to', 'latest', '--summary', '--memory', '128MiB']],
      [
        'diff --format jsonl --memory 128MiB',
        ['diff', '--store', store, '--from', base, '--to', 'latest', '--format', 'jsonl', '--memory', '128MiB'],
      ],
      [
        'diff --format jsonl --memory 16GiB (in memory, one part)',
        ['diff', '--store', store, '--from', base, '--to', 'latest', '--format', 'jsonl', '--memory', '16GiB'],
      ],
    ];
    const auditRows: string[] = [];
    for (const [what, args] of audits) {
      const m = await measured(args);
      auditRows.push(`| ${what} | ${m.seconds.toFixed(2)} s | ${m.lines} | ${Math.round(m.peakMiB)} MiB |`);
    }

    process.stderr.write('the same from S3 (s3rver on loopback)…\n');
    const s3 = await startS3();
    let s3Seconds: number;
    try {
      await s3.createBucket('bench');
      const local = new DirectoryStore(store);
      const remote = new S3Store({
        bucket: 'bench',
        prefix: 'tape/',
        description: 's3://bench/tape',
        endpoint: s3.endpoint,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      });
      for (const o of await local.list('')) await remote.putFile(o.key, join(store, o.key));
      await query(source, 'create database replayed_s3');
      s3Seconds = await pgtape(['replay', '--store', 's3://bench/tape', '--to', 'latest', '--into', cluster.url('replayed_s3')], s3.env);
    } finally {
      await s3.close();
    }

    const serverMajor = Math.floor(Number((await query(source, 'show server_version_num')).rows[0].server_version_num) / 10000);
    let same = true;
    for (const name of NAMES) {
      const sum = `select md5(string_agg(b::text, ',' order by id)) as h from ${name} b`;
      if ((await query(cluster.url('replayed_1'), sum)).rows[0].h !== (await query(source, sum)).rows[0].h) same = false;
    }
    process.stdout.write(
      [
        '',
        '| workload | final rows | COPY load (anchor) | pgtape replay | ratio | replay rows/s | changes/s | replay equals source |',
        '|---|---:|---:|---:|---:|---:|---:|---|',
        `| ${ROWS} rows in the base${TABLES > 1 ? ` (${TABLES} tables, ${share(ROWS, 0)} to ${share(ROWS, TABLES - 1)} rows)` : ''}, ${CHANGES} changes after it (${updates} updates, ${inserts} inserts, ${deletes} deletes) | ${finalRows} | ` +
          `${anchorSeconds.toFixed(2)} s | ${replaySeconds.toFixed(2)} s | ${(replaySeconds / anchorSeconds).toFixed(2)} | ` +
          `${Math.round(finalRows / replaySeconds)} | ${Math.round(CHANGES / replaySeconds)} | ${same ? 'yes' : 'NO'} |`,
        `Runs (anchor / replay, seconds): ${anchorTimes.map((a, i) => `${a.toFixed(2)} / ${replayTimes[i]!.toFixed(2)}`).join(', ')}; the table compares the best of each.`,
        '',
        `| into a new cluster (PostgreSQL ${serverMajor}, ${machine()}) | time | ratio to the anchor |`,
        '|---|---:|---:|',
        `| COPY load into an empty database (the anchor) | ${anchorSeconds.toFixed(2)} s | 1.00 |`,
        `| pgtape replay --into an empty database | ${replaySeconds.toFixed(2)} s | ${(replaySeconds / anchorSeconds).toFixed(2)} |`,
        `| pgtape replay --pgdata (initdb, load, sync; ${availableParallelism()} jobs; runs ${pgdataTimes.map((t) => t.toFixed(2)).join(', ')}) | ${pgdataSeconds.toFixed(2)} s | ${(pgdataSeconds / anchorSeconds).toFixed(2)} |`,
        `| pgtape replay --pgdata --jobs 1 (runs ${oneJobTimes.map((t) => t.toFixed(2)).join(', ')}) | ${oneJobSeconds.toFixed(2)} s | ${(oneJobSeconds / anchorSeconds).toFixed(2)} |`,
        ...instead,
        '',
        '| store | pgtape replay | S3 / directory |',
        '|---|---:|---:|',
        `| directory | ${replaySeconds.toFixed(2)} s | 1.00 |`,
        `| S3 (s3rver on loopback) | ${s3Seconds.toFixed(2)} s | ${(s3Seconds / replaySeconds).toFixed(2)} |`,
        '',
        '| the same history | pgtape replay --into | encrypted / clear |',
        '|---|---:|---:|',
        `| stored in the clear | ${replaySeconds.toFixed(2)} s | 1.00 |`,
        `| encrypted (a key pair; runs ${sealedTimes.map((t) => t.toFixed(2)).join(', ')}) | ${sealedSeconds.toFixed(2)} s | ${(sealedSeconds / replaySeconds).toFixed(2)} |`,
        '',
        `| audit over the ${CHANGES} changes | time | lines out | peak RSS |`,
        '|---|---:|---:|---:|',
        ...auditRows,
        '',
      ].join('\n'),
    );
  } finally {
    await cluster.destroy();
    // PGTAPE_BENCH_KEEP=1 keeps the store for profiling the readers on it.
    if (process.env.PGTAPE_BENCH_KEEP) process.stderr.write(`store kept in ${store}\n`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
