// bench/history: a long archive — tens of thousands of one-minute segments — and what using it
// costs as it grows: finding a target (time, requests), log of a recent range, verify, replay of
// latest with and without a compacted base, peak memory; on a directory and on S3 (s3rver behind
// a proxy that counts requests and adds a latency per request, as a real object store has).
//   npm run build && node dist/bench/history.js [--segments 20000] [--s3-segments 5000] [--latency-ms 20] [--locate-only]
//   (PGTAPE_BENCH_TRACE=1: the S3 requests of a located range by kind; =timeline: log's, in time order)
// --locate-only measures only what a reader waits for before its first line (locating points,
// finding a range, log's first line): a year of one-minute segments is --segments 525600.
// The segments after a real base are written directly with the segment writer (one transaction
// of one insert each, a mark every 100): archiving 20,000 real transactions one segment at a
// time would take most of the bench's time and measure the archiver instead.
import pg from 'pg';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mapLimit } from '../src/core/concurrency.js';
import { LocalCluster } from '../src/local-pg/local-cluster.js';
import { listBases, readBase } from '../src/log/bases.js';
import { listSegments } from '../src/log/segments.js';
import { formatLsn } from '../src/core/lsn.js';
import type { RelationDef } from '../src/segment/format.js';
import { SegmentWriter, type SealedSegment } from '../src/segment/writer.js';
import { MARK_PREFIX } from '../src/source/logical-messages.js';
import { DirectoryStore } from '../src/store/directory.js';
import { S3Store } from '../src/store/s3.js';
import type { Store } from '../src/store/store.js';
import { startGatewayProxy } from '../test/support/gateway-proxy.js';
import { startS3 } from '../test/support/s3rver.js';
import { arg, measured } from './run.js';

const SEGMENTS = arg('segments', 20_000);
const S3_SEGMENTS = arg('s3-segments', 5_000);
const LATENCY_MS = arg('latency-ms', 20);
const BASE_ROWS = 10_000;
const MARK_EVERY = 100;
const LOCATE_ONLY = process.argv.includes('--locate-only');

/** Runs pgtape to its end: wall time and peak RSS. */
const pgtape = (args: string[], env: NodeJS.ProcessEnv = {}) => measured(args, env);

/** Writes segments `from`..`to`-1 after `start`, one insert each, a mark every MARK_EVERY; returns the new end. */
async function writeSegments(
  stores: Store[],
  spool: string,
  range: { from: number; to: number; start: bigint; time: bigint },
  identity: ConstructorParameters<typeof SegmentWriter>[2],
  relation: RelationDef,
): Promise<bigint> {
  const starts: bigint[] = [];
  for (let i = range.from, lsn = range.start; i < range.to; i++, lsn += 0x100n) starts.push(lsn);
  await mapLimit(starts, 8, async (start, k) => {
    const i = range.from + k;
    const writer = new SegmentWriter(spool, start, identity, 'br', () => relation);
    const commitLsn = start + 0x10n;
    const time = range.time + BigInt(i) * 60_000_000n;
    await writer.begin(1_000_000 + i, commitLsn, time);
    await writer.change({
      kind: 'insert',
      relation: relation.oid,
      new: { kinds: Buffer.from('tt'), values: [Buffer.from(String(BASE_ROWS + i + 1)), Buffer.from(`segment ${i}`)] },
    });
    if (i % MARK_EVERY === 0) {
      await writer.change({ kind: 'message', prefix: MARK_PREFIX, content: Buffer.from(`m${i}`), lsn: start + 0x8n, transactional: true });
    }
    await writer.commit(commitLsn, start + 0x80n, time, 0);
    writer.advanceTo(start + 0x100n);
    const sealed: SealedSegment = await writer.seal();
    for (const store of stores) await store.putFile(sealed.key, sealed.path);
    rmSync(sealed.path, { force: true });
  });
  return range.start + BigInt(range.to - range.from) * 0x100n;
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const work = mkdtempSync(join(tmpdir(), 'pgtape-bench-history-'));
  const cluster = await LocalCluster.create({ unsafeFast: true });
  const s3 = await startS3();
  const proxy = await startGatewayProxy(s3.endpoint, 1);
  try {
    await s3.createBucket('history');
    const s3env = { ...s3.env, AWS_ENDPOINT_URL: proxy.endpoint };
    Object.assign(process.env, s3env);
    const client = new pg.Client({ connectionString: cluster.url() });
    await client.connect();
    await client.query(`create table t (id int primary key, v text)`);
    await client.query(`insert into t select g, 'base ' || g from generate_series(1, ${BASE_ROWS}) g`);
    const oid = Number((await client.query<{ oid: string }>(`select 't'::regclass::oid::text as oid`)).rows[0]!.oid);
    await client.end();
    const dir = new DirectoryStore(join(work, 'tape'));
    const r = await pgtape(['archive', '--source', cluster.url(), '--store', dir.description, '--create-publication', '--until', 'now']);
    console.log(`base: ${r.seconds.toFixed(1)} s`);
    // The same base on S3: copied file by file.
    const s3store = new S3Store({
      bucket: 'history',
      prefix: 'tape/',
      description: 's3://history/tape',
      endpoint: proxy.endpoint,
    } as never);
    for (const o of await dir.list('')) await s3store.putBytes(o.key, readFileSync(join(dir.description, o.key)));
    const base = (await listBases(dir)).at(-1)!;
    const { schema } = await readBase(dir, base);
    const identity = {
      systemIdentifier: schema.systemIdentifier,
      database: schema.database,
      slot: 'pgtape',
      serverVersion: schema.serverVersion,
    };
    const relation: RelationDef = {
      oid,
      schema: 'public',
      name: 't',
      replicaIdentity: 'd',
      columns: [
        { name: 'id', key: true, typeOid: 23, typmod: -1, typeName: 'int4' },
        { name: 'v', key: false, typeOid: 25, typmod: -1, typeName: 'text' },
      ],
    };
    let end = (await listSegments(dir)).at(-1)?.endLsn ?? base.lsn;
    const time = BigInt(Date.parse(schema.snapshotTime)) * 1000n + 1_000_000n;
    const spool = join(work, 'spool');
    mkdirSync(spool);

    const rows: string[][] = [];
    const whole: string[][] = [];
    // Peak RSS per command and archive size (directory, indexed): memory that follows the archive's
    // length is a leak, said out loud below (a replay's peak once grew from 95 to 1066 MiB unnoticed).
    const peaks = new Map<string, Map<number, number>>();
    const peak = (command: string, size: number, mib: number) => peaks.set(command, (peaks.get(command) ?? new Map()).set(size, mib));
    let written = 0;
    for (const size of [...new Set([2_000, 5_000, 20_000, 50_000, SEGMENTS])].filter((n) => n <= SEGMENTS)) {
      const toS3 = Math.max(0, Math.min(size, S3_SEGMENTS) - written);
      if (toS3 > 0)
        end = await writeSegments([dir, s3store], spool, { from: written, to: written + toS3, start: end, time }, identity, relation);
      if (size > written + toS3)
        end = await writeSegments([dir], spool, { from: written + toS3, to: size, start: end, time }, identity, relation);
      written = size;
      const recent = `name:m${size - 2 * MARK_EVERY}`;
      const until = `name:m${size - MARK_EVERY}`;
      // A time between two commits, 150 segments before the end.
      const timeTarget = `time:${new Date(Number((time + BigInt(size - 150) * 60_000_000n + 30_000_000n) / 1000n)).toISOString()}`;
      const measure = async (label: string, store: string, env: NodeJS.ProcessEnv, s3: boolean) => {
        // Finding a point alone: an empty range (--from X --to X) reads no segment body.
        const locate = async (target: string) => {
          const before = proxy.requests;
          if (process.env.PGTAPE_BENCH_TRACE === 'timeline' && s3) proxy.trace = [];
          const r = await pgtape(['log', '--store', store, '--from', target, '--to', target, '--json'], env);
          if (proxy.trace) console.log(`locating ${target} (${(r.seconds * 1000).toFixed(0)} ms):\n${proxy.trace.join('\n')}`);
          proxy.trace = undefined;
          return `${r.seconds.toFixed(2)} s${s3 ? ` / ${proxy.requests - before} req` : ''}`;
        };
        const located = [await locate(until), await locate(timeTarget)];
        const before = proxy.requests;
        if (process.env.PGTAPE_BENCH_TRACE && s3) proxy.trace = [];
        const find = await pgtape(['log', '--store', store, '--from', recent, '--to', until, '--json'], env);
        const findRequests = proxy.requests - before;
        if (proxy.trace) {
          console.log(
            proxy.trace
              .map((t) => t.replace(/^ *\d+ ms /, '').replace(/[0-9A-F]{16}/g, 'L'))
              .sort()
              .reduce<Record<string, number>>(
                (m, t) => ((m[t.split('?')[0]!.slice(0, 60)] = (m[t.split('?')[0]!.slice(0, 60)] ?? 0) + 1), m),
                {},
              ),
          );
          proxy.trace = undefined;
        }
        // PGTAPE_BENCH_TRACE=timeline: the requests of log's run to its first line, in time order.
        if (process.env.PGTAPE_BENCH_TRACE === 'timeline' && s3) proxy.trace = [];
        const log = await measured(['log', '--store', store, '--json'], env, { firstLineOnly: LOCATE_ONLY });
        if (proxy.trace)
          console.log(`log's requests (first line at ${(log.firstOutputSeconds * 1000).toFixed(0)} ms):\n${proxy.trace.join('\n')}`);
        proxy.trace = undefined;
        const skipped = { seconds: NaN, peakMiB: NaN, lines: 0, firstOutputSeconds: NaN };
        const replay = LOCATE_ONLY ? skipped : await pgtape(['replay', '--store', store, '--csv', join(work, `csv-${label}-${size}`)], env);
        rmSync(join(work, `csv-${label}-${size}`), { recursive: true, force: true });
        if (label === 'directory, indexed' && !LOCATE_ONLY) {
          peak('log --from --to (a recent range)', size, find.peakMiB);
          peak('log of everything', size, log.peakMiB);
          peak('replay latest --csv', size, replay.peakMiB);
        }
        rows.push([
          label,
          String(size),
          ...located,
          `${find.seconds.toFixed(2)} s${s3 ? ` / ${findRequests} req` : ''}`,
          `${find.peakMiB.toFixed(0)} MiB`,
          `${log.seconds.toFixed(2)} s (first line ${log.firstOutputSeconds.toFixed(2)} s)`,
          `${log.peakMiB.toFixed(0)} MiB`,
          `${replay.seconds.toFixed(2)} s`,
          `${replay.peakMiB.toFixed(0)} MiB`,
        ]);
      };
      // Without index objects every header is read: minutes at a year's length.
      if (!LOCATE_ONLY) await measure('directory', dir.description, {}, false);
      await pgtape(['index', '--store', dir.description]);
      await measure('directory, indexed', dir.description, {}, false);
      if (LOCATE_ONLY) {
        if (size <= S3_SEGMENTS) {
          proxy.latencyMs = LATENCY_MS;
          await pgtape(['index', '--store', 's3://history/tape'], s3env);
          await measure(`s3 +${LATENCY_MS} ms, indexed`, 's3://history/tape', s3env, true);
          proxy.latencyMs = 0;
        }
        continue;
      }
      // Commands over the whole history: their memory must not follow its length.
      const verifyAll = await pgtape(['verify', '--store', dir.description]);
      const diffAll = await pgtape(['diff', '--store', dir.description, '--from', 'name:m0', '--summary']);
      peak('verify', size, verifyAll.peakMiB);
      peak('diff --summary over everything', size, diffAll.peakMiB);
      whole.push([
        String(size),
        `${verifyAll.seconds.toFixed(2)} s`,
        `${verifyAll.peakMiB.toFixed(0)} MiB`,
        `${diffAll.seconds.toFixed(2)} s`,
        `${diffAll.peakMiB.toFixed(0)} MiB`,
      ]);
      if (size <= S3_SEGMENTS) {
        proxy.latencyMs = LATENCY_MS;
        await measure(`s3 +${LATENCY_MS} ms`, 's3://history/tape', s3env, true);
        await pgtape(['index', '--store', 's3://history/tape'], s3env);
        await measure(`s3 +${LATENCY_MS} ms, indexed`, 's3://history/tape', s3env, true);
        proxy.latencyMs = 0;
      }
    }
    if (LOCATE_ONLY) {
      console.log(
        `\n| archive | segments | locate name: | locate time: | find name: range (log --from --to) | its peak RSS | log's first line |\n|---|---|---|---|---|---|---|`,
      );
      for (const r of rows) console.log(`| ${r.slice(0, 6).join(' | ')} | ${r[6]!.replace(/^.*first line (.*)\)$/, '$1')} |`);
      return;
    }
    // Replay of latest from the first base, then from a base compacted from the archive.
    const fromFirst = await pgtape(['replay', '--store', dir.description, '--csv', join(work, 'csv-first')]);
    const compact = await pgtape(['compact', '--store', dir.description]);
    const fromCompacted = await pgtape(['replay', '--store', dir.description, '--csv', join(work, 'csv-compacted')]);
    // What --base-every buys: a base a few hours old (300 one-minute segments since) against that base alone.
    const compacted = (await listBases(dir)).at(-1)!;
    end = await writeSegments([dir], spool, { from: written, to: written + 300, start: end, time }, identity, relation);
    const baseAlone = await pgtape([
      'replay',
      '--store',
      dir.description,
      '--to',
      `lsn:${formatLsn(compacted.lsn)}`,
      '--csv',
      join(work, 'csv-alone'),
    ]);
    const baseAndSince = await pgtape(['replay', '--store', dir.description, '--csv', join(work, 'csv-since')]);
    console.log(
      `\n| archive | segments | locate name: | locate time: | find name: range (log --from --to) | its peak RSS | log of everything (its first line) | its peak RSS | replay latest --csv | its peak RSS |\n|---|---|---|---|---|---|---|---|---|---|`,
    );
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    console.log(
      `\n| segments (directory, indexed) | verify | its peak RSS | diff --from name:m0 --summary | its peak RSS |\n|---|---|---|---|---|`,
    );
    for (const r of whole) console.log(`| ${r.join(' | ')} |`);
    const sizes = [...(peaks.values().next().value?.keys() ?? [])];
    if (sizes.length > 1) {
      const [first, last] = [sizes[0]!, sizes.at(-1)!];
      console.log(`\n| peak RSS (directory, indexed) | ${first} segments | ${last} segments | ratio | verdict |\n|---|---|---|---|---|`);
      for (const [command, bySize] of peaks) {
        const ratio = bySize.get(last)! / bySize.get(first)!;
        const verdict = ratio > 1.5 ? `**grows with the archive** (${last / first}× the segments)` : 'bounded';
        console.log(
          `| ${command} | ${bySize.get(first)!.toFixed(0)} MiB | ${bySize.get(last)!.toFixed(0)} MiB | ${ratio.toFixed(2)} | ${verdict} |`,
        );
      }
    }
    console.log(
      `\nreplay of latest at ${written} segments (directory): ${fromFirst.seconds.toFixed(2)} s from the first base; ` +
        `${fromCompacted.seconds.toFixed(2)} s from a base compacted from the archive (compact took ${compact.seconds.toFixed(1)} s): ` +
        `ratio ${(fromCompacted.seconds / fromFirst.seconds).toFixed(2)}`,
    );
    console.log(
      `replay of latest 300 segments after that compacted base: ${baseAndSince.seconds.toFixed(2)} s against ${baseAlone.seconds.toFixed(2)} s ` +
        `for the base alone (--to its LSN): ratio ${(baseAndSince.seconds / baseAlone.seconds).toFixed(2)}; peak RSS ${baseAndSince.peakMiB.toFixed(0)} MiB`,
    );
  } finally {
    await proxy.close();
    await s3.close();
    await cluster.destroy();
    if (process.env.PGTAPE_BENCH_KEEP) console.log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

await main();
