import { doBlock, quoteIdent, quoteLiteral, quoteQualified } from '../../core/sql.js';
import type { RenamedObject, TableSnapshot, TypeSnapshot } from '../../source/ddl-capture.js';
import { indexNameOf, indexOptionsFollow, isForeignKey } from '../../source/ddl-statements.js';
import { COLUMN_COLLATION, collateClause } from '../../source/deparse.js';

// The checks diff's patch makes in the database it is applied to (docs/ARCHITECTURE.md, "Schema
// changes"): diff never sees that database, so each statement that depends on what is there is a
// DO block that looks in its catalog first — what the replay asks its target before it acts.

/**
 * The type a (quoted, qualified) name means in SQL text given as a literal, unless that is an
 * array type Postgres named itself (`_point` for `point[]`): CREATE TYPE and ALTER TYPE … RENAME
 * take such a name and move the array type aside (to `__point`), so a type made under it is not
 * there yet. to_regtype alone would find the array and take the type as made (regression script
 * arrays.sql: `create type _comptype as enum …` beside `comptype`).
 */
export function typeNamed(nameLiteral: string): string {
  return `(select t.oid::regtype from pg_catalog.pg_type t where t.oid = pg_catalog.to_regtype(${nameLiteral}) and not exists (select from pg_catalog.pg_type e where e.typarray = t.oid))`;
}

/**
 * The labels an enum had after a command, added in place (renamed where a label changed its name)
 * before the patch's transaction, to the type called `name` (quoted) then: each list the range
 * gave it in turn, so that a label renamed next to one added is told apart.
 */
export function enumLabels(labels: string[], name: string): string {
  const want = `array[${labels.map(quoteLiteral).join(', ')}]::text[]`;
  return doBlock(`declare want text[] := ${want}; have text[]; i int; j int; n int; gone text[]; added text[];
  typ regtype := ${typeNamed(quoteLiteral(name))};
begin
  if typ is null then return; end if;
  select array_agg(enumlabel::text order by enumsortorder) into have from pg_enum where enumtypid = typ;
  gone := array(select unnest(have) except select unnest(want));
  added := array(select unnest(want) except select unnest(have));
  -- A label renamed (RENAME VALUE) keeps its place: the rows holding it hold the new name too.
  -- Its place: the same position when only renames changed the list, else between the same two
  -- labels (or at the same end) when labels were added in the range too.
  n := cardinality(have);
  if cardinality(gone) > 0 and cardinality(gone) = cardinality(added) and n = cardinality(want) then
    for i in 1 .. n loop
      if have[i] = any(gone) and want[i] = any(added) then
        execute format('alter type %s rename value %L to %L', typ, have[i], want[i]);
      end if;
    end loop;
  elsif cardinality(gone) > 0 then
    for i in 1 .. n loop
      continue when not have[i] = any(gone);
      for j in 1 .. cardinality(want) loop
        if want[j] = any(added)
           and (case when i = 1 then j = 1 else j > 1 and want[j - 1] = have[i - 1] and not have[i - 1] = any(gone) end)
           and (case when i = n then j = cardinality(want) else j < cardinality(want) and want[j + 1] = have[i + 1] and not have[i + 1] = any(gone) end) then
          execute format('alter type %s rename value %L to %L', typ, have[i], want[j]);
          exit;
        end if;
      end loop;
    end loop;
  end if;
  for i in 1 .. cardinality(want) loop
    if i = 1 and not exists (select 1 from pg_enum where enumtypid = typ) then
      execute format('alter type %s add value %L', typ, want[i]);
    elsif i = 1 then execute format('alter type %s add value if not exists %L before %L', typ, want[i], (select enumlabel from pg_enum where enumtypid = typ order by enumsortorder limit 1));
    else execute format('alter type %s add value if not exists %L after %L', typ, want[i], want[i - 1]);
    end if;
  end loop;
end`);
}

/**
 * A type the source renamed or moved to another schema, renamed alike where the database has it
 * under its old name and nothing under the new one (what the replay does: replay/captured-ddl.ts).
 */
export function renameType(t: TypeSnapshot, was: { schema: string; name: string }): string {
  const alter = t.kind === 'd' ? 'alter domain' : 'alter type';
  const [from, to] = [quoteQualified(was.schema, was.name), quoteQualified(t.schema, t.name)];
  const steps: string[] = [];
  if (was.schema !== t.schema)
    steps.push(`create schema if not exists ${quoteIdent(t.schema)}`, `${alter} ${from} set schema ${quoteIdent(t.schema)}`);
  if (was.name !== t.name) steps.push(`${alter} ${quoteQualified(t.schema, was.name)} rename to ${quoteIdent(t.name)}`);
  return doBlock(
    `if ${typeNamed(quoteLiteral(from))} is not null and ${typeNamed(quoteLiteral(to))} is null then ${steps.map((x) => `execute ${quoteLiteral(x)};`).join(' ')} end if;`,
  );
}

/**
 * A sequence, view, function, trigger … the source renamed or moved, renamed alike where the
 * database has it under its former name and nothing under the new one (what the replay does:
 * replay/captured-objects.ts).
 */
export function renameObject(r: RenamedObject): string {
  return doBlock(
    `execute ${quoteLiteral(r.rename)}; exception when undefined_table or undefined_function or undefined_object or invalid_schema_name or duplicate_table or duplicate_function or duplicate_object or duplicate_schema then null;`,
  );
}

/** ALTER DOMAIN statements (plpgsql) that bring a domain in use to the captured facts. */
export function alterDomain(name: string, t: TypeSnapshot): string {
  const d = t.domain!;
  const domain = `alter domain ${name}`;
  const keep = `array[${d.checks.map((k) => quoteLiteral(k.name)).join(', ')}]::text[]`;
  return [
    `execute ${quoteLiteral(d.default == null ? `${domain} drop default` : `${domain} set default ${d.default}`)};`,
    `execute ${quoteLiteral(`${domain} ${d.notNull ? 'set' : 'drop'} not null`)};`,
    `declare k text; begin for k in select conname from pg_constraint where contypid = to_regtype(${quoteLiteral(name)}) and contype = 'c' and conname <> all(${d.checks.length ? keep : "'{}'::text[]"}) loop execute format('alter domain %s drop constraint %I', ${quoteLiteral(name)}, k); end loop; end;`,
    ...d.checks.map(
      (k) =>
        `if not exists (select 1 from pg_constraint where contypid = to_regtype(${quoteLiteral(name)}) and conname = ${quoteLiteral(k.name)}) then execute ${quoteLiteral(`${domain} add constraint ${quoteIdent(k.name)} ${k.def}`)}; end if;`,
    ),
  ].join('\n      ');
}

/** Attached to its parent where it is not (NOT NULL first where the parent's key needs it: the rows at --to have it). */
export function partitionOf(target: string, parent: string, bound: string, notNull: string[]): string {
  const setNotNull = notNull
    .map((c) => `execute ${quoteLiteral(`alter table ${target} alter column ${quoteIdent(c)} set not null`)};`)
    .join(' ');
  return doBlock(`declare have text := (select format('%I.%I', pn.nspname, pc.relname) from pg_inherits h join pg_class pc on pc.oid = h.inhparent
    join pg_namespace pn on pn.oid = pc.relnamespace where h.inhrelid = ${quoteLiteral(target)}::regclass and pc.relkind = 'p');
begin
  if have is distinct from ${quoteLiteral(parent)} then
    if have is not null then execute format('alter table %s detach partition %s', have, ${quoteLiteral(target)}); end if;
    ${setNotNull}
    execute ${quoteLiteral(`alter table ${parent} attach partition ${target} ${bound}`)};
  end if;
end`);
}

/** A table the source no longer has as a partition, detached from its parent. */
export function detachFrom(target: string): string {
  return doBlock(`declare have text := (select format('%I.%I', pn.nspname, pc.relname) from pg_inherits h join pg_class pc on pc.oid = h.inhparent
    join pg_namespace pn on pn.oid = pc.relnamespace where h.inhrelid = ${quoteLiteral(target)}::regclass and pc.relkind = 'p');
begin
  if have is not null then execute format('alter table %s detach partition %s', have, ${quoteLiteral(target)}); end if;
end`);
}

export function detachOthers(target: string, partitions: string[]): string {
  const keep = `array[${partitions.map(quoteLiteral).join(', ')}]::text[]`;
  return doBlock(`declare p text;
begin
  for p in select format('%I.%I', pn.nspname, pc.relname) from pg_inherits h join pg_class pc on pc.oid = h.inhrelid
             join pg_namespace pn on pn.oid = pc.relnamespace where h.inhparent = ${quoteLiteral(target)}::regclass and pc.relispartition
             and format('%I.%I', pn.nspname, pc.relname) <> all(${partitions.length ? keep : "'{}'::text[]"}) loop
    execute format('alter table %s detach partition %s', ${quoteLiteral(target)}, p);
  end loop;
end`);
}

/** Before the rows: constraints and indexes the shape no longer has go (renamed where the shape has one of the same definition under another name). */
export function unconstrain(s: TableSnapshot): string[] {
  const lit = quoteLiteral(quoteQualified(s.schema, s.name));
  const constraints = s.constraints ?? [];
  const names = `array[${constraints.map((k) => quoteLiteral(k.name)).join(', ')}]::text[]`;
  const defs = `array[${constraints.map((k) => quoteLiteral(k.def)).join(', ')}]::text[]`;
  const indexes = (s.indexes ?? []).map((i) => indexNameOf(i) ?? '').filter(Boolean);
  const unnamed = (expr: string) => `regexp_replace(${expr}, '^CREATE (UNIQUE )?INDEX \\S+ ON ', 'CREATE \\1INDEX ON ')`;
  return [
    doBlock(`declare k record; i int;
begin
  for k in select conname, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = ${lit}::regclass and conislocal
             and contype in ('c', 'u', 'p', 'x', 'f') and conname <> all(${constraints.length ? names : "'{}'::text[]"}) loop
    i := array_position(${constraints.length ? defs : "'{}'::text[]"}, k.def);
    if i is not null and not exists (select 1 from pg_constraint where conrelid = ${lit}::regclass and conname = (${names})[i]) then
      execute format('alter table %s rename constraint %I to %I', ${lit}, k.conname, (${names})[i]);
    else
      execute format('alter table %s drop constraint if exists %I cascade', ${lit}, k.conname);
    end if;
  end loop;
end`),
    doBlock(`declare k record; want text[] := array[${(s.indexes ?? []).map(quoteLiteral).join(', ')}]::text[]; names text[] := array[${indexes.map(quoteLiteral).join(', ')}]::text[]; i int;
begin
  for k in select x.indexrelid::regclass::text as name, c.relname, ${unnamed('pg_get_indexdef(x.indexrelid)')} as def
             from pg_index x join pg_class c on c.oid = x.indexrelid
            where x.indrelid = ${lit}::regclass and not exists (select 1 from pg_constraint con where con.conindid = x.indexrelid and con.conrelid = x.indrelid)
              and not exists (select 1 from pg_inherits h where h.inhrelid = x.indexrelid)
              and quote_ident(c.relname) <> all(names) loop
    i := array_position(array(select ${unnamed('w')} from unnest(want) w), k.def);
    if i is not null and to_regclass(format('%I.%s', ${quoteLiteral(s.schema)}, names[i])) is null then
      execute format('alter index %s rename to %s', k.name, names[i]);
    else
      execute format('drop index if exists %s cascade', k.name);
    end if;
  end loop;
end`),
  ];
}

/** After the rows: NOT NULL, indexes and constraints (foreign keys apart) the shape has and the table lacks. */
export function constrain(s: TableSnapshot): string[] {
  const target = quoteQualified(s.schema, s.name);
  const lit = quoteLiteral(target);
  const out: string[] = [];
  for (const c of s.columns)
    if (c.notNull && !c.generated)
      out.push(
        doBlock(
          `if exists (select 1 from pg_attribute where attrelid = ${lit}::regclass and attname = ${quoteLiteral(c.name)} and not attnotnull) then execute ${quoteLiteral(`alter table ${target} alter column ${quoteIdent(c.name)} set not null`)}; end if;`,
        ),
      );
  for (const k of s.constraints ?? []) if (!isForeignKey(k.def)) out.push(addMissingConstraint(target, k.name, k.def));
  for (const index of s.indexes ?? []) {
    out.push(`${index.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX IF NOT EXISTS ')};`);
    const follow = indexOptionsFollow(s.schema, index);
    if (follow) out.push(follow);
  }
  return out;
}

/**
 * A constraint made where the table lacks it; one there NOT VALID that the source validated since
 * (ALTER TABLE … VALIDATE CONSTRAINT, as online schema-change tools do after a swap) validated.
 */
export function addMissingConstraint(target: string, name: string, def: string): string {
  const where = `conrelid = ${quoteLiteral(target)}::regclass and conname = ${quoteLiteral(name)}`;
  // A key NOT ENFORCED (Postgres 18) is never validated.
  const validate = / NOT (?:VALID|ENFORCED)$/.test(def)
    ? ''
    : ` elsif exists (select 1 from pg_constraint where ${where} and not convalidated) then execute ${quoteLiteral(`alter table ${target} validate constraint ${quoteIdent(name)}`)};`;
  return doBlock(
    `if not exists (select 1 from pg_constraint where ${where}) then execute ${quoteLiteral(`alter table ${target} add constraint ${quoteIdent(name)} ${def}`)};${validate} end if;`,
  );
}

/** A column added where the table lacks it (checked first: Postgres refuses ADD COLUMN on a partition even with IF NOT EXISTS). */
export function addColumn(target: string, column: string, typeAndClauses: string): string {
  return doBlock(
    `if not exists (select 1 from pg_attribute where attrelid = ${quoteLiteral(target)}::regclass and attname = ${quoteLiteral(column)} and not attisdropped) then execute ${quoteLiteral(`alter table ${target} add column ${quoteIdent(column)} ${typeAndClauses}`)}; end if;`,
  );
}

/**
 * A generated column whose expression differs from the captured one, given it (ALTER COLUMN …
 * SET EXPRESSION, Postgres 17; the rows' new values come as the rewrite's images, which the patch writes).
 */
export function generationExpression(target: string, column: string, expression: string): string {
  // Read as captured DDL wrote it: with only pg_catalog on the path, every other schema's names qualified.
  return doBlock(
    `declare path text := current_setting('search_path'); have text;
begin
  perform set_config('search_path', 'pg_catalog', true);
  select pg_get_expr(d.adbin, d.adrelid) into have from pg_attribute a join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
   where a.attrelid = ${quoteLiteral(target)}::regclass and a.attname = ${quoteLiteral(column)} and a.attgenerated <> '';
  perform set_config('search_path', path, true);
  if have <> ${quoteLiteral(expression)} then
    execute ${quoteLiteral(`alter table ${target} alter column ${quoteIdent(column)} set expression as (${expression})`)};
  end if;
end`,
  );
}

/**
 * A column the table itself defines, retyped where its type differs, its values cast through their
 * text; `orNull`: where they do not cast (the source used USING), NULL (the patch's rows then bring them).
 * A typed table's columns are its type's: they change with it (ALTER TYPE … CASCADE), not here.
 */
export function retype(target: string, column: string, type: string, typmod: number, orNull = false): string {
  const alter = (using: string) => `alter table ${target} alter column ${quoteIdent(column)} type ${type} using ${using}`;
  const cast = `execute ${quoteLiteral(alter(`${quoteIdent(column)}::text::${type}`))};`;
  return doBlock(`declare have text; want text := format_type(to_regtype(${quoteLiteral(type)}), ${typmod});
begin
  select format_type(atttypid, atttypmod) into have from pg_attribute
   where attrelid = ${quoteLiteral(target)}::regclass and attname = ${quoteLiteral(column)} and attinhcount = 0 and not attisdropped;
  if have is not null and have is distinct from want and (select reloftype from pg_class where oid = ${quoteLiteral(target)}::regclass) = 0 then
    ${orNull ? `begin ${cast} exception when others then execute ${quoteLiteral(alter('null'))}; end;` : cast}
  end if;
end`);
}

/**
 * Before the patch's rows: every user trigger that would fire for them (on the tables they are
 * written to, named as at --to, and on those tables' partitions) disabled, its state kept in a
 * temporary table, for `triggersBack` to set again after them. The rows hold what those triggers
 * did at the source already: one firing again would write it twice (an audit trigger's rows, say).
 */
export function quietTriggers(tables: string[]): string {
  const names = `array[${tables.map(quoteLiteral).join(', ')}]::text[]`;
  return doBlock(`declare r record;
begin
  create temp table if not exists pgtape_quiet_triggers (rel regclass, name name, enabled "char", level int) on commit drop;
  -- The tables and their partitions (pg_partition_tree lists nothing for a table that is neither);
  -- a partition's clone of its parent's trigger too, which Postgres 14 marks internal.
  insert into pgtape_quiet_triggers
    with recursive tree(rel, level) as (
      select to_regclass(n)::oid, 0 from unnest(${names}) n where to_regclass(n) is not null
      union all select i.inhrelid, tree.level + 1 from pg_inherits i join tree on i.inhparent = tree.rel)
    select t.tgrelid::regclass, t.tgname, t.tgenabled, min(tree.level)
      from tree join pg_trigger t on t.tgrelid = tree.rel
     where (not t.tgisinternal or t.tgparentid <> 0) and t.tgenabled <> 'D'
     group by t.tgrelid, t.tgname, t.tgenabled;
  for r in select * from pgtape_quiet_triggers loop
    execute format('alter table only %s disable trigger %I', r.rel, r.name);
  end loop;
end`);
}

/** After the patch's rows: each trigger `quietTriggers` disabled set to fire as it did, parents before their partitions. */
export function triggersBack(): string {
  return doBlock(`declare r record;
begin
  if to_regclass('pg_temp.pgtape_quiet_triggers') is null then return; end if;
  for r in select * from pg_temp.pgtape_quiet_triggers order by level loop
    execute format('alter table only %s %s trigger %I', r.rel,
      case r.enabled when 'A' then 'enable always' when 'R' then 'enable replica' else 'enable' end, r.name);
  end loop;
  drop table pg_temp.pgtape_quiet_triggers;
end`);
}

/** A column whose collation differs from the captured one (ALTER COLUMN … TYPE … COLLATE), given it. */
export function collationChange(target: string, column: string, type: string, collation: string): string {
  const now = `(select ${COLUMN_COLLATION} from pg_catalog.pg_attribute a where a.attrelid = ${quoteLiteral(target)}::regclass and a.attname = ${quoteLiteral(column)})`;
  return doBlock(
    `if ${now} is distinct from ${quoteLiteral(collation)} then execute ${quoteLiteral(`alter table ${target} alter column ${quoteIdent(column)} type ${type}${collateClause(collation)}`)}; end if;`,
  );
}
