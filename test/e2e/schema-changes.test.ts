import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { archiveArgs, logLines, pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { dropSlotWhenFree } from '../support/tape.js';
import { checksums } from '../support/oracle.js';
import { replayIntoFresh, replayIntoNewPgdata } from '../support/replay-into.js';
import { describeSchema } from '../support/schema.js';
import { rowsAndSchema } from '../support/script-points.js';

interface Point {
  name: string;
  sums: Record<string, string>;
}

/**
 * Schema changes while archiving, replayed before and after each: with --capture-ddl every shape
 * (and its data) is exact; without it, replay follows the Relation messages and says what it
 * could not know.
 */
describe('schema changes while archiving', () => {
  const source = useSource(`
    create table a (id int primary key, x int, y text);
    insert into a select g, g, 'y' || g from generate_series(1, 20) g;
  `);
  const points: Point[] = [];

  it('records columns renamed, retyped, added and dropped, tables created and dropped', async () => {
    const archive = (store: string, slot: string, ...extra: string[]) =>
      pgtape(archiveArgs(source.db.url(), store, '--slot', slot, '--create-publication', '--until', 'now', ...extra));
    expect((await archive(source.store.dir, 'pgtape', '--capture-ddl')).code).toBe(0);
    const step = async (name: string, sql: string) => {
      await source.admin.query(sql);
      expect((await pgtape(['mark', '--source', source.db.url(), name])).code).toBe(0);
      points.push({ name, sums: await checksums(source.admin) });
    };
    await step('renamed', `alter table a rename column y to z; update a set x = -1 where id = 1`);
    await step('retyped', `alter table a alter column x type bigint; update a set x = 9000000000 where id = 2`);
    await step(
      'created',
      `create table b (id int primary key, v text default 'dflt', n int not null); create index b_v on b (v); insert into b (id, n) values (1, 1), (2, 2)`,
    );
    await step('added', `alter table a add column w int; alter table a drop column x; update a set w = 5 where id = 3`);
    await step('table-renamed', `alter table b rename to b2; insert into b2 (id, n) values (3, 3)`);
    // DDL inside a savepoint keeps its place in the transaction, before the change that follows it.
    await step(
      'in-savepoint',
      `begin; savepoint s; alter table a rename column z to zz; release savepoint s; update a set zz = 'renamed in a savepoint' where id = 4; commit`,
    );
    await step('dropped', `drop table b2; insert into a (id, zz) values (100, 'after the drop')`);
    const r = await archive(source.store.dir, 'pgtape', '--capture-ddl');
    expect(r.code, r.stderr).toBe(0);
    const log = await pgtape(['log', '--store', source.store.dir]);
    expect(log.stdout).toMatch(/ddl ALTER TABLE public\.a/);
    expect(log.stdout).toMatch(/ddl DROP TABLE dropped table public\.b2/);
  });

  const replay = async (store: string, to: string) => {
    const { r, seen } = await replayIntoFresh(source, ['--store', store, '--to', to], async (c) => {
      const shape = await c.query<{ column_name: string; column_default: string | null }>(
        `select column_name, column_default from information_schema.columns where table_schema = 'public' and table_name in ('b', 'b2') order by ordinal_position`,
      );
      const indexes = await c.query<{ indexname: string }>(
        `select indexname from pg_indexes where schemaname = 'public' and tablename in ('b', 'b2') order by 1`,
      );
      return { sums: await checksums(c), shape: shape.rows, indexes: indexes.rows.map((i) => i.indexname) };
    });
    expect(r.code, r.stderr).toBe(0);
    return { r, ...seen! };
  };

  it('with --capture-ddl, replays every point to the source as it was, shapes included', async () => {
    for (const p of points) expect((await replay(source.store.dir, `name:${p.name}`)).sums, p.name).toEqual(p.sums);
    const created = await replay(source.store.dir, 'name:created');
    expect(created.shape).toEqual([
      { column_name: 'id', column_default: null },
      { column_name: 'v', column_default: "'dflt'::text" },
      { column_name: 'n', column_default: null },
    ]);
    expect(created.indexes).toEqual(['b_pkey', 'b_v']);
  });

  it('installs the capture for a publication whose name holds what ends a function body', async () => {
    const name = 'we$f$ird $f0$ pub';
    await source.admin.query(`create publication "${name}" for all tables`);
    const store = join(source.store.dir, '..', 'odd-publication');
    try {
      const r = await pgtape(
        archiveArgs(source.db.url(), store, '--slot', 'oddpub', '--publication', name, '--capture-ddl', '--until', 'now'),
      );
      expect(r.code, r.stderr).toBe(0);
      await source.admin.query('create table after_odd (id int primary key)');
      const again = await pgtape(archiveArgs(source.db.url(), store, '--slot', 'oddpub', '--publication', name, '--until', 'now'));
      expect(again.code, again.stderr).toBe(0);
      const log = await pgtape(['log', '--store', store]);
      expect(log.stdout).toMatch(/ddl CREATE TABLE public\.after_odd/);
    } finally {
      await dropSlotWhenFree(source.admin, 'oddpub').catch(() => {});
      // The capture follows the archive's publication: put it back for the tests after this one.
      const back = await pgtape(archiveArgs(source.db.url(), source.store.dir, '--capture-ddl', '--until', 'now'));
      expect(back.code, back.stderr).toBe(0);
    }
  });
});

// The event triggers belong to a database: this one never had them.
describe('schema changes without --capture-ddl', () => {
  const source = useSource(`
    create table a (id int primary key, x int, y text);
    insert into a select g, g, 'y' || g from generate_series(1, 5) g;
  `);

  it('follow the Relation messages, and replay says what it could not know', async () => {
    const archive = () =>
      pgtape(['archive', '--source', source.db.url(), '--store', source.store.dir, '--create-publication', '--until', 'now']);
    expect((await archive()).code).toBe(0);
    await source.admin.query(
      `alter table a alter column x type bigint; alter table a add column w int; update a set x = 9000000000, w = 1 where id = 1`,
    );
    await source.admin.query(`alter table a rename column y to z; update a set x = -1 where id = 2`);
    expect((await archive()).code).toBe(0);
    // Retyped and added columns come through: the columns are the source's (a renamed one last)...
    const columns = async (client: pg.Client) =>
      (
        await client.query<{ c: string; t: string }>(
          `select column_name as c, data_type as t from information_schema.columns where table_name = 'a' order by 1`,
        )
      ).rows;
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], async (c) => ({
      columns: await columns(c),
      z: (await c.query<{ z: string | null }>('select z from a order by id')).rows.map((x) => x.z),
    }));
    expect(r.code, r.stderr).toBe(0);
    expect(seen!.columns).toEqual(await columns(source.admin));
    // ...but a rename looks like a drop and an add: rows untouched since hold NULL, and the log says so.
    expect(seen!.z).toEqual([null, 'y2', null, null, null]);
    expect(logLines(r.stderr).some((l) => /archive with --capture-ddl to replay renames/.test(String(l.msg)))).toBe(true);
  });
});

// Without captured DDL, a rename is known only from the next Relation message of the table renamed:
// a table whose name another takes first is set aside until then (it once failed the replay, or
// was dropped with its rows).
describe('tables renamed onto names the replay still holds, without --capture-ddl', () => {
  const source = useSource(`
    create table t (id int primary key, v text);
    insert into t select g, 'v' || g from generate_series(1, 5) g;
    create table p (id int primary key, x int);
    create table q (id int primary key, x int);
    insert into p values (1, 1);
    insert into q values (1, 2);
    create table gone (id int primary key);
    insert into gone values (1);
  `);

  it('follows a table swapped for a new one of its name and two tables swapping names; a table dropped and made again is replaced', async () => {
    const archive = () => pgtape(archiveArgs(source.db.url(), source.store.dir, '--create-publication', '--until', 'now'));
    expect((await archive()).code).toBe(0);
    // The new table, and the one taking the other's name, are written before the one they displaced.
    await source.admin.query(`alter table t rename to t_old; create table t (id int primary key, v text, w int)`);
    await source.admin.query(`insert into t values (10, 'new', 1); insert into t_old values (6, 'v6')`);
    await source.admin.query(`alter table p rename to tmp; alter table q rename to p; alter table tmp rename to q`);
    await source.admin.query(`insert into p values (2, 20); insert into q values (2, 10)`);
    await source.admin.query(`drop table gone; create table gone (id int primary key, k text); insert into gone values (7, 'k')`);
    expect((await archive()).code).toBe(0);
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], (c) => checksums(c));
    expect(r.code, r.stderr).toBe(0);
    expect(seen, r.stderr).toEqual(await checksums(source.admin));
    const warned = logLines(r.stderr).filter((l) => l.level === 40);
    expect(warned.filter((l) => /dropped the old one/.test(String(l.msg))).map((l) => l.table)).toEqual(['public.gone']);
    expect(warned.filter((l) => /never named it again/.test(String(l.msg)))).toEqual([]);
  });
});

describe('a parent table replaced by a new one of its name, without --capture-ddl', () => {
  const source = useSource(`
    create table pp (id int primary key, v text);
    create table cc (extra int) inherits (pp);
    alter table cc add primary key (id);
    insert into cc values (1, 'c', 1);
  `);

  it('keeps the old one (and its child the log still writes), said, instead of dropping them', async () => {
    const archive = () => pgtape(archiveArgs(source.db.url(), source.store.dir, '--create-publication', '--until', 'now'));
    expect((await archive()).code).toBe(0);
    await source.admin.query(`alter table pp rename to pp_old; create table pp (id int primary key, z text)`);
    await source.admin.query(`insert into pp values (9, 'z'); insert into cc values (2, 'd', 2)`);
    expect((await archive()).code).toBe(0);
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], (c) => checksums(c));
    expect(r.code, r.stderr).toBe(0);
    const want = await checksums(source.admin);
    for (const table of ['public.cc(id,v,extra)', 'public.pp(id,z)']) expect(seen![table], table).toBe(want[table]);
    const warned = logLines(r.stderr).filter((l) => l.level === 40 && /never named it again/.test(String(l.msg)));
    expect(warned.map((l) => l.was)).toEqual(['public.pp']);
  });
});

// A table the publication did not hold at the base: pgoutput carries its changes from the moment
// it is added, never the rows it held then. Captured DDL records them in the ALTER's transaction.
describe('a table added to the publication after the base (--capture-ddl)', () => {
  const source = useSource(`
    create table a (id int primary key, v text);
    create table b (id int primary key, v text not null default 'b');
    insert into a values (1, 'a');
    insert into b select g, 'b' || g from generate_series(1, 1500) g;
    create publication only_a for table a;
  `);

  it('replays its shape and the rows it held when it was added, then its changes', async () => {
    const archive = (...more: string[]) =>
      pgtape(archiveArgs(source.db.url(), source.store.dir, '--publication', 'only_a', ...more, '--until', 'now'));
    const first = await archive('--capture-ddl');
    expect(first.code, first.stderr).toBe(0);
    // Before it is published: in no stream, only in the rows it holds when added.
    await source.admin.query(`update b set v = 'changed before' where id = 1`);
    await source.admin.query(`alter publication only_a add table b`);
    await source.admin.query(`insert into b values (1501, 'new'); delete from b where id = 2; update a set v = 'a2'`);
    const rest = await archive();
    expect(rest.code, rest.stderr).toBe(0);
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], async (c) => ({
      sums: await checksums(c),
      default: (
        await c.query<{ d: string | null }>(
          `select column_default as d from information_schema.columns where table_name = 'b' and column_name = 'v'`,
        )
      ).rows[0]?.d,
    }));
    expect(r.code, r.stderr).toBe(0);
    expect(seen!.sums).toEqual(await checksums(source.admin));
    expect(seen!.default).toBe(`'b'::text`);
    expect(logLines(r.stderr).filter((l) => l.level === 40)).toEqual([]);
  });
});

// Without --capture-ddl a detached partition is known only from a row outside its bound: the
// replay is made again with it detached before any row is loaded (the row may be in the first
// batch, merged into the partition's own load), its key not attached to its parent's.
describe('a partition detached after the base, without --capture-ddl', () => {
  const source = useSource(`
    create table parted (id int, k text, primary key (id, k)) partition by list (k);
    create table parted_a partition of parted for values in ('a');
    create table parted_b partition of parted for values in ('b');
    insert into parted select g, case when g % 2 = 0 then 'a' else 'b' end from generate_series(1, 40) g;
  `);

  it('replays to the source, with --into and with parallel jobs into a PGDATA, and says it guessed when', async () => {
    const archive = () =>
      pgtape(['archive', '--source', source.db.url(), '--store', source.store.dir, '--create-publication', '--until', 'now']);
    expect((await archive()).code).toBe(0);
    await source.admin.query(
      `alter table parted detach partition parted_a; insert into parted_a values (100, 'z'); update parted_a set id = -id where id < 10; insert into parted values (101, 'b')`,
    );
    const r = await archive();
    expect(r.code, r.stderr).toBe(0);
    const expected = { sums: await checksums(source.admin), schema: await describeSchema(source.admin) };
    const inspect = rowsAndSchema;
    const into = await replayIntoFresh(source, ['--store', source.store.dir], inspect);
    const pgdata = await replayIntoNewPgdata(['--store', source.store.dir, '--jobs', '2'], inspect);
    for (const { r, seen } of [into, pgdata]) {
      expect(r.code, r.stderr).toBe(0);
      expect(seen).toEqual(expected);
      expect(logLines(r.stderr).some((l) => /the source detached it after the base/.test(String(l.msg)))).toBe(true);
    }
  });
});
