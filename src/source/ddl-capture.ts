// Over 400 lines for a reason: most of it is the one SQL script the source runs (event triggers
// and the catalog readers they call), kept whole so it reads, and is installed, as one; the
// shapes it records are declared beside it for the replay to read.
import type pg from 'pg';
import type { Logger } from '../core/log.js';
import { quoteLiteral } from '../core/sql.js';
import { IDENTITY_SEQUENCE_FROM, onTemporaryType, STORAGE_OPTIONS } from './ddl-statements.js';
import { DDL_PREFIX } from './logical-messages.js';
import {
  ACCESS_METHOD_CREATE,
  CAST_CREATE,
  COLLATION_CREATE,
  COLUMN_COLLATION,
  COLUMN_SETTINGS,
  CONVERSION_CREATE,
  OPERATOR_CLASS_CREATE,
  OPERATOR_CREATE,
  OPERATOR_FAMILY_STATEMENTS,
  TEXT_SEARCH_CONFIGURATION_STATEMENTS,
  TEXT_SEARCH_DICTIONARY_CREATE,
  type ColumnSettings,
} from './deparse.js';

/** One table as the catalog has it right after a DDL command (what `--capture-ddl` records). */
export interface TableSnapshot {
  oid: number;
  schema: string;
  name: string;
  replicaIdentity: string;
  /** Storage options as `name=value`, a TOAST table's as `toast.name=value` (absent from archives made before they were captured). */
  options?: string[];
  columns: {
    attnum: number;
    name: string;
    type: string;
    typeOid: number;
    typmod: number;
    notNull: boolean;
    default: string | null;
    /** `a` (always) or `d` (by default) for an identity column. */
    identity?: string;
    /** An identity column's sequence options (absent from archives made before they were captured). */
    identitySequence?: IdentitySequence | null;
    /** The expression of a generated column. */
    generated?: string | null;
    /** A generated column computed when read (Postgres 18's VIRTUAL), not stored. */
    virtual?: boolean;
    /**
     * Its collation where its type has one: '' for the type's own, else the qualified name
     * (absent from archives made before collations were captured: those leave it as it is).
     */
    collation?: string;
    /** Its statistics target, compression and options where not the default (absent from archives made before they were captured). */
    settings?: ColumnSettings;
    /**
     * What rows that existed before the column was added hold (Postgres's "fast default",
     * attmissingval, as array text `{value}`): exactly the value to fill them with on replay.
     */
    missing?: string | null;
  }[];
  primaryKey: string[];
  /** CREATE INDEX statements of the indexes that back no constraint. */
  indexes: string[];
  /**
   * Of its indexes, those that are partitions of a partitioned table's index: by name (quoted, as
   * in `indexes`), the parent index (qualified, quoted). Absent in archives from before they were captured.
   */
  indexParents?: Record<string, string>;
  /** Constraints (check, unique, exclusion, primary and foreign keys; foreign keys last), by name, as pg_get_constraintdef writes them. */
  constraints?: { name: string; def: string }[];
  /**
   * A partition's foreign keys that are clones of its parent's (not in `constraints`): by name,
   * the parent's key's name (inheritedKeyNames). Absent in archives from before they were captured.
   */
  inheritedKeys?: Record<string, string>;
  /** `r` a table, `p` a partitioned table (with its key, as pg_get_partkeydef writes it, and its partitions' qualified names). */
  kind?: string;
  partitionKey?: string;
  partitions?: string[];
  /** A partition's parent (qualified, quoted) and bound (`FOR VALUES …`). */
  parent?: string;
  bound?: string;
  /** The parents of a table made with INHERITS (qualified, quoted), in order; not a partition's. */
  inherits?: string[];
  /** The composite type of a typed table (CREATE TABLE … OF), '' for none; absent in archives from before it was captured. */
  ofType?: string;
  /**
   * Its access method by name (`heap` the default's); '' for a partitioned table without one (its
   * partitions take default_table_access_method); absent in archives from before it was captured
   * (and, before 2026-12-07, for a partitioned table without one).
   */
  accessMethod?: string;
  /**
   * Its triggers' states by name (pg_trigger.tgenabled: O enabled, D disabled, R replica, A
   * always), clones on a partition included; absent in archives from before they were captured.
   */
  triggers?: Record<string, string>;
}

/** A session's temporary schema (`pg_temp_3`, `pg_toast_temp_3`): nothing in it is part of the database. */
const TEMPORARY_SCHEMA = /^pg_(toast_)?temp_\d+$/;
/** An object's identity naming something in such a schema: `public.f(pg_temp_3.t)` (quoted names aside). */
const onTemporary = (identity: string) => /(?:^|[^\w$])pg_(?:toast_)?temp_\d+\./.test(identity.replace(/"(?:[^"]|"")*"/g, '""'));

/**
 * A captured DDL message as replay, diff and log read it. Archives written before temporary
 * tables were kept out may hold the shape of one (a temporary child of a published parent):
 * left out here, as the source leaves them out of the database. So is an object of a schema of
 * the database that takes or returns a temporary table's row type (a function made in `public`
 * over one): Postgres drops it with the session ("effectively temporary"), and no replay could
 * make it, having no such session.
 */
export function parseCapturedDdl(content: Buffer): CapturedDdl {
  const captured = JSON.parse(content.toString('utf8')) as CapturedDdl;
  if (captured.tables?.some((t) => TEMPORARY_SCHEMA.test(t.schema)))
    captured.tables = captured.tables.filter((t) => !TEMPORARY_SCHEMA.test(t.schema));
  const lasting = <T extends { identity: string }>(list: T[] | undefined) => list?.filter((o) => !onTemporary(o.identity));
  if (captured.objects?.some((o) => onTemporary(o.identity))) captured.objects = lasting(captured.objects);
  if (captured.unfollowed?.some((o) => onTemporary(o.identity))) captured.unfollowed = lasting(captured.unfollowed);
  if (captured.droppedObjects?.some((o) => onTemporary(o.identity))) captured.droppedObjects = lasting(captured.droppedObjects);
  if (captured.comments?.some((o) => onTemporary(o.identity))) captured.comments = lasting(captured.comments);
  return captured;
}

/** An identity column's sequence, as pg_sequence holds it (numbers as text: bigints). */
export interface IdentitySequence {
  start: string;
  increment: string;
  min: string;
  max: string;
  cache: string;
  cycle: boolean;
}

/** A type created or altered after the base: the statements that make it, and an enum's labels in order. */
export interface TypeSnapshot {
  oid: number;
  /** Its array type's oid (archives since renames are followed). */
  arrayOid?: number;
  schema: string;
  name: string;
  /** e enum, d domain, c composite, r range. */
  kind: string;
  create: string;
  labels?: string[];
  /** A domain's default, NOT NULL and named checks (DOMAIN_FACTS_SQL): what ALTER DOMAIN changes. */
  domain?: DomainFacts;
  /** Its name before this command, when the command renamed it or moved it to another schema. */
  was?: { schema: string; name: string };
}

export interface DomainFacts {
  default: string | null;
  notNull: boolean;
  checks: { name: string; def: string }[];
}

/** A domain's facts (alias `t`, a row of pg_type), as jsonb: recorded by captured DDL and compared by replay. */
export const DOMAIN_FACTS_SQL = `jsonb_build_object('default', t.typdefault, 'notNull', t.typnotnull,
  'checks', coalesce((select jsonb_agg(jsonb_build_object('name', k.conname, 'def', pg_get_constraintdef(k.oid)) order by k.conname)
    from pg_constraint k where k.contypid = t.oid and k.contype = 'c'), '[]'::jsonb))`;

/**
 * A view, materialized view, function, procedure, trigger or sequence as a DDL command left it:
 * `create` makes it (CREATE OR REPLACE for views and functions; a materialized view WITH NO DATA,
 * filled when `populated`; a sequence's parameters; a trigger as pg_get_triggerdef writes it).
 */
export interface CapturedObject {
  kind: string;
  identity: string;
  create: string;
  populated?: boolean;
  /** A materialized view's access method by name (absent from archives made before it was captured). */
  accessMethod?: string;
  /** A view's columns with their defaults where they have one (absent from archives made before they were captured). */
  viewColumns?: { name: string; default?: string }[];
  /** A sequence owned by a column: `schema.table.column` (quoted), as ALTER SEQUENCE … OWNED BY takes it. */
  ownedBy?: string;
  /** An extension's version (ALTER EXTENSION … UPDATE brings one made earlier to it). */
  version?: string;
  /**
   * Text search dictionaries and configurations: what brings one that exists (made before, or by
   * `create`) to the captured state, after `create` (which fails where it exists).
   */
  statements?: string[];
  /** The command renamed it or moved it to another schema (archives since renames are followed). */
  renamed?: RenamedObject;
  /**
   * A trigger's table (source oid), name and state (pg_trigger.tgenabled), and its clones' states
   * by partition (source oid), in archives since trigger states are followed.
   */
  trigger?: { table: number; name: string; enabled: string; clones?: Record<string, string> };
}

/** What an object was called before a rename or a move, and the statements that rename it (`alter <kind> …`). */
export interface RenamedObject {
  /** Its identity before (as `identity` writes it). */
  from: string;
  /** From the former name to the new one. */
  rename: string;
  /** From the new name back to the former one. */
  back: string;
}

/** An object a DROP removed, with the names that address it (pg_event_trigger_dropped_objects). */
export interface DroppedObject {
  type: string;
  identity: string;
  names: string[];
}

/**
 * The rows of a table right after a command rewrote it (ALTER COLUMN TYPE … USING, an identity
 * or a volatile default added to a filled table): pgoutput carries none of the new values, so
 * they travel in the DDL's transaction, in chunks; the first chunk empties the table.
 */
export interface TableImage {
  oid: number;
  schema: string;
  name: string;
  first: boolean;
  /**
   * With `columns` (archives since diff reads images): each row its columns' text, in that order,
   * as pgoutput sends values. Without: each row as to_jsonb wrote it, by column name.
   */
  rows: Record<string, unknown>[] | (string | null)[][];
  columns?: string[];
}

/** What one captured DDL command did: the tables and types it left, as they are now, and what it dropped. */
export interface CapturedDdl {
  tag: string;
  tables?: TableSnapshot[];
  dropped?: { oid: number; schema: string; name: string }[];
  types?: TypeSnapshot[];
  droppedObjects?: DroppedObject[];
  image?: TableImage;
  /** Schemas the command created (quoted as Postgres quotes them). */
  schemas?: string[];
  /** Schemas the command renamed (archives since renames are followed): `identity` the new name, as `schemas`. */
  renamedSchemas?: (RenamedObject & { identity: string })[];
  /** Views, materialized views, functions, procedures, triggers and sequences the command made or altered, with the statement that makes each as it is now. */
  objects?: CapturedObject[];
  /**
   * What COMMENT set, on objects as pg_identify_object names them. A comment removed (`IS NULL`)
   * has none: the payload is stored with its nulls stripped, so it reads as absent, not null.
   */
  comments?: { kind: string; identity: string; comment?: string | null }[];
  /** Objects the command made or altered that replay does not follow (aggregates, extensions, policies …). */
  unfollowed?: { kind: string; identity: string }[];
  /** Tables this command rewrote: their rows follow as images (the replay empties them before reshaping). */
  rewritten?: number[];
  /** Tables whose rows after this command could not be captured (a row filter or column list): unknown to a replay from here on. */
  unknown?: { schema: string; name: string; why: string }[];
}

/**
 * The statement that makes a type (alias `t`, a row of pg_type) as it is now: what captured DDL
 * records, and what replay compares its own type with (under search_path pg_catalog, so that
 * names come qualified).
 */
export const TYPE_CREATE_SQL = `case t.typtype
      when 'e' then format('create type %s as enum (%s)', t.oid::regtype,
        (select string_agg(quote_literal(e.enumlabel), ', ' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid))
      when 'd' then format('create domain %s as %s%s%s%s%s', t.oid::regtype, format_type(t.typbasetype, t.typtypmod),
        case when t.typcollation <> 0 and t.typcollation <> (select typcollation from pg_type b where b.oid = t.typbasetype)
          then (select format(' collate %I.%I', cn.nspname, co.collname) from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace where co.oid = t.typcollation) else '' end,
        case when t.typdefault is not null then ' default ' || t.typdefault else '' end,
        case when t.typnotnull then ' not null' else '' end,
        coalesce((select string_agg(format(' constraint %I %s', k.conname, pg_get_constraintdef(k.oid)), '' order by k.conname)
          from pg_constraint k where k.contypid = t.oid and k.contype = 'c'), ''))
      when 'c' then format('create type %s as (%s)', t.oid::regtype,
        (select string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' order by a.attnum)
           from pg_attribute a where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped))
      when 'r' then (select format('create type %s as range (subtype = %s%s%s%s)', t.oid::regtype, format_type(r.rngsubtype, null),
          case when r.rngsubdiff <> 0 then ', subtype_diff = ' || r.rngsubdiff::regproc::text else '' end,
          case when r.rngcanonical <> 0 then ', canonical = ' || r.rngcanonical::regproc::text else '' end,
          case when r.rngcollation <> 0 then (select format(', collation = %I.%I', cn.nspname, co.collname) from pg_collation co join pg_namespace cn on cn.oid = co.collnamespace where co.oid = r.rngcollation) else '' end)
        from pg_range r where r.rngtypid = t.oid)
    end`;

/** Rows per image message: a few hundred kB of WAL each. */
const IMAGE_ROWS = 1000;

/**
 * The event triggers `pgtape archive --capture-ddl` installs (once, as a superuser), each
 * emitting transactional logical messages in the DDL's own transaction, so that replay meets
 * them exactly at their point (docs/ARCHITECTURE.md, "Schema changes"):
 * - after each DDL command: the whole shape of every published table it created or altered,
 *   with the partitions and inheritance children the command recursed to; the definition of
 *   every type it created or altered; and, when it rewrote a table, the table's rows;
 * - after each DROP (sql_drop): every table it dropped, dependents included (CASCADE, a
 *   partitioned parent, DROP SCHEMA), and every other object it dropped, by kind and name.
 * The functions run as their (superuser) owner and never fail the application's DDL for want of
 * reading the catalog: that is a warning. Snapshots (not the statement's text) are recorded
 * because the text may hold several statements, or DML.
 */
function installSql(): string {
  const pub = PUBLICATION;
  return `
create schema if not exists pgtape;
create or replace function pgtape.table_shape(rel oid) returns jsonb language sql stable set search_path = pg_catalog as $f$
  select jsonb_build_object(
    'oid', c.oid::int, 'schema', n.nspname, 'name', c.relname, 'replicaIdentity', c.relreplident, 'kind', c.relkind,
    -- Its storage options (WITH (…), ALTER TABLE … SET/RESET), its TOAST table's as toast.<name>.
    'options', (select coalesce(jsonb_agg(o order by o), '[]') from ${STORAGE_OPTIONS} x),
    'partitionKey', case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end,
    -- '' for none, not null: the payload's nulls are stripped (as 'inherits' below).
    'ofType', coalesce(format_type(nullif(c.reloftype, 0), null), ''),
    -- Its access method (USING, ALTER TABLE … SET ACCESS METHOD): '' for a partitioned table without one.
    'accessMethod', coalesce((select am.amname from pg_am am where am.oid = c.relam), case when c.relkind = 'p' then '' end),
    'parent', (select quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) from pg_inherits h join pg_class pc on pc.oid = h.inhparent
                 join pg_namespace pn on pn.oid = pc.relnamespace where h.inhrelid = c.oid and c.relispartition),
    'bound', case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end,
    -- An empty list, not null, for a table without parents: the payload's nulls are stripped, and
    -- an absent list means an archive from before parents were captured (NO INHERIT of the last
    -- parent must still be followed).
    'inherits', case when not c.relispartition then coalesce((select jsonb_agg(quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) order by h.inhseqno)
                 from pg_inherits h join pg_class pc on pc.oid = h.inhparent join pg_namespace pn on pn.oid = pc.relnamespace where h.inhrelid = c.oid), '[]'::jsonb) end,
    'partitions', case when c.relkind = 'p' then (select coalesce(jsonb_agg(quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) order by pc.relname), '[]')
                 from pg_inherits h join pg_class pc on pc.oid = h.inhrelid join pg_namespace pn on pn.oid = pc.relnamespace where h.inhparent = c.oid) end,
    'columns', coalesce((select jsonb_agg(jsonb_build_object(
        'attnum', a.attnum, 'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'typeOid', a.atttypid::int,
        'typmod', a.atttypmod, 'notNull', a.attnotnull, 'collation', ${COLUMN_COLLATION}, 'settings', ${COLUMN_SETTINGS},
        'default', case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end,
        'generated', case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end,
        'virtual', case when a.attgenerated = 'v' then true end,
        'identity', a.attidentity,
        'identitySequence', case when a.attidentity <> '' then (
          select jsonb_build_object('start', s.seqstart::text, 'increment', s.seqincrement::text, 'min', s.seqmin::text,
                                    'max', s.seqmax::text, 'cache', s.seqcache::text, 'cycle', s.seqcycle)
            ${IDENTITY_SEQUENCE_FROM}) end,
        'missing', case when a.atthasmissing then a.attmissingval::text end) order by a.attnum)
      from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]'::jsonb),
    'primaryKey', coalesce((select jsonb_agg(a.attname order by k.ord) from pg_index i
      cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
      where i.indrelid = c.oid and i.indisprimary), '[]'::jsonb),
    'indexes', coalesce((select jsonb_agg(pg_get_indexdef(i.indexrelid) order by i.indexrelid) from pg_index i
      where i.indrelid = c.oid and not i.indisprimary
        and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = c.oid)), '[]'::jsonb),
    -- A partition's indexes that are partitions of its parent's (CREATE INDEX on a partitioned
    -- table recursed, or ALTER INDEX … ATTACH PARTITION): by name, their parent index (qualified, quoted).
    'indexParents', coalesce((select jsonb_object_agg(quote_ident(ic.relname), quote_ident(pn.nspname) || '.' || quote_ident(pc.relname))
      from pg_index i join pg_class ic on ic.oid = i.indexrelid join pg_inherits h on h.inhrelid = i.indexrelid
      join pg_class pc on pc.oid = h.inhparent join pg_namespace pn on pn.oid = pc.relnamespace
      where i.indrelid = c.oid and not i.indisprimary
        and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = c.oid)), '{}'::jsonb),
    'constraints', coalesce((select jsonb_agg(jsonb_build_object('name', k.conname, 'def', pg_get_constraintdef(k.oid)) order by k.contype = 'f', k.conname)
      from pg_constraint k where k.conrelid = c.oid and k.contype in ('c', 'f', 'u', 'x', 'p') and k.conislocal), '[]'::jsonb),
    -- Clones of the parent's foreign keys, by name: the parent's key's name (not the clones a key
    -- referencing a partitioned table has on its own table, one per referenced partition).
    'inheritedKeys', coalesce((select jsonb_object_agg(k.conname, p.conname) from pg_constraint k join pg_constraint p on p.oid = k.conparentid
      where k.conrelid = c.oid and k.contype = 'f' and p.conrelid <> k.conrelid), '{}'::jsonb),
    -- ENABLE/DISABLE TRIGGER is an ALTER TABLE: its triggers' states come with the table's shape.
    'triggers', coalesce((select jsonb_object_agg(t.tgname, t.tgenabled::text) from pg_trigger t
      where t.tgrelid = c.oid and not t.tgisinternal), '{}'::jsonb))
  from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = rel
$f$;
create or replace function pgtape.type_shape(typ oid) returns jsonb language sql stable set search_path = pg_catalog as $f$
  select jsonb_build_object('oid', t.oid::int, 'arrayOid', nullif(t.typarray, 0)::int, 'schema', n.nspname, 'name', t.typname, 'kind', t.typtype,
    'labels', case when t.typtype = 'e' then (select jsonb_agg(e.enumlabel order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid) end,
    'create', ${TYPE_CREATE_SQL}, 'domain', case when t.typtype = 'd' then ${DOMAIN_FACTS_SQL} end)
  from pg_type t join pg_namespace n on n.oid = t.typnamespace where t.oid = typ
$f$;
-- Published tables among rels, with every partition and inheritance child below them, and the
-- partitioned tables above them (a parent's DDL reaches its partitions, and replay applies it
-- there first). A partition is published when it or an ancestor is (publish_via_partition_root).
create or replace function pgtape.published_tree(rels oid[]) returns oid[] language sql stable set search_path = pg_catalog as $f$
  with recursive tree(rel) as (select unnest(rels) union select i.inhrelid from pg_inherits i join tree on i.inhparent = tree.rel),
  up(rel) as (select rel from tree union select i.inhparent from pg_inherits i join up on i.inhrelid = up.rel),
  pub(rel) as (
    select c.oid from pg_publication_tables p join pg_namespace n on n.nspname = p.schemaname
      join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename where p.pubname = ${pub}
    union select i.inhrelid from pg_inherits i join pub on i.inhparent = pub.rel),
  all_tables as (select exists (select 1 from pg_publication where pubname = ${pub} and puballtables) as yes)
  select coalesce(array_agg(distinct up.rel), '{}') from up join pg_class c on c.oid = up.rel, all_tables
    where c.relkind in ('r', 'p') and c.relpersistence <> 't'
      and (up.rel in (select rel from pub) or (c.relkind = 'p' and (all_tables.yes or exists (select 1 from tree join pub on pub.rel = tree.rel))))
$f$;
-- The statement that makes a view, materialized view, function, procedure, trigger, sequence or
-- extension as it is now (null for what pg_get_functiondef cannot write, an aggregate: named as unfollowed).
create or replace function pgtape.object_def(cls oid, obj oid) returns jsonb language plpgsql stable set search_path = pg_catalog as $f$
declare
  def jsonb;
begin
  if cls = 'pg_class'::regclass then
    select jsonb_build_object('create', case c.relkind
        when 'v' then format('create or replace view %s%s as %s', c.oid::regclass,
          case when c.reloptions is not null then format(' with (%s)', array_to_string(c.reloptions, ', ')) else '' end,
          regexp_replace(pg_get_viewdef(c.oid), ';\\s*$', ''))
        when 'm' then format('create materialized view %s%s%s as %s with no data', c.oid::regclass,
          coalesce((select ' using ' || quote_ident(am.amname) from pg_am am where am.oid = c.relam and am.amname <> 'heap'), ''),
          case when c.reloptions is not null then format(' with (%s)', array_to_string(c.reloptions, ', ')) else '' end,
          regexp_replace(pg_get_viewdef(c.oid), ';\\s*$', ''))
        when 'S' then (select format('create sequence %s as %s increment by %s minvalue %s maxvalue %s start with %s cache %s%s', c.oid::regclass,
            format_type(q.seqtypid, null), q.seqincrement, q.seqmin, q.seqmax, q.seqstart, q.seqcache, case when q.seqcycle then ' cycle' else ' no cycle' end)
          from pg_sequence q where q.seqrelid = c.oid)
      end,
      'populated', case when c.relkind = 'm' then c.relispopulated end,
      -- ALTER MATERIALIZED VIEW … SET ACCESS METHOD: the one it has is followed where it is made already.
      'accessMethod', case when c.relkind = 'm' then (select am.amname from pg_am am where am.oid = c.relam) end,
      -- A view's columns with their defaults (ALTER VIEW … ALTER COLUMN … SET DEFAULT), where they have one.
      'viewColumns', case when c.relkind = 'v' then (select jsonb_agg(jsonb_build_object('name', a.attname, 'default', pg_get_expr(d.adbin, d.adrelid)) order by a.attnum)
          from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) end,
      'ownedBy', case when c.relkind = 'S' then (select format('%s.%I', d.refobjid::regclass, a.attname) from pg_depend d
          join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
         where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.refclassid = 'pg_class'::regclass and d.deptype = 'a') end)
      into def from pg_class c where c.oid = obj and c.relkind in ('v', 'm', 'S');
    -- An index of a materialized view (a table's indexes travel with its shape).
    if def is null then
      select jsonb_build_object('create', pg_get_indexdef(i.indexrelid)) into def
        from pg_index i join pg_class t on t.oid = i.indrelid where i.indexrelid = obj and t.relkind = 'm';
    end if;
  elsif cls = 'pg_proc'::regclass and (select prokind from pg_proc where oid = obj) = 'a' then
    -- An aggregate has no deparser: written from pg_aggregate (a normal one; other kinds are named as unfollowed).
    select jsonb_build_object('create', format('create or replace aggregate %s.%s(%s) (%s)', quote_ident(n.nspname), quote_ident(p.proname),
        pg_get_function_identity_arguments(p.oid), concat_ws(', ', 'sfunc = ' || a.aggtransfn::regproc::text,
          'stype = ' || format_type(a.aggtranstype, null), 'finalfunc = ' || nullif(a.aggfinalfn, 0)::regproc::text,
          case when a.aggfinalextra then 'finalfunc_extra' end, 'initcond = ' || quote_literal(a.agginitval),
          'combinefunc = ' || nullif(a.aggcombinefn, 0)::regproc::text, 'serialfunc = ' || nullif(a.aggserialfn, 0)::regproc::text,
          'deserialfunc = ' || nullif(a.aggdeserialfn, 0)::regproc::text,
          case when a.aggsortop <> 0 then 'sortop = operator(' || regexp_replace(a.aggsortop::regoperator::text, '\\(.*$', '') || ')' end,
          'parallel = ' || case p.proparallel when 's' then 'safe' when 'r' then 'restricted' else 'unsafe' end)))
      into def from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_aggregate a on a.aggfnoid = p.oid
     where p.oid = obj and a.aggkind = 'n';
  elsif cls = 'pg_proc'::regclass then
    def := jsonb_build_object('create', pg_get_functiondef(obj));
  elsif cls = 'pg_trigger'::regclass then
    -- Its state too: made again from the statement, a trigger is enabled.
    -- And its clones' on partitions (made again with it, enabled), by partition.
    select jsonb_build_object('create', pg_get_triggerdef(t.oid),
        'trigger', jsonb_build_object('table', t.tgrelid::int, 'name', t.tgname, 'enabled', t.tgenabled::text,
          'clones', (with recursive clone(oid, rel, enabled) as (
              select x.oid, x.tgrelid, x.tgenabled from pg_trigger x where x.tgparentid = t.oid
              union all select x.oid, x.tgrelid, x.tgenabled from pg_trigger x join clone on x.tgparentid = clone.oid)
            select jsonb_object_agg(clone.rel::int::text, clone.enabled::text) from clone)))
      into def from pg_trigger t where t.oid = obj;
  elsif cls = 'pg_collation'::regclass then
    select jsonb_build_object('create', ${COLLATION_CREATE})
      into def from pg_collation c join pg_namespace n on n.oid = c.collnamespace where c.oid = obj;
  elsif cls = 'pg_ts_dict'::regclass then
    -- Its options too: ALTER TEXT SEARCH DICTIONARY … (option = …) is followed as the statement that sets them all.
    select jsonb_build_object('create', ${TEXT_SEARCH_DICTIONARY_CREATE},
        'statements', case when d.dictinitoption is not null
          then jsonb_build_array(format('ALTER TEXT SEARCH DICTIONARY %I.%I (%s)', n.nspname, d.dictname, d.dictinitoption)) end)
      into def from pg_ts_dict d join pg_namespace n on n.oid = d.dictnamespace where d.oid = obj;
  elsif cls = 'pg_ts_config'::regclass then
    -- Made with its parser, then its mappings: every token type's cleared, and those it has set
    -- (ALTER … MAPPING is followed as the whole configuration).
    select jsonb_build_object('create', s->>0, 'statements', jsonb_build_array(format('ALTER TEXT SEARCH CONFIGURATION %I.%I DROP MAPPING IF EXISTS FOR %s',
          n.nspname, cfg.cfgname, (select string_agg(quote_ident(alias), ', ' order by tokid) from ts_token_type(cfg.cfgparser)))) || (s - 0))
      into def from pg_ts_config cfg join pg_namespace n on n.oid = cfg.cfgnamespace,
           lateral (select ${TEXT_SEARCH_CONFIGURATION_STATEMENTS} as s) made
     where cfg.oid = obj;
  elsif cls = 'pg_operator'::regclass then
    select jsonb_build_object('create', ${OPERATOR_CREATE})
      into def from pg_operator o join pg_namespace n on n.oid = o.oprnamespace where o.oid = obj and o.oprcode <> 0;
  elsif cls = 'pg_opfamily'::regclass then
    -- Made empty where it is missing, then given its loose members (ALTER … ADD is followed as the whole family).
    select jsonb_build_object('create', s->>0, 'statements', s - 0)
      into def from pg_opfamily f join pg_namespace n on n.oid = f.opfnamespace,
           lateral (select ${OPERATOR_FAMILY_STATEMENTS} as s) made
     where f.oid = obj;
  elsif cls = 'pg_opclass'::regclass then
    -- Its family's loose members too: some a CREATE OPERATOR CLASS lists go to the family (a hash
    -- class's extended hash function, say), and only the class is the command's object.
    select jsonb_build_object('create', ${OPERATOR_CLASS_CREATE},
        'statements', (select s - 0 from (select ${OPERATOR_FAMILY_STATEMENTS} as s
                         from pg_opfamily f join pg_namespace n on n.oid = f.opfnamespace where f.oid = c.opcfamily) family))
      into def from pg_opclass c join pg_namespace n on n.oid = c.opcnamespace where c.oid = obj;
  elsif cls = 'pg_cast'::regclass then
    select jsonb_build_object('create', ${CAST_CREATE}) into def from pg_cast c where c.oid = obj;
  elsif cls = 'pg_conversion'::regclass then
    select jsonb_build_object('create', ${CONVERSION_CREATE})
      into def from pg_conversion cv join pg_namespace n on n.oid = cv.connamespace where cv.oid = obj;
  elsif cls = 'pg_am'::regclass then
    select jsonb_build_object('create', ${ACCESS_METHOD_CREATE}) into def from pg_am am where am.oid = obj;
  elsif cls = 'pg_extension'::regclass then
    -- Its version too: ALTER EXTENSION … UPDATE is followed as the statement that brings it there.
    select jsonb_build_object('create', format('create extension if not exists %I with schema %I version %L', e.extname, n.nspname, e.extversion),
        'version', e.extversion)
      into def from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.oid = obj;
  end if;
  return case when def->>'create' is not null then jsonb_strip_nulls(def) end;
exception when others then
  return null;
end $f$;
-- Before a command that can rename or move an object: the name of every object of its kind
-- (types and domains; sequences, views and materialized views; functions, procedures and
-- aggregates; triggers), for capture_ddl to tell a rename or a move by. At ddl_command_end the
-- catalog holds only the new name, and the replay knows these objects by name (a base records
-- none of their oids). Transaction-local; keyed catalog:oid.
create or replace function pgtape.note_names() returns event_trigger language plpgsql security definer set search_path = pg_catalog as $f$
begin
  -- An ALTER sent alone that says neither RENAME nor SCHEMA renames nothing (a migration's ADD
  -- COLUMN, pg_restore's ALTER … OWNER TO for every object): the catalog is not read for it, which
  -- takes a while in a database of many objects. One run by a function, a DO block or beside
  -- another statement (which may call one) is noted.
  if current_query() ~* '^(\\s|--[^\\n]*\\n)*alter\\M' and current_query() !~* '\\m(rename|schema)\\M' and current_query() !~ ';\\s*\\S' then
    perform set_config('pgtape.names', '', true);
    return;
  end if;
  perform set_config('pgtape.names', coalesce((select jsonb_object_agg(o.k, jsonb_build_object('schema', o.s, 'name', o.n)) from (
      select 'pg_type:' || t.oid as k, n.nspname as s, t.typname as n
        from pg_type t join pg_namespace n on n.oid = t.typnamespace
       where tg_tag in ('ALTER TYPE', 'ALTER DOMAIN') and t.typtype in ('e', 'd', 'r', 'c')
         -- A table's row type is renamed with its table, never by ALTER TYPE.
         and (t.typtype <> 'c' or (select c.relkind from pg_class c where c.oid = t.typrelid) = 'c')
      union all
      select 'pg_class:' || c.oid, n.nspname, c.relname
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where tg_tag in ('ALTER TABLE', 'ALTER SEQUENCE', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW') and c.relkind in ('S', 'v', 'm')
      union all
      select 'pg_proc:' || p.oid, n.nspname, p.proname
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where tg_tag in ('ALTER FUNCTION', 'ALTER PROCEDURE', 'ALTER ROUTINE', 'ALTER AGGREGATE')
${NAMED_IN_SCHEMA.map(
  (k) => `      union all
      select '${k.catalog}:' || x.oid, n.nspname, x.${k.name}
        from ${k.catalog} x join pg_namespace n on n.oid = x.${k.namespace} where tg_tag = '${k.tag}'
`,
).join('')}      union all
      select 'pg_namespace:' || n.oid, n.nspname, n.nspname from pg_namespace n where tg_tag = 'ALTER SCHEMA'
      union all
      select 'pg_trigger:' || g.oid, n.nspname, g.tgname
        from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
       where tg_tag = 'ALTER TRIGGER' and not g.tgisinternal) o
     where o.s not in ('pg_catalog', 'information_schema', 'pgtape') and o.s !~ '^pg_')::text, ''), true);
exception when others then
  perform set_config('pgtape.names', '', true);
end $f$;
-- A sequence, view, materialized view, function, procedure, aggregate, trigger, collation, text
-- search object or operator (class, family) the command renamed or moved to another schema (note_names has its name before): its former identity, and
-- the statements that rename it forward and back (the replay gives the base's objects their
-- former names while it makes what the base's statements name them by).
create or replace function pgtape.renamed(cls oid, obj oid, kind text, identity text) returns jsonb language plpgsql stable set search_path = pg_catalog as $f$
declare
  was jsonb := nullif(current_setting('pgtape.names', true), '')::jsonb -> (cls::regclass::text || ':' || obj::text);
  nsp text;
  nam text;
  prefix text;
  former text;
begin
  if was is null then
    return null;
  end if;
  if cls = 'pg_class'::regclass then
    select n.nspname, c.relname into nsp, nam from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = obj;
  elsif cls = 'pg_proc'::regclass then
    select n.nspname, p.proname into nsp, nam from pg_proc p join pg_namespace n on n.oid = p.pronamespace where p.oid = obj;
  elsif cls = 'pg_trigger'::regclass then
    select n.nspname, g.tgname into nsp, nam from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace where g.oid = obj;
${NAMED_IN_SCHEMA.map(
  (k) => `  elsif cls = '${k.catalog}'::regclass then
    select n.nspname, x.${k.name} into nsp, nam from ${k.catalog} x join pg_namespace n on n.oid = x.${k.namespace} where x.oid = obj;
`,
).join('')}  elsif cls = 'pg_namespace'::regclass then
    select nspname into nam from pg_namespace where oid = obj;
    if nam is null or was->>'name' = nam then
      return null;
    end if;
    return jsonb_build_object('from', quote_ident(was->>'name'), 'rename', format('alter schema %I rename to %I', was->>'name', nam),
      'back', format('alter schema %I rename to %I', nam, was->>'name'));
  else
    return null;
  end if;
  if nam is null or (was->>'schema' = nsp and was->>'name' = nam) then
    return null;
  end if;
  -- The identity begins with the qualified name (a trigger's with its own name, then ' on ' its
  -- table; a routine's goes on with its argument types): the former one, the same with the former name.
  if cls = 'pg_trigger'::regclass then
    prefix := quote_ident(nam);
    former := quote_ident(was->>'name');
  elsif cls = 'pg_operator'::regclass then
    -- An operator's name is a symbol, never quoted (and never renamed: only moved).
    prefix := format('%I.%s', nsp, nam);
    former := format('%I.%s', was->>'schema', was->>'name');
  else
    prefix := format('%I.%I', nsp, nam);
    former := format('%I.%I', was->>'schema', was->>'name');
  end if;
  if left(identity, length(prefix)) <> prefix then
    return null;
  end if;
  former := former || substr(identity, length(prefix) + 1);
  return jsonb_build_object('from', former,
    'rename', case when was->>'schema' <> nsp then format('alter %s %s set schema %I', kind, former, nsp)
                   else format('alter %s %s rename to %I', kind, former, nam) end,
    'back', case when was->>'schema' <> nsp then format('alter %s %s set schema %I', kind, identity, was->>'schema')
                 else format('alter %s %s rename to %I', kind, identity, was->>'name') end);
end $f$;
create or replace function pgtape.note_rewrite() returns event_trigger language plpgsql set search_path = pg_catalog as $f$
begin
  perform set_config('pgtape.rewritten', coalesce(nullif(current_setting('pgtape.rewritten', true), ''), '') || pg_event_trigger_table_rewrite_oid()::text || ',', true);
end $f$;
create or replace function pgtape.capture_ddl() returns event_trigger language plpgsql security definer set search_path = pg_catalog as $f$
declare
  rels oid[];
  published oid[];
  rewritten oid[];
  typs oid[];
  payload text;
  images jsonb := '[]';
  rel oid;
  chunk jsonb;
  row_ jsonb;
  first boolean;
  filtered_rels oid[] := '{}';
  schemas jsonb;
  renamed_schemas jsonb;
  objects jsonb;
  comments jsonb;
  unfollowed jsonb;
  n int;
begin
  -- Names noted by note_names for this command, or none: a value a session set itself is no note.
  if tg_tag not in (${NOTED_TAGS}) then
    perform set_config('pgtape.names', '', true);
  end if;
  -- Reading the catalog may fail without failing the application's DDL (a warning instead). The
  -- messages are emitted outside that block: an exception block is a subtransaction, and a
  -- message emitted in one reaches the stream after the transaction's later changes, not at its point.
  begin
    -- Tables the command touched: named, through an index of theirs, or through a constraint (RENAME CONSTRAINT names only it).
    select array_agg(distinct r) into rels from (
      select coalesce(i.indrelid, c.oid) as r
        from pg_event_trigger_ddl_commands() d
        join pg_class c on d.classid = 'pg_class'::regclass and c.oid = d.objid
        left join pg_index i on i.indexrelid = c.oid
       where c.relkind in ('r', 'p', 'i', 'I') and c.relpersistence <> 't'
      union all
      select k.conrelid from pg_event_trigger_ddl_commands() d
        join pg_constraint k on d.classid = 'pg_constraint'::regclass and k.oid = d.objid
       where k.conrelid <> 0
      union all
      -- ALTER TYPE … CASCADE reshapes the tables typed by the composite type (CREATE TABLE … OF),
      -- and names only the type.
      select c.oid from pg_event_trigger_ddl_commands() d
        join pg_type t on (d.classid = 'pg_type'::regclass and t.oid = d.objid)
                       or (d.classid = 'pg_class'::regclass and t.typrelid = d.objid and t.typtype = 'c')
        join pg_class c on c.reloftype = t.oid
       where c.relkind in ('r', 'p') and c.relpersistence <> 't') touched;
    -- Tables added to the publication (ALTER PUBLICATION … ADD TABLE / SET TABLE): pgoutput
    -- carries their changes from here on but none of the rows they hold: those travel as images.
    select array_agg(pr.prrelid) into published
      from pg_event_trigger_ddl_commands() d
      join pg_publication_rel pr on d.classid = 'pg_publication_rel'::regclass and pr.oid = d.objid
      join pg_publication p on p.oid = pr.prpubid
     where p.pubname = ${pub};
    rels := pgtape.published_tree(coalesce(rels, '{}') || coalesce(published, '{}'));
    rewritten := pgtape.published_tree(coalesce(string_to_array(trim(trailing ',' from nullif(current_setting('pgtape.rewritten', true), '')), ',')::oid[], '{}')
                   || coalesce(published, '{}'));
    perform set_config('pgtape.rewritten', '', true);
    -- Only plain tables hold rows; a publication that filters a table's rows or columns (15+)
    -- must not see them all: such a table is said to be unknown from here on instead.
    rewritten := array(select r from unnest(rewritten) r join pg_class c on c.oid = r where c.relkind = 'r');
    if current_setting('server_version_num')::int >= 150000 then
      execute 'select array(select r from unnest($2) r where exists (select 1 from pg_publication_rel pr join pg_publication p on p.oid = pr.prpubid
                 where p.pubname = $1 and pr.prrelid = r and (pr.prqual is not null or pr.prattrs is not null)))'
        into filtered_rels using ${pub}, rewritten;
      rewritten := array(select r from unnest(rewritten) r where r <> all (filtered_rels));
    end if;
    select array_agg(distinct t.oid) into typs
      from pg_event_trigger_ddl_commands() d
      -- A composite type's ALTER TYPE … ATTRIBUTE names its relation, not the type.
      join pg_type t on (d.classid = 'pg_type'::regclass and t.oid = d.objid)
                     or (d.classid = 'pg_class'::regclass and t.typrelid = d.objid and t.typtype = 'c')
     where (t.typtype in ('e', 'd', 'r') or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c'))
       and t.typnamespace <> 'pgtape'::regnamespace
       and not exists (select 1 from pg_depend e where e.classid = 'pg_type'::regclass and e.objid = t.oid and e.deptype = 'e');
    -- Schemas created are followed as such; every other kind of object a command made or altered
    -- that replay does not follow (views, functions, triggers, sequences other than identities',
    -- extensions …) is named, so that the replay says so instead of differing silently.
    -- Views, materialized views, functions, procedures, triggers and sequences travel as the
    -- statements that make them now.
    with commands as (
      select d.object_type as kind, d.object_identity as identity, d.classid, d.objid,
             case when d.object_type in ('view', 'materialized view', 'function', 'procedure', 'aggregate', 'trigger', 'sequence', 'index', 'extension',
                                         'collation', 'text search dictionary', 'text search configuration',
                                         'operator', 'operator family', 'operator class', 'cast', 'conversion', 'access method')
               then pgtape.object_def(d.classid, d.objid)
                    || jsonb_strip_nulls(jsonb_build_object('renamed', pgtape.renamed(d.classid, d.objid, d.object_type, d.object_identity))) end as def,
             case when d.object_type = 'schema' then pgtape.renamed(d.classid, d.objid, d.object_type, d.object_identity) end as renamed
        from pg_event_trigger_ddl_commands() d
       -- GRANT and REVOKE name no object (privileges are not followed).
       where not d.in_extension and d.object_identity is not null and d.schema_name is distinct from 'pgtape' and d.object_identity is distinct from 'pgtape'
         -- A session's temporary objects (a serial column's sequence, say) are no part of the database,
         -- nor is one over a temporary type (a function returning a temporary table's row type is
         -- dropped with the session; its identity, arguments only, may not show it).
         and coalesce(d.schema_name, '') !~ '^pg_(toast_)?temp'
         and not ${onTemporaryType('d.classid', 'd.objid')}
         -- Publications are the archive's business, not the replay's; a table added to ours is followed above.
         and d.object_type not in ('table', 'type', 'domain', 'composite type', 'table constraint', 'table column', 'publication', 'publication relation')
         -- An identity's sequence is made and reshaped with its column (ADD … IDENTITY runs a
         -- CREATE and an ALTER SEQUENCE of its own); one renamed, or altered by the user's ALTER
         -- SEQUENCE (which its table's shape does not show), travels as any sequence.
         and not (d.object_type = 'sequence' and tg_tag <> 'ALTER SEQUENCE'
                  and pgtape.renamed(d.classid, d.objid, d.object_type, d.object_identity) is null
                  and exists (select 1 from pg_depend i where i.classid = 'pg_class'::regclass and i.objid = d.objid and i.deptype = 'i')))
    select jsonb_agg(distinct identity) filter (where kind = 'schema' and renamed is null),
           jsonb_agg(distinct jsonb_build_object('kind', kind, 'identity', identity) || def) filter (where def is not null),
           jsonb_agg(distinct jsonb_build_object('kind', kind, 'identity', identity)) filter (where def is null and kind not in ('schema', 'index')),
           jsonb_agg(jsonb_build_object('identity', identity) || renamed) filter (where renamed is not null)
      into schemas, objects, unfollowed, renamed_schemas
      from commands;
    select jsonb_agg(jsonb_build_object('kind', d.object_type, 'identity', d.object_identity,
             'comment', (select description from pg_description c where c.objoid = d.objid and c.classoid = d.classid and c.objsubid = d.objsubid)))
      into comments
      from pg_event_trigger_ddl_commands() d
     where d.command_tag = 'COMMENT' and d.object_identity is not null and not d.in_extension and d.schema_name is distinct from 'pgtape'
       and coalesce(d.schema_name, '') !~ '^pg_(toast_)?temp';
    if cardinality(rels) > 0 or cardinality(typs) > 0 or cardinality(filtered_rels) > 0 or schemas is not null or objects is not null
       or comments is not null or unfollowed is not null or renamed_schemas is not null then
      payload := jsonb_strip_nulls(jsonb_build_object('tag', tg_tag, 'schemas', schemas, 'renamedSchemas', renamed_schemas,
        'objects', objects, 'comments', comments, 'unfollowed', unfollowed,
        'tables', (select jsonb_agg(pgtape.table_shape(r)) from unnest(rels) r),
        'types', (select jsonb_agg(pgtape.type_shape(t) || coalesce((select jsonb_build_object('was', w.was)
                    from (select nullif(current_setting('pgtape.names', true), '')::jsonb -> ('pg_type:' || t::text) as was) w, pg_type y join pg_namespace yn on yn.oid = y.typnamespace
                   where y.oid = t and w.was is not null and (w.was->>'schema' <> yn.nspname or w.was->>'name' <> y.typname)), '{}')) from unnest(typs) t),
        'rewritten', (select jsonb_agg(r::int) from unnest(rewritten) r),
        'unknown', (select jsonb_agg(jsonb_build_object('schema', n.nspname, 'name', c.relname,
            'why', 'rewritten or published by ' || tg_tag || ' while its publication filters its rows or columns: its rows are not captured'))
          from unnest(filtered_rels) r join pg_class c on c.oid = r join pg_namespace n on n.oid = c.relnamespace)))::text;
    end if;
  exception when others then
    raise warning 'pgtape: DDL not captured (%): %', tg_tag, sqlerrm;
    payload := null;
    rewritten := '{}';
  end;
  -- Names noted before this command only: a later one in the transaction notes its own.
  perform set_config('pgtape.names', '', true);
  if payload is not null then
    perform pg_logical_emit_message(true, '${DDL_PREFIX}', payload);
  end if;
  -- A rewritten table's rows, as the command left them: pgoutput carries none of the new values.
  foreach rel in array coalesce(rewritten, '{}') loop
    first := true;
    chunk := '[]';
    n := 0;
    -- Each row as its columns' text, as pgoutput sends values (format %s is the type's output function; ::text would trim char(n)).
    -- Its own rows only: an inheritance parent's children are rewritten, and imaged, on their own.
    for row_ in execute format('select to_jsonb(array[%s]::text[]) from only %s pgtape_image_row',
        coalesce((select string_agg(format('case when pgtape_image_row.%1$I is null then null else format(''%%s'', pgtape_image_row.%1$I) end', attname), ', ' order by attnum)
                    from pg_attribute where attrelid = rel and attnum > 0 and not attisdropped and attgenerated = ''), ''),
        rel::regclass) loop
      chunk := chunk || jsonb_build_array(row_);
      n := n + 1;
      if n = ${IMAGE_ROWS} then
        perform pg_logical_emit_message(true, '${DDL_PREFIX}', pgtape.image(rel, first, chunk)::text);
        first := false;
        chunk := '[]';
        n := 0;
      end if;
    end loop;
    if n > 0 or first then
      perform pg_logical_emit_message(true, '${DDL_PREFIX}', pgtape.image(rel, first, chunk)::text);
    end if;
  end loop;
end $f$;
create or replace function pgtape.image(rel oid, first boolean, rows_ jsonb) returns jsonb language sql stable set search_path = pg_catalog as $f$
  select jsonb_build_object('tag', 'rewrite', 'image', jsonb_build_object('oid', c.oid::int, 'schema', n.nspname, 'name', c.relname,
    'first', first, 'rows', rows_,
    'columns', coalesce((select jsonb_agg(attname order by attnum) from pg_attribute where attrelid = rel and attnum > 0 and not attisdropped and attgenerated = ''), '[]')))
  from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = rel
$f$;
create or replace function pgtape.capture_drop() returns event_trigger language plpgsql security definer set search_path = pg_catalog as $f$
declare
  payload text;
begin
  begin
    -- Every table dropped, dependents included: CASCADE, a partitioned parent's partitions, DROP SCHEMA.
    select jsonb_strip_nulls(jsonb_build_object('tag', tg_tag,
      'dropped', (select jsonb_agg(jsonb_build_object('oid', o.objid::int, 'schema', o.schema_name, 'name', o.object_name))
                    from pg_event_trigger_dropped_objects() o where o.object_type = 'table'),
      'droppedObjects', (select jsonb_agg(jsonb_build_object('type', o.object_type, 'identity', o.object_identity, 'names', to_jsonb(o.address_names)))
                    from pg_event_trigger_dropped_objects() o
                   where o.object_type in ('index', 'table constraint', 'trigger', 'rule', 'policy', 'type', 'domain', 'schema',
                     'view', 'materialized view', 'function', 'procedure', 'aggregate', 'sequence', 'extension',
                     'collation', 'text search dictionary', 'text search configuration',
                     'operator', 'operator family', 'operator class', 'cast', 'conversion', 'access method') and not o.is_temporary)))::text
      into payload;
    if payload = jsonb_build_object('tag', tg_tag)::text then
      payload := null;
    end if;
  exception when others then
    raise warning 'pgtape: DROP not captured (%): %', tg_tag, sqlerrm;
  end;
  if payload is not null then
    perform pg_logical_emit_message(true, '${DDL_PREFIX}', payload);
  end if;
end $f$;
-- Every sequence's value, for the history (SEQUENCES_PREFIX): as the installing superuser, who
-- can read them all.
create or replace function pgtape.sequence_values() returns jsonb language sql stable security definer set search_path = pg_catalog as $f$
  select coalesce(jsonb_object_agg(format('%I.%I', schemaname, sequencename), last_value::text), '{}')
    from pg_sequences where schemaname <> 'pgtape' and last_value is not null
$f$;
grant usage on schema pgtape to public;
grant execute on function pgtape.sequence_values() to public;
drop event trigger if exists pgtape_capture_ddl;
create event trigger pgtape_capture_ddl on ddl_command_end execute function pgtape.capture_ddl();
drop event trigger if exists pgtape_capture_drop;
create event trigger pgtape_capture_drop on sql_drop execute function pgtape.capture_drop();
drop event trigger if exists pgtape_note_rewrite;
create event trigger pgtape_note_rewrite on table_rewrite execute function pgtape.note_rewrite();
-- Archives' sources before object renames were followed noted only types' names.
drop event trigger if exists pgtape_note_type_names;
drop function if exists pgtape.note_type_names();
drop event trigger if exists pgtape_note_names;
create event trigger pgtape_note_names on ddl_command_start
  when tag in (${NOTED_TAGS})
  execute function pgtape.note_names();
`;
}

/**
 * Catalogs of objects named within a schema that ALTER (its tag) can rename or move, and which
 * nothing else about them changes the name of: pgtape.note_names notes their names before it, and
 * pgtape.renamed reads the new one.
 */
const NAMED_IN_SCHEMA = [
  { catalog: 'pg_collation', name: 'collname', namespace: 'collnamespace', tag: 'ALTER COLLATION' },
  { catalog: 'pg_ts_dict', name: 'dictname', namespace: 'dictnamespace', tag: 'ALTER TEXT SEARCH DICTIONARY' },
  { catalog: 'pg_ts_config', name: 'cfgname', namespace: 'cfgnamespace', tag: 'ALTER TEXT SEARCH CONFIGURATION' },
  { catalog: 'pg_operator', name: 'oprname', namespace: 'oprnamespace', tag: 'ALTER OPERATOR' },
  { catalog: 'pg_opfamily', name: 'opfname', namespace: 'opfnamespace', tag: 'ALTER OPERATOR FAMILY' },
  { catalog: 'pg_opclass', name: 'opcname', namespace: 'opcnamespace', tag: 'ALTER OPERATOR CLASS' },
];

/** The commands that can rename or move an object: pgtape.note_names notes every name of its kind before them. */
const NOTED_TAGS = [
  'ALTER TYPE',
  'ALTER DOMAIN',
  'ALTER TABLE',
  'ALTER SEQUENCE',
  'ALTER VIEW',
  'ALTER MATERIALIZED VIEW',
  'ALTER FUNCTION',
  'ALTER PROCEDURE',
  'ALTER ROUTINE',
  'ALTER AGGREGATE',
  'ALTER TRIGGER',
  'ALTER SCHEMA',
  ...NAMED_IN_SCHEMA.map((k) => k.tag),
]
  .map(quoteLiteral)
  .join(', ');

/**
 * The functions' bodies are dollar-quoted with `$f$`, and the publication's name (a literal inside
 * them) is the operator's: a tag the name does not hold is used instead, so no name can end a body.
 */
function bodiesQuoted(sql: string, publication: string): string {
  const literal = quoteLiteral(publication);
  let tag = '$f$';
  for (let n = 0; literal.includes(tag); n++) tag = `$f${n}$`;
  // Functions as replacements: a `$` in them is taken as it is.
  return sql.replaceAll('$f$', () => tag).replaceAll(PUBLICATION, () => literal);
}

/** Where the publication's name goes in installSql, once the bodies' quoting tag is chosen. */
const PUBLICATION = '__pgtape_publication__';

/** Installs (or refreshes) the DDL capture; needs a superuser, like any event trigger. */
export async function installDdlCapture(client: pg.Client, publication: string, log: Logger): Promise<void> {
  await client.query(bodiesQuoted(installSql(), publication));
  log.info(
    { publication },
    'DDL capture installed (event triggers pgtape_capture_ddl, pgtape_capture_drop, pgtape_note_rewrite and pgtape_note_names)',
  );
}
