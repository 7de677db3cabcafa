import { describe, expect, it } from 'vitest';
import { archiveUntilNow, pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { applyPatch, replayIntoFresh } from '../support/replay-into.js';
import { differences, rowsAndSchema, sourceNow, type SourceState } from '../support/script-points.js';

// What the catalog holds that Postgres has no deparser for: collations, text search
// dictionaries and configurations, operators, operator families and classes, casts and conversions of the user's (a case-insensitive ICU collation is a common way
// to compare text: a table, a domain, an index or a generated column that names one cannot be made
// without it), and columns' collations, statistics targets, compression and options. Made after an
// empty base with --capture-ddl, altered, renamed, moved and dropped; every point replays to the
// source's rows and catalog description, without a warning, and diff's patch turns each point's
// replay into the next. (Bases hold them too: the schema oracle's fixture,
// test/fixtures/schema/every-kind.sql, has each.)

const STEPS: [string, string][] = [
  [
    'collations made, a table and an index naming them',
    `create collation ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
     create collation c_copy from "C";
     create collation german (provider = icu, locale = 'de-DE');
     create table people (id int primary key, name text collate ci, code text collate c_copy, city text);
     create index on people (name collate c_copy);
     create domain ci_text as text collate ci;
     insert into people values (1, 'Ann', 'a', 'Köln'), (2, 'bob', 'b', 'Bonn');`,
  ],
  [
    'a text search dictionary and a configuration, a generated column and an index using it',
    `create text search dictionary simple_en (template = pg_catalog.simple, stopwords = english);
     create text search configuration my_ts (copy = english);
     alter text search configuration my_ts alter mapping for asciiword with simple_en, english_stem;
     create table docs (id int primary key, title ci_text, body text,
                        tsv tsvector generated always as (to_tsvector('my_ts'::regconfig, coalesce(body, ''))) stored);
     create index docs_tsv on docs using gin (tsv);
     insert into docs (id, title, body) values (1, 'Fox', 'the quick brown fox');`,
  ],
  [
    "columns' collations changed and added; a mapping dropped and a dictionary's options changed",
    `alter table people alter column city type text collate german;
     alter table people alter column code type text collate "default";
     alter table people add column nick text collate ci default 'none';
     alter text search configuration my_ts drop mapping for email;
     alter text search dictionary simple_en (stopwords = english, accept = false);
     insert into docs (id, title, body) values (2, 'FOX', 'someone@example.org jumps');
     insert into people values (3, 'ANN', 'c', 'Aachen', 'annie');`,
  ],
  [
    'renamed and moved to another schema',
    `alter collation ci rename to case_insensitive;
     alter text search configuration my_ts rename to docs_ts;
     create schema other;
     alter collation c_copy set schema other;
     alter text search dictionary simple_en set schema other;
     update people set nick = 'b' where id = 2;`,
  ],
  [
    "columns' storage, statistics targets, compression and options: set on a table made before, and on one made with them",
    `alter table people alter column name set statistics 1000, alter column city set compression pglz, alter column code set (n_distinct = -0.5);
     alter table people alter column city set storage external, alter column nick set storage main;
     create table tuned (id int primary key, note text);
     alter table tuned alter column note set statistics 0, alter column note set (n_distinct_inherited = 10);
     insert into tuned values (1, 'x');`,
  ],
  [
    'set back to their defaults, and changed',
    `alter table people alter column name set statistics -1, alter column city set compression default, alter column code reset (n_distinct);
     alter table people alter column city set storage extended;
     alter table tuned alter column note set statistics 50;`,
  ],
  [
    "operators, an operator family and classes (create_table.sql's, and a hash one): partition keys and an index name them",
    `create function my_int4_sort(int4, int4) returns int language sql immutable
       as $$ select case when $1 = $2 then 0 when $1 > $2 then 1 else -1 end; $$;
     create operator class test_int4_ops for type int4 using btree as
       operator 1 < (int4, int4), operator 2 <= (int4, int4), operator 3 = (int4, int4), operator 4 >= (int4, int4),
       operator 5 > (int4, int4), function 1 my_int4_sort(int4, int4);
     create table partkey_t (a int4) partition by range (a test_int4_ops);
     create table partkey_t_1 partition of partkey_t for values from (0) to (1000);
     alter table partkey_t replica identity full; alter table partkey_t_1 replica identity full;
     insert into partkey_t values (100), (200);
     create function hash_noop(value int4, seed int8) returns int8 language sql immutable as 'select value + seed';
     create operator family hash_fam using hash;
     create operator class noop_int4_ops for type int4 using hash family hash_fam as operator 1 =, function 2 hash_noop(int4, int8);
     create table hashed (a int primary key) partition by hash (a noop_int4_ops);
     create table hashed_0 partition of hashed for values with (modulus 2, remainder 0);
     create table hashed_1 partition of hashed for values with (modulus 2, remainder 1);
     insert into hashed values (1), (2), (3);
     create function abs_lt(int4, int4) returns bool language sql immutable as 'select abs($1) < abs($2)';
     create function abs_gt(int4, int4) returns bool language sql immutable as 'select abs($1) > abs($2)';
     create operator <<< (function = abs_lt, leftarg = int4, rightarg = int4, commutator = >>>);
     create operator >>> (function = abs_gt, leftarg = int4, rightarg = int4, commutator = <<<);
     create index partkey_a on partkey_t (a test_int4_ops);`,
  ],
  [
    'a loose member added to a family, a class renamed, an operator moved, a class dropped; a range type in a schema of its own',
    `alter operator family hash_fam using hash add function 2 (int8, int8) hashint8extended(int8, int8);
     alter operator class test_int4_ops using btree rename to int4_sort_ops;
     alter operator <<< (int4, int4) set schema other;
     create operator class dropped_ops for type int4 using hash as operator 1 =, function 2 hash_noop(int4, int8);
     drop operator class dropped_ops using hash;
     insert into hashed values (4);
     create schema ranges;
     create type ranges.floatrange as range (subtype = float8);
     create table ranges.spans (id int primary key, span ranges.floatrange);
     insert into ranges.spans values (1, '[1,2)');`,
  ],
  [
    'casts and a conversion, a view using a cast',
    `create type level as enum ('low', 'high');
     create function level_rank(level) returns int language sql immutable as $$ select case $1 when 'low' then 1 else 2 end $$;
     create cast (level as int) with function level_rank(level) as implicit;
     create cast (money as int8) without function;
     create cast (people as text) with inout;
     create conversion my_conv for 'LATIN1' to 'UTF8' from iso8859_1_to_utf8;
     create view level_ranks as select l, l::int as rank from unnest(enum_range(null::level)) l;
     comment on cast (level as int) is 'rank'; comment on cast (money as int8) is 'cents';
     comment on conversion my_conv is 'latin1 in'; comment on collation case_insensitive is 'ci';
     comment on operator class int4_sort_ops using btree is 'sorts'; comment on operator family hash_fam using hash is 'hashes';
     comment on operator other.<<< (int4, int4) is 'smaller in magnitude';`,
  ],
  [
    'comments changed and removed',
    `comment on cast (level as int) is 'rank, 1 or 2'; comment on collation case_insensitive is null;
     comment on operator family hash_fam using hash is null;`,
  ],
  [
    'made and dropped again; a partitioned table keyed on a collated column; a loose member dropped; the schema of the range type dropped',
    `create collation dropme (provider = icu, locale = 'fr'); drop collation dropme;
     create text search configuration tmp_ts (parser = default); drop text search configuration tmp_ts;
     create table ranged (name text collate other.c_copy, n int) partition by range (name);
     create table ranged_a partition of ranged for values from ('A') to ('a');
     insert into ranged values ('Bee', 1);
     alter operator family hash_fam using hash drop function 2 (int8, int8);
     drop schema ranges cascade;
     drop cast (money as int8); drop conversion my_conv;`,
  ],
];

describe('collations, text search objects, operator classes and column settings made after the base (--capture-ddl)', () => {
  const source = useSource();
  const points: (SourceState & { step: string })[] = [];

  it('records each step', async () => {
    const first = await archiveUntilNow(source, ['--capture-ddl']);
    expect(first.code, first.stderr).toBe(0);
    const client = await source.db.client();
    try {
      for (const [step, sql] of STEPS) {
        await source.admin.query(sql);
        points.push({ step, ...(await sourceNow(client)) });
      }
    } finally {
      await client.end();
    }
    const rest = await archiveUntilNow(source, []);
    expect(rest.code, rest.stderr).toBe(0);
  });

  it("replays every point to the source's rows and schema, without a warning", async () => {
    const wrong: string[] = [];
    for (const p of points) {
      const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `lsn:${p.lsn}`], rowsAndSchema);
      if (r.code !== 0) wrong.push(`${p.step}: exit ${r.code}: ${r.stderr.slice(-1500)}`);
      else {
        const d = differences(p, seen!);
        if (d.length) wrong.push(`${p.step}:\n  ${d.join('\n  ')}`);
        if (/"level":40/.test(r.stderr)) wrong.push(`${p.step}: warned: ${r.stderr.slice(-1000)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('diff --format sql turns a replay at one point into the next', async () => {
    const pairs: [number, number][] = points.slice(1).map((_, i) => [i, i + 1]);
    pairs.push([0, points.length - 1]);
    for (const [from, to] of pairs) {
      const [a, b] = [points[from]!, points[to]!];
      const what = `patch from "${a.step}" to "${b.step}"`;
      const patch = await pgtape([
        'diff',
        '--store',
        source.store.dir,
        '--from',
        `lsn:${a.lsn}`,
        '--to',
        `lsn:${b.lsn}`,
        '--format',
        'sql',
      ]);
      expect(patch.code, `${what}: ${patch.stderr}`).toBe(0);
      const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `lsn:${a.lsn}`], async (c) => {
        await applyPatch(c, patch.stdout, what);
        return rowsAndSchema(c);
      });
      expect(r.code, `${what}: ${r.stderr}`).toBe(0);
      expect(differences(b, seen!), what).toEqual([]);
    }
  });

  it('a base compacted at the end holds them: the latest point replays from it the same', async () => {
    const c = await pgtape(['compact', '--store', source.store.dir, '--to', `lsn:${points.at(-1)!.lsn}`]);
    expect(c.code, c.stderr).toBe(0);
    const p = points.at(-1)!;
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `lsn:${p.lsn}`], rowsAndSchema);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(c.stdout.trim().split('/').filter(Boolean).at(-1)!.replace(/^0+/, '').slice(0, 4));
    expect(differences(p, seen!)).toEqual([]);
  });
});

describe('a table made after the base that the replay server cannot make as the source had it', () => {
  const source = useSource();

  it('is named with what it lacks (exit 2), and --tables leaves it out', async () => {
    const first = await archiveUntilNow(source, ['--capture-ddl']);
    expect(first.code, first.stderr).toBe(0);
    // A base type (from built-in C functions, as a superuser may make one): captured DDL does not follow them.
    await source.admin.query(`
      create type int4_like;
      create function int4_like_in(cstring) returns int4_like language internal immutable strict as 'int4in';
      create function int4_like_out(int4_like) returns cstring language internal immutable strict as 'int4out';
      create type int4_like (input = int4_like_in, output = int4_like_out, like = int4);
      create table hashed (a int4_like);
      create table plain (id int primary key);
      insert into hashed values ('1'); insert into plain values (1);`);
    const client = await source.db.client();
    const p = await sourceNow(client);
    await client.end();
    const rest = await archiveUntilNow(source, []);
    expect(rest.code, rest.stderr).toBe(0);
    const refused = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `lsn:${p.lsn}`], async () => 0);
    expect(refused.r.code, refused.r.stderr).toBe(2);
    expect(refused.r.stderr).toMatch(
      /the replay cannot make table "public"\."hashed" as the source's CREATE TABLE left it: type "public.int4_like" (does not exist|is only a shell)/,
    );
    expect(refused.r.stderr).toMatch(/what to do: install what it needs on the replay server .*or leave it out with --tables/);
    const without = await replayIntoFresh(
      source,
      ['--store', source.store.dir, '--to', `lsn:${p.lsn}`, '--tables', 'public.plain'],
      async (c) => (await c.query<{ n: number }>('select count(*)::int as n from plain')).rows[0]!.n,
    );
    expect(without.r.code, without.r.stderr).toBe(0);
    expect(without.seen).toBe(1);
  });
});

describe('a table holding values Postgres takes from no input (pg_node_tree, in a copy of pg_class)', () => {
  const source = useSource(`
    create table parted (a int) partition by list (a);
    create table parted_1 partition of parted for values in (1);
    create table in_base as select relname::text as name, relpartbound from pg_class where relpartbound is not null;
    alter table parted replica identity full; alter table in_base replica identity full;
    create table plain (id int primary key);
    insert into plain values (1);`);

  it('is named with its column and type (exit 2), in a base and made after it; --tables leaves it out', async () => {
    const first = await archiveUntilNow(source, ['--capture-ddl']);
    expect(first.code, first.stderr).toBe(0);
    await source.admin.query(
      `create table after_base as select relname::text as name, relpartbound from pg_class where relpartbound is not null`,
    );
    const client = await source.db.client();
    const p = await sourceNow(client);
    await client.end();
    const rest = await archiveUntilNow(source, []);
    expect(rest.code, rest.stderr).toBe(0);
    const replay = (...more: string[]) =>
      replayIntoFresh(
        source,
        ['--store', source.store.dir, '--to', `lsn:${p.lsn}`, ...more],
        async (c) => (await c.query<{ n: number }>('select count(*)::int as n from plain')).rows[0]!.n,
      );
    for (const [table, more] of [
      ['in_base', []],
      ['after_base', ['--tables', 'public.plain,public.after_base']],
    ] as const) {
      const refused = await replay(...more);
      expect(refused.r.code, refused.r.stderr).toBe(2);
      expect(refused.r.stderr).toMatch(new RegExp(`"public"\\."${table}": column "relpartbound" holds values of type pg_node_tree`));
      expect(refused.r.stderr).toMatch(/what to do: .*--tables/);
      expect(refused.r.stderr).not.toMatch(/\n\s+at /);
    }
    const without = await replay('--tables', 'public.plain');
    expect(without.r.code, without.r.stderr).toBe(0);
    expect(without.seen).toBe(1);
  });
});
