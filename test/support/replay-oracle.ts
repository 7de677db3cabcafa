// Over 400 lines: one describe block, because every case replays the points the recording case
// records (their LSNs, marks, xids, times and checksums) in the same source and store.
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { archiveArgs, pgtape, startPgtape } from './cli.js';
import { until, useSource } from './fixture.js';
import { expectSoundHandedOver } from './handed-over.js';
import { checksums, userTables } from './oracle.js';
import { displayQualified, quoteIdent, quoteQualified } from '../../src/core/sql.js';
import { seededRandom, TEST_SEED } from './random.js';
import { transaction } from './tape.js';
import { replayIntoNewPgdata } from './replay-into.js';
import { startS3, type TestS3 } from './s3rver.js';
import { startKms, type TestKms } from './kms-server.js';
import { kmsKeysForReading } from '../../src/log/kms-keys.js';
import { createLogger } from '../../src/core/log.js';
import { parseLsn } from '../../src/core/lsn.js';
import { openStore } from '../../src/store/open.js';
import { listSegments } from '../../src/log/segments.js';
import { replayIntoDatabase } from '../../replay/outputs.js';
import { parseKeyFile, type WrappingKey } from '../../src/core/key-wrap.js';
import { useKeys } from '../../src/log/keys.js';
import { readAll } from '../../src/store/read.js';
import type { Store } from '../../src/store/store.js';
import { decodeHead } from '../../src/segment/format.js';
import type { BaseManifest } from '../../src/log/bases.js';
import { parseTarget } from '../../src/log/target.js';
import type { ReplayReport } from '../../replay/replay.js';
import { scratchDir } from './scratch.js';

const SCHEMA = `
  create type mood as enum ('happy', 'sad', 'hungry');
  create schema shop;
  create table shop.customers (id int primary key, name text not null, email text, mood mood default 'happy', note text);
  create schema "Odd ""Schema""";
  create table "Odd ""Schema"""."Order Lines" ("Key" bigint primary key, "select" text, qty numeric(30,12), at timestamptz, "ünïcode" text);
  create table docs (id int primary key, title text, body text);
  alter table docs alter column body set storage external;
  create table events (at timestamptz, what text, n int);
  alter table events replica identity full;
  create table metrics (id int primary key, v int, w text);
  create table pre (id int primary key, v text);
  insert into pre select g, 'before the slot ' || g from generate_series(1, 200) g;
  insert into shop.customers values (0, 'Pete', 'pete@nuts.example', 'hungry', null);
`;

const NAMES = ['Polly', 'Zoë ✓', '日本語', '', "O'Brien", 'tab\tnew\nline', 'back\\slash', '🥜 nut'];

type Counts = { added: number; deleted: number; modified: number; cellsModified: number };

/**
 * What differs between two replayed databases, table by table, compared row by row in the test:
 * keyed tables by primary key (cells over the columns of B), the others as multisets.
 */
async function directDiff(a: pg.Client, b: pg.Client): Promise<Record<string, Counts>> {
  const out: Record<string, Counts> = {};
  const tablesB = await userTables(b);
  const tablesA = new Map((await userTables(a)).map((t) => [`${t.schema}.${t.name}`, t]));
  const keyOf = async (client: pg.Client, schema: string, name: string) =>
    (
      await client.query<{ k: string[] | null }>(
        `select array_agg(a.attname::text order by a.attnum) as k from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
          where i.indrelid = $1::regclass and i.indisprimary`,
        [quoteQualified(schema, name)],
      )
    ).rows[0]!.k ?? [];
  const rowsOf = async (client: pg.Client, schema: string, name: string, columns: string[]) =>
    (
      await client.query({
        text: `select ${columns.map((c) => (columns.length ? `${quoteIdent(c)}::text` : '')).join(', ')} from ${quoteQualified(schema, name)}`,
        rowMode: 'array',
      })
    ).rows as (string | null)[][];
  for (const t of tablesB) {
    const id = `${t.schema}.${t.name}`;
    const c: Counts = { added: 0, deleted: 0, modified: 0, cellsModified: 0 };
    const inA = tablesA.get(id);
    const rowsB = await rowsOf(b, t.schema, t.name, t.columns);
    const rowsA = inA
      ? (await rowsOf(a, t.schema, t.name, inA.columns)).map((r) =>
          t.columns.map((col) => {
            const i = inA.columns.indexOf(col);
            return i < 0 ? null : r[i]!;
          }),
        )
      : [];
    const key = await keyOf(b, t.schema, t.name);
    if (key.length) {
      const k = (r: (string | null)[]) => JSON.stringify(key.map((col) => r[t.columns.indexOf(col)]));
      const mapA = new Map(rowsA.map((r) => [k(r), r]));
      const mapB = new Map(rowsB.map((r) => [k(r), r]));
      for (const [kk, rb] of mapB) {
        const ra = mapA.get(kk);
        if (!ra) c.added++;
        else {
          const cells = rb.filter((v, i) => v !== ra[i]).length;
          if (cells) {
            c.modified++;
            c.cellsModified += cells;
          }
        }
      }
      for (const kk of mapA.keys()) if (!mapB.has(kk)) c.deleted++;
    } else {
      const count = new Map<string, number>();
      for (const r of rowsB) count.set(JSON.stringify(r), (count.get(JSON.stringify(r)) ?? 0) + 1);
      for (const r of rowsA) count.set(JSON.stringify(r), (count.get(JSON.stringify(r)) ?? 0) - 1);
      for (const n of count.values()) {
        if (n > 0) c.added += n;
        if (n < 0) c.deleted -= n;
      }
    }
    if (c.added + c.deleted + c.modified > 0) out[displayQualified(t.schema, t.name)] = c;
  }
  return out;
}

/** Words of the workload's rows, and its tables' names: none may be stored in the clear, not even in an index object. */
const CLEAR_WORDS = ['pete@nuts.example', 'before the slot', 'customers', 'Order Lines', 'point-3', 'hungry', 'batch 1'];

/** Every segment and base of `store` encrypted, and none of `words` in any object (index objects decompressed). */
export async function expectNothingInTheClear(store: Store, words = CLEAR_WORDS): Promise<void> {
  const objects = await store.list('');
  expect(objects.some((o) => o.key.startsWith('base/'))).toBe(true);
  for (const o of objects) {
    let bytes = await readAll(store, o.key);
    // Compressed bytes hide words as well as ciphertext does: what is encrypted is checked to be.
    if (o.key.endsWith('.pgtape')) {
      const { header } = decodeHead(bytes, o.key);
      expect(header.encryption, o.key).toBeDefined();
      expect(header.tables.every((t) => t.name === '' && t.schema === '')).toBe(true);
    }
    if (o.key.endsWith('/manifest.json')) {
      const manifest = JSON.parse(bytes.toString('utf8')) as BaseManifest;
      expect(manifest.schemaKey, o.key).toBeDefined();
      // A file with a key is only ever read through decryption: the replays below read these.
      expect(manifest.tables.every((t) => t.key && t.name === '' && t.schema === '')).toBe(true);
    }
    if (o.key.endsWith('.br') && !o.key.startsWith('base/')) bytes = brotliDecompressSync(bytes);
    for (const word of words) expect(bytes.includes(word), `${o.key} holds ${JSON.stringify(word)} in the clear`).toBe(false);
  }
}

interface Point {
  index: number;
  lsn: string;
  time: string;
  markXid: number;
  /** The first transaction of the batch after this point. */
  nextFirstXid?: number;
  sums: Record<string, string>;
}

/**
 * The oracle (docs/ARCHITECTURE.md, How correctness and speed are shown) for replay, on a directory store or on S3 (a real s3rver): a seeded
 * workload recorded while `pgtape archive` runs, replayed to every recorded point.
 */
export function replayOracle(
  kind: 'directory' | 's3',
  options: {
    major?: number;
    batches?: number;
    full?: boolean;
    /**
     * Archive with --encrypt (a secret key, a pair's public half, or a KMS key of a stand-in KMS)
     * and read with --key-file, every command through PGTAPE_ENCRYPT and PGTAPE_KEY_FILE.
     */
    encrypt?: 'secret' | 'pair' | 'kms';
  } = {},
): void {
  const batches = options.batches ?? 24;
  const full = options.full ?? true;
  /** The whole oracle; a version run (other Postgres majors) records and replays by LSN only. */
  const itFull = full ? it : ((() => undefined) as unknown as typeof it);
  const encrypted = options.encrypt
    ? `, encrypted with ${{ pair: 'a key pair', secret: 'a secret key', kms: 'a KMS key' }[options.encrypt]}`
    : '';
  describe(`replay rebuilds the source as it was at every recorded point (${kind} store${options.major ? `, Postgres ${options.major}` : ''}${encrypted})`, () => {
    const source = useSource(SCHEMA, options.major ? { major: options.major } : {});
    let s3: TestS3 | undefined;
    const store = () => (kind === 's3' ? 's3://oracle/tape' : source.store.dir);
    let keys: WrappingKey[] = [];
    const { dir: keyDir, remove: removeScratch } = scratchDir('pgtape-oracle-keys-');
    let kms: TestKms | undefined;
    const saved = { ...process.env };
    beforeAll(async () => {
      if (options.encrypt === 'kms') {
        kms = await startKms();
        kms.createKey('pgtape-oracle');
        Object.assign(process.env, kms.env, { PGTAPE_ENCRYPT: 'kms:alias/pgtape-oracle', PGTAPE_KEY_FILE: 'kms:' });
      } else if (options.encrypt) {
        const [encrypt, read] =
          options.encrypt === 'secret'
            ? [join(keyDir, 'secret.key'), join(keyDir, 'secret.key')]
            : [join(keyDir, 'a.pub'), join(keyDir, 'a.private')];
        const made = await pgtape(
          options.encrypt === 'secret' ? ['keygen', '--secret', encrypt] : ['keygen', '--public', encrypt, '--private', read],
        );
        expect(made.code, made.stderr).toBe(0);
        keys = [parseKeyFile(readFileSync(read, 'utf8'), read)];
        expect(made.stdout.trim()).toBe(keys[0]!.id);
        // Every pgtape this process starts writes and reads with them.
        Object.assign(process.env, { PGTAPE_ENCRYPT: encrypt, PGTAPE_KEY_FILE: read });
      }
      if (kind !== 's3') return;
      s3 = await startS3();
      await s3.createBucket('oracle');
      // The SDK in this process and every pgtape it starts find the server and its keys here.
      Object.assign(process.env, s3.env);
    });
    afterAll(async () => {
      await s3?.close();
      await kms?.stop();
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
      removeScratch();
    });
    /** The store, with the keys to read it. */
    const opened = () => {
      const s = openStore(store());
      useKeys(s, keys);
      return s;
    };
    const log = createLogger({ level: 'warn', pretty: false });
    const points: Point[] = [];
    let replayDb = 0;

    /** A fresh database replayed to `target`, connected; `drop()` removes it. */
    const replayed = async (target: string, exclusive = false, tables?: Set<string>, memoryBytes?: number) => {
      const db = `replay_${replayDb++}`;
      await source.admin.query(`create database ${db}`);
      const url = new URL(source.db.url());
      url.pathname = `/${db}`;
      const report = await replayIntoDatabase(url.toString(), {
        store: opened(),
        target: parseTarget(target, '--to', true),
        exclusive,
        tables,
        memoryBytes,
        log,
      });
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      const drop = async () => {
        await client.end();
        await source.admin.query(`drop database ${db}`);
      };
      return { client, report, drop };
    };
    const replayAt = async (target: string, exclusive = false, tables?: Set<string>, memoryBytes?: number) => {
      const { client, report, drop } = await replayed(target, exclusive, tables, memoryBytes);
      const sums = await checksums(client);
      await drop();
      return { sums, report };
    };

    it(`records a seeded workload of ${batches} batches while pgtape archive runs`, async () => {
      const r = seededRandom(TEST_SEED);
      const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
      const args = archiveArgs(source.db.url(), store(), '--create-publication', '--segment-seconds', '0.2', '--segment-bytes', '8kB');
      const archiver = startPgtape(args);
      // The base is taken when the slot is created; the workload starts after it.
      await until(() => archiver.output.stderr.includes('"msg":"archiving"'));
      const sessions = await Promise.all([source.db.client(), source.db.client(), source.db.client()]);
      const main = sessions[0]!;
      let nextCustomer = 1;
      let nextLine = 1;
      let nextMetric = 1;
      for (let batch = 0; batch < batches; batch++) {
        const firstXid = await transaction(main, async (q) => {
          await q.query('update shop.customers set note = $1 where id = 0', [`batch ${batch}`]);
        });
        if (points.length) points.at(-1)!.nextFirstXid = firstXid;
        // Three sessions at once, each on its own customers.
        await Promise.all(
          sessions.map((s, k) =>
            (async () => {
              for (let t = 0; t < 3; t++) {
                await transaction(
                  s,
                  async (q) => {
                    const id = nextCustomer++ * 3 + k;
                    await q.query('insert into shop.customers values ($1, $2, $3, $4, $5)', [
                      id,
                      pick(NAMES),
                      r() < 0.3 ? null : `c${id}@nuts.example`,
                      pick(['happy', 'sad', 'hungry']),
                      r() < 0.5 ? null : pick(NAMES),
                    ]);
                    await q.query(`update shop.customers set mood = 'sad', email = null where id % 3 = $1 and id % 7 = $2`, [k, batch % 7]);
                    if (r() < 0.3)
                      await q.query(
                        'delete from shop.customers where id = (select min(id) from shop.customers where id % 3 = $1 and id > 0)',
                        [k],
                      );
                  },
                  r() < 0.1,
                );
              }
            })(),
          ),
        );
        await transaction(main, async (q) => {
          for (let i = 0; i < 4; i++) {
            await q.query(`insert into "Odd ""Schema"""."Order Lines" values ($1, $2, $3, $4, $5)`, [
              nextLine++,
              pick(NAMES),
              (r() * 1e6).toFixed(12),
              new Date(1795000000000 + batch * 1000).toISOString(),
              pick(NAMES),
            ]);
          }
          await q.query(`update "Odd ""Schema"""."Order Lines" set qty = qty * -1, "select" = null where "Key" % 5 = $1`, [batch % 5]);
          if (batch % 4 === 3)
            await q.query(
              `update "Odd ""Schema"""."Order Lines" set "Key" = "Key" + 100000 where "Key" = (select min("Key") from "Odd ""Schema"""."Order Lines" where "Key" < 100000)`,
            );
          if (r() < 0.5)
            await q.query(
              `delete from "Odd ""Schema"""."Order Lines" where "Key" = (select max("Key") from "Odd ""Schema"""."Order Lines")`,
            );
        });
        await transaction(main, async (q) => {
          if (batch === 0)
            await q.query(`insert into docs select g, 'doc ' || g, repeat(md5(g::text), 40000) from generate_series(1, 3) g`);
          // Most updates leave the 1.2 MB body alone: pgoutput sends it as unchanged TOAST.
          await q.query(`update docs set title = title || '.' where id = $1`, [1 + (batch % 3)]);
          if (batch % 6 === 5) await q.query(`update docs set body = repeat('x', 300000) || $1 where id = 2`, [String(batch)]);
        });
        await transaction(main, async (q) => {
          await q.query(
            `insert into events values ('2026-11-24 10:00+00', 'dup', 1), ('2026-11-24 10:00+00', 'dup', 1), (null, null, null), (now(), $1, $2)`,
            [pick(NAMES), batch],
          );
          await q.query(`delete from events where ctid = (select ctid from events where what = 'dup' limit 1)`);
          await q.query(`update events set n = coalesce(n, 0) + 1 where ctid = (select ctid from events where n is null limit 1)`);
          if (batch === 10) await q.query('truncate events');
        });
        await transaction(main, async (q) => {
          const rows = batch === 5 ? 5000 : 20;
          const start = nextMetric;
          nextMetric += rows;
          const column = batch <= 14 ? 'v' : 'w';
          await q.query(`insert into metrics (id, ${column}) select g, g % 100 from generate_series($1::int, $2::int) g`, [
            start,
            start + rows - 1,
          ]);
          if (batch >= 8) await q.query(`update metrics set extra = $1 where id % 10 = $2`, [`e${batch}`, batch % 10]);
          await q.query(`delete from metrics where id % 17 = $1`, [batch % 17]);
          await q.query(`update pre set v = v || '+' where id % 24 = $1`, [batch]);
          if (batch % 5 === 4) await q.query(`delete from pre where id = $1`, [batch * 8]);
        });
        // Schema changes travel with the next change to the table (pgoutput sends no DDL): make one.
        if (batch === 7)
          await main.query(
            `begin; alter table metrics add column extra text; update metrics set extra = 'new' where id = (select max(id) from metrics); commit`,
          );
        if (batch === 14)
          await main.query(
            `begin; alter table metrics drop column v; update metrics set w = 'dropped v' where id = (select max(id) from metrics); commit`,
          );
        if (batch === 12) {
          const b = await pgtape(['base', '--source', source.db.url(), '--store', store()]);
          expect(b.code, b.stderr).toBe(0);
        }
        const markXid = (await transaction(main, async (q) => {
          await q.query(`select pg_logical_emit_message(true, 'pgtape', $1)`, [`point-${batch}`]);
        }))!;
        const { rows } = await main.query<{ lsn: string; time: string }>(
          `select pg_current_wal_insert_lsn()::text as lsn, to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as time`,
        );
        points.push({ index: batch, lsn: rows[0]!.lsn, time: rows[0]!.time, markXid, sums: await checksums(main) });
      }
      archiver.kill('SIGTERM');
      expect((await archiver.done).code).toBe(0);
      const rest = await pgtape([...args, '--until', 'now']);
      expect(rest.code, rest.stderr).toBe(0);
      expect((await listSegments(opened())).length).toBeGreaterThan(batches / 2);
      if (kms) {
        keys = await kmsKeysForReading(openStore(store()));
        // Every start of a writer (archive three times, base) went on under one wrapping key.
        expect(keys.map((k) => [k.kind, Boolean(k.secret), k.kms?.unavailable])).toEqual([['kms', true, undefined]]);
        expect(kms.calls.get('GenerateDataKey')).toBe(1);
      }
      if (options.encrypt) await expectNothingInTheClear(opened());
    });

    it('replays each point by LSN: table checksums equal the source at that point', async () => {
      const bases = new Set<string>();
      for (const p of points) {
        const { sums, report } = await replayAt(`lsn:${p.lsn}`);
        expect(sums, `point ${p.index} at ${p.lsn}`).toEqual(p.sums);
        bases.add(report.base.lsn);
      }
      // Points after `pgtape base` replay from the newer base.
      expect(bases.size).toBe(2);
    });

    itFull('replays each point the same in small batches: the first merged into the base, the rest applied set-based', async () => {
      const batches: number[] = [];
      // 256 kB of folded changes a batch: each point's changes go through several set-based batches.
      for (const p of points.filter((p) => p.index % 4 === 1 || p.index === points.length - 1)) {
        const { sums, report } = await replayAt(`lsn:${p.lsn}`, false, undefined, 256_000);
        expect(sums, `point ${p.index} at ${p.lsn}, small batches`).toEqual(p.sums);
        batches.push(report.batches);
      }
      expect(Math.max(...batches)).toBeGreaterThan(5);
    });

    itFull('replays by mark name, time and xid to the same states', async () => {
      for (const p of points.filter((p) => p.index % 5 === 2)) {
        expect((await replayAt(`name:point-${p.index}`)).sums, `name:point-${p.index}`).toEqual(p.sums);
        expect((await replayAt(`time:${p.time}`)).sums, `time:${p.time}`).toEqual(p.sums);
        expect((await replayAt(`xid:${p.markXid}`)).sums, `xid:${p.markXid}`).toEqual(p.sums);
        // The first transaction after the point, excluded: the state is still the point's.
        expect((await replayAt(`xid:${p.nextFirstXid}`, true)).sums, `xid:${p.nextFirstXid} --exclusive`).toEqual(p.sums);
        const included = await replayAt(`xid:${p.nextFirstXid}`);
        expect(included.sums).not.toEqual(p.sums);
        const commitLsn = parseLsn(included.report.resolved!.commitLsn);
        expect((await replayAt(`lsn:${included.report.resolved!.commitLsn}`, true)).sums).toEqual(p.sums);
        expect(commitLsn > parseLsn(p.lsn)).toBe(true);
      }
    });

    itFull('replays latest, and only the tables asked for', async () => {
      const last = points.at(-1)!;
      const { sums, report } = await replayAt('latest');
      expect(sums).toEqual(last.sums);
      expect(report.resolved).not.toBeNull();
      if (kind === 'directory') {
        // A mounted PFS input is the state of its commit: commit:$<input>_COMMIT reads it as it is.
        const { sums: atCommit, report: fromMount } = await replayAt('commit:4a1d2c0ffee');
        expect(atCommit).toEqual(last.sums);
        expect(fromMount.target).toBe('commit:4a1d2c0ffee');
      }
      const only = await replayAt('latest', false, new Set(['shop.customers']));
      const key = Object.keys(last.sums).find((k) => k.startsWith('shop.customers('))!;
      expect(only.sums).toEqual({ [key]: last.sums[key] });
    });

    itFull('diff --format sql from A to B turns a replay at A into B, and --summary counts what differs', async () => {
      if (kind !== 'directory') return;
      const r = seededRandom(TEST_SEED + 1);
      // Pairs across the column added (7), the truncate (10), the new base (12) and the column dropped (14).
      const pairs: [number, number][] = [
        [0, 23],
        [6, 8],
        [9, 11],
        [11, 13],
        [13, 15],
        [2, 3],
      ];
      while (pairs.length < 10) {
        const a = Math.floor(r() * 23);
        pairs.push([a, a + 1 + Math.floor(r() * (23 - a))]);
      }
      for (const [ia, ib] of pairs) {
        const a = points[ia]!;
        const b = points[ib]!;
        const at = `--from lsn:${a.lsn} --to lsn:${b.lsn}`;
        const diff = (...more: string[]) => pgtape(['diff', '--store', store(), '--from', `lsn:${a.lsn}`, '--to', `lsn:${b.lsn}`, ...more]);
        const sql = await diff('--format', 'sql');
        expect(sql.code, `${at}: ${sql.stderr}`).toBe(0);
        // The same patch, compared in parts spilled to disk (a tiny --memory): the same statements.
        const parted = await diff('--format', 'sql', '--memory', '1kB');
        expect(parted.code, `${at}: ${parted.stderr}`).toBe(0);
        expect(parted.stdout.split('\n').sort(), `parted patch ${at}`).toEqual(sql.stdout.split('\n').sort());
        const A = await replayed(`lsn:${a.lsn}`);
        const B = await replayed(`lsn:${b.lsn}`);
        try {
          const expected = await directDiff(A.client, B.client);
          await A.client.query(sql.stdout);
          expect(await checksums(A.client), `patch ${at}`).toEqual(b.sums);
          const summary = await diff('--summary', '--format', 'jsonl');
          expect(summary.code, summary.stderr).toBe(0);
          const counted = Object.fromEntries(
            summary.stdout
              .trim()
              .split('\n')
              .filter(Boolean)
              .map((l) => JSON.parse(l) as { table: string; added: number; deleted: number; modified: number; cellsModified: number })
              .map(({ table, ...c }) => [table, c])
              .filter(
                ([, c]) =>
                  (c as { added: number; deleted: number; modified: number }).added +
                    (c as { deleted: number }).deleted +
                    (c as { modified: number }).modified >
                  0,
              ),
          );
          expect(counted, `summary ${at}`).toEqual(expected);
        } finally {
          await A.drop();
          await B.drop();
        }
      }
    });

    itFull('writes a PGDATA that starts with the Postgres binaries afterwards and holds the same data', async () => {
      const p = points[17]!;
      const { r } = await replayIntoNewPgdata(['--store', store(), '--to', `name:point-${p.index}`], async (client, out) => {
        const report = JSON.parse(readFileSync(join(out, 'replay.json'), 'utf8')) as ReplayReport;
        expect(report.target).toBe(`name:point-${p.index}`);
        expect(await checksums(client)).toEqual(p.sums);
        // Loaded without WAL or fsync, handed over as a normal cluster.
        await expectSoundHandedOver(client);
      });
      expect(r.code, r.stderr).toBe(0);
    });

    itFull('writes one CSV file per table with --csv', async () => {
      const out = join(source.store.dir, '..', 'csv');
      const r = await pgtape(['replay', '--store', store(), '--to', `name:point-3`, '--csv', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(readdirSync(out).sort()).toEqual([
        '"Odd ""Schema"""."Order Lines".csv',
        'public.docs.csv',
        'public.events.csv',
        'public.metrics.csv',
        'public.pre.csv',
        'replay.json',
        'shop.customers.csv',
      ]);
      rmSync(out, { recursive: true, force: true });
    });

    itFull('refuses targets outside the archive and a gap, saying what it covers', async () => {
      const never = join(source.store.dir, '..', 'never');
      const run = (at: string, ...a: string[]) => pgtape(['replay', '--store', at, '--csv', never, ...a]);
      const dir = store();
      const cases: [string[], RegExp][] = [
        [['--to', 'lsn:0/1'], /target lsn:0\/1 is before the first base/],
        [['--to', 'lsn:FFFFFFFF/0'], /is after the end of the archive/],
        [['--to', 'xid:3'], /target xid:3 is not a transaction in the archive/],
        [['--to', 'name:no-such-mark'], /names no mark in the archive \(marks in the archive: point-0, point-1/],
        [['--to', 'time:2001-01-01T00:00:00Z'], /is before the first base/],
        [['--to', 'time:2999-01-01T00:00:00Z'], /is after the last commit/],
        [['--to', 'yesterday'], /not a target/],
      ];
      for (const [a, message] of cases) {
        const r = await run(dir, ...a);
        expect(r.code, a.join(' ')).toBe(2);
        expect(r.stderr).toMatch(message);
        if (!/not a target/.test(message.source)) expect(r.stderr).toMatch(/the archive covers \w+\/\w+ \(first base\) to/);
      }
      const empty = kind === 's3' ? 's3://oracle/empty' : join(source.store.dir, '..', 'empty');
      const r = await run(empty);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/holds no archive/);

      if (kind !== 'directory') return;
      // A segment missing in the middle: refused across the gap, fine before it.
      const damaged = join(dir, '..', 'damaged');
      cpSync(dir, damaged, { recursive: true });
      const segments = readdirSync(join(damaged, 'segments')).sort();
      const victim = segments.at(-2)!;
      rmSync(join(damaged, 'segments', victim));
      const gap = await run(damaged);
      expect(gap.code).toBe(4);
      expect(gap.stderr).toMatch(/the archive has a gap: nothing covers/);
      const before = await pgtape(['replay', '--store', damaged, '--to', 'name:point-20', '--csv', join(dir, '..', 'before-gap')]);
      expect(before.code, before.stderr).toBe(0);

      // A damaged body inside the range: refused with exit 4, naming the segment; nothing replayed.
      const flipped = join(dir, '..', 'flipped');
      cpSync(dir, flipped, { recursive: true });
      const bodies = readdirSync(join(flipped, 'segments')).sort();
      // After the newest base: a replay to the end reads it.
      const hurt = bodies.filter((s) => readFileSync(join(flipped, 'segments', s)).length > 1000).at(-2)!;
      const bytes = readFileSync(join(flipped, 'segments', hurt));
      bytes[bytes.length - 30] = bytes[bytes.length - 30]! ^ 0x10;
      writeFileSync(join(flipped, 'segments', hurt), bytes);
      const corrupt = await run(flipped);
      expect(corrupt.code, corrupt.stderr).toBe(4);
      expect(corrupt.stderr).toMatch(new RegExp(`the archive is damaged: .*${hurt}: body checksum does not match`));
      expect(corrupt.stderr).toMatch(/what to do: nothing was replayed; pgtape verify names/);

      // A damaged segment before the newest base does not stop a replay from that base: replays to
      // an LSN or to the end read only the names of the segments they do not need.
      const early = join(dir, '..', 'damaged-early');
      cpSync(dir, early, { recursive: true });
      writeFileSync(join(early, 'segments', readdirSync(join(early, 'segments')).sort()[0]!), 'not a segment any more');
      const late = points.at(-1)!;
      const fromNewerBase = await pgtape([
        'replay',
        '--store',
        early,
        '--to',
        `lsn:${late.lsn}`,
        '--csv',
        join(dir, '..', 'from-newer-base'),
      ]);
      expect(fromNewerBase.code, fromNewerBase.stderr).toBe(0);
      expect((await pgtape(['verify', '--store', early])).code).toBe(4);
    });
  });
}
