// bench/soak: a steady pgbench workload for --minutes (default 30) with `pgtape archive` beside
// it, restarted every --restart-minutes (default 5) with SIGTERM. Reports commit-to-stored
// latency (p50/p99, from each transaction's commit time and the time its segment was stored),
// the archiver's RSS per run (flat, not growing) and the WAL the slot retains.
//   npm run build && node dist/bench/soak.js [--minutes 30] [--restart-minutes 5] [--tps 200]
// Needs pgbench (Debian's postgresql-client or postgresql-contrib).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { LocalCluster } from '../src/local-pg/local-cluster.js';
import { DirectoryStore } from '../src/store/directory.js';
import { listSegments, openSegment } from '../src/log/segments.js';
import { arg, bin } from './run.js';

const MINUTES = arg('minutes', 30);
const RESTART_MINUTES = arg('restart-minutes', 5);
const TPS = arg('tps', 200);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  if (spawnSync('pgbench', ['--version']).status !== 0)
    throw new Error('pgbench is not installed (Debian: apt-get install postgresql-client)');
  const work = mkdtempSync(join(tmpdir(), 'pgtape-soak-'));
  const store = join(work, 'tape');
  const cluster = await LocalCluster.create({ settings: { max_wal_size: "'1GB'" } });
  const url = cluster.url();
  const admin = new pg.Client({ connectionString: url });
  try {
    const init = spawnSync('pgbench', ['-i', '-s', '10', '-q', url], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    await admin.connect();
    await admin.query('alter table pgbench_history replica identity full');

    const storedAt = new Map<string, number>();
    let archiving: () => void = () => {};
    const firstArchiving = new Promise<void>((r) => (archiving = r));
    const rssByRun: number[][] = [];
    let archiver: ChildProcess | undefined;
    let runRss: number[] = [];
    const startArchiver = () => {
      runRss = [];
      rssByRun.push(runRss);
      const child = spawn(
        process.execPath,
        [bin, 'archive', '--source', url, '--store', store, '--create-publication', '--segment-seconds', '5'],
        {
          env: { ...process.env, PGTAPE_LOG_FORMAT: 'json' },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let buffer = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        buffer += d;
        const lines = buffer.split('\n');
        buffer = lines.pop()!;
        for (const l of lines) {
          if (!l.startsWith('{')) continue;
          const e = JSON.parse(l) as { msg: string; segment?: string; time: number };
          if (e.msg === 'stored segment' && e.segment) storedAt.set(e.segment, e.time);
          if (e.msg === 'archiving') archiving();
        }
      });
      return child;
    };
    const stopArchiver = async () => {
      const child = archiver!;
      const exited = new Promise((r) => child.once('close', r));
      child.kill('SIGTERM');
      await exited;
    };

    process.stderr.write(`soak: ${MINUTES} min of pgbench at ${TPS} tps, archiver restarted every ${RESTART_MINUTES} min…\n`);
    archiver = startArchiver();
    // The workload starts once the slot and base exist: every pgbench transaction is in the log.
    await firstArchiving;
    const bench = spawn('pgbench', ['-c', '4', '-j', '2', '-R', String(TPS), '-T', String(MINUTES * 60), '-n', url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const benchDone = new Promise((r) => bench.once('close', r));
    let maxRetained = 0;
    const retainedSamples: number[] = [];
    const started = Date.now();
    let nextRestart = started + RESTART_MINUTES * 60_000;
    let restarts = 0;
    const sampler = setInterval(() => {
      try {
        const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${archiver!.pid}/status`, 'utf8'));
        if (rss) runRss.push(Number(rss[1]) / 1024);
      } catch {
        // between runs
      }
    }, 1000);
    while (Date.now() - started < MINUTES * 60_000) {
      await new Promise((r) => setTimeout(r, 5000));
      const { rows } = await admin.query<{ retained: string | null }>(
        `select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text as retained from pg_replication_slots where slot_name = 'pgtape'`,
      );
      const retained = Number(rows[0]?.retained ?? 0);
      retainedSamples.push(retained);
      maxRetained = Math.max(maxRetained, retained);
      if (Date.now() >= nextRestart && Date.now() - started < MINUTES * 60_000 - 30_000) {
        await stopArchiver();
        archiver = startArchiver();
        restarts++;
        nextRestart += RESTART_MINUTES * 60_000;
      }
    }
    await benchDone;
    await new Promise((r) => setTimeout(r, 8000));
    await stopArchiver();
    clearInterval(sampler);
    const catchUp = spawnSync(process.execPath, [bin, 'archive', '--source', url, '--store', store, '--until', 'now'], {
      env: { ...process.env, PGTAPE_LOG_FORMAT: 'json' },
      encoding: 'utf8',
    });
    for (const l of catchUp.stderr.split('\n')) {
      if (l.startsWith('{')) {
        const e = JSON.parse(l) as { msg: string; segment?: string; time: number };
        if (e.msg === 'stored segment' && e.segment) storedAt.set(e.segment, e.time);
      }
    }

    // Commit-to-stored latency of every transaction, from the segments themselves.
    const latencies: number[] = [];
    const s = new DirectoryStore(store);
    let transactions = 0;
    let unlogged = 0;
    for (const ref of await listSegments(s)) {
      const at = storedAt.get(ref.key);
      if (at === undefined) unlogged++;
      for await (const e of openSegment(s, ref).entries()) {
        if (e.kind === 'commit') {
          transactions++;
          if (at !== undefined) latencies.push(at - Number(e.commitTime / 1000n));
        }
      }
    }
    if (unlogged) process.stderr.write(`${unlogged} segments without a 'stored segment' line (no latency for them)\n`);
    latencies.sort((a, b) => a - b);
    const committed = Number((await admin.query<{ n: string }>('select count(*)::text as n from pgbench_history')).rows[0]!.n);
    const rss = rssByRun.filter((r) => r.length).map((r) => `${Math.round(Math.max(...r))}`);
    process.stdout.write(
      [
        '',
        `| duration | pgbench | archiver restarts | transactions stored | pgbench transactions | commit→stored p50 | p99 | max | peak RSS per run (MiB) | retained WAL max / last |`,
        '|---|---|---:|---:|---:|---:|---:|---:|---|---:|',
        `| ${MINUTES} min | ${TPS} tps, 4 clients, scale 10 | ${restarts} | ${transactions} | ${committed} | ${(percentile(latencies, 50) / 1000).toFixed(2)} s | ${(percentile(latencies, 99) / 1000).toFixed(2)} s | ${(latencies.at(-1)! / 1000).toFixed(2)} s | ${rss.join(', ')} | ${(maxRetained / 2 ** 20).toFixed(1)} / ${(retainedSamples.at(-1)! / 2 ** 20).toFixed(1)} MiB |`,
        '',
      ].join('\n'),
    );
  } finally {
    await admin.end().catch(() => {});
    await cluster.destroy();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).message}\n`);
  process.exit(1);
});
