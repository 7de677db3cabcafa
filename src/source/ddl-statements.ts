import { doBlock, nameKey, outsideQuotes, quoteIdent, quoteLiteral, quoteQualified } from '../core/sql.js';
import { collateClause, looseMembersNotIn } from './deparse.js';
import type { CapturedDdl, CapturedObject, DroppedObject, IdentitySequence, TableSnapshot } from './ddl-capture.js';

// Statements made from what captured DDL recorded, without asking any database: the replay runs
// them against its target, and diff --format sql writes them into its patch
// (docs/ARCHITECTURE.md, "Schema changes").
// Over 400 lines for a reason: every statement both writers share is here, so that neither writes
// one of its own; the next to grow it should split it by what the statements act on (drops,
// columns and constraints, catalog objects).

/** Drop order: what hangs on a table first, then views, routines and sequences, then types, then schemas. */
const DROP_ORDER = [
  // First, with CASCADE: a DROP EXTENSION reports its members too, which only it may drop (IF EXISTS then finds them gone).
  'extension',
  'trigger',
  'rule',
  'policy',
  'table constraint',
  'index',
  'materialized view',
  'view',
  // A class before its family and operators, operators before their functions.
  'operator class',
  'operator family',
  'operator',
  // Before the functions and types they are made of.
  'cast',
  'conversion',
  'function',
  'procedure',
  'aggregate',
  'sequence',
  'type',
  'domain',
  // After what may name them (columns went with their tables, by TargetTables, before).
  'text search configuration',
  'text search dictionary',
  'collation',
  // After the tables, operator classes and families of it (CASCADE reports them).
  'access method',
  'schema',
];

/** The statement that drops one object the source dropped (tables are dropped by TargetTables). */
export function dropStatement(o: DroppedObject): string | undefined {
  switch (o.type) {
    case 'index':
      return `drop index if exists ${o.identity} cascade`;
    case 'rule':
      // A view's own rule goes with its view (which the same command reports dropped): it cannot be dropped alone.
      if (o.identity.startsWith('"_RETURN" on ')) return undefined;
      return `drop rule if exists ${o.identity}`;
    case 'trigger':
    case 'policy':
      // Their identity is `name on schema.table`, as DROP takes it.
      return `drop ${o.type} if exists ${o.identity}`;
    case 'table constraint': {
      const [schema, table, name] = o.names;
      if (!schema || !table || !name) return undefined;
      return `alter table if exists ${quoteQualified(schema, table)} drop constraint if exists ${quoteIdent(name)} cascade`;
    }
    case 'function':
      // Before Postgres 16, to_regprocedure raises rather than gives NULL when an argument's type
      // is gone (an extension's functions, its types dropped first): the function is gone too.
      return droppedUnlessOwned('pg_proc', `f := pg_catalog.to_regprocedure(${quoteLiteral(o.identity)});`, o);
    case 'cast':
      return droppedUnlessOwned('pg_cast', `f := (${foundByIdentity('cast', o.identity)});`, o);
    case 'type':
    case 'domain':
    case 'view':
    case 'materialized view':
    case 'procedure':
    case 'aggregate':
    case 'sequence':
    case 'collation':
    case 'text search dictionary':
    case 'text search configuration':
    case 'operator class':
    case 'operator family':
    case 'operator':
    case 'conversion':
    case 'access method':
      // What depended on it went with it on the source, and was dropped there too (CASCADE reports dependents).
      return `drop ${o.type} if exists ${o.identity} cascade`;
    case 'schema':
      return `drop schema if exists ${o.identity} cascade`;
    case 'extension':
      return `drop extension if exists ${o.identity} cascade`;
    default:
      return undefined;
  }
}

/**
 * The DROP of object `o` unless another object owns it (pg_depend 'i': a range's or multirange's
 * constructor function and cast, owned by its type), which the same command reports dropped: it
 * goes with its owner, and dropped alone, Postgres refuses it. `found` sets `f` to its oid (NULL:
 * it is gone; an undefined_object error: a type it names is gone, and it with it).
 */
function droppedUnlessOwned(catalog: string, found: string, o: DroppedObject): string {
  return doBlock(
    `declare f pg_catalog.oid;
    begin
      begin ${found}
      exception when undefined_object then return; end;
      if f is not null and not exists (select 1 from pg_catalog.pg_depend d
        where d.classid = 'pg_catalog.${catalog}'::pg_catalog.regclass and d.objid = f and d.deptype = 'i')
      then drop ${o.type} if exists ${o.identity} cascade; end if;
    end`,
  );
}

export function inDropOrder(objects: DroppedObject[]): DroppedObject[] {
  return [...objects].sort((a, b) => DROP_ORDER.indexOf(a.type) - DROP_ORDER.indexOf(b.type));
}

/** How a captured object without CREATE … IF NOT EXISTS is found by its identity (pg_identify_object's): the query of its oid, or of 1. */
const FOUND_BY_IDENTITY: Record<string, string> = {
  'text search dictionary': `select 1 from pg_catalog.pg_ts_dict x join pg_catalog.pg_namespace n on n.oid = x.dictnamespace
    where pg_catalog.format('%I.%I', n.nspname, x.dictname) = $1`,
  'text search configuration': `select 1 from pg_catalog.pg_ts_config x join pg_catalog.pg_namespace n on n.oid = x.cfgnamespace
    where pg_catalog.format('%I.%I', n.nspname, x.cfgname) = $1`,
  // Not a shell (which a COMMUTATOR naming it made): CREATE OPERATOR fills one.
  operator: `select 1 from pg_catalog.pg_operator x where x.oid = pg_catalog.to_regoperator($1) and x.oprcode <> 0`,
  'operator family': `select x.oid from pg_catalog.pg_opfamily x join pg_catalog.pg_namespace n on n.oid = x.opfnamespace
    join pg_catalog.pg_am am on am.oid = x.opfmethod where pg_catalog.format('%I.%I USING %I', n.nspname, x.opfname, am.amname) = $1`,
  // pg_identify_object's identity of a cast: `(source AS target)`, each type qualified.
  cast: `select x.oid from pg_catalog.pg_cast x
    where (pg_catalog.pg_identify_object('pg_catalog.pg_cast'::pg_catalog.regclass, x.oid, 0)).identity = $1`,
  conversion: `select 1 from pg_catalog.pg_conversion x join pg_catalog.pg_namespace n on n.oid = x.connamespace
    where pg_catalog.format('%I.%I', n.nspname, x.conname) = $1`,
  'access method': `select 1 from pg_catalog.pg_am x where pg_catalog.quote_ident(x.amname) = $1`,
  'operator class': `select 1 from pg_catalog.pg_opclass x join pg_catalog.pg_namespace n on n.oid = x.opcnamespace
    join pg_catalog.pg_am am on am.oid = x.opcmethod where pg_catalog.format('%I.%I USING %I', n.nspname, x.opcname, am.amname) = $1`,
};

/**
 * A captured text search object, operator, operator family or class, cast or conversion: made where it is missing
 * (their CREATE has no IF NOT EXISTS), then given the captured state (a dictionary's options, a
 * configuration's mappings, a family's loose members — a class's family's too —, each added where it is not there yet,
 * and a family's members it no longer has dropped).
 */
/** FOUND_BY_IDENTITY's query for one object. */
const foundByIdentity = (kind: string, identity: string) => FOUND_BY_IDENTITY[kind]!.replace('$1', quoteLiteral(identity));

export function madeWhereMissing(o: CapturedObject): string[] {
  const found = foundByIdentity(o.kind, o.identity);
  const rest = (o.statements ?? []).map((x) =>
    o.kind === 'operator family' || o.kind === 'operator class'
      ? doBlock(`execute ${quoteLiteral(x)}; exception when duplicate_object then null;`)
      : x,
  );
  const made = doBlock(`if not exists (${found}) then execute ${quoteLiteral(o.create)}; end if;`);
  // A family's members dropped since it was made go (a class's statements are its family's as the class was made).
  if (o.kind !== 'operator family') return [made, ...rest];
  return [made, looseMembersNotIn(o.identity, found, o.statements ?? []), ...rest];
}

/**
 * The statement that gives a table the captured replica identity where it has another (ALTER TABLE
 * … REPLICA IDENTITY after it was made); undefined for USING INDEX, whose index may come later.
 */
export function replicaIdentityFollow(target: string, identity: string): string | undefined {
  const word = ({ f: 'full', d: 'default', n: 'nothing' } as Record<string, string>)[identity];
  if (!word) return undefined;
  return doBlock(
    `if (select relreplident from pg_catalog.pg_class where oid = ${quoteLiteral(target)}::regclass) <> ${quoteLiteral(identity)} then execute ${quoteLiteral(`alter table ${target} replica identity ${word}`)}; end if;`,
  );
}

/**
 * The USING clause a CREATE TABLE or MATERIALIZED VIEW says for access method `method` (a name,
 * unquoted; undefined: none): any but the default's (heap), and a partition's always, since it
 * would take its parent's (Postgres 17). Base, replay and patch make tables with it alike.
 */
export function usingClause(method: string | null | undefined, partition: boolean): string {
  return method && (method !== 'heap' || partition) ? ` USING ${quoteIdent(method)}` : '';
}

/**
 * The statement that gives a table (or materialized view) the captured access method where it has
 * another (ALTER … SET ACCESS METHOD, Postgres 15 and later; before, one keeps the method it was made with).
 * '' takes a partitioned table's away (SET ACCESS METHOD DEFAULT, Postgres 17: before, none has one).
 */
export function accessMethodFollow(target: string, method: string, kind: 'table' | 'materialized view' = 'table'): string {
  if (method === '')
    return doBlock(
      `if (select c.relam from pg_catalog.pg_class c where c.oid = ${quoteLiteral(target)}::regclass) <> 0 then execute ${quoteLiteral(`alter ${kind} ${target} set access method default`)}; end if;`,
    );
  return doBlock(
    `if (select am.amname from pg_catalog.pg_class c join pg_catalog.pg_am am on am.oid = c.relam where c.oid = ${quoteLiteral(target)}::regclass) is distinct from ${quoteLiteral(method)} then execute ${quoteLiteral(`alter ${kind} ${target} set access method ${quoteIdent(method)}`)}; end if;`,
  );
}

/**
 * SQL: the object `oid` of catalog `catalog` (SQL expressions) takes, returns or is made of a type of
 * a session's temporary schema. Postgres drops such an object with the session ("effectively
 * temporary"): no part of the database, and no replay has the session's schema to make it in.
 */
export function onTemporaryType(catalog: string, oid: string): string {
  return `exists (select 1 from pg_depend t join pg_type ty on ty.oid = t.refobjid join pg_namespace tn on tn.oid = ty.typnamespace
                   where t.classid = ${catalog} and t.objid = ${oid} and t.refclassid = 'pg_type'::regclass
                     and tn.nspname ~ '^pg_(toast_)?temp_')`;
}

/** The (quoted) name of the index a CREATE INDEX statement makes, as pg_get_indexdef writes it. */
export function indexNameOf(def: string): string | undefined {
  return /^CREATE (?:UNIQUE )?INDEX ((?:"(?:[^"]|"")+")|\S+) ON /.exec(def)?.[1];
}

/**
 * An index definition's storage parameters as pg_get_indexdef writes them (` WITH (fillfactor='40')`),
 * its quoted values kept whole: one pattern, read alike by JavaScript and Postgres' regular expressions.
 */
const INDEX_OPTIONS = " WITH \\((?:[^()']|'(?:[^']|'')*')*\\)";
const INDEX_OPTIONS_PATTERN = new RegExp(INDEX_OPTIONS);

/**
 * The statement that gives an index of the captured definition `def` (in `schema`) its storage
 * parameters, where one of that name differs from it in nothing else (ALTER INDEX … SET and RESET
 * change only them; CREATE INDEX IF NOT EXISTS leaves an index there as it was). Undefined when
 * the definition names no index.
 */
export function indexOptionsFollow(schema: string, def: string): string | undefined {
  const name = indexNameOf(def);
  if (!name) return undefined;
  const target = `${quoteIdent(schema)}.${name}`;
  const options = INDEX_OPTIONS_PATTERN.exec(def)?.[0];
  const set = options ? `execute ${quoteLiteral(`alter index ${target} set ${options.slice(' WITH '.length)}`)};` : '';
  // Names written as the capture writes them (search_path pg_catalog: every other schema's qualified).
  return doBlock(`declare idx regclass := to_regclass(${quoteLiteral(target)}); have text; opts text[]; path text := current_setting('search_path');
begin
  -- An index of its own only: a partitioned one takes no SET (its partitions' do), and a table
  -- or view of that name is none.
  if idx is null or (select c.relkind from pg_class c where c.oid = idx) <> 'i' then return; end if;
  perform set_config('search_path', 'pg_catalog', true);
  have := pg_get_indexdef(idx);
  perform set_config('search_path', path, true);
  if have is null or have = ${quoteLiteral(def)} or regexp_replace(have, ${quoteLiteral(INDEX_OPTIONS)}, '') <> ${quoteLiteral(def.replace(INDEX_OPTIONS_PATTERN, ''))} then return; end if;
  select c.reloptions into opts from pg_class c where c.oid = idx;
  if opts is not null then
    execute format('alter index %s reset (%s)', ${quoteLiteral(target)}, (select string_agg(quote_ident(split_part(o, '=', 1)), ', ') from unnest(opts) o));
  end if;
  ${set}
end`);
}

/** `{value}` (attmissingval as text, one element) to the element's text. */
export function missingValue(arrayText: string): string | null {
  const inner = arrayText.slice(1, -1);
  if (inner === 'NULL') return null;
  if (!inner.startsWith('"')) return inner;
  return inner.slice(1, -1).replace(/\\(.)/g, '$1');
}

/**
 * A captured view's column defaults, set as the source has them and dropped where it has none
 * (CREATE OR REPLACE VIEW keeps a column's default; ALTER VIEW … DROP DEFAULT is captured as the
 * view). `onlySet`: only the defaults it has, where nothing was dropped (diff's patch, read by people).
 */
export function viewDefaults(o: CapturedObject, onlySet = false): string[] {
  const columns = (o.viewColumns ?? []).filter((c) => !onlySet || c.default !== undefined);
  if (!columns.length) return [];
  const each = columns.map(
    (c) => `alter column ${quoteIdent(c.name)} ${c.default === undefined ? 'drop default' : `set default ${c.default}`}`,
  );
  return [`alter view ${o.identity} ${each.join(', ')}`];
}

/**
 * A table's storage options brought to the captured ones (`name=value`, `toast.name=value`): those
 * it has and should not reset, the others set; nothing done where they are the same already.
 * `target` is the table's name, quoted.
 */
/**
 * A table's storage options as rows `o` (`name=value`, its TOAST table's `toast.name=value`), for a
 * query over its pg_class row `c`: written once for the capture, which records them, and the
 * statement that brings a table to them, which must read them alike.
 */
export const STORAGE_OPTIONS = `(select unnest(c.reloptions) as o union all select 'toast.' || unnest(t.reloptions) from pg_class t where t.oid = c.reltoastrelid)`;

/**
 * Links a table to the composite type a snapshot names (CREATE TABLE … OF, ALTER TABLE … OF), or
 * unlinks it (`''`: NOT OF), where it is not so already. Run after the rows: the link forbids
 * the column changes made on the way.
 */
export function typedTableLink(target: string, ofType: string): string {
  const lit = quoteLiteral(target);
  const now = `(select reloftype from pg_class where oid = ${lit}::regclass)`;
  return ofType
    ? doBlock(
        `if ${now} is distinct from to_regtype(${quoteLiteral(ofType)})::oid then execute ${quoteLiteral(`alter table only ${target} of ${ofType}`)}; end if;`,
      )
    : doBlock(`if ${now} <> 0 then execute ${quoteLiteral(`alter table only ${target} not of`)}; end if;`);
}

/**
 * Attaches a partition's indexes to its parent's as a snapshot records them (`indexParents`),
 * where both exist, the table is still a partition of the parent index's table, and it is not so
 * already; none when there are none. The parent index is made from its snapshot as the source's
 * definition says (`ON ONLY`), and becomes valid, as the source's is, once every partition's index
 * is attached. `schema` is the partition's: its indexes live there. A partition detached since
 * keeps its last snapshot (DETACH snapshots the parent), hence the check on the tables.
 */
export function indexAttachments(schema: string, parents: Record<string, string> | undefined): string[] {
  return Object.entries(parents ?? {}).map(([index, parent]) => {
    const child = `${quoteIdent(schema)}.${index}`;
    const [c, p] = [quoteLiteral(child), quoteLiteral(parent)];
    return doBlock(
      `if exists (select 1 from pg_index ci join pg_index pi on pi.indexrelid = to_regclass(${p})
                   join pg_inherits t on t.inhrelid = ci.indrelid and t.inhparent = pi.indrelid
                  where ci.indexrelid = to_regclass(${c}))
      and not exists (select 1 from pg_inherits where inhrelid = to_regclass(${c}) and inhparent = to_regclass(${p})) then
    execute ${quoteLiteral(`alter index ${parent} attach partition ${child}`)};
  end if;`,
    );
  });
}

/** A captured shape's `inheritedKeys` (clone's name: parent key's name) as inheritedKeyNames takes them, on `table`. */
export function inheritedKeysOn(
  table: string,
  names: Record<string, string> | undefined,
): { table: string; name: string; parent: string }[] {
  return Object.entries(names ?? {}).map(([name, parent]) => ({ table, name, parent }));
}

/**
 * A partition's foreign keys that are clones of its parent's, renamed to their names on the source
 * (each by its parent's key's name, `keys`: table, name, parent's name). A clone takes its parent's
 * name where it is free, but a partition's own key that its parent's met when it was attached
 * (or made on the parent later) keeps its own. Renamed in passes: a partition's clone is found
 * under its parent's key only once that one has its source name, and a name another clone holds
 * still is taken once that one has moved on (two clones that swapped names keep the replay's).
 */
export function inheritedKeyNames(keys: { table: string; name: string; parent: string }[]): string | undefined {
  if (!keys.length) return undefined;
  const rows = keys.map((k) => `(${quoteLiteral(k.table)}, ${quoteLiteral(k.name)}, ${quoteLiteral(k.parent)})`).join(', ');
  return doBlock(`declare r record; n name; renamed boolean := true; passes int := 0;
begin
  while renamed and passes <= ${keys.length} loop
    renamed := false;
    passes := passes + 1;
    for r in select * from (values ${rows}) v(tbl, wanted, parent_key) loop
      select k.conname into n from pg_catalog.pg_constraint k join pg_catalog.pg_constraint p on p.oid = k.conparentid
       where k.conrelid = pg_catalog.to_regclass(r.tbl) and k.contype = 'f' and p.conrelid <> k.conrelid and p.conname = r.parent_key and k.conname <> r.wanted
       limit 1;
      if found then
        -- The name may be another clone's still, one renamed later in the pass: tried again in the next.
        begin
          execute pg_catalog.format('alter table %s rename constraint %I to %I', r.tbl, n, r.wanted);
          renamed := true;
        exception when duplicate_object then null;
        end;
      end if;
    end loop;
  end loop;
end`);
}

export function storageOptions(target: string, options: string[]): string {
  const lit = quoteLiteral(target);
  const want = options.length ? `array[${options.map(quoteLiteral).join(', ')}]::text[]` : `'{}'::text[]`;
  return doBlock(`declare want text[] := ${want}; have text[]; gone text;
begin
  select coalesce(array_agg(x.o order by x.o), '{}') into have from pg_class c, lateral ${STORAGE_OPTIONS} x where c.oid = ${lit}::regclass;
  if have = (select coalesce(array_agg(o order by o), '{}') from unnest(want) o) then return; end if;
  gone := (select string_agg(n, ', ') from (select split_part(o, '=', 1) as n from unnest(have) o except select split_part(o, '=', 1) from unnest(want) o) x);
  if gone is not null then execute format('alter table %s reset (%s)', ${lit}, gone); end if;
  if cardinality(want) > 0 then
    execute format('alter table %s set (%s)', ${lit}, (select string_agg(split_part(o, '=', 1) || '=' || quote_literal(substr(o, strpos(o, '=') + 1)), ', ') from unnest(want) o));
  end if;
end`);
}

export const isForeignKey = (def: string) => def.startsWith('FOREIGN KEY');

/** A captured column's clauses when its table is created: generated, identity, not null, a constant default. */
export function columnClauses(c: TableSnapshot['columns'][number], constantDefault: string | undefined): string {
  // COLLATE goes first: it belongs to the type.
  const collate = c.collation ? collateClause(c.collation) : '';
  if (c.generated) return `${collate}${generatedClause(c)}${c.notNull ? ' not null' : ''}`;
  const identity = c.identity ? identityClause(c.identity, c.identitySequence) : '';
  return `${collate}${identity}${c.notNull ? ' not null' : ''}${!identity && constantDefault ? ` default ${constantDefault}` : ''}`;
}

/** A generated column's clause: stored, or virtual (Postgres 18) where the source's is. */
export function generatedClause(c: { generated?: string | null; virtual?: boolean }): string {
  return ` generated always as (${c.generated}) ${c.virtual ? 'virtual' : 'stored'}`;
}

/**
 * A partition's generated columns, as CREATE TABLE … PARTITION OF takes them (`(c WITH OPTIONS
 * GENERATED ALWAYS AS …)`): from Postgres 16 a partition may compute a column its own way, and
 * writing the parent's expression again is allowed; before 16 it may not, and must not be written.
 */
export function partitionColumns(s: TableSnapshot, serverVersion: number): string {
  const own = serverVersion >= 160000 ? s.columns.filter((c) => c.generated) : [];
  return own.length ? ` (${own.map((c) => `${quoteIdent(c.name)} with options${generatedClause(c)}`).join(', ')})` : '';
}

/**
 * An identity column's sequence in the catalog, for a subquery of a query over pg_attribute `a`:
 * `s` its pg_sequence row, `sc` its pg_class row, `sn` its schema. Written once for the base's
 * catalog read and the source's DDL capture, which must agree on which sequence that is.
 */
export const IDENTITY_SEQUENCE_FROM = `from pg_depend dp join pg_class sc on sc.oid = dp.objid join pg_namespace sn on sn.oid = sc.relnamespace
                join pg_sequence s on s.seqrelid = sc.oid
               where dp.classid = 'pg_class'::regclass and dp.refobjid = a.attrelid and dp.refobjsubid = a.attnum and dp.deptype = 'i'`;

/** When an identity column takes its own value, from pg_attribute.attidentity: `a` always, `d` by default. */
export const identityWhen = (identity: string): string => (identity === 'a' ? 'always' : 'by default');

/** An identity column's clause (`identity` as pg_attribute.attidentity says), with its sequence's options when known. */
export function identityClause(identity: string, sequence?: IdentitySequence | null): string {
  return ` generated ${identityWhen(identity)} as identity${sequence ? ` (${identityOptions(sequence).join(' ')})` : ''}`;
}

/** An identity sequence's options, each as ALTER SEQUENCE (and `SET …` of ALTER COLUMN) writes it. */
export function identityOptions(s: IdentitySequence): string[] {
  return [
    `start with ${s.start}`,
    `increment by ${s.increment}`,
    `minvalue ${s.min}`,
    `maxvalue ${s.max}`,
    `cache ${s.cache}`,
    s.cycle ? 'cycle' : 'no cycle',
  ];
}

/** Snapshots of one command with each partition or child after its parents: a parent's DDL reaches them first. */
export function parentsFirst(snapshots: TableSnapshot[]): TableSnapshot[] {
  // `parent` is written as quote_ident writes names (a keyword quoted).
  const byName = new Map(snapshots.map((s) => [quoteQualified(s.schema, s.name), s]));
  const depth = (s: TableSnapshot, seen = 0): number => {
    const parents = [s.parent, ...(s.inherits ?? [])].flatMap((p) => (p && byName.get(nameKey(p))) || []);
    return seen < 32 ? Math.max(0, ...parents.map((p) => 1 + depth(p, seen + 1))) : 0;
  };
  return [...snapshots].sort((a, b) => depth(a) - depth(b));
}

/** The sequence's name as its CREATE statement writes it (regclass text: qualified and quoted). */
export function sequenceName(o: CapturedObject): string {
  return /^create sequence (.+?) as /.exec(o.create)?.[1] ?? o.identity;
}

/** The statements that make an extension captured DDL recorded, or bring one there to its version. */
export function extensionStatements(o: CapturedObject): string[] {
  return [o.create, ...(o.version ? [`alter extension ${o.identity} update to ${quoteLiteral(o.version)}`] : [])];
}

/**
 * Sequences' recorded values (`schema.name` → value, as pgtape.sequence_values() keys them) under
 * the names a command left: a sequence it renamed or moved keeps its value under its new name.
 * The same object when the command renamed none of them.
 */
export function valuesAfterRenames(values: Record<string, string>, captured: CapturedDdl): Record<string, string> {
  const renamed = (captured.objects ?? []).filter((o) => o.kind === 'sequence' && o.renamed && o.renamed.from in values);
  const schemas = captured.renamedSchemas ?? [];
  if (!renamed.length && !schemas.length) return values;
  const after = { ...values };
  for (const o of renamed) {
    after[o.identity] = after[o.renamed!.from]!;
    delete after[o.renamed!.from];
  }
  for (const r of schemas)
    for (const key of Object.keys(after)) {
      const moved = inRenamedSchema(key, r);
      if (moved === undefined) continue;
      after[moved] = after[key]!;
      delete after[key];
    }
  return after;
}

/**
 * `schema.name` (as Postgres writes identities) in the schema as renamed, or the schema itself
 * renamed; undefined when neither. Names compare by nameKey: one side may be pgtape's writing.
 */
export function inRenamedSchema(identity: string, r: { from: string; identity: string }): string | undefined {
  const schema = nameKey(r.from);
  if (nameKey(identity) === schema) return r.identity;
  const dot = outsideQuotes(identity, '.')[0];
  return dot !== undefined && nameKey(identity.slice(0, dot)) === schema ? r.identity + identity.slice(dot) : undefined;
}

/**
 * What an object kept for the end (a comment's, a trigger's) is called once a schema is renamed:
 * the schema itself, an object in it, or what hangs on a table in it (`name on schema.table`);
 * undefined when none of these. An unqualified identity other than a schema's (an extension's)
 * is never the schema, whatever its name.
 */
export function identityInRenamedSchema(kind: string, identity: string, r: { from: string; identity: string }): string | undefined {
  const on = outsideQuotes(identity, ' on ').at(-1);
  if (on !== undefined) {
    const table = inRenamedSchema(identity.slice(on + 4), r);
    return table === undefined ? undefined : `${identity.slice(0, on)} on ${table}`;
  }
  if (kind !== 'schema' && outsideQuotes(identity, '.').length === 0) return undefined;
  return inRenamedSchema(identity, r);
}

/** Comments kept for the end on an object renamed or moved (identities as Postgres or pgtape wrote them) follow it. */
export function commentsOnRenamed(comments: { identity: string }[], from: string, to: string): void {
  const key = nameKey(from);
  for (const c of comments) if (nameKey(c.identity) === key) c.identity = to;
}

/**
 * What a trigger or a comment kept for the end is on, once the table it is on (or is) was renamed
 * or moved: its identity under the table's new name, or undefined when it is not on that table.
 * Identities as Postgres writes them (`schema.table`, `name on schema.table`,
 * `schema.table.column`); `from` and `to` as Postgres or pgtape writes them (compared by nameKey).
 */
export function onMovedTable(o: { kind: string; identity: string }, from: string, to: string): string | undefined {
  const table = nameKey(from);
  if (nameKey(o.identity) === table) return to;
  const on = outsideQuotes(o.identity, ' on ').at(-1);
  if (on !== undefined && nameKey(o.identity.slice(on + 4)) === table) return `${o.identity.slice(0, on)} on ${to}`;
  const dot = outsideQuotes(o.identity, '.')[1];
  if (o.kind === 'table column' && dot !== undefined && nameKey(o.identity.slice(0, dot)) === table) return to + o.identity.slice(dot);
  return undefined;
}

/**
 * Triggers kept to be made at the end (identity → statement), the last made last, keyed by
 * nameKey: a table's move, written by pgtape or by another server, finds the triggers on it.
 */
export class KeptTriggers {
  private readonly byKey = new Map<string, { identity: string; create: string }>();

  set(identity: string, create: string): void {
    const key = nameKey(identity);
    this.byKey.delete(key);
    this.byKey.set(key, { identity, create });
  }

  delete(identity: string): void {
    this.byKey.delete(nameKey(identity));
  }

  /** Those on a table renamed or moved put on its new name (`to` must be SQL: quoted where a keyword is). */
  moved(from: string, to: string): void {
    for (const { identity, create } of [...this.byKey.values()]) {
      const moved = onMovedTable({ kind: 'trigger', identity }, from, to);
      if (!moved) continue;
      this.delete(identity);
      this.set(moved, triggerOnMovedTable(create, from, to));
    }
  }

  /**
   * A function renamed or moved (`schema.name(args)`, as pg_identify_object writes it): the
   * triggers that call it call it under its new name (their statement named it as it was then).
   */
  functionRenamed(from: string, to: string): void {
    // A trigger's function takes no arguments: another of the name that does is another function.
    if (!from.endsWith('()')) return;
    const [was, now] = [from.slice(0, outsideQuotes(from, '(')[0]), to.slice(0, outsideQuotes(to, '(')[0])];
    this.rewriteFunctions((name) => (nameKey(name) === nameKey(was) ? now : undefined));
  }

  /** A schema renamed: the triggers on its tables are on them there, and those calling a function in it call it there. */
  schemaRenamed(from: string, to: string): void {
    for (const { identity, create } of [...this.byKey.values()]) {
      const on = outsideQuotes(identity, ' on ').at(-1);
      const table = on === undefined ? undefined : identity.slice(on + 4);
      const now = table === undefined ? undefined : inRenamedSchema(table, { from, identity: to });
      if (now === undefined) continue;
      this.delete(identity);
      this.set(`${identity.slice(0, on)} on ${now}`, triggerOnMovedTable(create, table!, now));
    }
    this.rewriteFunctions((name) => identityInRenamedSchema('function', name, { from, identity: to }));
  }

  private rewriteFunctions(renamed: (name: string) => string | undefined): void {
    for (const kept of this.byKey.values()) kept.create = callingRenamed(kept.create, renamed);
  }

  [Symbol.iterator](): IterableIterator<{ identity: string; create: string }> {
    return this.byKey.values();
  }
}

/** A name as Postgres writes one in a statement: `schema.name` or `name`, each part quoted or bare. */
const QUALIFIED_NAME = /(?:"(?:[^"]|"")*"|[^\s."(),]+)(?:\.(?:"(?:[^"]|"")*"|[^\s."(),]+))?/y;

/**
 * `statement` with the name right after the first `keyword` (outside quoted identifiers and
 * string literals) that `renamed` renames put under its new name; unchanged when none is.
 */
function renamedAfter(statement: string, keyword: string, renamed: (name: string) => string | undefined): string {
  for (const at of outsideQuotes(statement, keyword, true)) {
    QUALIFIED_NAME.lastIndex = at + keyword.length;
    const m = QUALIFIED_NAME.exec(statement);
    const now = m ? renamed(m[0]) : undefined;
    if (now !== undefined) return statement.slice(0, m!.index) + now + statement.slice(QUALIFIED_NAME.lastIndex);
  }
  return statement;
}

/** A trigger's statement (pg_get_triggerdef) with the function it executes named as `renamed` says. */
function callingRenamed(create: string, renamed: (name: string) => string | undefined): string {
  return renamedAfter(create, ' EXECUTE FUNCTION ', renamed);
}

/** A trigger's statement (pg_get_triggerdef) on the table's new name (`from` as Postgres or pgtape writes it). */
function triggerOnMovedTable(create: string, from: string, to: string): string {
  const table = nameKey(from);
  return renamedAfter(create, ' ON ', (name) => (nameKey(name) === table ? to : undefined));
}

/**
 * A foreign key's definition (pg_get_constraintdef: `FOREIGN KEY (…) REFERENCES schema.table(…)`)
 * once the table it references is renamed or moved, or its schema renamed (`r.from` a schema's
 * name then): made at the end from the statement captured earlier, it must name the table as it
 * is called by then, not a table that took its former name since.
 */
export function referencingRenamed(def: string, r: { from: string; to: string; schema?: boolean }): string {
  const from = nameKey(r.from);
  return renamedAfter(def, ' REFERENCES ', (name) =>
    r.schema ? identityInRenamedSchema('table', name, { from: r.from, identity: r.to }) : nameKey(name) === from ? r.to : undefined,
  );
}

/**
 * An index's definition (pg_get_indexdef) once a collation or an operator class it names is
 * renamed or moved: made at the end from the statement captured earlier, it must name it as it is
 * called by then. `after`: what stands before the name (a collation's ` COLLATE `; a class's
 * name follows its column after a space).
 */
export function renamedInIndex(def: string, from: string, to: string, after: string): string {
  const key = nameKey(from);
  for (let now = def; ;) {
    const next = renamedAfter(now, after, (name) => (nameKey(name) === key ? to : undefined));
    if (next === now) return now;
    now = next;
  }
}

/** ALTER TABLE's words for a trigger's state, by pg_trigger.tgenabled. */
const TRIGGER_STATE: Record<string, string> = {
  O: 'enable trigger',
  D: 'disable trigger',
  R: 'enable replica trigger',
  A: 'enable always trigger',
};

/**
 * The statement that gives a trigger its state. Not ONLY: on a partitioned table it reaches the
 * clones on its partitions, whose own state, where it differs, is set after it.
 */
export function triggerStateStatement(table: string, name: string, enabled: string): string | undefined {
  const state = TRIGGER_STATE[enabled];
  return state && `alter table ${table} ${state} ${quoteIdent(name)}`;
}

/**
 * The states the source last gave triggers after the base: ENABLE/DISABLE TRIGGER is an ALTER
 * TABLE, recorded with the table's shape; a trigger made, replaced or renamed carries its own.
 * Set once the triggers are made, by the replay and by diff's patch alike.
 */
export class TriggerStates {
  /** By table (source oid), each trigger's state by name. */
  private readonly byTable = new Map<number, Map<string, string>>();

  /** A table's shape: every trigger it had then (none in archives from before states were captured). */
  shaped(s: TableSnapshot): void {
    if (s.triggers) this.byTable.set(s.oid, new Map(Object.entries(s.triggers)));
  }

  /** A trigger made, replaced or renamed, with its clones (what an earlier one of the name on a partition had is no more). */
  object(o: CapturedObject): void {
    if (!o.trigger) return;
    const { table, name, enabled, clones } = o.trigger;
    this.set(table, name, enabled);
    for (const [partition, state] of Object.entries(clones ?? {})) this.set(Number(partition), name, state);
  }

  private set(table: number, name: string, enabled: string): void {
    const states = this.byTable.get(table) ?? new Map<string, string>();
    this.byTable.set(table, states.set(name, enabled));
  }

  /**
   * One DO block that sets each state on the trigger where the database has it (one dropped or
   * renamed since is not there), parents before their partitions; tables by their names at the
   * end (`nameOf`, undefined for one not there). `quieting`: only the states in which a trigger
   * does not fire for an ordinary session's rows (disabled, replica), for diff's patch to set
   * before its rows (a trigger the range enabled must not fire for them).
   */
  statement(nameOf: (oid: number) => string | undefined, quieting = false): string | undefined {
    const wanted: { tbl: string; name: string; sql: string }[] = [];
    for (const [oid, states] of this.byTable) {
      const tbl = nameOf(oid);
      if (!tbl) continue;
      for (const [name, enabled] of states) {
        if (quieting && enabled !== 'D' && enabled !== 'R') continue;
        const sql = triggerStateStatement(tbl, name, enabled);
        if (sql) wanted.push({ tbl, name, sql });
      }
    }
    if (!wanted.length) return undefined;
    return doBlock(`declare w record;
begin
  for w in select x.sql from jsonb_to_recordset(${quoteLiteral(JSON.stringify(wanted))}::jsonb) as x(tbl text, name text, sql text)
             join pg_trigger t on t.tgrelid = to_regclass(x.tbl) and t.tgname = x.name and not t.tgisinternal
            order by (select count(*) from pg_partition_ancestors(t.tgrelid)), x.tbl, x.name loop
    execute w.sql;
  end loop;
end`);
  }
}
