import { randomBytes } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { archiveArgs, pgtape, type CliResult } from '../support/cli.js';
import { sleep, useSource } from '../support/fixture.js';
import { startGatewayProxy, type GatewayProxy } from '../support/gateway-proxy.js';
import { TEST_SEED } from '../support/random.js';
import { replayIntoFresh } from '../support/replay-into.js';
import { startS3, type TestS3 } from '../support/s3rver.js';
import { transaction } from '../support/tape.js';
import { listSegments } from '../../src/log/segments.js';
import { openStore } from '../../src/store/open.js';

// An archive of many segments, read by every command with every target kind: each reader must
// close what it opens (docs/ARCHITECTURE.md, Invariants). A leaked descriptor per segment fails
// under a low `ulimit -n`; a leaked HTTP body per segment exhausts the S3 client's sockets.

/** Where the workload stood at each target, and the target's text. */
interface Targets {
  xid: number;
  time: string;
  lsn: string;
}

const SCHEMA = `
  create table t (id int primary key, v text);
  create table blobs (id int primary key, b bytea);
`;

const FD_LIMIT = { PGTAPE_TEST_FD_LIMIT: '256' };

/** A segment file's end LSN, as a target (segments/<start16>-<end16>.pgtape). */
const segmentEnd = (file: string) => {
  const end = BigInt(`0x${file.split('-')[1]!.slice(0, 16)}`);
  return `${(end >> 32n).toString(16).toUpperCase()}/${(end & 0xffffffffn).toString(16).toUpperCase()}`;
};

const lines = (r: CliResult) => r.stdout.trim().split('\n').filter(Boolean);

function ok(r: CliResult, what: string): CliResult {
  expect(r.stderr, what).not.toMatch(/EMFILE|socket did not establish/);
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
  return r;
}

/** One transaction of `work`; returns its xid. */
async function commit(client: pg.Client, work: (q: pg.Client) => Promise<void>): Promise<number> {
  return (await transaction(client, work))!;
}

/** A time after the last commit and before the next (time: cuts before the first commit after it). */
async function timeBetweenCommits(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ t: string }>(
    `select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as t`,
  );
  await sleep(5);
  return rows[0]!.t;
}

async function currentLsn(client: pg.Client): Promise<string> {
  return (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!.lsn;
}

describe('a long archive: every command and target kind, each segment opened and closed', () => {
  const source = useSource(SCHEMA);

  describe('on a directory of more than 1024 segments, under ulimit -n 256', () => {
    const store = () => source.store.dir;
    const at = {} as Targets;

    it('records 1100 transactions, one segment each', async () => {
      const setup = await pgtape(archiveArgs(source.db.url(), store(), '--create-publication', '--until', 'now', '--segment-bytes', '1'));
      expect(setup.code, setup.stderr).toBe(0);
      const client = await source.db.client();
      try {
        for (let i = 1; i <= 1100; i++) {
          const xid = await commit(client, (q) => q.query('insert into t values ($1, $2)', [i, `v${i}`]).then(() => undefined));
          if (i === 300) at.xid = xid;
          if (i === 600) await client.query(`select pg_logical_emit_message(true, 'pgtape', 'six-hundred')`);
          if (i === 900) at.time = await timeBetweenCommits(client);
          if (i === 1000) at.lsn = await currentLsn(client);
        }
      } finally {
        await client.end();
      }
      const drain = await pgtape(archiveArgs(source.db.url(), store(), '--until', 'now', '--segment-bytes', '1'));
      expect(drain.code, drain.stderr).toBe(0);
      expect((await listSegments(openStore(store()))).length).toBeGreaterThan(1100);
    });

    it.each([
      ['latest', 1100],
      ['lsn', 1000],
      ['xid', 300],
      ['time', 900],
      ['name', 600],
    ] as const)('replays --to %s', async (kind, rows) => {
      const target = { latest: 'latest', lsn: `lsn:${at.lsn}`, xid: `xid:${at.xid}`, time: `time:${at.time}`, name: 'name:six-hundred' }[
        kind
      ];
      const { r, seen } = await replayIntoFresh(
        source,
        ['--store', store(), '--to', target, '--tables', 'public.t'],
        async (c) => (await c.query<{ n: number; max: number }>('select count(*)::int as n, max(id) as max from t')).rows[0],
        FD_LIMIT,
      );
      ok(r, `replay --to ${target}`);
      expect(seen).toEqual({ n: rows, max: rows });
    });

    it('lists, compares and verifies with every target kind', async () => {
      const run = async (...args: string[]) => ok(await pgtape([...args, '--store', store()], FD_LIMIT), args.join(' '));
      expect(lines(await run('log', '--json')).length).toBeGreaterThan(1100);
      expect(lines(await run('log', '--from', `time:${at.time}`, '--json'))).toHaveLength(200);
      expect(lines(await run('log', '--from', `xid:${at.xid}`, '--to', `lsn:${at.lsn}`, '--json')).length).toBeGreaterThanOrEqual(700);
      expect(lines(await run('log', '--from', 'name:six-hundred', '--json'))).toHaveLength(500);
      const diff = JSON.parse(
        (await run('diff', '--from', 'name:six-hundred', '--to', `time:${at.time}`, '--summary', '--format', 'jsonl')).stdout,
      );
      expect(diff).toMatchObject({ table: 'public.t', added: 300, deleted: 0, modified: 0 });
      await run('verify');
      await run('verify', '--to', `xid:${at.xid}`);
      await run('verify', '--from', 'name:six-hundred', '--to', `time:${at.time}`);
    });

    it('finds the same targets through index objects (pgtape index), and verify checks them', async () => {
      const run = async (...args: string[]) => ok(await pgtape([...args, '--store', store()], FD_LIMIT), args.join(' '));
      const before = {
        time: lines(await run('log', '--from', `time:${at.time}`, '--json')),
        name: lines(await run('log', '--from', 'name:six-hundred', '--to', `time:${at.time}`, '--json')),
      };
      expect((await run('index', '--group', '100')).stdout).toMatch(/^wrote 11 index object/);
      expect((await run('index', '--group', '100')).stdout).toMatch(/nothing to index/);
      expect(lines(await run('log', '--from', `time:${at.time}`, '--json'))).toEqual(before.time);
      expect(lines(await run('log', '--from', 'name:six-hundred', '--to', `time:${at.time}`, '--json'))).toEqual(before.name);
      for (const [kind, rows] of [
        ['name:six-hundred', 600],
        [`xid:${at.xid}`, 300],
        [`time:${at.time}`, 900],
      ] as const) {
        const { r, seen } = await replayIntoFresh(
          source,
          ['--store', store(), '--to', kind, '--tables', 'public.t'],
          async (c) => (await c.query<{ n: number }>('select count(*)::int as n from t')).rows[0]!.n,
          FD_LIMIT,
        );
        ok(r, `replay --to ${kind} through the index`);
        expect(seen).toBe(rows);
      }
      expect((await run('verify', '--json')).stdout).toMatch(/index\//);
      // An index object that lies about a mark is found by verify (exit 4), never used silently by it.
      const dir = join(store(), '..', 'lying-index');
      cpSync(store(), dir, { recursive: true });
      const object = join(dir, 'index', '100', readdirSync(join(dir, 'index', '100')).sort()[5]!);
      const body = JSON.parse(brotliDecompressSync(readFileSync(object)).toString('utf8')) as {
        segments: { marks: { name: string; commitLsn: string }[] }[];
      };
      body.segments[0]!.marks.push({ name: 'forged', commitLsn: '1' });
      writeFileSync(object, brotliCompressSync(Buffer.from(JSON.stringify(body))));
      const verified = await pgtape(['verify', '--store', dir]);
      expect(verified.code).toBe(4);
      expect(verified.stdout + verified.stderr).toMatch(/other marks/);
      // Ones that cannot be read are passed over: targets are still found, from the headers.
      for (const f of readdirSync(join(dir, 'index'), { recursive: true })) {
        if (String(f).endsWith('.json.br')) writeFileSync(join(dir, 'index', String(f)), 'not an index');
      }
      const log = await pgtape(['log', '--store', dir, '--from', 'name:six-hundred', '--to', `time:${at.time}`, '--json']);
      expect(log.code, log.stderr).toBe(0);
      expect(lines(log)).toEqual(before.name);
      expect(log.stderr).toMatch(/cannot be read/);
    });
    it('lists the archive through index objects of three sizes; segments gone before the first are left out, one missing after it is named', async () => {
      const dir = join(store(), '..', 'levels');
      cpSync(store(), dir, { recursive: true });
      rmSync(join(dir, 'index'), { recursive: true, force: true });
      const run = async (...args: string[]) => ok(await pgtape([...args, '--store', dir], FD_LIMIT), args.join(' '));
      const before = {
        all: lines(await run('log', '--json')),
        range: lines(await run('log', '--from', 'name:six-hundred', '--to', `time:${at.time}`, '--json')),
      };
      // Objects of 2 segments, of 40 (20 of those) and of 800 (20 of 40), each made from the size below.
      ok(await run('index', '--group', '2'), 'index --group 2');
      const count = (size: number) => readdirSync(join(dir, 'index', String(size))).length;
      const segments = readdirSync(join(dir, 'segments')).sort();
      expect(count(2)).toBe(Math.floor((segments.length - 1) / 2));
      expect(count(40)).toBe(Math.floor(count(2) / 20));
      expect(count(800)).toBe(1);
      expect(lines(await run('log', '--json'))).toEqual(before.all);
      expect(lines(await run('log', '--from', 'name:six-hundred', '--to', `time:${at.time}`, '--json'))).toEqual(before.range);
      // The first ten segments removed (as expire does, oldest first): their entries are not listed.
      const gone = new Set<string>();
      for (const f of segments.slice(0, 10)) {
        for (const l of lines(await run('log', '--json', '--to', `lsn:${segmentEnd(f)}`))) gone.add(l);
        rmSync(join(dir, 'segments', f));
      }
      expect(lines(await run('log', '--json'))).toEqual(before.all.filter((l) => !gone.has(l)));
      // One removed after the first stored: verify names it as listed by an index object and missing.
      rmSync(join(dir, 'segments', segments[500]!));
      const verified = await pgtape(['verify', '--store', dir]);
      expect(verified.code).toBe(4);
      expect(verified.stdout).toMatch(/MISSING.*lists it, the store does not hold it/);
      // Readers sent to it by the index say which segment is missing (exit 4), not a bare ENOENT (exit 1).
      const missing = new RegExp(`the archive is damaged: .*${segments[500]!.replace('.', '\\.')} is missing`);
      for (const args of [['log'], ['log', '--to', 'name:six-hundred', '--json']]) {
        const r = await pgtape([...args, '--store', dir]);
        expect(r.code, args.join(' ')).toBe(4);
        expect(r.stderr, args.join(' ')).toMatch(missing);
      }
    });
  });

  describe('on S3 through the gateway proxy, 200 segments of more than 1 MB', () => {
    let s3: TestS3;
    let proxy: GatewayProxy;
    const store = 'pfs://tape@long';
    const gateway = () => ({ PACH_TOKEN: 'S3RVER', PACHD_S3_ENDPOINT: proxy.endpoint });
    const at = {} as Targets;

    beforeAll(async () => {
      s3 = await startS3();
      await s3.createBucket('long.tape');
      proxy = await startGatewayProxy(s3.endpoint, TEST_SEED);
      Object.assign(process.env, s3.env);
    });
    afterAll(async () => {
      await proxy?.close();
      await s3?.close();
    });

    it('records 200 transactions of over 1 MB each, one segment each', async () => {
      // No index objects while recording: the last test counts requests without them, then with.
      const args = archiveArgs(source.db.url(), store, '--slot', 'big', '--until', 'now', '--segment-bytes', '1', '--index-every', '0');
      const setup = await pgtape(args, gateway());
      expect(setup.code, setup.stderr).toBe(0);
      const client = await source.db.client();
      try {
        for (let i = 1; i <= 200; i++) {
          const xid = await commit(client, async (q) => {
            await q.query('delete from blobs');
            // Random bytes do not compress: each segment stays over 1 MB.
            await q.query('insert into blobs values ($1, $2)', [i, randomBytes(1_050_000)]);
          });
          if (i === 50) await client.query(`select pg_logical_emit_message(true, 'pgtape', 'fifty')`);
          if (i === 100) at.xid = xid;
          if (i === 150) at.time = await timeBetweenCommits(client);
          if (i === 180) at.lsn = await currentLsn(client);
        }
      } finally {
        await client.end();
      }
      const drain = await pgtape(args, gateway());
      expect(drain.code, drain.stderr).toBe(0);
      const big = (await listSegments(openStore('s3://long.tape/'))).filter((s) => s.size > 1_000_000);
      expect(big.length).toBeGreaterThanOrEqual(200);
    });

    it.each([
      ['latest', 200],
      ['lsn', 180],
      ['xid', 100],
      ['time', 150],
      ['name', 50],
    ] as const)('replays --to %s', async (kind, id) => {
      const target = { latest: 'latest', lsn: `lsn:${at.lsn}`, xid: `xid:${at.xid}`, time: `time:${at.time}`, name: 'name:fifty' }[kind];
      const { r, seen } = await replayIntoFresh(
        source,
        ['--store', store, '--to', target, '--tables', 'public.blobs'],
        async (c) => (await c.query<{ id: number }>('select id from blobs')).rows,
        gateway(),
      );
      ok(r, `replay --to ${target}`);
      expect(seen).toEqual([{ id }]);
    });

    it('lists and verifies with every target kind, also where the gateway ignores Range', async () => {
      const run = async (...args: string[]) => ok(await pgtape([...args, '--store', store], gateway()), args.join(' '));
      expect(lines(await run('log', '--from', `time:${at.time}`, '--json'))).toHaveLength(50);
      expect(lines(await run('log', '--from', 'name:fifty', '--to', `xid:${at.xid}`, '--json'))).toHaveLength(50);
      await run('verify', '--to', `lsn:${at.lsn}`);
      proxy.ignoreRange = true;
      try {
        expect(lines(await run('log', '--from', `time:${at.time}`, '--json'))).toHaveLength(50);
      } finally {
        proxy.ignoreRange = false;
      }
      expect(proxy.violations).toEqual([]);
    });

    it('with index objects, finding a target costs a few requests instead of one per segment', async () => {
      const requests = async (...args: string[]) => {
        const before = proxy.requests;
        ok(await pgtape([...args, '--store', store], gateway()), args.join(' '));
        return proxy.requests - before;
      };
      // An empty range: what is counted is finding the two points, not reading what lies between.
      const find = ['log', '--from', 'name:fifty', '--to', 'name:fifty', '--json'];
      const without = await requests(...find);
      const indexed = ok(await pgtape(['index', '--store', store, '--group', '60'], gateway()), 'index');
      // Three whole groups of the 201 segments, and the 20 after them but the last in a partial object.
      expect(indexed.stdout).toMatch(/^wrote 4 index object\(s\): (index\/60\/\S+, ){3}index\/partial\//);
      const withIndex = await requests(...find);
      // Without: a header per segment (200+) and the body of the one with the mark; with: five
      // listings, the four index objects, the header of the last segment and the lease (which
      // names the newest segment stored: a store that lost it is damaged).
      expect(without).toBeGreaterThan(200);
      expect(withIndex, `${withIndex} requests with the index, ${without} without`).toBeLessThanOrEqual(13);
      expect(
        lines(await pgtape(['log', '--from', 'name:fifty', '--to', `xid:${at.xid}`, '--json', '--store', store], gateway())),
      ).toHaveLength(50);
    });
  });
});
