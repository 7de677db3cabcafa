import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { archiveUntilNow, logLines, pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { checksums } from '../support/oracle.js';
import { replayIntoFresh } from '../support/replay-into.js';

/** Both sides print values the same way before their checksums are compared. */
const SAME_OUTPUT = `set datestyle = 'ISO, MDY'; set intervalstyle = 'postgres'; set bytea_output = 'hex'; set extra_float_digits = 1; set timezone = 'UTC'; set search_path = ''`;

async function sums(client: pg.Client): Promise<Record<string, string>> {
  await client.query(SAME_OUTPUT);
  return checksums(client);
}

/**
 * Values replay exactly, whatever the source's output settings: a source whose dates print as
 * SQL with the day first, intervals as the SQL standard, bytea escaped and floats short, in a time
 * zone of its own. Keys whose COPY text needs escaping (control characters, backslashes) match
 * the base's rows in the merged load, not only in the set-based statements.
 */
describe('replay of values under any output settings', () => {
  const source = useSource(`
    create table dated (d date primary key, ts timestamp, tstz timestamptz, iv interval, b bytea, f float8, r real, n numeric);
    insert into dated select date '2026-01-01' + g, timestamp '2026-01-01 10:00' + g * interval '1 hour 1 minute',
      timestamptz '2026-01-01 10:00+00' + g * interval '90 minutes', g * interval '1 day 2 hours 3.5 seconds',
      decode(lpad(to_hex(g), 8, '0') || '5c00ff', 'hex'), g / 7.0, g / 3.0, g * 1.000001 from generate_series(1, 300) g;
    create table tz_keyed (at timestamptz primary key, v int);
    insert into tz_keyed select timestamptz '2026-03-01 00:00+00' + g * interval '1 hour', g from generate_series(1, 100) g;
    create schema app;
    create type app.mood as enum ('sad', 'ok', 'happy');
    create table app.moods (id int primary key, m app.mood, r regclass);
    insert into app.moods select g, 'ok', 'app.moods' from generate_series(1, 50) g;
    create table odd_keys (k text primary key, v int);
    insert into odd_keys select chr(8) || 'bs ' || g || E'\\\\back' || chr(12) || 'ff' || chr(11) || 'vt' || E'\\t' || 'tab' || E'\\n' || 'nl' || E'\\r', g
      from generate_series(1, 300) g;
  `);

  it('archives under day-first dates, SQL intervals, escaped bytea and short floats, and replays every value', async () => {
    const database = new URL(source.db.url()).pathname.slice(1);
    await source.admin.query(`alter database ${database} set datestyle = 'SQL, DMY'`);
    await source.admin.query(`alter database ${database} set intervalstyle = 'sql_standard'`);
    await source.admin.query(`alter database ${database} set bytea_output = 'escape'`);
    await source.admin.query(`alter database ${database} set extra_float_digits = 0`);
    await source.admin.query(`alter database ${database} set timezone = 'Asia/Kolkata'`);
    // Names the catalog prints unqualified under this search_path (app.mood as mood) are not
    // unqualified where the replay runs.
    await source.admin.query(`alter database ${database} set search_path = app, public`);
    const archive = () =>
      pgtape(['archive', '--source', source.db.url(), '--store', source.store.dir, '--create-publication', '--until', 'now']);
    expect((await archive()).code).toBe(0);

    const c = await source.db.client();
    try {
      // Day 13 onwards cannot be read month-first: a DMY date parsed as MDY fails or moves.
      await c.query(
        `update dated set ts = ts + interval '1 minute', iv = iv * 2, b = b || '\\x00'::bytea, f = f * 3, tstz = tstz + interval '7 hours' where extract(day from d) between 10 and 20`,
      );
      await c.query(`delete from dated where extract(day from d) > 25`);
      await c.query(
        `insert into dated select date '2030-06-01' + g, null, now(), interval '-1 year 2 mons', '\\x5c5c'::bytea, 'NaN', '-Infinity', 1e-20 from generate_series(1, 50) g`,
      );
      // The server's time zone changes while archiving: the change log prints timestamptz keys
      // with another offset than the base did. Those rows cannot be matched as text in the
      // merged load; the set-based statements, which compare typed values, take them.
      await source.admin.query(`alter database ${database} set timezone = 'America/New_York'`);
      await c.query(`update tz_keyed set v = -v where v % 2 = 0`);
      await c.query(`delete from tz_keyed where v % 5 = 0`);
      await c.query(`insert into tz_keyed values ('2030-01-01 00:00+00', 1)`);
      await c.query(`update odd_keys set v = -v where v % 2 = 0`);
      await c.query(`delete from odd_keys where v % 3 = 0`);
      await c.query(`insert into odd_keys values (E'new\\\\' || chr(8), 1), (E'\\\\N', 2), (E'\\\\\\\\N', 3)`);
      // Last (a truncate is a barrier: what follows it is applied set-based, with casts to the column's type).
      await c.query(`update moods set m = 'happy' where id % 2 = 0`);
      await c.query(`truncate moods`);
      await c.query(`insert into moods select g, 'sad', 'moods' from generate_series(1, 20) g`);
      await c.query(`update moods set m = 'happy' where id % 3 = 0`);
      const r = await archive();
      expect(r.code, r.stderr).toBe(0);
      const expected = await sums(c);

      const { r: replayed, seen } = await replayIntoFresh(source, ['--store', source.store.dir], sums);
      expect(replayed.code, replayed.stderr).toBe(0);
      expect(seen).toEqual(expected);
    } finally {
      await c.end();
    }
  });

  it('matches the changed rows of the base in the merged load where their keys print the same, and applies the others set-based', async () => {
    const { r } = await replayIntoFresh(source, ['--store', source.store.dir], async () => undefined, { PGTAPE_LOG_LEVEL: 'debug' });
    expect(r.code, r.stderr).toBe(0);
    // app.moods is truncated after the base: its base rows are loaded as they are, nothing merged.
    const loaded = logLines(r.stderr).filter((l) => l.msg === 'base table loaded' && l.table !== 'app.moods');
    const left = Object.fromEntries(loaded.map((l) => [l.table, l.leftForSetBased]));
    expect(left).toEqual({ 'public.dated': 0, 'public.odd_keys': 0, 'public.tz_keyed': expect.any(Number) });
    expect(left['public.tz_keyed']).toBeGreaterThan(50);
    expect(loaded.map((l) => [l.table, (l.merged as number) > 0])).toEqual(loaded.map((l) => [l.table, true]));
  });
});

/**
 * An identity column GENERATED ALWAYS refuses a value in INSERT (without OVERRIDING SYSTEM VALUE)
 * and any value but DEFAULT in UPDATE, even the one it holds: the replay sets the source's values
 * (docs/ARCHITECTURE.md, "Schema changes"). A table made after the base takes every row through
 * the set-based statements, and an UPDATE sets every column but the key.
 */
describe('replay of identity columns GENERATED ALWAYS', () => {
  const source = useSource();

  it('replays their inserts and updates, SET … = DEFAULT included', async () => {
    const archive = (...more: string[]) => archiveUntilNow(source, more);
    expect((await archive('--capture-ddl')).code).toBe(0);
    const c = await source.db.client();
    try {
      await c.query(`create table counted (id int primary key, n int generated always as identity (start with 100), v text)`);
      await c.query(`create table keyed (id int generated always as identity primary key, v text)`);
      await c.query(`insert into counted (id, v) select g, 'v' || g from generate_series(1, 50) g`);
      await c.query(`insert into keyed (v) select 'v' || g from generate_series(1, 50) g`);
      await c.query(`update counted set v = v || '+' where id % 3 = 0`);
      await c.query(`update counted set n = default where id <= 5`);
      await c.query(`update keyed set v = 'changed' where id % 4 = 0`);
      await c.query(`delete from keyed where id > 45`);
    } finally {
      await c.end();
    }
    expect((await archive()).code).toBe(0);
    const want = await sums(source.admin);
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], sums);
    expect(r.code, r.stderr).toBe(0);
    expect(seen).toEqual(want);
  });
});

/** Tables made after the base with INHERITS keep their parents, and leave them (NO INHERIT) as the source's did; a comment removed is removed. */
describe('replay of inheritance made after the base', () => {
  const source = useSource();

  it('replays children with their parents, and the last parent left', async () => {
    const archive = (...more: string[]) => archiveUntilNow(source, more);
    expect((await archive('--capture-ddl')).code).toBe(0);
    const c = await source.db.client();
    const parentRows = async (client: pg.Client) =>
      (await client.query<{ n: number }>('select count(*)::int as n from public.parent')).rows[0]!.n;
    try {
      await c.query(`create table parent (id int primary key, v text)`);
      await c.query(`create table kept (extra int) inherits (parent)`);
      await c.query(`create table left_alone (id int primary key, v text)`);
      await c.query(`alter table left_alone inherit parent`);
      await c.query(`insert into parent values (1, 'p')`);
      await c.query(`insert into kept values (2, 'k', 7)`);
      await c.query(`insert into left_alone values (3, 'l')`);
      await c.query(`alter table left_alone no inherit parent`);
      // A comment removed (IS NULL) reaches the replay as no comment: it once failed every replay after it.
      await c.query(`comment on table parent is 'the parent'`);
      await c.query(`comment on table parent is null`);
      expect(await parentRows(c)).toBe(2);
    } finally {
      await c.end();
    }
    expect((await archive()).code).toBe(0);
    const want = await sums(source.admin);
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], async (client) => ({
      sums: await sums(client),
      parentRows: await parentRows(client),
      comment: (await client.query<{ c: string | null }>(`select obj_description('public.parent'::regclass, 'pg_class') as c`)).rows[0]!.c,
    }));
    expect(r.code, r.stderr).toBe(0);
    expect(seen).toEqual({ sums: want, parentRows: 2, comment: null });
  });
});

describe('replay of a domain in use changed after the base', () => {
  const source = useSource();

  it('replays its checks added and dropped (a domain without a default was once "not replayed")', async () => {
    const archive = (...more: string[]) => archiveUntilNow(source, more);
    expect((await archive('--capture-ddl')).code).toBe(0);
    const c = await source.db.client();
    const checks = async (client: pg.Client) =>
      (
        await client.query<{ k: string }>(
          `select conname || ': ' || pg_get_constraintdef(oid) as k from pg_constraint where contypid = 'public.positive'::regtype order by 1`,
        )
      ).rows.map((r) => r.k);
    try {
      await c.query(`create domain positive as int`);
      await c.query(`create table amounts (id int primary key, v positive)`);
      await c.query(`insert into amounts values (1, 5), (2, 40)`);
      await c.query(`alter domain positive add constraint small check (value < 100)`);
      await c.query(`alter domain positive add check (value > 0)`);
      await c.query(`alter domain positive add constraint tiny check (value < 10) not valid`);
      await c.query(`alter domain positive drop constraint small`);
    } finally {
      await c.end();
    }
    expect((await archive()).code).toBe(0);
    const want = { sums: await sums(source.admin), checks: await checks(source.admin) };
    expect(want.checks).toEqual(['positive_check: CHECK ((VALUE > 0))', 'tiny: CHECK ((VALUE < 10)) NOT VALID']);
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], async (client) => ({
      sums: await sums(client),
      checks: await checks(client),
    }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('not replayed');
    expect(seen).toEqual(want);
  });
});

describe('replay of a sequence given new bounds after the base', () => {
  const source = useSource();

  it('follows bounds that leave out the value the replay holds (it restarts inside them)', async () => {
    const archive = (...more: string[]) => archiveUntilNow(source, more);
    expect((await archive('--capture-ddl')).code).toBe(0);
    const c = await source.db.client();
    const bounds = async (client: pg.Client) =>
      (
        await client.query<{ min: string; start: string }>(
          `select min_value::text as min, start_value::text as start from pg_sequences where sequencename = 'tickets'`,
        )
      ).rows;
    try {
      await c.query(`create sequence tickets`);
      await c.query(`select nextval('tickets') from generate_series(1, 200)`);
      // The source's value (200) lies inside; the replay's, never advanced (values are set at the end), does not.
      await c.query(`alter sequence tickets minvalue 100 start 100`);
    } finally {
      await c.end();
    }
    expect((await archive()).code).toBe(0);
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], async (client) => ({
      bounds: await bounds(client),
      value: (await client.query<{ v: string }>(`select last_value::text as v from tickets`)).rows[0]!.v,
    }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('could not make it');
    expect(seen!.bounds).toEqual([{ min: '100', start: '100' }]);
    expect(BigInt(seen!.value)).toBeGreaterThanOrEqual(100n);
  });
});

/**
 * The merged load hands long stretches of unchanged base lines to COPY as views of the
 * decompressed chunk, and copies short ones between the rows it replaces (replay/base-merge.ts):
 * a large table with a few changes scattered over it — its first and last rows, a chunk's
 * boundary, a run of neighbours — keyed and REPLICA IDENTITY FULL alike.
 */
describe('replay of a large base table with few changes', () => {
  const source = useSource(`
    create table wide (id int primary key, v text, pad text);
    insert into wide select g, md5(g::text), repeat('x', 40) from generate_series(1, 40000) g;
    create table full_rows (id int, v text, pad text);
    alter table full_rows replica identity full;
    insert into full_rows select g, md5(g::text), repeat('y', 40) from generate_series(1, 40000) g;
  `);

  it('replays the same rows, the changed ones merged into the load', async () => {
    expect((await archiveUntilNow(source)).code).toBe(0);
    const changed = 'id in (1, 2, 13000, 13001, 17000, 25000, 25001, 25002, 25003, 39999, 40000)';
    await source.admin.query(`update wide set v = v || '+' where ${changed}`);
    await source.admin.query(`update full_rows set v = v || '+' where ${changed}`);
    await source.admin.query(`delete from wide where id in (3, 20000, 39998)`);
    await source.admin.query(`delete from full_rows where id in (3, 20000, 39998)`);
    await source.admin.query(`insert into wide select g, 'new', '' from generate_series(40001, 40005) g`);
    await source.admin.query(`insert into full_rows select g, 'new', '' from generate_series(40001, 40005) g`);
    expect((await archiveUntilNow(source)).code).toBe(0);
    const want = await sums(source.admin);
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], sums, { PGTAPE_LOG_LEVEL: 'debug' });
    expect(r.code, r.stderr).toBe(0);
    expect(seen).toEqual(want);
    const loaded = logLines(r.stderr).filter((l) => l.msg === 'base table loaded');
    expect(Object.fromEntries(loaded.map((l) => [l.table, [l.rows, l.merged, l.leftForSetBased]]))).toEqual({
      'public.wide': [40002, expect.any(Number), 0],
      'public.full_rows': [40002, expect.any(Number), 0],
    });
    expect(loaded.every((l) => (l.merged as number) > 0)).toBe(true);
  });
});
