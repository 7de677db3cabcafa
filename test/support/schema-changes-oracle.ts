import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { archiveArgs, logLines, pgtape } from './cli.js';
import { useSource, type SourceFixture } from './fixture.js';
import { checksums } from './oracle.js';
import { applyPatch, patchBetween, replayIntoFresh, replayIntoNewPgdata } from './replay-into.js';
import { TEST_PG_MAJOR } from './postgres.js';
import { describeSchema, sequenceValues, type SchemaDescription } from './schema.js';
import { rowsAndSchema } from './script-points.js';

// Schema changes after the base replay at their point (issue 13): the DDL that broke or silently
// diverged replays on real SQL — enum labels added, columns added with constant, stable and
// volatile defaults, retyped with USING, identities added to filled tables, types and domains
// created then used, DROP SCHEMA … CASCADE then a table of the same name, a dropped UNIQUE
// constraint then a row that would have violated it, DROP COLUMN on inheritance and partition
// parents, a partitioned table dropped and one of its partitions' names reused — each step a
// point, and every point replays to the source's rows and schema (the schema oracle).

const BEFORE = `
  create type mood as enum ('sad', 'ok');
  create table people (id int primary key, name text, m mood);
  insert into people select g, 'p' || g, 'ok' from generate_series(1, 50) g;
  create table parent (id int primary key, x int, y text);
  create table child (extra text) inherits (parent);
  insert into parent values (1, 10, 'a');
  alter table child add primary key (id);
  insert into child values (2, 20, 'b', 'e');
  create table measured (id int, at date not null, v int, primary key (id, at)) partition by range (at);
  create table measured_2025 partition of measured for values from ('2025-01-01') to ('2026-01-01');
  create table measured_2026 partition of measured for values from ('2026-01-01') to ('2027-01-01');
  insert into measured values (1, '2025-05-05', 1), (2, '2026-05-05', 2);
  create function pass() returns trigger language plpgsql as $$ begin return new; end $$;
  create trigger measured_pass before insert on measured for each row execute function pass();
  alter table measured disable trigger measured_pass;
  alter table measured_2026 enable always trigger measured_pass;
  create table uniq (id int primary key, v text, constraint uniq_v unique (v));
  insert into uniq values (1, 'a');
  create schema doomed;
  create table doomed.t (id int primary key);
  insert into doomed.t values (1);
  create table texts (id int primary key, v text, pad char(4));
  insert into texts select g, repeat('x', g), 'ab' from generate_series(1, 20) g;
  create table parted (id int, k text, primary key (id, k)) partition by list (k);
  create table parted_a partition of parted for values in ('a');
  create table bvisits (id int, who int, at int, primary key (id, at)) partition by range (at);
  create table bvisits_1 partition of bvisits (constraint bvisits_1_who foreign key (who) references people (id)) for values from (0) to (10);
  alter table bvisits add constraint bvisits_who foreign key (who) references people (id);
  comment on constraint bvisits_1_who on bvisits_1 is 'a partition''s own key, merged';
  insert into parted values (1, 'a');
  create sequence counter;
  create extension hstore;
  create function touch() returns trigger language plpgsql as $$ begin new.v := coalesce(new.v, 'touched'); return new; end $$;
  create table noted (id serial primary key, v text);
  create index noted_v on noted (v);
  create trigger noted_touch before insert on noted for each row execute function touch();
  create view noted_view as select id, v from noted;
  comment on view noted_view is 'a view of the base';
  create materialized view noted_count as select count(*) as n from noted;
  create unique index noted_count_n on noted_count (n);
  insert into noted (v) values ('a'), (null);
  create type sa as enum ('1');
  create type sb as enum ('2');
  create table sw (id int primary key, a sa, b sb);
  insert into sw values (1, '1', '2');
  create type tag as enum ('x', 'y');
  create table arr (id int primary key, tags tag[]);
  insert into arr values (1, '{x}');
  create type status as enum ('new', 'done');
  create table tasks (id int primary key, s status);
  insert into tasks values (1, 'done');
  create type "q""t" as enum ('a');
  create table qt (id int primary key, v "q""t");
  create type feel as enum ('a');
  create table f (id int primary key, v feel);
  create table gone_trig (id int primary key, v text);
  create trigger gt_touch before insert on gone_trig for each row execute function touch();
  create trigger gt_other before insert on gone_trig for each row execute function touch();
  create table events (id int primary key, v text);
  create trigger events_touch before insert on events for each row execute function touch();
  create view events_v as select id from events;
  create table "order" (id serial primary key, qty int);
  insert into "order" (qty) values (1);
  create access method heap2 type table handler heap_tableam_handler;
  create table kept (id int primary key, v text) using heap2;
  insert into kept values (1, 'a');
  create sequence "limit";
  create table acct (id int primary key, v text);
  create index acct_v on acct (v);
  create trigger acct_touch before insert on acct for each row execute function touch();
  comment on table acct is 'accounts';
  comment on column acct.v is 'value';
  create table memo (id int primary key, body text, extra text);
  comment on column memo.body is 'kept through a rename';
  comment on column memo.extra is 'the old extra';
  insert into memo values (1, 'b', 'e');
  create type id_v as (id int, v text);
  create table typed_base of id_v (primary key (id));
  insert into typed_base values (1, 'a');
  create table typed_plain (id int primary key, v text);
  insert into typed_plain values (1, 'a');
  create schema "S x";
  create table "S x"."My T" (id int primary key, v text, constraint "U v" unique (v), constraint ck check (id > 0));
  create index "My i" on "S x"."My T" (v, id);
  insert into "S x"."My T" values (1, 'a');
  create table uparted (id int, k int, v text, primary key (id, k), unique (v, id)) partition by range (id);
  create table uparted_1 partition of uparted for values from (0) to (10);
  alter table uparted_1 add constraint uparted_1_k check (k > 0);
  create index uparted_1_v on uparted_1 (v);
  insert into uparted values (1, 1, 'a');
  create view memo_v as select id, body from memo;
  comment on view memo_v is 'the old view';
  comment on column memo_v.id is 'the old view''s id';
  create view memo_kept as select id from memo;
  comment on view memo_kept is 'kept through a rename';
  create function memo_f() returns int language sql as 'select 1';
  comment on function memo_f() is 'the old function';
  create type memo_kind as enum ('a');
  comment on type memo_kind is 'the old type';
  create index memo_id_neg on memo ((-id));
  comment on index memo_id_neg is 'the old index';
  create trigger memo_pass before insert on memo for each row execute function pass();
  comment on trigger memo_pass on memo is 'the old trigger';
  insert into acct select g, 'v' || g from generate_series(1, 10) g;
  create table ledger (id int primary key, acct int references acct (id));
  insert into ledger values (1, 1);
  create table ledger2 (id int primary key, acct int constraint ledger2_acct_fk references acct (id));
  insert into ledger2 values (1, 1);
  comment on constraint ledger_acct_fkey on ledger is 'to acct';
  comment on constraint ledger2_acct_fk on ledger2 is 'went with its key';
  create table swap_a (id int primary key, x int);
  create index swap_a_x on swap_a (x);
  create table swap_b (id int primary key, y text);
  create index swap_b_y on swap_b (y);
  create trigger swap_b_pass before insert on swap_b for each row execute function pass();
  insert into swap_a values (1, 1);
  insert into swap_b values (1, 'a');
  create view acct_list as select id from acct;
  comment on view acct_list is 'the base view';
  create function acct_list_insert() returns trigger language plpgsql as $$ begin return new; end $$;
  create trigger acct_list_insert instead of insert on acct_list for each row execute function acct_list_insert();
  create trigger acct_list_audit instead of insert on acct_list for each row execute function acct_list_insert();
  create rule acct_list_update as on update to acct_list do instead nothing;
  create schema ref;
  create table ref.r (id int primary key);
  insert into ref.r values (1);
  create view ref.rv as select id from ref.r;
  create trigger rv_insert instead of insert on ref.rv for each row execute function acct_list_insert();
  create trigger rv_audit instead of insert on ref.rv for each row execute function acct_list_insert();
  create view ref.rw as select id from ref.r;
  create trigger rw_insert instead of insert on ref.rw for each row execute function acct_list_insert();
  create table uses_ref (id int primary key, r int references ref.r (id));
  insert into uses_ref values (1, 1);
  create table ident (id int generated always as identity primary key, v text);
  insert into ident (v) values ('a');
  create table owner_t (id int primary key);
  insert into owner_t values (1);
  create table pet (id int primary key, owner int constraint pet_owner_fk references owner_t (id));
  insert into pet values (1, 1);
  comment on constraint pet_owner_fk on pet is 'whose pet';
  create schema zone;
  create table zone.spot (id int primary key, v int constraint spot_v_positive check (v > 0));
  create index spot_v on zone.spot (v);
  insert into zone.spot values (1, 1);
  create table dv_t (id int primary key, v text);
  create view dv as select id, v from dv_t;
  alter view dv alter column v set default 'base';
`;

/** Each step runs in its own transactions on the source; the point after it is recorded. */
const STEPS: [string, string[]][] = [
  ['an enum label added, then used', [`alter type mood add value 'ecstatic'`, `insert into people values (100, 'new', 'ecstatic')`]],
  [
    'columns added with a constant and a stable default',
    [
      `alter table people add column score int default 7`,
      `alter table people add column seen timestamptz default now()`,
      `update people set score = 8 where id = 1`,
    ],
  ],
  ['a column added with a volatile default (a rewrite)', [`alter table people add column token uuid default gen_random_uuid()`]],
  ['a column retyped with USING', [`alter table texts alter column v type int using length(v)`, `insert into texts values (21, 21)`]],
  ['an identity added to a filled table', [`alter table people add column num int generated by default as identity`]],
  [
    'a type and a domain created, then used by a new table',
    [
      `create type color as enum ('red', 'blue')`,
      `create domain posint as int check (value > 0)`,
      `create table paint (id int primary key, c color, n posint)`,
      `insert into paint values (1, 'red', 5), (2, 'blue', 6)`,
    ],
  ],
  [
    'DROP SCHEMA … CASCADE, then a table of the same name',
    [
      `drop schema doomed cascade`,
      `create schema doomed`,
      `create table doomed.t (id text primary key)`,
      `insert into doomed.t values ('x')`,
    ],
  ],
  [
    'a UNIQUE constraint dropped, then a row it would have refused',
    [`alter table uniq drop constraint uniq_v`, `insert into uniq values (2, 'a')`],
  ],
  [
    'DROP COLUMN on an inheritance parent and a partitioned table',
    [
      `alter table parent drop column y`,
      `alter table measured drop column v`,
      `insert into child values (3, 30, 'f')`,
      `insert into measured values (3, '2026-06-06')`,
    ],
  ],
  [
    'a check constraint and an index added',
    [`alter table uniq add constraint uniq_positive check (id > 0)`, `create index people_name on people (name)`],
  ],
  ['a partitioned table dropped, one of its names reused', [`drop table measured`, `create table measured_2025 (id int primary key)`]],
  [
    // The index recurses to both partitions; parted_a's is detached with it in the next step.
    'a partition created after the base, the partitioned table indexed',
    [
      `create table parted_b partition of parted for values in ('b')`,
      `insert into parted values (2, 'b')`,
      `create index parted_id on parted (id)`,
    ],
  ],
  [
    'a table attached as a partition, another detached',
    [
      `create table parted_c (id int not null, k text not null)`,
      `insert into parted_c values (3, 'c')`,
      `alter table parted attach partition parted_c for values in ('c')`,
      `alter table parted detach partition parted_a`,
      `insert into parted_a values (4, 'z')`,
      `insert into parted values (5, 'c')`,
    ],
  ],
  [
    'a partitioned table created after the base',
    [
      `create table ranged (id int primary key, v text) partition by range (id)`,
      `create table ranged_low partition of ranged for values from (0) to (100)`,
      `insert into ranged values (5, 'five')`,
      // One index left invalid (ON ONLY, no partition's attached), one made valid by attaching.
      `create index ranged_v on only ranged (v)`,
      `create index ranged_id_v on only ranged (id, v)`,
      `create index ranged_low_id_v on ranged_low (id, v)`,
      `alter index ranged_id_v attach partition ranged_low_id_v`,
    ],
  ],
  ['a sequence advanced without a row', [`select nextval('counter') from generate_series(1, 5)`]],
  [
    'a domain with NOT NULL and a column added to a partitioned table',
    [`create domain required as int not null`, `alter table parted add column note text`, `insert into parted values (6, 'b', 'noted')`],
  ],
  [
    'a table with a generated column, indexed, then written',
    [
      `create table gen (a int primary key, g int generated always as (a * 2) stored)`,
      `create index gen_a on gen (a)`,
      `insert into gen values (1), (2)`,
      `update gen set a = 3 where a = 1`,
    ],
  ],
  [
    'a function, an audit trigger, a view and an aggregate created; a row written through the trigger',
    [
      `create table audit (id serial primary key, what text)`,
      `create function log_people() returns trigger language plpgsql as $$ begin insert into audit (what) values ('people ' || new.id); return new; end $$`,
      `create trigger people_audit after insert on people for each row execute function log_people()`,
      `create view people_names as select id, name from people`,
      `create aggregate total(int) (sfunc = int4pl, stype = int, initcond = '0')`,
      `create sequence tickets start 100`,
      `select nextval('tickets') from generate_series(1, 3)`,
      // The trigger writes the audit row on the source; the replay takes it from the log, and must not write it twice.
      `insert into people (id, name) values (200, 'audited')`,
    ],
  ],
  [
    'the view redefined, the trigger and its function dropped, a materialized view made, indexed and refreshed',
    [
      `create or replace view people_names as select id, name, m from people`,
      `drop trigger people_audit on people`,
      `drop function log_people()`,
      `create materialized view mood_counts as select m, count(*) as n from people group by m`,
      `create unique index mood_counts_m on mood_counts (m)`,
      `insert into people (id, name, m) values (201, 'later', 'sad')`,
      `refresh materialized view mood_counts`,
      `insert into audit (what) values ('by hand')`,
    ],
  ],
  [
    'constraints and indexes renamed (of the base and made after it)',
    [
      `alter table uniq rename constraint uniq_positive to uniq_id_positive`,
      `alter index people_name rename to people_by_name`,
      `alter table people rename constraint people_pkey to people_key`,
      `create table later (id int primary key, v text unique)`,
      `alter table later rename constraint later_v_key to later_v_unique`,
      `insert into later values (1, 'one')`,
    ],
  ],
  [
    'a foreign key made after the base, then the table it references rewritten',
    [
      `create table owners (id int primary key, name text)`,
      `create table pets (id int primary key, owner int references owners (id))`,
      `insert into owners values (1, 'x'), (2, 'y')`,
      `insert into pets values (1, 1), (2, 2)`,
      `alter table owners alter column name type varchar(20) using upper(name)`,
      `insert into pets values (3, 1)`,
    ],
  ],
  [
    'a domain and a composite type altered unused, then a domain in use altered',
    [
      `create domain percent as int check (value between 0 and 100)`,
      `alter domain percent add constraint not_fifty check (value <> 50)`,
      `create type pair as (a int, b text)`,
      `alter type pair add attribute c int`,
      `create table scores (id int primary key, p percent)`,
      `insert into scores values (1, 10)`,
      `alter domain percent set default 5`,
      `alter domain percent drop constraint not_fifty`,
      `alter domain percent add constraint not_ninety check (value <> 90)`,
      `insert into scores values (2, 50)`,
    ],
  ],
  [
    'an enum label renamed, then used under its new name',
    [`alter type mood rename value 'ok' to 'fine'`, `insert into people (id, name, m) values (202, 'renamed', 'fine')`],
  ],
  [
    'an extension created and used by a new table, another dropped',
    [
      `create extension citext`,
      `create table handles (h citext primary key)`,
      `insert into handles values ('Ann'), ('bob')`,
      `drop extension hstore`,
    ],
  ],
  [
    // As pg_dump writes functions: the body names a table made after it (bodies checked when called).
    'a function made before the table its body reads, then the table',
    [
      `set check_function_bodies = off`,
      `create function later_count() returns bigint language sql stable as $$ select count(*) from public.made_later $$`,
      `reset check_function_bodies`,
      `create table made_later (id int primary key)`,
      `insert into made_later values (1), (2)`,
    ],
  ],
  [
    // The replay once kept the old name and made the new one beside it.
    'types renamed and moved: an enum of the base (then given a label it uses), an enum and a domain made after it',
    [
      `alter type mood rename to feeling`,
      `alter type feeling add value 'calm'`,
      `insert into people (id, name, m) values (203, 'calm', 'calm')`,
      `create schema palette`,
      `alter type color set schema palette`,
      `alter domain posint rename to positive`,
      `alter type positive rename to strictly_positive`,
      `insert into paint values (3, 'red', 7)`,
    ],
  ],
  [
    // Each of these once made diff's patch fail or leave a wrong row (a second read of the type renames found them).
    "types swapping names, an array column's type renamed, a type made, renamed and given a label, a label renamed beside one added, a name with a quote, a name taken by a new type",
    [
      `alter type sa rename to tmp`,
      `alter type sb rename to sa`,
      `alter type tmp rename to sb`,
      `insert into sw values (2, '1', '2')`,
      `alter type tag rename to label`,
      `insert into arr values (2, '{y}')`,
      `create type st as enum ('a')`,
      `alter type st rename to st2`,
      `alter type st2 add value 'b'`,
      `create table uses_st (id int primary key, s st2)`,
      `insert into uses_st values (1, 'b')`,
      `alter type status rename value 'done' to 'completed'`,
      `alter type status add value 'archived' after 'completed'`,
      `insert into tasks values (2, 'archived')`,
      `alter type "q""t" rename to qt2`,
      `insert into qt values (2, 'a')`,
      `alter type feel rename to feel_old`,
      `create type feel as enum ('x')`,
      `alter type feel_old add value 'c'`,
      `insert into f values (1, 'c')`,
    ],
  ],
  [
    'a table of the base renamed (its constraints and indexes made at the end), a table made later moved',
    [`alter table uniq rename to uniqueness`, `insert into uniqueness values (10, 'z')`, `alter table handles set schema palette`],
  ],
  [
    // The replay once kept each under its old name and made the new one beside it.
    "a view, a materialized view, sequences (of the base, made later, a serial column's), a function, an aggregate and a trigger renamed or moved",
    [
      `alter view people_names rename to person_names`,
      `alter materialized view mood_counts set schema palette`,
      `alter sequence counter rename to counted`,
      `alter sequence tickets set schema palette`,
      `select nextval('palette.tickets')`,
      `alter table audit_id_seq rename to audit_seq`,
      `insert into audit (what) values ('after its sequence was renamed')`,
      `alter function later_count() rename to made_later_count`,
      `alter aggregate total(int) set schema palette`,
      `create function stamp() returns trigger language plpgsql as $$ begin new.what := new.what || '!'; return new; end $$`,
      `create trigger audit_stamp before insert on audit for each row execute function stamp()`,
      `alter trigger audit_stamp on audit rename to audit_mark`,
      `insert into audit (what) values ('stamped')`,
      // The base's: made at the end of a replay, where the statements that make them name them as the base did.
      `alter function touch() rename to touch_up`,
      `alter trigger noted_touch on noted rename to noted_touched`,
      `alter view noted_view rename to noted_rows`,
      `alter materialized view noted_count rename to noted_total`,
      `alter sequence noted_id_seq rename to noted_ids`,
      `insert into noted (v) values (null)`,
      `refresh materialized view noted_total`,
    ],
  ],
  [
    'a table of the base with a trigger and a serial column renamed, then written',
    [`alter table noted rename to notes`, `insert into notes (v) values (null)`],
  ],
  [
    // Its tables follow by their Relation messages; its types, sequences, views and routines once did not.
    'a schema renamed that holds a table, an enum, a materialized view, a sequence and an aggregate',
    [
      `alter schema palette rename to paints`,
      `insert into paint values (4, 'blue', 8)`,
      `insert into paints.handles values ('Cy')`,
      `select nextval('paints.tickets')`,
      `refresh materialized view paints.mood_counts`,
    ],
  ],
  [
    // A second read of the renames found each of these (a trigger back, or left out, silently).
    "base triggers of a renamed base table dropped and renamed, a base table's name taken by a renamed view, a rename run by a function beside an ALTER, a label added to an enum of the renamed schema",
    [
      `alter table gone_trig rename to gone_trig2`,
      `drop trigger gt_touch on gone_trig2`,
      `alter trigger gt_other on gone_trig2 rename to gt_other2`,
      `insert into gone_trig2 (id) values (1)`,
      `alter table events rename to events_raw`,
      `alter view events_v rename to events`,
      `insert into events_raw (id) values (1)`,
      `create function rename_later() returns void language plpgsql as $$ begin execute 'alter view noted_rows rename to noted_list'; end $$`,
      `alter table sw add column note text; select rename_later()`,
      `alter type paints.color add value 'green'`,
      `insert into paint values (5, 'green', 9)`,
    ],
  ],
  [
    // ENABLE/DISABLE TRIGGER is an ALTER TABLE: the replay once made every such trigger enabled.
    "triggers disabled and set to fire in replica mode, a disabled base trigger renamed, a partitioned table's trigger disabled but on one partition",
    [
      `alter table notes disable trigger noted_touched`,
      `insert into notes (v) values (null)`,
      `alter table audit disable trigger audit_mark`,
      `alter table events_raw enable replica trigger events_touch`,
      `alter table gone_trig2 disable trigger gt_other2`,
      `alter trigger gt_other2 on gone_trig2 rename to gt_other3`,
      `create function noop() returns trigger language plpgsql as $$ begin return new; end $$`,
      `create trigger parted_noop before insert on parted for each row execute function noop()`,
      `alter table parted disable trigger parted_noop`,
      `alter table parted_c enable trigger parted_noop`,
      `insert into parted values (30, 'b'), (30, 'c')`,
    ],
  ],
  [
    // The patch once enabled triggers before its rows (one fired for rows that held its work);
    // a trigger made again kept its former clones' states.
    "a disabled trigger set to fire always, then written through; a partitioned table's trigger dropped and made again",
    [
      `alter table audit enable always trigger audit_mark`,
      `insert into audit (what) values ('always')`,
      `drop trigger parted_noop on parted`,
      `create trigger parted_noop before insert on parted for each row execute function noop()`,
      `insert into parted values (31, 'b')`,
    ],
  ],
  [
    // Postgres quotes a keyword in the names it writes, pgtape did not: the patch lost such a
    // table's triggers, its partitions' order and its sequences' recorded values.
    'keyword-named: a table with a trigger and comments renamed and moved to a schema, a partitioned table altered with its partition, a sequence advanced',
    [
      `create trigger order_mark before insert on "order" for each row execute function pass()`,
      `comment on trigger order_mark on "order" is 'marks orders'`,
      `comment on column "order".qty is 'how many'`,
      `insert into "order" (qty) values (2)`,
      `alter table "order" rename to "select"`,
      `create schema "user"`,
      `alter table "select" set schema "user"`,
      `alter table "user"."select" disable trigger order_mark`,
      `alter trigger order_mark on "user"."select" rename to "order_mark2"`,
      `insert into "user"."select" (qty) values (3)`,
      `create table "group" (id int, k int, primary key (id, k)) partition by list (k)`,
      `create table group_1 partition of "group" for values in (1)`,
      `alter table "group" add column note text`,
      `insert into "group" values (1, 1, 'n')`,
      `select nextval('"limit"') from generate_series(1, 3)`,
    ],
  ],
  [
    // Made at the end, a trigger named its function as it was when the trigger was made.
    "a trigger made after the base whose function is renamed, then the function's schema",
    [
      `create schema fns`,
      `create function fns.stamp() returns trigger language plpgsql as $$ begin return new; end $$`,
      `create table stamped (id int primary key)`,
      `create trigger stamped_stamp before insert on stamped for each row when (new.id <> 0) execute function fns.stamp('EXECUTE FUNCTION x()')`,
      `insert into stamped values (1)`,
      `alter function fns.stamp() rename to stamp2`,
      `alter schema fns rename to fns2`,
      `insert into stamped values (2)`,
    ],
  ],
  [
    // As online schema-change tools swap tables: the base's statements made at the end (its index,
    // trigger, comments, the foreign key referencing it) once landed on the new table, or not at all.
    'a table of the base swapped for a new one of its name, the old kept and written',
    [
      `alter table acct rename to acct_old`,
      `alter index acct_v rename to acct_old_v`,
      // A table of its name made and dropped, a trigger of its trigger's name made and dropped on
      // the new one: what the base hangs on the old one (its trigger, its comments) was once left out.
      `create table acct (id int)`,
      `drop table acct`,
      `create table acct (id int primary key, v text, w int)`,
      `create index acct_v on acct (v)`,
      `create trigger acct_touch before insert on acct for each row execute function touch_up()`,
      `drop trigger acct_touch on acct`,
      `insert into acct select id, v, 1 from acct_old`,
      `insert into acct_old values (11, 'eleven')`,
      `insert into ledger values (2, 11)`,
      // A snapshot of ledger: its key made from it at the end, the base's comment on the key after it.
      `alter table ledger add column note text`,
      // Pointed at the new table under the same name: the base's key once won, on the old one.
      `alter table ledger2 drop constraint ledger2_acct_fk, add constraint ledger2_acct_fk foreign key (acct) references acct (id)`,
    ],
  ],
  [
    // A foreign key made after the base is made at the end: it once referenced the new table.
    'a table made after the base and referenced, swapped for a new one of its name; two tables of the base swapping names',
    [
      `create table breeders (id int primary key)`,
      `create table dogs (id int primary key, breeder int references breeders (id))`,
      `insert into breeders values (1), (2)`,
      `insert into dogs values (1, 1)`,
      `alter table breeders rename to breeders_old`,
      `create table breeders (id int primary key, extra text)`,
      `insert into breeders values (5, 'x')`,
      `insert into dogs values (2, 2)`,
      `alter table swap_a rename to swap_tmp`,
      `alter table swap_b rename to swap_a`,
      `alter table swap_tmp rename to swap_b`,
      `insert into swap_a values (2, 'b')`,
      `insert into swap_b values (2, 2)`,
    ],
  ],
  [
    // A base view's INSTEAD OF trigger and rule were once left out of every base.
    'a view of the base with a comment, an INSTEAD OF trigger and a rule swapped for a new one of its name, its trigger renamed and its rule dropped; a schema renamed that foreign keys of the base and made after it reference',
    [
      `alter view acct_list rename to acct_list_old`,
      `create view acct_list as select id, v from acct_old`,
      // What hangs on a renamed view of the base, renamed and dropped: once made again at the end.
      `alter trigger acct_list_audit on acct_list_old rename to acct_list_audit2`,
      `drop rule acct_list_update on acct_list_old`,
      // One of the name on the new view, dropped: the base's on the old one stays.
      `create trigger acct_list_insert instead of insert on acct_list for each row execute function acct_list_insert()`,
      `drop trigger acct_list_insert on acct_list`,
      `create table uses_ref2 (id int primary key, r int references ref.r (id))`,
      `insert into uses_ref2 values (1, 1)`,
      `alter view ref.rw rename to rw2`,
      `alter schema ref rename to ref2`,
      // Triggers on views of the base in the renamed schema dropped: once made again at the end.
      `drop trigger rv_insert on ref2.rv`,
      `drop trigger rw_insert on ref2.rw2`,
      `insert into uses_ref values (2, 1)`,
    ],
  ],
  [
    // An identity's sequence renamed or altered by ALTER SEQUENCE was once not captured at all.
    'an identity sequence renamed, then altered, then its column altered; a row inserted at each',
    [
      `alter sequence ident_id_seq rename to ident_ids`,
      `insert into ident (v) values ('b')`,
      `alter sequence ident_ids increment by 5 maxvalue 100000`,
      `insert into ident (v) values ('c')`,
      `alter table ident alter column id set increment by 7`,
      `insert into ident (v) values ('d')`,
      // The base's GENERATED ALWAYS, set at the end of a replay, once undid this.
      `alter table ident alter column id set generated by default`,
      `insert into ident (v) values ('e')`,
    ],
  ],
  [
    // The new table's first snapshot was once taken for the base table whose name it took: the
    // base's comment on the old one's key landed on the new one's, and the index and check of a
    // table whose schema was renamed away were left out.
    'a table of the base swapped for a new one with a key of the same name; a schema renamed and one of its name made with a table of the same name',
    [
      `alter table pet rename to pet_old`,
      `create table pet (id int primary key, owner int constraint pet_owner_fk references owner_t (id))`,
      `insert into pet values (2, 1)`,
      `alter schema zone rename to zone_old`,
      `create schema zone`,
      `create table zone.spot (id int primary key)`,
      `insert into zone.spot values (2)`,
      `insert into zone_old.spot values (2, 2)`,
    ],
  ],
  [
    // Each once replayed as something else with exit 0: the partition with its parent's expression,
    // the column with its old one (rows inserted after computed by it), the virtual column stored,
    // the view without its defaults.
    'generated columns: a partition computing one its own way (16), an expression changed (17), a virtual one (18); view column defaults set and dropped',
    [
      `create table tally (id int, season int not null, raw int, w int generated always as (raw * 2) stored, primary key (id, season)) partition by list (season)`,
      `create table tally_1 partition of tally for values in (1)`,
      since(
        16,
        `create table tally_2 partition of tally (w with options generated always as (raw * 3) stored) for values in (2)`,
        `create table tally_2 partition of tally for values in (2)`,
      ),
      `insert into tally (id, season, raw) values (1, 1, 10), (2, 2, 10)`,
      // An expression calling a function of schema public: captured DDL writes it qualified, the
      // replay's session path would not (an ALTER of the table once tried SET EXPRESSION on it).
      `create function twice(int) returns int immutable language sql as 'select $1 * 2'`,
      `create table calc (id int primary key, a int, b int generated always as (a + 1) stored, d int generated always as (twice(a)) stored)`,
      `insert into calc (id, a) values (1, 1)`,
      since(17, `alter table calc alter column b set expression as (a + 100)`),
      `insert into calc (id, a) values (2, 2)`,
      since(18, `alter table calc add column c int generated always as (a * 10) virtual`),
      `insert into calc (id, a) values (3, 3)`,
      `alter table calc add column note text`,
      `create view calc_v as select id, a from calc`,
      `alter view calc_v alter column a set default 5`,
      // CREATE OR REPLACE keeps a column's default.
      `create or replace view calc_v as select id, a, b from calc`,
      `alter view dv alter column v set default 'by view'`,
      `alter view dv alter column v drop default`,
      `alter table dv alter column id set default 0`,
    ],
  ],
  [
    // The base's comment on a column went with it: one added again under its name has none.
    'a commented base column dropped and added again under its name, another renamed',
    [
      `alter table memo drop column extra`,
      `alter table memo add column extra int`,
      `alter table memo rename column body to text`,
      `insert into memo values (2, 't', 2)`,
    ],
  ],
  [
    // Postgres drops an object's comment with it: the base's is not on the new one of its name.
    'commented base objects dropped and made again under their names (a view, function, type, index, trigger)',
    [
      `drop view memo_v`,
      `create view memo_v as select id from memo`,
      `drop function memo_f()`,
      `create function memo_f() returns int language sql as 'select 2'`,
      `drop type memo_kind`,
      `create type memo_kind as enum ('b')`,
      `drop index memo_id_neg`,
      `create index memo_id_neg on memo ((-id))`,
      `drop trigger memo_pass on memo`,
      `create trigger memo_pass before insert on memo for each row execute function pass()`,
      // Renamed, its comment follows; a view made and dropped under its old name takes nothing with it.
      `alter view memo_kept rename to memo_kept2`,
      `create view memo_kept as select 1 as one`,
      `drop view memo_kept`,
      `insert into memo values (3, 't', 3)`,
    ],
  ],
  [
    'typed tables made, linked and unlinked (CREATE TABLE … OF, ALTER TABLE … OF and NOT OF), their type then changed under them with no row after (ALTER TYPE … CASCADE); an index given a storage parameter (ALTER INDEX … SET); a column added to a table whose names need quoting, with a unique key, a check and an index (made from its snapshot, not again from the base); a partition of a table with a unique key given a check and a column setting (the parent’s key made from its snapshot reaches the partition)',
    [
      `create table typed_new of id_v (primary key (id), v with options default 'new')`,
      `insert into typed_new (id) values (1)`,
      `alter table typed_plain of id_v`,
      `alter table typed_base not of`,
      `insert into typed_base values (2, 'b')`,
      `alter type id_v alter attribute v type varchar(20) cascade`,
      `alter type id_v add attribute w int cascade`,
      `alter index ranged_low_id_v set (fillfactor = 70)`,
      `alter table "S x"."My T" add column w int`,
      `insert into "S x"."My T" values (2, 'b', 2)`,
      `alter table uparted_1 alter column v set statistics 50`,
      `alter table uparted_1 add constraint uparted_1_k2 check (k < 100)`,
      `insert into uparted values (2, 2, 'b')`,
    ],
  ],
  [
    "tables made USING access methods of the user's, moved to another (15+), a partitioned table given one (17+); one dropped with its method",
    [
      `create table later_kept (id int primary key, v text) using heap2`,
      `insert into later_kept values (1, 'x')`,
      since(15, `alter table kept set access method heap`),
      since(15, `alter table later_kept set access method heap`),
      since(15, `alter table later_kept set access method heap2`),
      `create access method heap3 type table handler heap_tableam_handler`,
      `create table third (id int primary key) using heap3`,
      `insert into third values (3)`,
      `create table fourth (id int primary key) using heap3`,
      `drop table fourth`,
      `drop access method heap3 cascade`,
      `update kept set v = 'b'`,
      since(17, `alter table parted set access method heap2`),
    ],
  ],
  [
    "partitions' own foreign keys keep their names when their parent's meets them (made on the parent, or attached), and a clone below one takes its name; a partitioned table's access method taken away (17+)",
    [
      `create table visits (who int, at int) partition by range (at)`,
      `create table visits_1 partition of visits (constraint visits_1_who foreign key (who) references people (id))
         for values from (0) to (10) partition by range (at)`,
      `create table visits_1_a partition of visits_1 for values from (0) to (5)`,
      `alter table visits add constraint visits_who foreign key (who) references people (id)`,
      `create table visits_2 (who int, at int, constraint visits_2_who foreign key (who) references people (id))`,
      `alter table visits attach partition visits_2 for values from (10) to (20)`,
      `insert into visits values (1, 1), (2, 12)`,
      // A base's partitioned table given a partition: its keys are made from its snapshot at the
      // end, after the base's partitions' clones were named.
      `create table bvisits_2 partition of bvisits for values from (10) to (20)`,
      // Its base partition renamed: the base's comment on that partition's key names it as it was.
      `alter table bvisits_1 rename to bvisits_one`,
      // Two keys attached under each other's names: one clone's name is the other's until that one moves on.
      `create table swapped (a int, b int) partition by list (a)`,
      `alter table swapped add constraint swapped_k1 foreign key (a) references people (id)`,
      `alter table swapped add constraint swapped_k2 foreign key (b) references people (id)`,
      `create table swapped_1 (a int, b int, constraint swapped_k2 foreign key (a) references people (id),
         constraint swapped_zz foreign key (b) references people (id))`,
      `alter table swapped attach partition swapped_1 for values in (1)`,
      // And a partitioned table's access method taken away (17+; given it in the step before).
      since(17, `alter table parted set access method default`),
    ],
  ],
];

/** A statement run where the source's major is `major` or later (else `otherwise`, or nothing). */
function since(major: number, sql: string, otherwise?: string): string {
  const run = (s: string) => `execute $q$${s}$q$;`;
  return `do $$ begin if current_setting('server_version_num')::int >= ${major * 10000} then ${run(sql)}${otherwise ? ` else ${run(otherwise)}` : ''} end if; end $$`;
}

interface Point {
  step: string;
  lsn: string;
  /** A mark written right after the step (with the sequences' values, where --capture-ddl records them). */
  mark: string;
  sequences: Record<string, bigint | null>;
  sums: Record<string, string>;
  schema: SchemaDescription;
}

async function lsn(client: pg.Client): Promise<string> {
  return (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!.lsn;
}

/** Archives a base, runs every step (recording the point after it), and archives what they wrote. */
async function recordHistory(source: SourceFixture, points: Point[], options: string[], rest: string[] = []): Promise<void> {
  const first = await pgtape(archiveArgs(source.db.url(), source.store.dir, '--create-publication', ...options, '--until', 'now'));
  expect(first.code, first.stderr).toBe(0);
  const client = await source.db.client();
  for (const [i, [step, statements]] of STEPS.entries()) {
    for (const sql of statements) await client.query(sql);
    const at = await lsn(client);
    const marked = await pgtape(['mark', '--source', source.db.url(), `step-${i}`]);
    expect(marked.code, marked.stderr).toBe(0);
    points.push({
      step,
      lsn: at,
      mark: `step-${i}`,
      sums: await checksums(client),
      schema: await describeSchema(client),
      sequences: await sequenceValues(client),
    });
  }
  const r = await pgtape(archiveArgs(source.db.url(), source.store.dir, ...rest, '--until', 'now'));
  expect(r.code, r.stderr).toBe(0);
}

/**
 * Replays every point from the store as it is now and compares it with the source then: into a
 * fresh database, or with `jobs` into a new PGDATA on that many parallel jobs. Returns the base
 * each replay started from, and how many replays were made again (a label or partition learned).
 */
async function replaysEveryPoint(source: SourceFixture, points: Point[], jobs?: string): Promise<{ used: string[]; again: number }> {
  const used: string[] = [];
  let again = 0;
  for (const p of points) {
    const args = ['--store', source.store.dir, '--to', `name:${p.mark}`];
    const inspect = async (c: pg.Client, pgdata?: string) => ({
      sums: await checksums(c),
      schema: await describeSchema(c),
      sequences: await sequenceValues(c),
      report: pgdata ? readFileSync(join(pgdata, 'replay.json'), 'utf8') : undefined,
    });
    const { r, seen } = jobs
      ? await replayIntoNewPgdata([...args, '--jobs', jobs], inspect)
      : await replayIntoFresh(source, args, (c) => inspect(c));
    expect(r.code, `${p.step}: ${r.stderr}`).toBe(0);
    used.push((JSON.parse(seen!.report ?? r.stdout) as { base: { key: string } }).base.key);
    if (/replaying again/.test(r.stderr)) again++;
    expect(seen!.sums, `rows after: ${p.step}`).toEqual(p.sums);
    expect(seen!.schema, `schema after: ${p.step}`).toEqual(p.schema);
    // Recorded with the mark: every sequence the base holds stands where the source's stood.
    for (const [name, value] of Object.entries(seen!.sequences)) {
      if (name === 'public.counter' || p.sequences[name] !== undefined)
        expect(value, `sequence ${name} after: ${p.step}`).toBe(p.sequences[name]);
    }
    const warnings = logLines(r.stderr).filter((l) => l.level === 40);
    if (warnings.length) throw new Error(`warnings after: ${p.step}: ${JSON.stringify(warnings)}`);
  }
  return { used, again };
}

/**
 * A test here replays the whole history at each of its points (one per step, 47 now): three to
 * five minutes on two cores beside another file, and more with each step added. The suite's
 * five minutes per test was reached on PG 15 (2026-12-06, 300 s with other work on the machine).
 */
const EVERY_POINT_MS = 900_000;

/** The schema-change oracle on one Postgres major (the suite's by default). */
export function schemaChangesOracle(options: { major?: number; compact?: boolean } = {}): void {
  const on = options.major ? { major: options.major } : {};
  const version = `Postgres ${options.major ?? TEST_PG_MAJOR}`;
  describe(`schema changes after the base replay at their point (--capture-ddl, ${version})`, { timeout: EVERY_POINT_MS }, () => {
    const source = useSource(BEFORE, on);
    const points: Point[] = [];

    it('records a history of schema changes of every kind', () =>
      recordHistory(
        source,
        points,
        ['--capture-ddl'],
        // Many segments (one every few transactions): compacted bases fall inside them, and expire has segments to remove.
        options.compact ? ['--segment-bytes', '8kB'] : [],
      ));

    it('replays every point to the source as it was: rows, schema and sequences', async () => {
      expect(points).toHaveLength(STEPS.length);
      await replaysEveryPoint(source, points);
    });

    it('replays points into a new PGDATA on parallel jobs (--jobs 3) as well, a replay made again among them', async () => {
      // Every fourth point and the last: a PGDATA costs an initdb each. The first point's enum
      // label is used in the transaction that adds it: the replay is made again from an empty database.
      const some = points.filter((_, i) => i % 4 === 0 || i === points.length - 1);
      const { again } = await replaysEveryPoint(source, some, '3');
      expect(again, 'replays made again').toBeGreaterThan(0);
    });

    it('log shows the schema changes', async () => {
      const r = await pgtape(['log', '--store', source.store.dir]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/ddl ALTER TYPE/);
      expect(r.stdout).toMatch(/ddl DROP SCHEMA dropped table doomed\.t, dropped schema doomed/);
      expect(r.stdout).toMatch(/ddl rows of public\.texts after its rewrite/);
      expect(r.stdout).toMatch(/ddl CREATE TYPE type public\.color/);
    });

    it('diff names the schema changes of its range, and says where its rows may be incomplete', async () => {
      const r = await pgtape(['diff', '--store', source.store.dir, '--from', `name:${points[0]!.mark}`, '--to', 'latest', '--json']);
      expect(r.code, r.stderr).toBe(0);
      type Line = {
        change?: string;
        what?: string;
        table?: string;
        key?: Record<string, string>;
        before?: unknown;
        after?: unknown;
        cells?: string[];
      };
      const rows = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Line);
      const ddl = rows.filter((l) => l.change === 'ddl');
      expect(ddl.map((l) => l.what)).toContain('CREATE TYPE type public.color');
      expect(ddl.map((l) => l.what)).toContain('CREATE VIEW view public.people_names');
      // The retyped column of texts rewrote its rows (step 3): their new values come from the captured images.
      expect(r.stderr).not.toMatch(/DDL rewrote the rows/);
      const texts = rows.filter((l) => l.table === 'public.texts');
      // Only the rewritten column: the others' text is as pgoutput sends it (char(n) keeps its padding).
      expect(texts.filter((l) => l.change === 'modified').map((l) => l.cells)).toEqual(Array(20).fill(['v']));
      expect(texts.find((l) => l.key?.id === '7')).toMatchObject({ before: { v: 'xxxxxxx' }, after: { v: '7' } });
      expect(texts.filter((l) => l.change === 'added').map((l) => l.after)).toEqual([{ id: '21', v: '21', pad: null }]);
      const sql = await pgtape([
        'diff',
        '--store',
        source.store.dir,
        '--from',
        `name:${points[0]!.mark}`,
        '--to',
        'latest',
        '--format',
        'sql',
      ]);
      expect(sql.code, sql.stderr).toBe(0);
      expect(sql.stdout).toMatch(/^-- schema change at .*: CREATE TYPE type public\.color$/m);
      // Every change of the workload is followed: none left out of the patch.
      expect(sql.stdout).not.toMatch(/not in this patch/);
      expect(sql.stderr).not.toMatch(/not written in the patch/);
    });

    if (!options.major)
      it('diff --format sql turns a replay at one point into the next, schema changes included', async () => {
        const pairs: [number, number][] = points.slice(1).map((_, i) => [i, i + 1]);
        pairs.push([0, points.length - 1]);
        for (const [from, to] of pairs) {
          const [a, b] = [points[from]!, points[to]!];
          const what = `patch from "${a.step}" to "${b.step}"`;
          const patch = await patchBetween(source.store.dir, a.mark, b.mark);
          expect(patch.code, `${what}: ${patch.stderr}`).toBe(0);
          expect(patch.stdout, what).not.toMatch(/not in this patch/);
          // A rewritten table's new rows travel as captured images, which diff does not read: said, and left out here.
          const rewritten = [...patch.stderr.matchAll(/DDL rewrote the rows of (\S+)/g)].map((m) => m[1]!);
          const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `name:${a.mark}`], async (c) => {
            await applyPatch(c, patch.stdout, what);
            return rowsAndSchema(c);
          });
          expect(r.code, `${what}: ${r.stderr}`).toBe(0);
          expect(seen!.schema, `schema after the ${what}`).toEqual(b.schema);
          const unrewritten = (sums: Record<string, string>) =>
            Object.fromEntries(Object.entries(sums).filter(([t]) => !rewritten.some((w) => t.startsWith(`${w}(`))));
          expect(unrewritten(seen!.sums), `rows after the ${what}`).toEqual(unrewritten(b.sums));
        }
      });

    if (options.compact) {
      it('compacted bases (pgtape compact) replay every later point the same, and verify accepts them', async () => {
        const bases: string[] = [];
        for (const mark of [points[3]!.mark, points[9]!.mark, 'latest']) {
          const r = await pgtape(['compact', '--store', source.store.dir, '--to', mark === 'latest' ? mark : `name:${mark}`]);
          expect(r.code, r.stderr).toBe(0);
          bases.push(r.stdout.trim());
        }
        expect(new Set(bases).size, 'three new bases').toBe(3);
        const again = await pgtape(['compact', '--store', source.store.dir]);
        expect(again.code, again.stderr).toBe(0);
        expect(again.stdout.trim(), 'nothing to compact: the newest base').toBe(bases[2]);
        expect(again.stderr).toMatch(/nothing to compact/);
        const { used } = await replaysEveryPoint(source, points);
        // A point after a compacted base starts from it: steps 0–3 from the first base, 4–9 and
        // 10–16 from the two compacted ones (each made at a mark, after that step).
        expect(new Set(used).size, 'replays start from the compacted bases').toBe(3);
        expect([used[3], used[9], used[16]]).toEqual([used[0], used[4], used[10]]);
        const verified = await pgtape(['verify', '--store', source.store.dir]);
        expect(verified.code, verified.stdout + verified.stderr).toBe(0);
      });

      it('expire keeps every point from the oldest base kept, and only those go that nothing kept needs', async () => {
        const files = () => readdirSync(source.store.dir, { recursive: true }).map(String).sort();
        const before = files();
        const dry = await pgtape(['expire', '--store', source.store.dir, '--keep-bases', '2', '--json']);
        expect(dry.code, dry.stderr).toBe(0);
        expect(files(), 'a dry run removes nothing').toEqual(before);
        const said = JSON.parse(dry.stdout) as { dryRun: boolean; bases: number; segments: number };
        expect(said).toMatchObject({ dryRun: true, bases: 2 });
        expect(said.segments).toBeGreaterThan(0);
        const done = await pgtape(['expire', '--store', source.store.dir, '--keep-bases', '2', '--confirm']);
        expect(done.code, done.stderr).toBe(0);
        expect(done.stdout).toMatch(/^removed 2 base\(s\)/);
        expect(files().length).toBeLessThan(before.length);
        // Kept: every point from the base compacted after step 9 on, exactly as before.
        await replaysEveryPoint(source, points.slice(10));
        const gone = await pgtape([
          'replay',
          '--store',
          source.store.dir,
          '--to',
          `name:${points[3]!.mark}`,
          '--csv',
          join(source.store.dir, '..', 'x'),
        ]);
        expect(gone.code).toBe(2);
        expect(gone.stderr).toMatch(/step-3/);
        const verified = await pgtape(['verify', '--store', source.store.dir]);
        expect(verified.code, verified.stdout + verified.stderr).toBe(0);
        const again = await pgtape(['expire', '--store', source.store.dir, '--keep-bases', '2', '--confirm']);
        expect(again.stdout, 'nothing more to remove').toMatch(/^removed 0 base\(s\), 0 segment\(s\), 0 object/);
      });
    }
  });

  describe(`the same schema changes without --capture-ddl (${version})`, { timeout: EVERY_POINT_MS }, () => {
    const source = useSource(BEFORE, on);
    const points: Point[] = [];

    it('records the same history', () => recordHistory(source, points, []));

    it('replays every point without failing, and names every place it may differ (log and replay.json)', async () => {
      expect(points).toHaveLength(STEPS.length);
      const differing: string[] = [];
      for (const p of points) {
        const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `lsn:${p.lsn}`], rowsAndSchema);
        expect(r.code, `${p.step}: ${r.stderr}`).toBe(0);
        const report = JSON.parse(r.stdout) as { warnings: { message: string }[] };
        const logged = logLines(r.stderr).filter((l) => l.level === 40);
        // A replay made again (an enum label or a detached partition learned) logs its first
        // attempt's warnings too: the sets of messages agree.
        expect([...new Set(report.warnings.map((w) => w.message))].sort(), `${p.step}: replay.json says what the log says`).toEqual(
          [...new Set(logged.map((l) => String(l.msg)))].sort(),
        );
        const same = JSON.stringify(seen!.sums) === JSON.stringify(p.sums) && JSON.stringify(seen!.schema) === JSON.stringify(p.schema);
        // No silent difference: a replay that differs from the source says so.
        if (!same) {
          differing.push(p.step);
          expect(report.warnings.length, `${p.step}: differs from the source without a warning`).toBeGreaterThan(0);
        }
      }
      // What pgoutput carries is followed exactly: an enum label seen in a value.
      expect(differing).not.toContain(STEPS[0]![0]);
    });
  });
}
