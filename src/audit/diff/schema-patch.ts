import { doBlock, nameKey, quoteIdent, quoteLiteral, quoteQualified, unquoteIdent } from '../../core/sql.js';
import { commentStatement } from '../../base/ddl/post-data.js';
import { isConstant } from '../../base/published-schema.js';
import {
  TYPE_CREATE_SQL,
  type CapturedDdl,
  type CapturedObject,
  type RenamedObject,
  type TableSnapshot,
  type TypeSnapshot,
} from '../../source/ddl-capture.js';
import {
  addColumn,
  addMissingConstraint,
  alterDomain,
  constrain,
  detachFrom,
  detachOthers,
  enumLabels,
  generationExpression,
  renameObject,
  renameType,
  partitionOf,
  retype,
  unconstrain,
  collationChange,
  typeNamed,
} from './catalog-checks.js';
import { collateClause, columnSettingStatements } from '../../source/deparse.js';
import {
  columnClauses,
  dropStatement,
  extensionStatements,
  generatedClause,
  identityClause,
  identityOptions,
  identityWhen,
  inDropOrder,
  indexAttachments,
  commentsOnRenamed,
  identityInRenamedSchema,
  inRenamedSchema,
  KeptTriggers,
  isForeignKey,
  missingValue,
  onMovedTable,
  referencingRenamed,
  inheritedKeyNames,
  inheritedKeysOn,
  parentsFirst,
  partitionColumns,
  storageOptions,
  accessMethodFollow,
  usingClause,
  replicaIdentityFollow,
  typedTableLink,
  sequenceName,
  TriggerStates,
  madeWhereMissing,
  renamedInIndex,
  viewDefaults,
} from '../../source/ddl-statements.js';

/** A statement as the patch writes it: ended by `;` (a DO block from doBlock has its own). */
const terminated = (sql: string) => (sql.endsWith(';') ? sql : `${sql};`);

// The schema changes of a diff's range as SQL for its patch (docs/ARCHITECTURE.md, "Schema
// changes"): what the replay does against its target, written as statements that check the
// database they run in (DO blocks over the catalog), since the patch is applied to a database
// diff never sees. Ordered so that the rows fit: what rows need (schemas, types, tables,
// columns) and what no longer holds them back (drops, relaxed NOT NULL) before them; what
// constrains them (NOT NULL, checks, keys, indexes, foreign keys), triggers, refreshes,
// comments and sequence values after them, from each table's last captured shape.
// Over 400 lines for a reason: one writer follows every rename of the range (tables, schemas,
// types, triggers, comments, foreign keys) in step; split, each rename would be followed twice.

/** Captured DDL of the range, in commit order, without the rows of rewritten tables. */
export interface CapturedChange {
  lsn: string;
  captured: CapturedDdl;
}

export interface SchemaPatch {
  /** Run before the patch's transaction: a label is usable only once the transaction that added it committed. */
  labels: string[];
  /** In the transaction, before the rows. */
  before: string[];
  /** In the transaction, after the rows. */
  after: string[];
  /** Source OIDs of the tables whose shape these statements bring (the rows' reshape leaves them alone). */
  shaped: Set<number>;
  /** Source OIDs of tables dropped by the end of the range: no rows to write. */
  gone: Set<number>;
  /** What the statements leave out, for the patch's comments. */
  unfollowed: string[];
  /** Types the range renamed (and their array types), by source oid: their names at --to. */
  typeNames: Map<number, string>;
  /** Schemas the range renamed, in order: the types in them are named so at --to. */
  schemaNames: { from: string; to: string }[];
  /** Tables' names at --to where the range's captured DDL gave them, by source oid (a table renamed without rows written since keeps its old name in the log). */
  tableNames: Map<number, Name>;
}

type Name = { schema: string; name: string };

/**
 * The statements that bring the schema from --from to --to. `namesAtFrom` names tables as they
 * were at --from (by source OID), so renames can be followed; `sequences` are the values last
 * recorded in the range.
 */
export function schemaPatch(
  changes: CapturedChange[],
  namesAtFrom: Map<number, Name>,
  sequences?: Record<string, string>,
  /** Tables' column names by number at --from, where known: a rename by the range's first shape of a table is followed too. */
  columnsAtFrom: Map<number, Map<number, string>> = new Map(),
): SchemaPatch {
  const p = new PatchWriter(namesAtFrom, columnsAtFrom);
  for (const c of changes) p.change(c.captured);
  return p.finish(sequences);
}

class PatchWriter {
  /** Statements, or what makes one once the whole range is known. */
  private readonly before: (string | (() => string))[] = [];
  private readonly names: Map<number, Name>;
  private readonly shaped = new Set<number>();
  private readonly gone = new Set<number>();
  private readonly unfollowed: string[] = [];
  /** Each table's last captured shape: what constrains its rows is made from it, after them. */
  private readonly last = new Map<number, TableSnapshot>();
  /** Column names by number, from an earlier shape in the range (or at --from): how a rename is told from a drop and an add. */
  private readonly attnums: Map<number, Map<number, string>>;
  /**
   * Enums the range changed, by source oid (a name may pass from one type to another): the name
   * each had at --from (none when made in the range), and each list of labels it had, in order.
   */
  private readonly enums = new Map<number, { from?: string; labels: string[][] }>();
  /** Types the range renamed, by source oid (and their array types' oids): their names at --to. */
  private readonly typeNames = new Map<number, string>();
  /** Schemas the range renamed, in order. */
  private readonly schemaNames: { from: string; to: string }[] = [];
  /** Tables' names as the range's captured DDL left them, by source oid (names at --from may be older than the log's). */
  private readonly atTo = new Map<number, Name>();
  private readonly triggers = new KeptTriggers();
  private readonly triggerStates = new TriggerStates();
  private readonly refreshes = new Map<string, boolean>();
  /** Comments, in order, on what their object is called by the end of the range. */
  private comments: { kind: string; identity: string; comment?: string | null }[] = [];
  /** Each table's access method as its last shape in the range said. */
  private readonly accessMethods = new Map<number, string>();

  constructor(namesAtFrom: Map<number, Name>, columnsAtFrom: Map<number, Map<number, string>>) {
    this.names = new Map(namesAtFrom);
    this.attnums = new Map(columnsAtFrom);
  }

  change(c: CapturedDdl): void {
    const out = this.before;
    for (const d of c.dropped ?? []) {
      // Named as it was when dropped, which is where the patch has brought it by then (the log's
      // name for it may be another table's since: a swap's new table, say).
      out.push(`drop table if exists ${quoteQualified(d.schema, d.name)} cascade;`);
      this.names.delete(d.oid);
      this.last.delete(d.oid);
      this.gone.add(d.oid);
    }
    for (const o of inDropOrder(c.droppedObjects ?? [])) {
      const sql = dropStatement(o);
      if (sql) out.push(terminated(sql));
      if (o.type === 'trigger') this.triggers.delete(o.identity);
      if (o.type === 'materialized view') this.refreshes.delete(o.identity);
      this.dropComments(o);
    }
    for (const r of c.renamedSchemas ?? []) this.renamedSchema(r);
    for (const schema of c.schemas ?? []) out.push(`create schema if not exists ${schema};`);
    for (const t of c.types ?? []) this.type(t, c.tag, c.tables ?? []);
    const objects = c.objects ?? [];
    for (const o of objects) if (o.renamed) this.renamed(o);
    for (const o of objects) if (o.kind === 'extension') out.push(...extensionStatements(o).map((x) => `${x};`));
    for (const o of objects) if (o.kind === 'collation') out.push(`${o.create};`);
    const made = (kind: string) => {
      for (const o of objects) if (o.kind === kind) out.push(...madeWhereMissing(o).map(terminated));
    };
    made('access method');
    made('text search dictionary');
    made('text search configuration');
    for (const o of objects) if (o.kind === 'sequence') this.sequence(o);
    for (const o of objects) if (o.kind === 'function' || o.kind === 'procedure') out.push(`${o.create};`);
    for (const o of objects) if (o.kind === 'aggregate') out.push(`${o.create};`);
    for (const kind of ['operator', 'operator family', 'operator class', 'cast', 'conversion']) made(kind);
    for (const s of parentsFirst(c.tables ?? [])) this.table(s, c.rewritten?.includes(s.oid) ?? false);
    for (const o of objects) this.afterTables(o, c.tag);
    for (const k of c.comments ?? []) this.comments.push({ ...k });
    for (const u of c.unfollowed ?? []) this.unfollowed.push(`${u.kind} ${u.identity} (${c.tag})`);
    for (const u of c.unknown ?? []) this.unfollowed.push(`the rows of ${quoteQualified(u.schema, u.name)}: ${u.why}`);
  }

  /** Comments said so far on an object the range dropped after (and on a dropped relation's columns): nothing to say them on at --to. */
  private dropComments(o: { type: string; identity: string }): void {
    const columns = `${o.identity}.`;
    this.comments = this.comments.filter(
      (k) => !(k.kind === o.type && k.identity === o.identity) && !(k.kind.endsWith(' column') && k.identity.startsWith(columns)),
    );
  }

  finish(sequences: Record<string, string> | undefined): SchemaPatch {
    const after: string[] = [];
    const foreignKeys: string[] = [];
    // After every table's indexes: a partition's is attached to its parent's, made by the parent's shape.
    const attachments: string[] = [];
    for (const [oid, s] of this.last) {
      if (!this.names.has(oid)) continue;
      after.push(...constrain(s));
      const target = quoteQualified(s.schema, s.name);
      for (const k of (s.constraints ?? []).filter((k) => isForeignKey(k.def)))
        foreignKeys.push(addMissingConstraint(target, k.name, k.def));
      if (s.ofType !== undefined) after.push(typedTableLink(target, s.ofType));
      attachments.push(...indexAttachments(s.schema, s.indexParents));
    }
    after.push(...attachments);
    after.push(...foreignKeys);
    const inherited = [...this.last]
      .filter(([oid]) => this.names.has(oid))
      .flatMap(([, s]) => inheritedKeysOn(quoteQualified(s.schema, s.name), s.inheritedKeys));
    const renames = inheritedKeyNames(inherited);
    if (renames) after.push(renames);
    for (const { identity, create } of this.triggers) after.push(`drop trigger if exists ${identity};`, `${create};`);
    const nameOf = (oid: number) => {
      const n = this.names.get(oid);
      return n && quoteQualified(n.schema, n.name);
    };
    const states = this.triggerStates.statement(nameOf);
    if (states) after.push(states);
    // Before the rows, those that keep a trigger of --from from firing for them (one the range enabled fires only after).
    const quieted = this.triggerStates.statement(nameOf, true);
    for (const [identity, populated] of this.refreshes) if (populated) after.push(`refresh materialized view ${identity};`);
    for (const k of this.comments) {
      const sql = commentStatement(k.kind, k.identity, k.comment);
      if (sql) after.push(`${sql};`);
    }
    // By to_regclass: a name recorded before its sequence moved with its table (ALTER TABLE SET
    // SCHEMA) names nothing now, and a literal cast to regclass fails the statement as it is parsed.
    for (const [name, value] of Object.entries(sequences ?? {}))
      after.push(`select setval(s, ${quoteLiteral(value)}::bigint, true) from to_regclass(${quoteLiteral(name)}) s where s is not null;`);
    // Each list in turn, to the type under its name at --from (a rename in the range comes later, in the transaction).
    const labels = [...this.enums.values()].flatMap((e) => (e.from ? e.labels.map((l) => enumLabels(l, e.from!)) : []));
    const before = [...this.before.map((x) => (typeof x === 'string' ? x : x())), ...(quieted ? [quieted] : [])];
    return {
      labels,
      before,
      after,
      shaped: this.shaped,
      gone: this.gone,
      unfollowed: this.unfollowed,
      typeNames: this.typeNames,
      schemaNames: this.schemaNames,
      tableNames: this.atTo,
    };
  }

  private type(t: TypeSnapshot, tag: string, tables: TableSnapshot[]): void {
    const name = quoteQualified(t.schema, t.name);
    if (t.was) {
      this.before.push(renameType(t, t.was));
      this.typeNames.set(t.oid, name);
      if (t.arrayOid) this.typeNames.set(t.arrayOid, `${name}[]`);
    }
    if (t.kind === 'e' && t.labels) {
      let e = this.enums.get(t.oid);
      if (!e) {
        const was = t.was ?? t;
        // In its schema as named at --from (a schema renamed earlier in the range moved it).
        const schema = this.schemaNames.reduceRight((n, r) => (n === r.to ? r.from : n), was.schema);
        this.enums.set(t.oid, (e = { from: tag === 'CREATE TYPE' ? undefined : quoteQualified(schema, was.name), labels: [] }));
      }
      const last = e.labels.at(-1);
      if (!last || last.join('\0') !== t.labels.join('\0')) e.labels.push(t.labels);
      // Made with every label the range gives it: added later in this transaction, a label could
      // not be used in it. Known only at the end (finish).
      const entry = e;
      this.before.push(() => {
        const create = `create type ${name} as enum (${entry.labels.at(-1)!.map(quoteLiteral).join(', ')})`;
        return doBlock(`if ${typeNamed(quoteLiteral(name))} is null then execute ${quoteLiteral(create)}; end if;`);
      });
      return;
    }
    const kind = t.kind === 'd' ? 'domain' : 'type';
    const domain = t.domain ? alterDomain(name, t) : '';
    // Unchanged as the database has it: left alone. Changed and unused: made again. A domain in use: altered.
    // Tables typed by a composite type (CREATE TABLE … OF) are let go of it first, and linked to it
    // again at the end (finish), if the patch links every one of them as --to has it: each table
    // whose last snapshot in the range records its link (the command's own, which its ALTER TYPE
    // … CASCADE captures, and any other the range reshaped, unlinked say), or that the range drops.
    // Known at the end of the range, named as here. Made again in vain, the type keeps them. Any
    // other typed table (unpublished, another session's temporary one, an archive from before they
    // were captured) keeps it as before.
    const here = [...tables, ...[...this.names].map(([oid, n]) => ({ oid, ...n }))].map((s) => ({
      oid: s.oid,
      name: quoteQualified(s.schema, s.name),
    }));
    this.before.push(() => {
      const relinked = here
        .filter((h) => this.gone.has(h.oid) || this.last.get(h.oid)?.ofType !== undefined)
        .map((h) => `coalesce(to_regclass(${quoteLiteral(h.name)})::oid, 0)`);
      return doBlock(`declare path text := current_setting('search_path'); have text; typed regclass; typ regtype := ${typeNamed(quoteLiteral(name))};
begin
  perform set_config('search_path', 'pg_catalog', true);
  select ${TYPE_CREATE_SQL} into have from pg_type t where t.oid = typ;
  perform set_config('search_path', path, true);
  if typ is null then execute ${quoteLiteral(t.create)};
  elsif have is distinct from ${quoteLiteral(t.create)} then
    begin
      if not exists (select from pg_class c where c.reloftype = typ and c.oid <> all(array[${relinked.join(', ')}]::oid[])) then
        for typed in select c.oid from pg_class c where c.reloftype = typ loop
          execute format('alter table only %s not of', typed);
        end loop;
      end if;
      execute ${quoteLiteral(`drop ${kind} ${name}`)};
      execute ${quoteLiteral(t.create)};
    exception when dependent_objects_still_exist then
      ${domain || `raise warning 'pgtape patch: type % is in use and was altered at the source; not followed', ${quoteLiteral(name)};`}
    end;
  end if;
end`);
    });
  }

  /** A schema renamed: renamed where the database has it; the tables, triggers, comments and refreshes the patch knows in it follow. */
  private renamedSchema(r: RenamedObject & { identity: string }): void {
    this.before.push(renameObject(r));
    this.triggers.schemaRenamed(r.from, r.identity);
    this.foreignKeysFollow({ from: r.from, to: r.identity, schema: true });
    const [from, to] = [unquoteIdent(r.from), unquoteIdent(r.identity)];
    this.schemaNames.push({ from, to });
    for (const [oid, n] of this.names) {
      if (n.schema !== from) continue;
      this.names.set(oid, { schema: to, name: n.name });
      const last = this.last.get(oid);
      if (last) this.last.set(oid, { ...last, schema: to });
      if (this.atTo.has(oid)) this.atTo.set(oid, { schema: to, name: n.name });
    }
    for (const [oid, name] of this.typeNames)
      if (name.startsWith(`${quoteIdent(from)}.`)) this.typeNames.set(oid, quoteIdent(to) + name.slice(quoteIdent(from).length));
    for (const k of this.comments) k.identity = identityInRenamedSchema(k.kind, k.identity, r) ?? k.identity;
    for (const [identity, populated] of [...this.refreshes]) {
      const moved = inRenamedSchema(identity, r);
      if (moved === undefined) continue;
      this.refreshes.delete(identity);
      this.refreshes.set(moved, populated);
    }
  }

  /** The foreign keys the patch makes at the end name a table renamed or moved (or in a schema renamed) by its new name. */
  private foreignKeysFollow(r: { from: string; to: string; schema?: boolean }): void {
    for (const [oid, s] of this.last)
      if (s.constraints?.some((k) => isForeignKey(k.def)))
        this.last.set(oid, {
          ...s,
          constraints: s.constraints.map((k) => (isForeignKey(k.def) ? { ...k, def: referencingRenamed(k.def, r) } : k)),
        });
  }

  /** The indexes (and columns) the patch makes at the end name a renamed or moved collation or operator class as it is called by then. */
  private renamedInIndexes(from: string, to: string, after: string): void {
    const key = nameKey(from);
    for (const [oid, s] of this.last)
      this.last.set(oid, {
        ...s,
        indexes: s.indexes.map((i) => renamedInIndex(i, from, to, after)),
        columns: s.columns.map((c) => (c.collation && nameKey(c.collation) === key ? { ...c, collation: to } : c)),
      });
  }

  /** An object renamed or moved: renamed where the database has it, and what the patch does to it at the end follows the new name. */
  private renamed(o: CapturedObject): void {
    const from = o.renamed!.from;
    this.before.push(renameObject(o.renamed!));
    commentsOnRenamed(this.comments, from, o.identity);
    this.triggers.delete(from);
    if (o.kind === 'function') this.triggers.functionRenamed(from, o.identity);
    if (o.kind === 'collation') this.renamedInIndexes(from, o.identity, ' COLLATE ');
    // A class's identity says its method after its name: `schema.name USING btree`.
    if (o.kind === 'operator class') this.renamedInIndexes(from.replace(/ USING .*$/, ''), o.identity.replace(/ USING .*$/, ''), ' ');
    const refresh = this.refreshes.get(from);
    if (refresh !== undefined) {
      this.refreshes.delete(from);
      this.refreshes.set(o.identity, refresh);
    }
  }

  private sequence(o: CapturedObject): void {
    const name = sequenceName(o);
    const alter = o.create.replace(/^create sequence /, 'alter sequence ');
    this.before.push(
      doBlock(
        `if to_regclass(${quoteLiteral(name)}) is null then execute ${quoteLiteral(o.create)}; else execute ${quoteLiteral(alter)}; end if;`,
      ),
    );
  }

  private afterTables(o: CapturedObject, tag: string): void {
    // A view's defaults: all of them after an ALTER, which may have dropped one; else those it has.
    if (o.kind === 'view') this.before.push(`${o.create};`, ...viewDefaults(o, !tag.startsWith('ALTER')).map((s) => `${s};`));
    else if (o.kind === 'materialized view') {
      this.before.push(doBlock(`if to_regclass(${quoteLiteral(o.identity)}) is null then execute ${quoteLiteral(o.create)}; end if;`));
      if (o.accessMethod) this.before.push(accessMethodFollow(o.identity, o.accessMethod, 'materialized view'));
      // Filled once the rows are in (the source filled it with the rows of its point, which the patch does not go through).
      if (o.populated && (tag.startsWith('CREATE') || tag.startsWith('REFRESH') || !this.refreshes.has(o.identity)))
        this.refreshes.set(o.identity, true);
    } else if (o.kind === 'index') this.before.push(`drop index if exists ${o.identity};`, `${o.create};`);
    else if (o.kind === 'sequence' && o.ownedBy) this.before.push(`alter sequence ${sequenceName(o)} owned by ${o.ownedBy};`);
    else if (o.kind === 'trigger') {
      // Made after the rows: none fires for rows the patch writes (the range holds what they wrote).
      this.triggers.delete(o.identity);
      this.triggers.set(o.identity, o.create);
      this.triggerStates.object(o);
    }
  }

  /** Brings a table to a captured shape, as far as its rows need it; what constrains them comes after them. */
  private table(s: TableSnapshot, rewritten: boolean): void {
    const out = this.before;
    const target = quoteQualified(s.schema, s.name);
    const lit = quoteLiteral(target);
    const was = this.names.get(s.oid);
    if (was && (was.schema !== s.schema || was.name !== s.name)) {
      // What the patch makes at the end on it follows it (names compare by nameKey; the new one is SQL).
      const from = quoteQualified(was.schema, was.name);
      this.triggers.moved(from, target);
      for (const k of this.comments) k.identity = onMovedTable(k, from, target) ?? k.identity;
      this.foreignKeysFollow({ from, to: target });
      const moved = quoteQualified(s.schema, was.name);
      const steps = [
        ...(was.schema !== s.schema ? [`alter table ${from} set schema ${quoteIdent(s.schema)}`] : []),
        ...(was.name !== s.name ? [`alter table ${moved} rename to ${quoteIdent(s.name)}`] : []),
      ];
      out.push(
        doBlock(
          `if to_regclass(${lit}) is null and to_regclass(${quoteLiteral(from)}) is not null then ${steps.map((x) => `execute ${quoteLiteral(x)};`).join(' ')} end if;`,
        ),
      );
    }
    this.names.set(s.oid, { schema: s.schema, name: s.name });
    this.atTo.set(s.oid, { schema: s.schema, name: s.name });
    this.shaped.add(s.oid);
    this.gone.delete(s.oid);
    this.last.set(s.oid, s);
    this.triggerStates.shaped(s);

    // Made when missing, NOT NULL included (the rows it will hold are those at --to); keys and indexes come after the rows.
    const constant = (d: string | null | undefined) => (d != null && isConstant(d) ? d : undefined);
    const defs = s.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${columnClauses(c, constant(c.default))}`);
    const by = `${s.partitionKey ? ` partition by ${s.partitionKey}` : ''}${usingClause(s.accessMethod, Boolean(s.parent))}`;
    const create = (serverVersion: number) =>
      s.parent && s.bound
        ? `create table ${target} partition of ${s.parent}${partitionColumns(s, serverVersion)} ${s.bound}${by}`
        : `create table ${target} (${defs.join(', ')})${by}`;
    // A partition's own generated columns are written where the server takes them (Postgres 16).
    const [since16, before16] = [create(160000), create(0)];
    const made = [
      since16 === before16
        ? `execute ${quoteLiteral(since16)};`
        : `if current_setting('server_version_num')::int >= 160000 then execute ${quoteLiteral(since16)}; else execute ${quoteLiteral(before16)}; end if;`,
      ...(s.replicaIdentity === 'f' ? [`execute ${quoteLiteral(`alter table ${target} replica identity full`)};`] : []),
    ];
    out.push(doBlock(`if to_regclass(${lit}) is null then ${made.join(' ')} end if;`));
    const identity = replicaIdentityFollow(target, s.replicaIdentity);
    if (identity) out.push(identity);
    if (s.parent && s.bound)
      out.push(
        partitionOf(
          target,
          s.parent,
          s.bound,
          s.columns.filter((c) => c.notNull).map((c) => c.name),
        ),
      );
    else if (was) out.push(detachFrom(target));
    if (s.kind === 'p' && s.partitions) out.push(detachOthers(target, s.partitions));
    if (s.options !== undefined) out.push(storageOptions(target, s.options));
    // A table's first shape in the range says its access method (--from's may be any), later ones when it changes.
    if (s.accessMethod !== undefined && this.accessMethods.get(s.oid) !== s.accessMethod)
      out.push(accessMethodFollow(target, s.accessMethod));
    if (s.accessMethod !== undefined) this.accessMethods.set(s.oid, s.accessMethod);

    // Columns: renamed (by number, where an earlier shape in the range knows it), dropped, added, retyped.
    const before = this.attnums.get(s.oid);
    for (const c of s.columns) {
      const old = before?.get(c.attnum);
      if (old && old !== c.name)
        out.push(
          doBlock(
            `if exists (select 1 from pg_attribute where attrelid = ${lit}::regclass and attname = ${quoteLiteral(old)} and attislocal and not attisdropped) then execute ${quoteLiteral(`alter table ${target} rename column ${quoteIdent(old)} to ${quoteIdent(c.name)}`)}; end if;`,
          ),
        );
    }
    this.attnums.set(s.oid, new Map(s.columns.map((c) => [c.attnum, c.name])));
    const keep = `array[${s.columns.map((c) => quoteLiteral(c.name)).join(', ')}]::text[]`;
    out.push(
      doBlock(`declare c text;
begin
  for c in select attname from pg_attribute where attrelid = ${lit}::regclass and attnum > 0 and not attisdropped and attinhcount = 0
             and attname <> all(${s.columns.length ? keep : "'{}'::text[]"}) loop
    execute format('alter table %s drop column %I', ${lit}, c);
  end loop;
end`),
    );
    for (const c of s.columns) {
      const column = `alter table ${target} alter column ${quoteIdent(c.name)}`;
      const clause = c.generated
        ? generatedClause(c)
        : c.identity
          ? identityClause(c.identity)
          : c.missing
            ? ` default ${quoteLiteral(missingValue(c.missing) ?? '')}::${c.type}`
            : '';
      out.push(addColumn(target, c.name, `${c.type}${c.collation ? collateClause(c.collation) : ''}${clause}`));
      if (c.generated) {
        out.push(generationExpression(target, c.name, c.generated));
        continue;
      }
      // A rewritten table's new values were the source's to compute (a USING expression): where they do not cast, the patch's rows bring them.
      out.push(retype(target, c.name, c.type, c.typmod, rewritten));
      if (c.collation !== undefined) out.push(collationChange(target, c.name, c.type, c.collation));
      if (c.settings) out.push(...columnSettingStatements(target, c.name, c.settings, true).map((x) => `${x};`));
      if (!c.notNull)
        out.push(
          doBlock(
            `if exists (select 1 from pg_attribute where attrelid = ${lit}::regclass and attname = ${quoteLiteral(c.name)} and attnotnull and attinhcount = 0) then execute ${quoteLiteral(`${column} drop not null`)}; end if;`,
          ),
        );
      const identity = `(select attidentity from pg_attribute where attrelid = ${lit}::regclass and attname = ${quoteLiteral(c.name)})`;
      if (c.identity) {
        // One there already takes the captured kind and options (ALTER COLUMN … SET INCREMENT BY changes them alone).
        // A partition's is its parent's (Postgres 17): it changes with the parent's only.
        const options = c.identitySequence ? identityOptions(c.identitySequence).map((o) => ` set ${o}`) : [];
        const alter =
          s.parent && s.bound
            ? ''
            : ` else execute ${quoteLiteral(`${column} set generated ${identityWhen(c.identity)}${options.join('')}`)};`;
        out.push(
          doBlock(
            `if ${identity} = '' then execute ${quoteLiteral(`${column} drop default`)}; execute ${quoteLiteral(`${column} add${identityClause(c.identity, c.identitySequence)}`)};${alter} end if;`,
          ),
        );
        continue;
      }
      out.push(doBlock(`if ${identity} <> '' then execute ${quoteLiteral(`${column} drop identity`)}; end if;`));
      out.push(c.default ? `${column} set default ${c.default};` : `${column} drop default;`);
    }
    out.push(...unconstrain(s));
  }
}
