import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { archiveArgs, logLines, pgtape } from '../support/cli.js';
import { ArchiveModel, sourceChecksum } from '../support/model.js';
import { useSource } from '../support/fixture.js';
import { confirmedFlush, transaction } from '../support/tape.js';
import { DirectoryStore } from '../../src/store/directory.js';
import { listSegments, openSegment } from '../../src/log/segments.js';

const TABLES: { schema: string; name: string; columns: string[] }[] = [
  { schema: 'shop', name: 'customers', columns: ['id', 'name', 'email', 'note'] },
  { schema: 'Odd "Schema"', name: 'Order Lines', columns: ['Key', 'select', 'qty', 'at', 'ünïcode'] },
  { schema: 'public', name: 'docs', columns: ['id', 'title', 'body'] },
  { schema: 'public', name: 'events', columns: ['at', 'what'] },
];

const SCHEMA = `
  create schema shop;
  create table shop.customers (id int primary key, name text not null, email text, note text);
  create schema "Odd ""Schema""";
  create table "Odd ""Schema"""."Order Lines" ("Key" bigint primary key, "select" text, qty numeric(30,12), at timestamptz, "ünïcode" text);
  create table docs (id int primary key, title text, body text);
  alter table docs alter column body set storage external;
  create table events (at timestamptz, what text);
  alter table events replica identity full;
`;

describe('pgtape archive', () => {
  const source = useSource(SCHEMA);
  const { store } = source;

  const archiveUntilNow = async (...extra: string[]) => {
    const r = await pgtape(archiveArgs(source.db.url(), store.dir, '--until', 'now', '--create-publication', ...extra));
    expect(r.stderr).not.toContain('pgtape'.concat(':'));
    expect(r.code).toBe(0);
    return r;
  };

  it('stores every kind of change, value by value, as the source has it', async () => {
    await archiveUntilNow();
    const sessions = await Promise.all([source.db.client(), source.db.client(), source.db.client(), source.db.client()]);
    const [a, b, c, d] = sessions as [pg.Client, pg.Client, pg.Client, pg.Client];
    const big = 'é'.repeat(300_000) + 'x'.repeat(400_000); // over 1 MB of UTF-8, stored out of line
    await transaction(a, async (q) => {
      await q.query(
        `insert into shop.customers values (1, 'Pete', 'pete@nuts.example', null), (2, '', '', 'empty strings'), (3, 'Zoë ✓ 日本', null, E'tab\\tnew\\nline')`,
      );
      await q.query(
        `insert into "Odd ""Schema"""."Order Lines" values (1, 'from', 12345678901234567.123456789012, '2026-11-24 17:00:00.123456+00', '🥜')`,
      );
      await q.query(`insert into docs values (1, 'big', $1)`, [big]);
      await q.query(`insert into events values (now(), 'dup'), (now(), 'dup'), (null, null)`);
    });
    // Concurrent sessions, interleaved.
    await Promise.all(
      [a, b, c, d].map((s, i) =>
        (async () => {
          for (let k = 0; k < 20; k++) {
            await transaction(s, async (q) => {
              await q.query('insert into shop.customers values ($1, $2, null, null)', [100 + i * 100 + k, `c${i}-${k}`]);
              await q.query('update shop.customers set note = $1 where id = $2', [`n${k}`, 100 + i * 100 + k]);
            });
          }
        })(),
      ),
    );
    // The big value is left untouched: pgoutput sends it as unchanged TOAST.
    await transaction(a, async (q) => {
      await q.query(`update docs set title = 'renamed' where id = 1`);
    });
    await transaction(b, async (q) => {
      await q.query(`update shop.customers set email = null, name = 'Peter' where id = 1`);
      await q.query(`delete from shop.customers where id = 2`);
      await q.query(`update "Odd ""Schema"""."Order Lines" set "Key" = 2, qty = -0.000000000001 where "Key" = 1`);
      await q.query(`delete from events where what is null`);
      await q.query(`update events set what = 'once' where ctid = (select ctid from events where what = 'dup' limit 1)`);
    });
    const aborted = await transaction(
      c,
      async (q) => {
        await q.query(`insert into shop.customers values (999, 'never-committed', null, null)`);
      },
      true,
    );
    expect(aborted).toBeUndefined();
    await transaction(d, async (q) => {
      await q.query('truncate shop.customers');
      await q.query(`insert into shop.customers values (7, 'after truncate', null, null)`);
    });
    await archiveUntilNow();

    const model = await ArchiveModel.load(store.dir);
    for (const t of TABLES) {
      expect(model.checksum(t.schema, t.name, t.columns), `${t.schema}.${t.name}`).toBe(
        await sourceChecksum(source.admin, t.schema, t.name, t.columns),
      );
    }

    // Unchanged TOAST is stored as unchanged, never as NULL; aborted work is absent.
    const s = new DirectoryStore(store.dir);
    let docsUpdate: string | undefined;
    let sawAborted = false;
    for (const ref of await listSegments(s)) {
      for await (const e of openSegment(s, ref).entries()) {
        if (e.kind === 'update' && e.new.kinds.length === 3 && e.new.values[1]?.toString() === 'renamed')
          docsUpdate = e.new.kinds.toString();
        if ((e.kind === 'insert' || e.kind === 'update') && e.new.values.some((v) => v.toString() === 'never-committed')) sawAborted = true;
      }
    }
    expect(docsUpdate).toBe('ttu');
    expect(sawAborted).toBe(false);
    expect(await confirmedFlush(source.admin)).toBe((await listSegments(s)).at(-1)!.endLsn);
  });

  it('stores each committed transaction exactly once, in commit order, across runs and segments', async () => {
    const session = await source.db.client();
    const committed: number[] = [];
    for (let batch = 0; batch < 4; batch++) {
      for (let i = 0; i < 50; i++) {
        const xid = await transaction(
          session,
          async (q) => {
            await q.query('insert into shop.customers values ($1, $2, null, null) on conflict (id) do update set note = excluded.name', [
              1000 + (i % 30),
              `b${batch}-${i}`,
            ]);
          },
          i % 7 === 3,
        );
        if (xid !== undefined) committed.push(xid);
      }
      await archiveUntilNow('--segment-bytes', '2kB');
    }
    const r = await pgtape(['log', '--store', store.dir, '--json']);
    expect(r.code).toBe(0);
    const logged = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { xid: number; commitLsn: string; endLsn: string });
    const xids = logged.map((t) => t.xid);
    expect(new Set(xids).size).toBe(xids.length);
    const tail = xids.slice(xids.indexOf(committed[0]!));
    expect(tail).toEqual(committed);
    // Commit order: commit LSNs strictly increase.
    const model = await ArchiveModel.load(store.dir);
    const lsns = model.transactions.map((t) => t.commitLsn);
    expect(lsns.every((l, i) => i === 0 || l > lsns[i - 1]!)).toBe(true);
    // Segments are contiguous: each starts where the previous ended.
    const refs = await listSegments(new DirectoryStore(store.dir));
    expect(refs.length).toBeGreaterThan(4);
    refs.forEach((ref, i) => i > 0 && expect(ref.startLsn).toBe(refs[i - 1]!.endLsn));
  });

  it('writes every line of a long log into a pipe (output is flushed before exit)', async () => {
    const before = (await pgtape(['log', '--store', store.dir, '--json'])).stdout.split('\n').filter(Boolean).length;
    // 20000 transactions in one round trip: explicit BEGIN/COMMIT pairs in a simple query.
    await source.admin.query(
      Array.from({ length: 20_000 }, (_, i) => `begin; insert into events values (now(), 'pipe ${i}'); commit;`).join(' '),
    );
    await archiveUntilNow();
    // A reader that falls behind: nothing is read for a while, so the output waits in the pipe.
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, '..', '..', 'bin', 'pgtape.js'), 'log', '--store', store.dir, '--json'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    child.stdout.pause();
    await new Promise((r) => setTimeout(r, 3000));
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stdout.resume();
    const code = await new Promise((r) => child.once('close', r));
    expect(code).toBe(0);
    const lines = out.split('\n').filter(Boolean);
    expect(lines.length).toBe(before + 20_000);
    expect(JSON.parse(lines.at(-1)!).tables['public.events'].inserts).toBe(1);
  });

  it('keeps the password out of its logs', async () => {
    const r = await archiveUntilNow();
    expect(logLines(r.stderr).length).toBeGreaterThan(0);
    expect(r.stderr).not.toContain(new URL(source.db.url()).password);
  });
});
