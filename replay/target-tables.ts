// Over 400 lines for a reason: the replay's tables follow two sources of truth — Relation
// messages and captured DDL — that share one table map and one set of column operations (create,
// move, add/drop/retype, identities); splitting them would put each operation in two places.
// What captured DDL needs beyond tables (drops, types, images) lives in captured-ddl.ts.
import type pg from 'pg';
import type { Logger } from '../src/core/log.js';
import { UserError } from '../src/core/errors.js';
import { quoteIdent, quoteLiteral, quoteQualified, unquoteIdent } from '../src/core/sql.js';
import { isConstant } from '../src/base/published-schema.js';
import type { BaseTable } from '../src/log/bases.js';
import { columnTypeName, sameColumnTypes, type RelationDef } from '../src/segment/format.js';
import type { CapturedDdl, DroppedObject, RenamedObject, TableImage, TableSnapshot } from '../src/source/ddl-capture.js';
import type { EnumLabels } from './enum-labels.js';
import { applyImage, capturedColumnTypes, capturedExpressions, followRenames, reconcileType } from './captured-ddl.js';
import {
  columnClauses,
  dropStatement,
  generatedClause,
  partitionColumns,
  storageOptions,
  accessMethodFollow,
  usingClause,
  replicaIdentityFollow,
  identityClause,
  identityOptions,
  identityWhen,
  inDropOrder,
  indexAttachments,
  indexOptionsFollow,
  inheritedKeyNames,
  inheritedKeysOn,
  isForeignKey,
  missingValue,
  parentsFirst,
  referencingRenamed,
  typedTableLink,
} from '../src/source/ddl-statements.js';
import {
  COLUMN_COLLATION,
  COLUMN_SETTINGS,
  collateClause,
  columnSettingStatements,
  sameColumnSettings,
  type ColumnSettings,
} from '../src/source/deparse.js';
import { CapturedObjects } from './captured-objects.js';
import { BaseNamesWindow, moveStatements } from './base-names-window.js';
import { attempt } from './savepoint.js';

export interface TargetColumn {
  name: string;
  /** The source's column number, where known (a base, captured DDL): how renames are recognized. */
  attnum?: number;
  typeOid: number;
  typmod: number;
  /** The type as SQL, for casts from text. */
  type: string;
  /**
   * A generated column of the replay's table that the source's Relation carries (Postgres 18
   * publishes them with `publish_generated_columns = stored`, or a column list naming them): its
   * values are in the log, but the replay's table computes its own, and writes leave it out.
   */
  computed?: boolean;
}

/** A column of a replay table as its catalog has it: inherited, its identity kind (`a`, `d` or ''), generated, NOT NULL, its default. */
interface HeldColumn {
  inherited: boolean;
  identity: string;
  generated: boolean;
  /** A generated column's expression. */
  expression: string | null;
  notNull: boolean;
  default: string | null;
  /** As COLUMN_COLLATION says it. */
  collation: string | null;
  settings: ColumnSettings;
}

/**
 * A replayed table as the source knows it: its oid, and its columns' type oids and numbers
 * (the replay's own differ for types made after initdb, and for columns after a dropped one).
 */
export interface SourceTable {
  oid: number;
  columns: Map<string, { typeOid: number; attnum?: number }>;
}

export interface TargetTable {
  schema: string;
  name: string;
  columns: TargetColumn[];
  /** Column count the staging table was made for. */
  stagedColumns?: number;
  /** Rows it holds, while every statement's count is known. */
  rows?: number;
  /** A base table's name in the base (what the base's statements made at the end call it). */
  base?: { schema: string; name: string };
  /** Where the table goes while the base's statements run: its name in the base, in its schema as renamed since. */
  backTo?: { schema: string; name: string };
}

/**
 * The tables of the replay database, following the source's shape (docs/ARCHITECTURE.md, "The
 * replay path"): made from the base's schema, or from a Relation message for a table created
 * later; moved, renamed, reshaped or dropped as Relation messages and captured DDL say. The
 * applier asks for the target table of each relation before it writes rows into it.
 */
export class TargetTables {
  private readonly tables = new Map<number, TargetTable>();
  private readonly warned = new Set<string>();
  /** Views, functions, triggers, sequences … made after the base (replay/captured-objects.ts). */
  readonly objects: CapturedObjects;
  /**
   * Foreign keys captured tables have, by table oid, made at the end (as a base's are): rows are
   * applied table by table, and a rewritten table is emptied, so a key checked on the way would
   * refuse states the source never had.
   */
  private readonly foreignKeys = new Map<number, { name: string; def: string }[]>();
  /** The access method each captured table has in the replay, as its last snapshot said (accessMethodFollow). */
  private readonly accessMethods = new Map<number, string>();
  /** The composite type each captured table is a typed table of ('' none), as its last snapshot says: linked at the end. */
  private readonly typedAs = new Map<number, string>();
  /** A partition's indexes' parent indexes, as its last snapshot says: attached at the end, when every parent index is made. */
  private readonly indexParents = new Map<number, Record<string, string>>();
  /** A partition's clones of its parent's foreign keys, by name: the parent's key's name, as its last snapshot says (renamed at the end). */
  private readonly inheritedKeys = new Map<number, Record<string, string>>();

  constructor(
    private readonly client: pg.Client,
    private readonly log: Logger,
    /** Only these tables (`schema.table`); all when undefined. */
    private readonly only: Set<string> | undefined,
    private readonly labels: EnumLabels,
    /**
     * The source publishes generated columns where its publication says so (Postgres 18): a
     * Relation's column the replay's table holds as generated is then `computed`. Before 18 no
     * Relation carries one, and such a column is one the source made plain since.
     */
    private readonly generatedPublished = false,
  ) {
    this.objects = new CapturedObjects(client, (key, fields, message) => this.warnOnce(key, fields, message));
  }

  /** A base table, made and loaded by the applier, from here on followed like any other. */
  adopt(t: BaseTable, rows: number): void {
    this.tables.set(t.oid, {
      schema: t.schema,
      name: t.name,
      columns: t.columns.map((c) => ({ name: c.name, attnum: c.attnum, typeOid: c.typeOid, typmod: c.typmod, type: c.type })),
      rows,
      base: { schema: t.schema, name: t.name },
      backTo: { schema: t.schema, name: t.name },
    });
  }

  /** Source oids of the tables the replay made (not the base's): made since the base. */
  private readonly made = new Set<number>();
  private version: number | undefined;

  /** The target's server_version_num (what a partition's CREATE may say depends on it). */
  private async serverVersion(): Promise<number> {
    this.version ??= Number((await this.client.query<{ v: string }>(`select current_setting('server_version_num') as v`)).rows[0]!.v);
    return this.version;
  }

  /** Whether the replay made the table of this source oid (it is not the base's, whatever its name). */
  madeSinceBase(oid: number): boolean {
    return this.made.has(oid);
  }

  /** The base's name (`schema.table`) of the table the replay holds under this name now: null for a table it made, undefined when it holds none or one it neither loaded nor made. */
  baseNameOf(schema: string, name: string): string | null | undefined {
    for (const [oid, t] of this.tables)
      if (t.schema === schema && t.name === name) return t.base ? `${t.base.schema}.${t.base.name}` : this.made.has(oid) ? null : undefined;
    return undefined;
  }

  /**
   * Runs `make` with the base's tables, and the objects renamed since, under the names the base
   * gave them (its statements made at the end name them so), then renames them again
   * (replay/base-names-window.ts). A base table whose name something the window cannot move holds
   * stays as it is: `make` is told, to leave out what the base hangs on it.
   */
  async underBaseNames(make: (unreachable: string[]) => Promise<void>): Promise<void> {
    const window = new BaseNamesWindow(this.client, [...this.tables.values()], this.objects.renamedNewestFirst(), (key, fields, message) =>
      this.warnOnce(key, fields, message),
    );
    await make(await window.open());
    await window.close();
  }

  all(): Iterable<TargetTable> {
    return this.tables.values();
  }

  /** The source's oid of each table and its columns' facts, by its name now (what a base compacted from this replay records). */
  sourceOids(): Map<string, SourceTable> {
    return new Map(
      [...this.tables].map(([oid, t]) => [
        JSON.stringify([t.schema, t.name]),
        { oid, columns: new Map(t.columns.map((c) => [c.name, { typeOid: c.typeOid, attnum: c.attnum }])) },
      ]),
    );
  }

  /** The target table of a relation, created or brought to the relation's shape first. */
  async of(rel: RelationDef): Promise<TargetTable> {
    const t = this.tables.get(rel.oid);
    if (!t) {
      const columns = await this.columnsOf(rel);
      const keys = rel.replicaIdentity === 'f' ? [] : rel.columns.filter((c) => c.key).map((c) => c.name);
      await this.dropReplaced(rel);
      this.warnOnce(
        `created:${rel.oid}`,
        { table: `${rel.schema}.${rel.name}` },
        'table created after the base: made from its Relation message (no defaults, constraints or indexes beyond its key)',
      );
      return this.create(
        rel.oid,
        rel.schema,
        rel.name,
        columns,
        columns.map((c) => `${quoteIdent(c.name)} ${c.type}`),
        keys,
        rel.replicaIdentity,
      );
    }
    await this.move(t, rel.schema, rel.name);
    if (!sameColumnTypes(t.columns, rel.columns)) await this.reshape(t, rel);
    return t;
  }

  /**
   * A new table (another OID) of a name the replay still has, and nothing recorded what became of
   * the old one (no --capture-ddl): the source dropped it, or renamed it (`t` to `t_old`, a new
   * `t`) and has not written it since. One the replay follows is set aside until its own Relation
   * message names it, and dropped at the end if none does; anything else of the name is dropped here.
   */
  private async dropReplaced(rel: RelationDef): Promise<void> {
    if (await this.setAsideHolder(undefined, rel.schema, rel.name)) return;
    const target = quoteQualified(rel.schema, rel.name);
    const { rows } = await this.client.query<{ there: boolean }>('select to_regclass($1) is not null as there', [target]);
    if (!rows[0]!.there) return;
    await this.client.query(`drop table ${target} cascade`);
    this.replacedWarning(`${rel.schema}.${rel.name}`);
  }

  private replacedWarning(table: string): void {
    this.warnOnce(
      `replaced:${table}`,
      { table },
      'a new table of the name of one the replay has: the source dropped the old one (and what depended on it) unrecorded; the replay drops it (archive with --capture-ddl to replay drops at their point)',
    );
  }

  /** A table made in the replay: its schema, its columns (`defs`), its key and replica identity. */
  private async create(
    oid: number,
    schema: string,
    name: string,
    columns: TargetColumn[],
    defs: string[],
    keys: string[],
    replicaIdentity: string,
    /**
     * How the table is made when not from its columns alone: `PARTITION OF …`, `PARTITION BY …`,
     * `INHERITS (…)`; `defaulted`: its columns with every default, where a child of parents whose
     * defaults differ must say its own in its CREATE (made without them, it is refused).
     */
    partitioning: { of?: string; by?: string; inherits?: string[]; defaulted?: string[]; accessMethod?: string } = {},
  ): Promise<TargetTable> {
    const target = quoteQualified(schema, name);
    const withKeys = (d: string[]) => (keys.length && !partitioning.of ? [...d, `primary key (${keys.map(quoteIdent).join(', ')})`] : d);
    defs = withKeys(defs);
    const by = `${partitioning.by ? ` partition by ${partitioning.by}` : ''}${usingClause(partitioning.accessMethod, Boolean(partitioning.of))}`;
    await this.client.query(`create schema if not exists ${quoteIdent(schema)}`);
    // A partition takes its columns, keys and indexes from its parent, as at the source.
    if (partitioning.of) await this.client.query(`create table ${target} partition of ${partitioning.of}${by}`);
    else {
      // Columns a parent has too are merged with its, as at the source (where they came from it).
      // A parent the replay lacks (left out by --tables) is said, and the table made without it.
      const parents: string[] = [];
      for (const p of partitioning.inherits ?? []) {
        const { rows } = await this.client.query<{ there: boolean }>('select to_regclass($1) is not null as there', [p]);
        if (rows[0]?.there) parents.push(p);
        else
          this.warnOnce(
            `parent:${target}:${p}`,
            { table: target, parent: p },
            'a parent of this table (INHERITS) is not in the replay: made without it',
          );
      }
      const inherits = parents.length ? ` inherits (${parents.join(', ')})` : '';
      const create = (d: string[]) => `create table ${target} (${d.join(', ')})${inherits}${by}`;
      if (parents.length < 2 || !partitioning.defaulted) await this.client.query(create(defs));
      else if (await attempt(this.client, create(defs))) await this.client.query(create(withKeys(partitioning.defaulted)));
    }
    if (replicaIdentity === 'f') await this.client.query(`alter table ${target} replica identity full`);
    const t: TargetTable = { schema, name, columns, rows: 0 };
    this.tables.set(oid, t);
    this.made.add(oid);
    return t;
  }

  /** Follows a table moved to another schema or renamed at the source. */
  private async move(t: TargetTable, schema: string, name: string): Promise<void> {
    if (t.schema === schema && t.name === name) return;
    // What the replay makes at the end on it is named by the table's identity, as Postgres writes it.
    const { rows } = await this.client.query<{ from: string; to: string; there: boolean }>(
      `select format('%I.%I', $1::text, $2::text) as from, format('%I.%I', $3::text, $4::text) as to,
              exists (select 1 from pg_namespace where nspname = $3) as there`,
      [t.schema, t.name, schema, name],
    );
    if (!rows[0]!.there) {
      // Captured DDL makes or renames a schema before its tables move: without it, a Relation message is all there is.
      await this.client.query(`create schema ${quoteIdent(schema)}`);
      this.warnOnce(
        `schema:${schema}`,
        { schema, table: `${schema}.${name}` },
        'a table moved to a schema the replay lacked: the schema was made (if the source renamed a schema, what else is in it stays under the old name; archive with --capture-ddl to replay schema renames)',
      );
    }
    await this.setAsideHolder(t, schema, name);
    for (const sql of moveStatements(t, { schema, name })) await this.client.query(sql);
    this.tableMoved(rows[0]!.from, rows[0]!.to);
    t.schema = schema;
    t.name = name;
    this.aside.delete(t);
  }

  /** Tables set aside by setAsideHolder that the log has not named since: for a new table of their name (dropped at the end), or for another one renamed onto it. */
  private readonly aside = new Map<TargetTable, { oid: number; replaced: boolean; name: string }>();

  /**
   * Another table the replay holds under the name `t` (or a new table) takes: set aside under a
   * name of its own until its own Relation message names it (two tables swapping names, a table
   * swapped for a new one of its name: the first written after the swap says so first). False
   * when the replay follows no table of that name.
   */
  private async setAsideHolder(t: TargetTable | undefined, schema: string, name: string): Promise<boolean> {
    const holder = [...this.tables].find(([, o]) => o !== t && o.schema === schema && o.name === name);
    if (!holder) return false;
    const [oid, o] = holder;
    const aside = `pgtape_aside_${oid}`;
    const { rows } = await this.client.query<{ from: string; to: string }>(
      `select format('%I.%I', $1::text, $2::text) as from, format('%I.%I', $1::text, $3::text) as to`,
      [schema, name, aside],
    );
    for (const sql of moveStatements(o, { schema, name: aside })) await this.client.query(sql);
    this.tableMoved(rows[0]!.from, rows[0]!.to);
    o.name = aside;
    this.aside.set(o, { oid, replaced: !t, name: `${schema}.${name}` });
    return true;
  }

  /**
   * Once every change is applied: a table set aside for a new one of its name that the log never
   * named again is dropped (the source dropped it); one set aside for another renamed onto its
   * name stays, said. Returns the base's names of the base tables dropped.
   */
  async settleAside(): Promise<string[]> {
    const dropped: string[] = [];
    for (const [t, { oid, replaced, name }] of this.aside) {
      // Dropped since (captured DDL): nothing to settle.
      if (this.tables.get(oid) !== t) continue;
      const target = quoteQualified(t.schema, t.name);
      // Its children or partitions, which the log may still write, would go with it (CASCADE): kept then.
      const { rows } = await this.client.query('select 1 from pg_inherits where inhparent = to_regclass($1)', [target]);
      if (!replaced || rows.length) {
        this.warnOnce(
          `aside:${name}`,
          { table: `${t.schema}.${t.name}`, was: name },
          'another table took the name of this one, and the log never named it again: it is left under this name (archive with --capture-ddl to replay renames and drops)',
        );
        continue;
      }
      await this.client.query(`drop table ${target} cascade`);
      this.tables.delete(oid);
      if (t.base) dropped.push(`${t.base.schema}.${t.base.name}`);
      this.replacedWarning(name);
    }
    this.aside.clear();
    return dropped;
  }

  /** Columns added, dropped or retyped since the table was made. A rename looks like a drop and an add. */
  private async reshape(t: TargetTable, rel: RelationDef): Promise<void> {
    const wanted = await this.columnsOf(rel);
    const held = await this.heldColumns(quoteQualified(t.schema, t.name));
    // Generated columns come and go from Relation messages as the publication publishes them or
    // not (Postgres 18): that is no change of the table's shape, and nothing to warn of.
    const generated = (name: string) => this.generatedPublished && !!held.get(name)?.generated;
    const vanished = t.columns.filter((c) => !wanted.some((w) => w.name === c.name) && !generated(c.name)).map((c) => c.name);
    const appeared = wanted.filter((w) => !t.columns.some((c) => c.name === w.name) && !generated(w.name)).map((c) => c.name);
    if (vanished.length && appeared.length) {
      this.warnOnce(
        `rename:${t.schema}.${t.name}:${vanished}:${appeared}`,
        { table: `${t.schema}.${t.name}`, vanished, appeared },
        'columns vanished and others appeared: if that was a rename, rows not changed since hold NULL in the new column (pgoutput carries no DDL; archive with --capture-ddl to replay renames)',
      );
    } else if (appeared.length && t.rows !== 0) {
      this.warnOnce(
        `added:${t.schema}.${t.name}:${appeared}`,
        { table: `${t.schema}.${t.name}`, columns: appeared },
        'columns added after the base: rows not changed since hold NULL where the source may hold a default, an identity or a computed value (archive with --capture-ddl to replay them)',
      );
    }
    await this.alterColumns(t, wanted, () => '', true);
    this.log.info({ table: `${t.schema}.${t.name}`, columns: wanted.map((c) => c.name) }, 'table reshaped to follow the source');
  }

  /**
   * Drops the columns not wanted, adds the missing ones, retypes the others (matched by name).
   * `guessing` (no captured DDL says how): a retype the text of the values cannot take (the
   * source used USING) leaves NULL, and a column a partition or child inherits is dropped from
   * the ancestor that has it — each said, never a failed replay.
   */
  private async alterColumns(
    t: TargetTable,
    wanted: TargetColumn[],
    addClause: (name: string) => string = () => '',
    guessing = false,
  ): Promise<void> {
    const target = quoteQualified(t.schema, t.name);
    // The replay's own columns: a partition's or child's inherited ones follow its parent's DDL
    // (which Postgres recursed in the replay too), and Postgres refuses them on the child.
    const held = await this.heldColumns(target);
    for (const c of t.columns.filter((c) => !wanted.some((w) => w.name === c.name))) {
      const own = held.get(c.name);
      // A generated column left out of a Relation message is one the publication stopped
      // publishing, or never did: the Relation's word does not drop it.
      if (!own || (guessing && own.generated && this.generatedPublished)) continue;
      // Dropped at the source, whatever depended on it went with it there (DROP COLUMN … CASCADE:
      // a generated column computed from it, say); from a Relation message alone, nothing is assumed.
      const sql = `alter table ${target} drop column if exists ${quoteIdent(c.name)}${guessing ? '' : ' cascade'}`;
      if (own.inherited) {
        if (guessing) await this.dropInherited(target, c.name);
      } else if (!guessing) await this.client.query(sql);
      else {
        // A base view (say) on a column the source renamed: a Relation message shows a drop and
        // an add. The column is kept, and said, rather than the replay failed or the view dropped.
        const failed = await attempt(this.client, sql);
        if (failed?.code !== '2BP01' && failed) throw failed;
        if (failed)
          this.warnOnce(
            `kept:${t.schema}.${t.name}.${c.name}`,
            { column: `${t.schema}.${t.name}.${c.name}`, err: failed.message },
            'a column the source no longer has is kept: something of the replay depends on it (without --capture-ddl a renamed column reads as dropped and added: archive with --capture-ddl to follow it)',
          );
      }
    }
    const retyped = (w: TargetColumn) => {
      const have = t.columns.find((c) => c.name === w.name);
      const own = held.get(w.name);
      return own && have && !own.inherited && (have.typeOid !== w.typeOid || have.typmod !== w.typmod);
    };
    // Postgres retypes no column a generated column is computed from: the source dropped that
    // column and added it again (in the same command), so the replay does too — it is added again
    // below, from the snapshot, after the columns it is computed from.
    if (!guessing) {
      for (const w of wanted.filter(retyped)) {
        const { rows } = await this.client.query<{ name: string }>(
          `select a.attname as name from pg_depend dp join pg_attrdef d on d.oid = dp.objid
             join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum and a.attgenerated <> ''
            where dp.classid = 'pg_attrdef'::regclass and dp.refobjid = $1::regclass and dp.refobjsubid =
                  (select attnum from pg_attribute where attrelid = $1::regclass and attname = $2)`,
          [target, w.name],
        );
        for (const r of rows) {
          await this.client.query(`alter table ${target} drop column if exists ${quoteIdent(r.name)}`);
          held.delete(r.name);
        }
      }
    }
    for (const w of wanted) {
      const own = held.get(w.name);
      const column = `alter table ${target} alter column ${quoteIdent(w.name)} type ${w.type}`;
      if (!own) {
        const sql = `alter table ${target} add column ${quoteIdent(w.name)} ${w.type}${addClause(w.name)}`;
        if (!guessing) await this.client.query(sql);
        else if (await attempt(this.client, sql)) await this.addInherited(target, w, addClause(w.name));
      } else if (retyped(w)) {
        const sql = `${column} using ${quoteIdent(w.name)}::text::${w.type}`;
        if (!guessing) await this.client.query(sql);
        else if (await attempt(this.client, sql)) {
          await this.client.query(`${column} using null`);
          this.warnOnce(
            `retyped:${t.schema}.${t.name}.${w.name}`,
            { column: `${t.schema}.${t.name}.${w.name}`, type: w.type },
            'a column retyped after the base whose values do not cast from their text (the source used USING): rows not changed since hold NULL (archive with --capture-ddl to replay them)',
          );
        }
      }
    }
    // A Relation's columns carry no numbers: a column kept keeps the one it had (captured DDL
    // recognizes renames by it).
    t.columns = wanted.map((w) => {
      const attnum = w.attnum ?? t.columns.find((c) => c.name === w.name)?.attnum;
      const computed = this.generatedPublished && held.get(w.name)?.generated;
      return { ...w, ...(attnum !== undefined ? { attnum } : {}), ...(computed ? { computed: true } : {}) };
    });
    t.stagedColumns = undefined;
  }

  /** The replay's own columns of a table, as its catalog has them now. */
  private async heldColumns(target: string): Promise<Map<string, HeldColumn>> {
    const { rows } = await this.client.query<HeldColumn & { name: string }>(
      `select attname as name, attinhcount > 0 as inherited, attidentity as identity, attgenerated <> '' as generated,
              case when attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end as expression,
              attnotnull as "notNull", case when attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end as default,
              ${COLUMN_COLLATION} as collation, ${COLUMN_SETTINGS} as settings
         from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where attrelid = $1::regclass and attnum > 0 and not attisdropped`,
      [target],
    );
    return new Map(rows.map(({ name, ...held }) => [name, held]));
  }

  /** A column Postgres refuses to add to a partition: added to the partitioned table at its root (it reaches every partition). */
  private async addInherited(table: string, w: TargetColumn, clause: string): Promise<void> {
    const { rows } = await this.client.query<{ root: string | null }>(
      `with recursive up(rel, depth) as (select $1::regclass::oid, 0 union select i.inhparent, up.depth + 1 from pg_inherits i join up on i.inhrelid = up.rel)
       select rel::regclass::text as root from up order by depth desc limit 1`,
      [table],
    );
    if (rows[0]?.root && rows[0].root !== table)
      await this.client.query(`alter table ${rows[0].root} add column if not exists ${quoteIdent(w.name)} ${w.type}${clause}`);
  }

  /** A column a partition or inheritance child holds from its parent: dropped where it was defined. */
  private async dropInherited(table: string, column: string): Promise<void> {
    const { rows } = await this.client.query<{ owner: string }>(
      `with recursive up(rel) as (select $1::regclass::oid union select i.inhparent from pg_inherits i join up on i.inhrelid = up.rel)
       select up.rel::regclass::text as owner from up join pg_attribute a on a.attrelid = up.rel and a.attname = $2 and not a.attisdropped
        where a.attislocal order by (select count(*) from pg_inherits where inhrelid = up.rel) limit 1`,
      [table, column],
    );
    if (rows[0]) await this.client.query(`alter table ${rows[0].owner} drop column if exists ${quoteIdent(column)}`);
  }

  /** SQL types of a relation's columns: built-in types by OID, others by name where the replay database knows them. */
  private async columnsOf(rel: RelationDef): Promise<TargetColumn[]> {
    const out: TargetColumn[] = [];
    for (const c of rel.columns) {
      let type: string | null = null;
      if (c.typeOid < 10000) {
        type = (await this.client.query<{ t: string }>('select format_type($1::oid, $2::int) as t', [c.typeOid, c.typmod])).rows[0]!.t;
      } else {
        // A name the archive could not learn (`oid:N`, or empty parts) is no name to look up.
        const name = columnTypeName(c.typeName);
        if (/^"(?:[^"]|"")+"\."(?:[^"]|"")+"$/.test(name)) {
          const known = await this.client.query<{ t: string | null }>('select to_regtype($1)::text as t', [name]);
          type = known.rows[0]!.t;
        }
      }
      if (!type) {
        this.warnOnce(
          `type:${c.typeName}`,
          { type: c.typeName, column: `${rel.schema}.${rel.name}.${c.name}` },
          'type unknown to the replay database: the column is replayed as text',
        );
        type = 'text';
      }
      out.push({ name: c.name, typeOid: c.typeOid, typmod: c.typmod, type });
    }
    return out;
  }

  /**
   * DDL captured by `archive --capture-ddl`, at its point: objects dropped (dependents included),
   * types created or altered, tables made, reshaped, renamed, and the rows of rewritten tables.
   */
  async apply(captured: CapturedDdl): Promise<void> {
    this.labels.tick();
    // Tables first, with CASCADE: what hung on them goes with them, and the statements for those
    // objects (IF EXISTS) find nothing (dropping a primary key's index or its column's NOT NULL
    // constraint on its own would fail).
    for (const d of captured.dropped ?? []) {
      const t = this.tables.get(d.oid);
      // A table the replay never tracked (a partitioned parent, say) is dropped by name.
      const [schema, name] = t ? [t.schema, t.name] : [d.schema, d.name];
      await this.client.query(`drop table if exists ${quoteQualified(schema, name)} cascade`);
      this.tables.delete(d.oid);
      this.foreignKeys.delete(d.oid);
      this.typedAs.delete(d.oid);
      this.indexParents.delete(d.oid);
    }
    for (const o of inDropOrder(captured.droppedObjects ?? [])) {
      await this.dropObject(o);
      if (o.type === 'type') this.labels.dropped(o.identity);
    }
    this.objects.dropped(captured);
    for (const r of captured.renamedSchemas ?? []) await this.renamedSchema(r);
    for (const schema of captured.schemas ?? []) await this.client.query(`create schema if not exists ${schema}`);
    for (const type of captured.types ?? []) {
      const done = await reconcileType(this.client, type, this.labels);
      if (type.was) await this.renamedType(type.was.name);
      if (done === 'unfollowed')
        this.warnOnce(
          `type:${type.schema}.${type.name}:${captured.tag}`,
          { type: `${type.schema}.${type.name}`, tag: captured.tag },
          'a change to this type (other than an enum label) is not replayed: values and checks may differ from the source from here on',
        );
    }
    await this.objects.beforeTables(captured);
    for (const snapshot of parentsFirst(captured.tables ?? [])) {
      if (this.only && !this.only.has(`${snapshot.schema}.${snapshot.name}`)) continue;
      // Rewritten: its rows follow whole (images), so it is emptied first and reshaped freely
      // (a USING expression is the source's to evaluate, not the replay's).
      const t = this.tables.get(snapshot.oid);
      if (t && captured.rewritten?.includes(snapshot.oid)) {
        await this.client.query(`truncate ${quoteQualified(t.schema, t.name)}`);
        t.rows = 0;
      }
      await this.reconcile(snapshot).catch((err: unknown) => {
        throw lacking(err, snapshot, captured.tag);
      });
    }
    // Its partitions' indexes attached to their parents' now, as on the source, not only at the
    // end: Postgres rebuilding a partitioned index (its column retyped later) makes its
    // partitions' again, and one of theirs not attached holds the name.
    for (const snapshot of captured.tables ?? []) await this.attachIndexes(snapshot.oid);
    await this.objects.afterTables(captured);
    if (captured.image) await this.image(captured.image);
    for (const u of captured.unfollowed ?? []) {
      this.warnOnce(
        `unfollowed:${u.kind}:${u.identity}`,
        { object: `${u.kind} ${u.identity}`, tag: captured.tag },
        'made or altered after the base, and not replayed (it comes with the next base taken from the source)',
      );
    }
    for (const u of captured.unknown ?? []) {
      this.warnOnce(`unknown:${u.schema}.${u.name}`, { table: `${u.schema}.${u.name}` }, `the replay may differ from the source: ${u.why}`);
    }
  }

  /** A schema renamed at the source: the replay's too, and the tables, triggers and enum types it knows in it are known by the new name. */
  private async renamedSchema(r: RenamedObject & { identity: string }): Promise<void> {
    if (!(await this.objects.renameSchema(r))) return;
    const [from, to] = [unquoteIdent(r.from), unquoteIdent(r.identity)];
    for (const t of this.tables.values()) {
      // The base's statements name it in the schema under the name the replay gives it back (underBaseNames).
      if (t.backTo?.schema === from) t.backTo = { schema: to, name: t.backTo.name };
      if (t.schema !== from) continue;
      const { rows } = await this.client.query<{ from: string; to: string }>(
        `select format('%I.%I', $1::text, $3::text) as from, format('%I.%I', $2::text, $3::text) as to`,
        [from, to, t.name],
      );
      this.tableMoved(rows[0]!.from, rows[0]!.to);
      t.schema = to;
    }
    const { rows } = await this.client.query<{ name: string }>(
      `select t.typname as name from pg_type t join pg_namespace n on n.oid = t.typnamespace where n.nspname = $1 and t.typtype = 'e'`,
      [to],
    );
    for (const e of rows) this.labels.renamed(from, e.name, to, e.name);
    // Types in it that columns are cast to.
    await this.renamedType(`${from}.`, `${quoteIdent(from)}.`);
  }

  private async dropObject(o: DroppedObject): Promise<void> {
    const sql = dropStatement(o);
    if (!sql) return;
    const failed = await attempt(this.client, sql);
    if (failed)
      this.warnOnce(`drop:${o.identity}`, { object: o.identity, err: failed.message }, `the replay could not drop this ${o.type}`);
  }

  /**
   * A type the replay renamed as the source did: the tables it tracks name their columns' types
   * as they were captured, and cast values to them (applier's set-based statements), so columns
   * that may be of it take their type's name from the replay's catalog again. Any column whose
   * type's name holds the old one is read again: one read too many costs a query, none too few.
   */
  private async renamedType(...was: string[]): Promise<void> {
    for (const t of this.tables.values()) {
      // As format_type writes it: a quote in the name doubled.
      if (!t.columns.some((c) => was.some((w) => c.type.includes(w) || c.type.includes(w.replace(/"/g, '""'))))) continue;
      const types = await capturedColumnTypes(this.client, quoteQualified(t.schema, t.name));
      for (const c of t.columns) c.type = types.get(c.name) ?? c.type;
    }
  }

  /** A rewritten table's rows, as the source had them after the command. */
  private async image(image: TableImage): Promise<void> {
    const t = this.tables.get(image.oid);
    if (!t || (this.only && !this.only.has(`${image.schema}.${image.name}`))) return;
    const target = quoteQualified(t.schema, t.name);
    const { rows } = await this.client.query<{ name: string; type: string; identity: string }>(
      `select attname as name, format_type(atttypid, atttypmod) as type, attidentity as identity from pg_attribute
        where attrelid = $1::regclass and attnum > 0 and not attisdropped and attgenerated = '' order by attnum`,
      [target],
    );
    await applyImage(
      this.client,
      image,
      target,
      rows,
      rows.some((r) => r.identity === 'a'),
    );
    t.rows = undefined;
    if (image.first)
      this.log.info({ table: `${t.schema}.${t.name}` }, 'table rewritten at the source: its rows replaced by the captured ones');
  }

  /** Brings the target table to a captured shape: renames by column number, then drops, adds and retypes. */
  private async reconcile(s: TableSnapshot): Promise<void> {
    this.objects.triggerStates.shaped(s);
    // A generated column is made and dropped here, but is no column of the table's rows: pgoutput
    // sends none of it (as the base's tables hold none), so the table's columns leave it out.
    const all: TargetColumn[] = s.columns.map((c) => ({
      name: c.name,
      attnum: c.attnum,
      typeOid: c.typeOid,
      typmod: c.typmod,
      type: c.type,
    }));
    const generated = new Set(s.columns.filter((c) => c.generated).map((c) => c.name));
    const columns = all.filter((c) => !generated.has(c.name));
    const constant = (d: string | null | undefined) => (d != null && isConstant(d) ? d : undefined);
    const q = (sql: string) => this.client.query(sql);
    const t = this.tables.get(s.oid) ?? (await this.existing(s));
    if (!t) {
      const defs = s.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${columnClauses(c, constant(c.default))}`);
      await this.create(s.oid, s.schema, s.name, columns, defs, s.primaryKey, s.replicaIdentity, {
        of: s.parent && s.bound ? `${s.parent}${partitionColumns(s, await this.serverVersion())} ${s.bound}` : undefined,
        by: s.partitionKey,
        inherits: s.inherits,
        defaulted: s.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${columnClauses(c, c.default ?? undefined)}`),
        accessMethod: s.accessMethod,
      });
      // None ('') is not known made: a partition made without USING takes its parent's (Postgres 17).
      if (s.accessMethod) this.accessMethods.set(s.oid, s.accessMethod);
      // Other defaults (nextval of a sequence, a function) once the table is there: one whose
      // sequence or function the replay lacks is said, and the table made without it.
      const target = quoteQualified(s.schema, s.name);
      // A partition made PARTITION OF takes its parent's defaults: its own (PARTITION OF … (b
      // DEFAULT 1)) are set here, constant or not, and one its parent has that it lacks dropped.
      const partition = Boolean(s.parent && s.bound);
      for (const c of s.columns) {
        for (const sql of columnSettingStatements(target, c.name, c.settings ?? {})) await this.triedColumn(s, c.name, sql, 'a setting');
        if (c.identity || c.generated) continue;
        const column = `alter table ${target} alter column ${quoteIdent(c.name)}`;
        if (partition && !c.default) await this.triedColumn(s, c.name, `${column} drop default`, 'a default');
        if (!c.default || (!partition && constant(c.default))) continue;
        await this.triedColumn(s, c.name, `${column} set default ${c.default}`, 'a default');
      }
    } else {
      await this.move(t, s.schema, s.name);
      await this.followPartitioning(s);
      await this.followInheritance(s);
      const target = quoteQualified(t.schema, t.name);
      const before = await this.heldColumns(target);
      for (const c of s.columns) {
        const have = t.columns.find((x) => x.attnum === c.attnum);
        if (have && have.name !== c.name) {
          // Gone already when the source renamed it on a parent (the replay recursed too); an
          // inherited column is renamed with its parent.
          const own = before.get(have.name);
          if (own && !own.inherited) await q(`alter table ${target} rename column ${quoteIdent(have.name)} to ${quoteIdent(c.name)}`);
          have.name = c.name;
        }
      }
      await this.alterColumns(t, all, (name) => {
        // A column added with a default fills the rows that were there as Postgres did: with the
        // value it computed then (attmissingval), not with the default evaluated now. An identity
        // or generated column is filled by the replay (a rewrite's image then sets the source's values).
        const c = s.columns.find((x) => x.name === name)!;
        const collate = c.collation ? collateClause(c.collation) : '';
        if (c.generated) return collate + generatedClause(c);
        if (c.identity) return collate + identityClause(c.identity, c.identitySequence);
        if (c.missing) return `${collate} default ${quoteLiteral(missingValue(c.missing) ?? '')}::${c.type}`;
        return collate;
      });
      t.columns = columns;
      const held = await this.heldColumns(target);
      let expressions: Map<string, string> | undefined;
      // A generated column the source dropped (the table's columns never held it).
      for (const [name] of held) {
        if (!s.columns.some((c) => c.name === name))
          await attempt(this.client, `alter table ${target} drop column if exists ${quoteIdent(name)}`);
      }
      for (const c of s.columns) {
        const column = `alter table ${target} alter column ${quoteIdent(c.name)}`;
        const tried = (sql: string, what: string) => this.triedColumn(s, c.name, sql, what);
        // What the command did not change is left alone: on a partitioned table, an ALTER recurses
        // to partitions the command did not touch, and would overwrite their own NOT NULL or default.
        const current = held.get(c.name);
        // ALTER COLUMN … SET STATISTICS, SET COMPRESSION, SET (n_distinct …).
        if (c.settings && current && !sameColumnSettings(current.settings, c.settings))
          for (const sql of columnSettingStatements(target, c.name, c.settings, true)) await tried(sql, 'a setting');
        const notNull = async () => {
          if (current?.notNull !== c.notNull) await tried(`${column} ${c.notNull ? 'set' : 'drop'} not null`, 'a NOT NULL change');
        };
        if (c.generated) {
          // ALTER COLUMN … SET EXPRESSION (Postgres 17): the rows' new values come as the rewrite's images.
          // Compared as captured DDL writes expressions (the session's path would leave names bare).
          if (current?.generated && current.expression !== c.generated) {
            expressions ??= await capturedExpressions(this.client, target);
            if (expressions.get(c.name) !== c.generated)
              await tried(`${column} set expression as (${c.generated})`, 'an expression changed');
          }
          await notNull();
          continue;
        }
        // ALTER COLUMN … DROP EXPRESSION: a plain column now, keeping the values it was computed to.
        if (current?.generated) await tried(`${column} drop expression`, 'an expression dropped');
        // ALTER COLUMN … TYPE … COLLATE (the type's own when '').
        if (c.collation !== undefined && current && current.collation !== null && current.collation !== c.collation)
          await tried(`${column} type ${c.type}${collateClause(c.collation)}`, 'a collation');
        // An identity column is NOT NULL: its identity goes before its NOT NULL can, and comes
        // after the NOT NULL it needs.
        const isIdentity = current?.identity ?? '';
        if (!c.identity && isIdentity) await tried(`${column} drop identity`, 'an identity dropped');
        await notNull();
        if (c.identity && !isIdentity) await tried(`${column} add${identityClause(c.identity, c.identitySequence)}`, 'an identity');
        // A partition's identity is its parent's (Postgres 17): it changes with the parent's only.
        const own = !(s.parent && s.bound);
        if (c.identity && isIdentity && own && c.identity !== isIdentity)
          await tried(`${column} set generated ${identityWhen(c.identity)}`, 'an identity changed');
        // Its sequence's options, which ALTER COLUMN … SET INCREMENT BY (say) changes alone.
        if (c.identity && isIdentity && own && c.identitySequence)
          await tried(
            `${column} ${identityOptions(c.identitySequence)
              .map((o) => `set ${o}`)
              .join(' ')}`,
            "an identity's options",
          );
        if (c.identity) continue;
        const had = current?.default ?? null;
        if (c.default && (had === c.default || (await tried(`${column} set default ${c.default}`, 'a default')))) continue;
        if (had !== null) await q(`${column} drop default`);
      }
    }
    if (s.options !== undefined) await this.triedTable(s, storageOptions(quoteQualified(s.schema, s.name), s.options), 'storage options');
    // Asked of the table at its first shape (a base's may have any), then when a shape names another.
    if (s.accessMethod !== undefined && this.accessMethods.get(s.oid) !== s.accessMethod) {
      await this.triedTable(s, accessMethodFollow(quoteQualified(s.schema, s.name), s.accessMethod), 'an access method');
      this.accessMethods.set(s.oid, s.accessMethod);
    }
    const identity = replicaIdentityFollow(quoteQualified(s.schema, s.name), s.replicaIdentity);
    if (identity) await this.triedTable(s, identity, 'a replica identity');
    if (t) await followRenames(this.client, s);
    for (const index of s.indexes) {
      // The source's own statement, made idempotent: the same index may be captured again.
      const sql = index.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX IF NOT EXISTS ');
      // One there already is brought to the captured storage parameters (ALTER INDEX … SET).
      const follow = indexOptionsFollow(s.schema, index);
      const failed = await attempt(this.client, follow ? [sql, follow] : sql);
      if (failed)
        this.warnOnce(
          `index:${sql}`,
          { index: sql, err: failed.message },
          'an index captured from the source could not be made in the replay',
        );
    }
    this.foreignKeys.set(
      s.oid,
      (s.constraints ?? []).filter((k) => isForeignKey(k.def)),
    );
    if (s.inheritedKeys !== undefined) this.inheritedKeys.set(s.oid, s.inheritedKeys);
    if (s.ofType !== undefined) this.typedAs.set(s.oid, s.ofType);
    if (s.indexParents !== undefined) this.indexParents.set(s.oid, s.indexParents);
    for (const k of s.constraints ?? []) {
      if (isForeignKey(k.def)) continue;
      const target = quoteQualified(s.schema, s.name);
      const there = await this.client.query('select 1 from pg_constraint where conrelid = $1::regclass and conname = $2', [target, k.name]);
      if (there.rowCount) continue;
      const failed = await attempt(this.client, `alter table ${target} add constraint ${quoteIdent(k.name)} ${k.def}`);
      if (failed)
        this.warnOnce(
          `constraint:${s.schema}.${s.name}.${k.name}`,
          { constraint: k.name, err: failed.message },
          'a constraint captured from the source could not be made in the replay',
        );
    }
  }

  /** Where the replay may differ from the source, each said once: logged, and recorded in replay.json. */
  readonly warnings: { message: string; [field: string]: unknown }[] = [];

  /** Parents a table was given (ALTER TABLE … INHERIT) or taken from (NO INHERIT) since it was made. */
  private async followInheritance(s: TableSnapshot): Promise<void> {
    if (s.inherits === undefined || s.bound) return;
    const target = quoteQualified(s.schema, s.name);
    const { rows } = await this.client.query<{ parent: string }>(
      `select quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) as parent from pg_inherits h join pg_class pc on pc.oid = h.inhparent
         join pg_namespace pn on pn.oid = pc.relnamespace where h.inhrelid = $1::regclass order by h.inhseqno`,
      [target],
    );
    const held = rows.map((r) => r.parent);
    const wanted = s.inherits ?? [];
    for (const p of held) if (!wanted.includes(p)) await this.triedTable(s, `alter table ${target} no inherit ${p}`, 'a parent it left');
    for (const p of wanted) if (!held.includes(p)) await this.triedTable(s, `alter table ${target} inherit ${p}`, 'a parent it joined');
  }

  /** Partitions attached to or detached from their parent since the table was made. */
  private async followPartitioning(s: TableSnapshot): Promise<void> {
    const target = quoteQualified(s.schema, s.name);
    const { rows } = await this.client.query<{ parent: string | null }>(
      `select (select format('%I.%I', pn.nspname, pc.relname) from pg_inherits h join pg_class pc on pc.oid = h.inhparent
                 join pg_namespace pn on pn.oid = pc.relnamespace where h.inhrelid = c.oid) as parent
         from pg_class c where c.oid = $1::regclass and c.relispartition`,
      [target],
    );
    const parent = rows[0]?.parent ?? null;
    if (s.parent && s.bound && parent !== s.parent) {
      if (parent) await this.client.query(`alter table ${parent} detach partition ${target}`);
      await this.client.query(`alter table ${s.parent} attach partition ${target} ${s.bound}`);
    } else if (!s.parent && parent) await this.client.query(`alter table ${parent} detach partition ${target}`);
    if (s.kind !== 'p' || !s.partitions) return;
    const { rows: held } = await this.client.query<{ name: string }>(
      `select format('%I.%I', pn.nspname, pc.relname) as name from pg_inherits h join pg_class pc on pc.oid = h.inhrelid
         join pg_namespace pn on pn.oid = pc.relnamespace where h.inhparent = $1::regclass and pc.relispartition`,
      [target],
    );
    for (const p of held) if (!s.partitions.includes(p.name)) await this.client.query(`alter table ${target} detach partition ${p.name}`);
  }

  /**
   * A table the replay has but does not track (a partitioned parent whose rows its partitions
   * hold, made from the base's schema): followed from here on, its columns as the replay has them.
   */
  private async existing(s: TableSnapshot): Promise<TargetTable | undefined> {
    const target = quoteQualified(s.schema, s.name);
    const { rows } = await this.client.query<{ name: string; type: string }>(
      `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type from pg_attribute a
        where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped order by a.attnum`,
      [target],
    );
    if (!rows.length) return undefined;
    const columns = rows.map((r) => {
      const same = s.columns.find((c) => c.name === r.name && (c.type === r.type || c.type.endsWith(`.${r.type}`)));
      return { name: r.name, attnum: same?.attnum, typeOid: same?.typeOid ?? -1, typmod: same?.typmod ?? -1, type: r.type };
    });
    const t: TargetTable = { schema: s.schema, name: s.name, columns };
    this.tables.set(s.oid, t);
    return t;
  }

  /** Triggers and comments made after the base, as they last were, on each table's name now. */
  async finishObjects(): Promise<void> {
    await this.objects.finish((oid) => this.nameNow(oid));
  }

  /** A followed table's name in the replay now (quoted, qualified), by source oid. */
  nameNow(oid: number): string | undefined {
    const t = this.tables.get(oid);
    return t && quoteQualified(t.schema, t.name);
  }

  /**
   * A table renamed or moved (`schema.name` as Postgres writes identities): what the replay makes
   * at the end on it or naming it follows it — triggers, comments, and the foreign keys of
   * captured tables that reference it.
   */
  private tableMoved(from: string, to: string): void {
    this.objects.tableMoved(from, to);
    for (const [oid, keys] of this.foreignKeys)
      this.foreignKeys.set(
        oid,
        keys.map((k) => ({ ...k, def: referencingRenamed(k.def, { from, to }) })),
      );
  }

  /** The foreign keys of captured tables, as their last snapshot had them, once every row is in. */
  async finishForeignKeys(): Promise<void> {
    for (const [oid, keys] of this.foreignKeys) {
      const t = this.tables.get(oid);
      if (!t) continue;
      const target = quoteQualified(t.schema, t.name);
      for (const k of keys) {
        const there = await this.client.query('select 1 from pg_constraint where conrelid = $1::regclass and conname = $2', [
          target,
          k.name,
        ]);
        if (there.rowCount) continue;
        const failed = (await attempt(this.client, `alter table ${target} add constraint ${quoteIdent(k.name)} ${k.def}`)) as
          (Error & { code?: string }) | undefined;
        // One referencing a table --tables left out is left out with it (undefined_table).
        if (failed && !(this.only && failed.code === '42P01'))
          this.warnOnce(
            `constraint:${t.schema}.${t.name}.${k.name}`,
            { constraint: k.name, err: failed.message },
            'a foreign key captured from the source could not be made in the replay',
          );
      }
    }
  }

  /**
   * Captured partitions' clones of their parents' foreign keys under their names on the source,
   * as their last snapshot says, once every key is made (finishForeignKeys).
   */
  async finishInheritedKeys(): Promise<void> {
    const keys = [...this.inheritedKeys].flatMap(([oid, names]) => {
      const table = this.nameNow(oid);
      return table ? inheritedKeysOn(table, names) : [];
    });
    const sql = inheritedKeyNames(keys);
    const failed = sql && (await attempt(this.client, sql));
    if (failed)
      this.warnOnce(
        'inherited keys',
        { err: failed.message },
        "the replay could not give partitions' foreign keys their names on the source",
      );
  }

  /**
   * Captured tables linked to their composite type (CREATE TABLE … OF, ALTER TABLE … OF / NOT OF)
   * as their last snapshot says, once every change is in: the link forbids the column changes the
   * replay makes on the way (a base table's link is the base's: made at the end before this).
   */
  async finishTypedTables(): Promise<void> {
    for (const [oid, type] of this.typedAs) {
      const t = this.tables.get(oid);
      if (!t) continue;
      const failed = await attempt(this.client, typedTableLink(quoteQualified(t.schema, t.name), type));
      if (failed)
        this.warnOnce(
          `typed:${t.schema}.${t.name}`,
          { table: `${t.schema}.${t.name}`, type: type || null, err: failed.message },
          "the replay could not link the table to its type as the source's is (CREATE TABLE … OF)",
        );
    }
  }

  /**
   * Captured partitions' indexes attached to their parent's (CREATE INDEX on a partitioned table,
   * ALTER INDEX … ATTACH PARTITION) as their last snapshot says: the parent's own snapshot makes
   * its index ON ONLY, invalid until then, as the source's definition reads.
   */
  async finishIndexAttachments(): Promise<void> {
    for (const oid of this.indexParents.keys()) await this.attachIndexes(oid);
  }

  /** A captured partition's indexes attached to their parents' as its last snapshot says, where not yet. */
  private async attachIndexes(oid: number): Promise<void> {
    const t = this.tables.get(oid);
    const parents = this.indexParents.get(oid);
    if (t && parents)
      for (const sql of indexAttachments(t.schema, parents)) {
        const failed = await attempt(this.client, sql);
        if (failed)
          this.warnOnce(
            `index-attachment:${sql}`,
            { table: `${t.schema}.${t.name}`, err: failed.message },
            "the replay could not attach a partition's index to its parent's as the source's is",
          );
      }
  }

  /** Runs one change to a column; one that fails is said (the replay differs there) and the replay goes on. */
  private async triedColumn(s: TableSnapshot, column: string, sql: string, what: string): Promise<boolean> {
    const failed = await attempt(this.client, sql);
    if (failed)
      this.warnOnce(
        `${what}:${s.schema}.${s.name}.${column}`,
        { column: `${s.schema}.${s.name}.${column}`, err: failed.message },
        `the replay could not follow ${what}`,
      );
    return !failed;
  }

  private async triedTable(s: TableSnapshot, sql: string, what: string): Promise<void> {
    const failed = await attempt(this.client, sql);
    if (failed)
      this.warnOnce(
        `${what}:${s.schema}.${s.name}`,
        { table: `${s.schema}.${s.name}`, err: failed.message },
        `the replay could not follow ${what}`,
      );
  }

  /** Says where the replay may differ, once (logged and recorded in replay.json). */
  note(key: string, fields: Record<string, unknown>, message: string): void {
    this.warnOnce(key, fields, message);
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, message);
    this.warnings.push({ message, ...fields });
  }
}

/** undefined_object, undefined_function, undefined_file, undefined_schema, feature_not_supported: what the replay server lacks. */
const LACKING = new Set(['42704', '42883', '58P01', '3F000', '0A000']);

/**
 * A captured table the replay server cannot make as the source had it (a collation, type or
 * function it lacks): said as the base's tables are (exit 2), naming the table and the command.
 */
function lacking(err: unknown, s: TableSnapshot, tag: string): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !LACKING.has(code)) return err;
  return new UserError(
    `the replay cannot make table ${quoteQualified(s.schema, s.name)} as the source's ${tag} left it: ${(err as Error).message}`,
    'install what it needs on the replay server (an extension, a collation, a type), or leave it out with --tables',
  );
}
