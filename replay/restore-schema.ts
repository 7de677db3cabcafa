import type pg from 'pg';
import { UserError } from '../src/core/errors.js';
import type { Logger } from '../src/core/log.js';
import { nameKey, quoteIdent, quoteLiteral, quoteQualified, unquoteIdent } from '../src/core/sql.js';
import type { BaseDdl, BaseTable, SchemaObject } from '../src/log/bases.js';
import type { CapturedDdl } from '../src/source/ddl-capture.js';
import { inRenamedSchema } from '../src/source/ddl-statements.js';
import { BaseObjectsGone } from './base-objects-gone.js';
import { attempt } from './savepoint.js';
import { attemptAlone, type JobPool } from './jobs.js';

// A base's schema (format 2) restored as pg_restore restores a dump, around the rows: pre-data
// before them; the primary keys right after (the set-based apply finds rows by key); everything
// else once every change is applied — indexes, constraints, foreign keys, triggers, rules —
// so that nothing fires or checks an intermediate state, and indexes are built once.
// See docs/ARCHITECTURE.md, The replay path.
// Over 400 lines: what the base makes at the end must be matched against what captured DDL
// dropped, renamed or remade since (tables, views, schemas, columns, keys); that bookkeeping and
// the statements it rewrites read the same names, and are kept beside them.

/** One identifier as quote_ident writes it. */
const IDENT = '("(?:[^"]|"")*"|[^" .]+)';
/**
 * What hangs on a table or a view, as identities and the base name it: `name on schema.relation`,
 * each part as quote_ident writes it (the base quotes a trigger's own name always).
 */
const ON_RELATION = new RegExp(`^${IDENT} on ${IDENT}\\.${IDENT}$`);
/** What Postgres says of a constraint it does not know (COMMENT ON CONSTRAINT). */
const NO_SUCH_CONSTRAINT = '42704';
/** A qualified name as identities write it: `schema.name`. */
const QUALIFIED = new RegExp(`^${IDENT}\\.${IDENT}$`);

/** The constraint a comment is on (`key on schema.table`), or '' for any other object. */
function commentedKey(o: SchemaObject): string {
  return o.kind === 'comment' && o.name.startsWith('table constraint ') ? o.name.slice('table constraint '.length) : '';
}

/** A table or a table's column as a comment names it (`table s.t`, `table column s.t.c`): the base table, `schema.table`. */
const COMMENTED_TABLE = new RegExp(`^table (?:column )?${IDENT}\\.${IDENT}(?:\\.${IDENT})?$`);

/** The base table a comment on a table or one of its columns is on (`schema.table`), and the column, or undefined. */
function commentedTable(o: SchemaObject): { table: string; column?: string; written?: string } | undefined {
  const [, schema, table, column] = (o.kind === 'comment' && COMMENTED_TABLE.exec(o.name)) || [];
  if (!schema || !table || o.name.startsWith('table column ') !== (column !== undefined)) return undefined;
  return {
    table: `${unquoteIdent(schema)}.${unquoteIdent(table)}`,
    ...(column !== undefined ? { column: unquoteIdent(column), written: column } : {}),
  };
}

/** Constraints a base makes after the rows (a primary key is made before them, and followed by name). */
const CONSTRAINT_KINDS = new Set(['unique constraint', 'exclusion constraint', 'check constraint', 'foreign key']);

/**
 * Post-data objects that may be made in parallel jobs: each takes one table's lock, so jobs wait
 * for each other at worst, and never deadlock (a foreign key locks two tables: made in order).
 */
const PARALLEL_KINDS = new Set(['index', 'primary key', 'unique constraint', 'exclusion constraint']);

/**
 * What is set before making objects: the base's names are qualified (function bodies are checked
 * when called, not when made, in every replay session: SESSION_SETTINGS).
 */
const DDL_SETTINGS = `set local search_path = ''`;

/** Objects whose failure fails the replay: without them a table's rows have nowhere to go. */
const ESSENTIAL = new Set(['table', 'partitioned table', 'primary key', 'primary key attachment']);

/** A base table's name in the base (`schema.table`), by source oid or by its name in the replay now. */
export interface BaseNames {
  /**
   * Null for a table the replay made (since the base): nothing of the base's hangs on it.
   * Undefined for one it neither loaded nor made (a partitioned table, say): known by its name then.
   */
  byOid(oid: number): string | null | undefined;
  /** Null when the table the replay holds under that name now is not in the base; undefined when it holds none. */
  byName(schema: string, name: string): string | null | undefined;
}

export class SchemaRestore {
  private readonly failedTables = new Map<string, string>();

  constructor(
    private readonly client: pg.Client,
    private readonly ddl: BaseDdl,
    log: Logger,
    /** Only these tables (`schema.table`); all when undefined. */
    private readonly only: Set<string> | undefined,
    /** Where the replay differs from the source: logged and recorded in replay.json. */
    private readonly warn: (fields: Record<string, unknown>, message: string) => void = (fields, message) => log.warn(fields, message),
    /** The statement that makes an enum type (by its qualified name) with every label the replay will need (EnumLabels). */
    private readonly enumSql: (name: string) => string | undefined = () => undefined,
    /** The base's tables: their oids and their columns' numbers, which captured shapes are compared with. */
    private readonly baseTables: BaseTable[] = [],
  ) {}

  /** Types, functions, sequences, tables and views: before the rows. */
  async preData(): Promise<void> {
    for (const name of this.ddl.notRestored) this.warn({ object: name }, 'not in the replay: the base could not recreate it');
    await this.client.query(DDL_SETTINGS);
    await this.run(this.ddl.pre);
    await this.client.query('set local search_path to default');
    this.failIfTablesFailed();
  }

  /** The primary keys, once the base's rows are in: with jobs, several at once, then their attachments. */
  async keys(pool?: JobPool): Promise<void> {
    const keys = this.ddl.post.filter((o) => o.kind === 'primary key' || o.kind === 'primary key attachment');
    await this.run(keys, pool);
    this.failIfTablesFailed();
  }

  /**
   * The rest of post-data, then what comes last: identity columns back to GENERATED ALWAYS,
   * materialized views filled, triggers and rules set to fire as on the source. Run with the
   * objects renamed since the base under the names the base's statements give them.
   */
  async finish(pool?: JobPool, unreachable: string[] = []): Promise<void> {
    for (const table of unreachable) {
      this.droppedTables.add(table);
      this.warn(
        { table },
        "something the replay could not set aside (a type, say) took this base table's name since: what the base makes on it at the end (triggers, rules, statistics, comments) is not made",
      );
    }
    await this.client.query(DDL_SETTINGS);
    await this.run(
      this.ddl.post
        .filter(
          (o) => o.kind !== 'primary key' && o.kind !== 'primary key attachment' && !this.keysFromSnapshots.has(nameKey(commentedKey(o))),
        )
        .map((o) => this.onColumnNow(o)),
      pool,
    );
    await this.setBaseSequences();
    // Through run: not on a table dropped since, and one the replay refuses is said. A table with
    // a captured shape has its identities as that shape says already (TargetTables.reconcile).
    await this.run(
      this.ddl.alwaysIdentity
        .filter((c) => !this.shapedTables.has(`${c.schema}.${c.table}`))
        .map((c) => ({
          kind: 'identity',
          name: `${quoteQualified(c.schema, c.table)}.${quoteIdent(c.column)}`,
          sql: [`ALTER TABLE ${quoteQualified(c.schema, c.table)} ALTER COLUMN ${quoteIdent(c.column)} SET GENERATED ALWAYS`],
          table: `${c.schema}.${c.table}`,
        })),
    );
    await this.run(this.ddl.final);
    await this.client.query('set local search_path to default');
  }

  /**
   * Sequences made after the base (an identity or serial added by captured DDL) that the history
   * recorded: set to the recorded value, or past what their column holds if that is further.
   */
  async setRecordedSequences(): Promise<void> {
    const known = new Set(this.ddl.sequences.map((s) => this.nowNamed(s)));
    for (const [name, value] of Object.entries(this.recordedValues)) {
      if (known.has(name)) continue;
      const { rows } = await this.client.query<{ seq: string; owner: string | null; column: string | null; increment: string }>(
        `select s.seqrelid::regclass::text as seq, d.refobjid::regclass::text as owner, a.attname as column, s.seqincrement::text as increment
           from pg_sequence s left join pg_depend d on d.classid = 'pg_class'::regclass and d.objid = s.seqrelid and d.deptype in ('a', 'i')
           left join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
          where s.seqrelid = to_regclass($1)`,
        [name],
      );
      const r = rows[0];
      if (!r) continue;
      const extreme = BigInt(r.increment) < 0n ? 'min' : 'max';
      await this.setSequence(r.seq, extreme, [
        ...(/^-?\d+$/.test(value) ? [`${value}::numeric`] : []),
        ...(r.owner && r.column ? [`(select ${extreme}(${quoteIdent(r.column)})::numeric from ${r.owner})`] : []),
      ]);
    }
  }

  /** The newest sequence values the history recorded up to the target, by nameKey of their names. */
  private recordedValues: Record<string, string> = {};

  /** Values as pgtape.sequence_values() keys them (format('%I.%I'): a keyword quoted as the source's server quotes it). */
  recorded(values: Record<string, string>): void {
    this.recordedValues = Object.fromEntries(Object.entries(values).map(([name, value]) => [nameKey(name), value]));
  }

  /**
   * Each of the base's sequences ends at the value recorded nearest the target (under its name
   * there), else the base saw, or past the largest (smallest, for a descending one) value its
   * columns hold now: an insert relying on the default gets a key no row has. Run under the
   * base's names, as its tables and sequences have while finish runs.
   */
  private async setBaseSequences(): Promise<void> {
    for (const s of this.ddl.sequences) {
      const seq = quoteQualified(s.schema, s.name);
      const columns = s.columns.filter((c) => this.wanted({ kind: 'sequence', name: seq, sql: [], table: `${c.schema}.${c.table}` }));
      if (s.columns.length && !columns.length) continue;
      const { rows } = await this.client.query<{ increment: string }>(
        `select seqincrement::text as increment from pg_sequence where seqrelid = to_regclass($1)`,
        [seq],
      );
      if (!rows[0]) continue;
      const extreme = BigInt(rows[0].increment) < 0n ? 'min' : 'max';
      // The value recorded nearest the target, else the base's; never short of what the columns hold.
      const recorded = this.recordedValues[this.nowNamed(s)];
      const known = recorded ?? s.lastValue;
      const candidates = [
        ...(known !== null && known !== undefined ? [`${known}::numeric`] : []),
        ...columns.map((c) => `(select ${extreme}(${quoteIdent(c.column)})::numeric from ${quoteQualified(c.schema, c.table)})`),
      ];
      await this.setSequence(seq, extreme, candidates);
    }
  }

  /** Sequences and schemas renamed or moved since the base (captured DDL), in order: each takes a sequence's name to its next. */
  private readonly sequenceRenames: ((name: string) => string)[] = [];

  /** What a sequence of the base is called now, as nameKey writes it. */
  private nowNamed(s: { schema: string; name: string }): string {
    return nameKey(this.sequenceRenames.reduce((name, next) => next(name), quoteQualified(s.schema, s.name)));
  }

  /** Sets a sequence to the furthest of `candidates` (SQL numeric expressions) in its direction, if any is known. */
  private async setSequence(seq: string, extreme: 'min' | 'max', candidates: string[]): Promise<void> {
    if (!candidates.length) return;
    const value = `${extreme === 'max' ? 'greatest' : 'least'}(${candidates.join(', ')})`;
    await this.run([
      {
        kind: 'sequence value',
        name: seq,
        sql: [`select setval(${quoteLiteral(seq)}, v::bigint, true) from (select ${value} as v) x where v is not null`],
      },
    ]);
  }

  /** Partitions detached before the rows (`schema.table`): their indexes are not attached to their parent's. */
  private readonly detached = new Set<string>();

  detachedPartitions(tables: string[]): void {
    for (const t of tables) this.detached.add(t);
  }

  private wanted(o: SchemaObject): boolean {
    if ((o.kind === 'primary key attachment' || o.kind === 'index attachment') && o.table && this.detached.has(o.table)) return false;
    if (!this.only) return true;
    return (!o.table || this.only.has(o.table)) && (o.needs ?? []).every((t) => this.only!.has(t));
  }

  /** Base tables (`schema.table` in the base) captured DDL took a snapshot of since. */
  private readonly shapedTables = new Set<string>();
  /** The base's name (`schema.view`) of each view renamed since, by nameKey of its name now (a base name among them is left). */
  private readonly viewBase = new Map<string, string>();
  /** The base's name of each schema renamed since, by nameKey of its name now (a base name among them is left). */
  private readonly schemaBase = new Map<string, string>();

  /** Objects the source dropped after the base (captured DDL), and tables it dropped: not made at the end. */
  private readonly droppedNames = new Set<string>();
  private readonly droppedTables = new Set<string>();
  /** The base's objects dropped since, followed through renames: their comments are not made. */
  private readonly gone = new BaseObjectsGone();
  /** Each table's columns (number → name) as its newest captured shape has them, by oid: a base column not among them was dropped. */
  private readonly columnsNow = new Map<number, Map<number, string>>();

  /**
   * Captured DDL dropped objects the base holds whose making is deferred to the end (indexes,
   * constraints, triggers, rules): they are not made then. Names are compared as both sides
   * write them: `schema.index`, `name on schema.table` (quote_ident'ed).
   */
  dropped(captured: CapturedDdl, tables: BaseNames): void {
    // What hangs on a table or a view, by its name in the base (the base makes it there) and its own name.
    const onTable = (schema: string, table: string, own: string): string | undefined => {
      const held = tables.byName(schema, table);
      // A table made since holds that name (one of the base's renamed away): its objects are its own.
      if (held === null) return undefined;
      // A view in a schema renamed since is named in the base's schema. A name a base view or schema
      // left is another's since: what hangs on that one is not the base's.
      const baseSchema = this.baseSchemaOf(quoteIdent(schema));
      const now = baseSchema === undefined ? undefined : `${baseSchema}.${table}`;
      const base =
        held ??
        this.viewBase.get(nameKey(quoteQualified(schema, table))) ??
        (now === undefined || [...this.viewBase.values()].includes(now) ? undefined : now);
      if (base) this.droppedNames.add(`${base}:${own}`);
      return base;
    };
    this.gone.follow(captured);
    // Schemas renamed since: views renamed before keep their base names under the schema's new name.
    for (const r of captured.renamedSchemas ?? []) {
      for (const [key, base] of [...this.viewBase]) {
        const moved = inRenamedSchema(key, r);
        if (moved === undefined) continue;
        this.viewBase.delete(key);
        this.viewBase.set(nameKey(moved), base);
      }
      const base = this.baseSchemaOf(r.from);
      this.schemaBase.delete(nameKey(r.from));
      if (base !== undefined) this.schemaBase.set(nameKey(r.identity), base);
    }
    // Views renamed or moved since the base, by their names now: what hangs on them is named by their base names.
    for (const o of captured.objects ?? []) {
      if ((o.kind !== 'view' && o.kind !== 'materialized view') || !o.renamed) continue;
      const [, schema, name] = QUALIFIED.exec(o.renamed.from) ?? [];
      const inBase = schema && this.baseSchemaOf(schema);
      const base = this.viewBase.get(nameKey(o.renamed.from)) ?? (inBase && name ? `${inBase}.${unquoteIdent(name)}` : undefined);
      this.viewBase.delete(nameKey(o.renamed.from));
      if (base) this.viewBase.set(nameKey(o.identity), base);
    }
    for (const t of captured.tables ?? []) this.columnsNow.set(t.oid, new Map(t.columns.map((c) => [c.attnum, c.name])));
    for (const o of captured.droppedObjects ?? []) {
      this.droppedNames.add(o.identity);
      // A constraint, trigger, rule or policy: its table and its own name.
      if (o.names.length !== 3 || o.type === 'index') continue;
      const base = onTable(o.names[0]!, o.names[1]!, o.names[2]!);
      if (base) this.gone.droppedFrom(base, o.names[2]!);
    }
    // A table made since and dropped is not the base's of its name (that one may have been renamed away).
    for (const t of captured.dropped ?? []) {
      const base = tables.byOid(t.oid);
      if (base !== null) this.droppedTables.add(base ?? `${t.schema}.${t.name}`);
    }
    for (const r of captured.renamedSchemas ?? []) this.sequenceRenames.push((name) => inRenamedSchema(name, r) ?? name);
    for (const o of captured.objects ?? []) {
      if (!o.renamed) continue;
      // A trigger made at the end: under its new name, as captured (replay/captured-objects.ts).
      if (o.kind === 'trigger') {
        const [, own, schema, table] = ON_RELATION.exec(o.renamed.from) ?? [];
        if (own && schema && table) onTable(unquoteIdent(schema), unquoteIdent(table), unquoteIdent(own));
      }
      const { from } = o.renamed;
      if (o.kind === 'sequence') this.sequenceRenames.push((name) => (nameKey(name) === nameKey(from) ? o.identity : name));
    }
  }

  /**
   * The base's deferred indexes and constraints of the tables captured DDL took a snapshot of: run
   * once the replay has applied it, so that a table it made is known as made (and never taken for
   * a base table of its name).
   */
  shaped(captured: CapturedDdl, tables: BaseNames): void {
    // A snapshot makes every index and local constraint it holds at its point, where missing
    // (TargetTables.reconcile: CREATE INDEX IF NOT EXISTS, ADD CONSTRAINT unless one of its name
    // is there); one it lacks was dropped or renamed (made under its new name at that point). The
    // base's are not made again at the end: a same-named one would fail as already there. A
    // partition's indexes too; its keys come from its parent's, not its own snapshot.
    for (const t of captured.tables ?? []) {
      // Named in the base as it was then (the replay makes them under those names: Applier.finish);
      // a table made since, even under a base table's name, holds nothing of the base's.
      const base = tables.byOid(t.oid);
      if (base === null) continue;
      const table = base ?? `${t.schema}.${t.name}`;
      if (!t.parent) this.shapedTables.add(table);
      const keyNames = new Set((t.constraints ?? []).map((k) => k.name));
      for (const o of this.ddl.post) {
        if (o.table !== table) continue;
        if (o.kind === 'index') this.droppedNames.add(o.name);
        // Linked to its type as its last snapshot says (TargetTables.finishTypedTables), if it records it.
        if (o.kind === 'typed table' && t.ofType !== undefined) this.droppedNames.add(o.name);
        if (t.parent) continue;
        if (CONSTRAINT_KINDS.has(o.kind) && o.kind !== 'foreign key') this.droppedNames.add(o.name);
        // Its foreign keys are made from its last snapshot (TargetTables.finishForeignKeys), naming
        // the table they reference as it is called then: the base's names the base's table, which
        // may not be the one it references now (a table swapped for a new one of its name).
        if (o.kind === 'foreign key') {
          this.droppedNames.add(o.name);
          // One a snapshot lacks was dropped or renamed: a key of its name later is another one.
          const [, own] = ON_RELATION.exec(o.name) ?? [];
          const gone = this.keysFromSnapshots.get(nameKey(o.name))?.gone || !own || !keyNames.has(unquoteIdent(own));
          this.keysFromSnapshots.set(nameKey(o.name), { oid: t.oid, gone });
        }
      }
    }
  }

  /**
   * The base's foreign keys of tables with a snapshot (made from it at the end), by nameKey of
   * their names (`key on schema.table`): their tables' oids, and whether a snapshot lacked them.
   */
  private readonly keysFromSnapshots = new Map<string, { oid: number; gone: boolean }>();

  /**
   * The base's partitions' clones of their parents' foreign keys under their source names again,
   * once the keys of tables with a snapshot are made (TargetTables.finishForeignKeys): the first
   * run, in finish(), found no clone of a key not made yet. A renamed clone is left as it is.
   * Under base names (Applier.finish opens the window): the statements name the base's tables.
   */
  async inheritedKeyNames(): Promise<void> {
    await this.run(this.ddl.post.filter((o) => o.kind === 'foreign key names'));
  }

  /**
   * The base's comments on foreign keys made from a snapshot, once TargetTables.finishForeignKeys
   * has made them: on the table's name now (`nameNow`, by oid). Not for a key the source dropped
   * since: its comment went with it.
   */
  async foreignKeyComments(nameNow: (oid: number) => string | undefined): Promise<void> {
    for (const o of this.ddl.post) {
      const key = commentedKey(o);
      const made = this.keysFromSnapshots.get(nameKey(key));
      const [, own] = ON_RELATION.exec(key) ?? [];
      if (!made || !own || this.droppedOn(key)) continue;
      if (made.gone) {
        this.warn(
          { object: `comment ${o.name}` },
          "not in the replay: the base's comment on a foreign key renamed since (the key is there)",
        );
        continue;
      }
      const now = nameNow(made.oid);
      if (!now) continue;
      const failed = await attempt(
        this.client,
        o.sql[0]!.replace(key, () => `${own} on ${now}`),
      );
      if (failed) this.failed(o, failed.message);
    }
  }

  /** The base's comments on constraints that did not exist yet (run() met undefined_object): tried again by keyCommentsAgain. */
  private readonly keyCommentsWaiting: SchemaObject[] = [];

  /** Whether the end of the replay has base partitions' clones to name, or comments waiting for them (inheritedKeyNames, keyCommentsAgain). */
  clonesToName(): boolean {
    return this.keyCommentsWaiting.length > 0 || this.ddl.post.some((o) => o.kind === 'foreign key names');
  }

  /**
   * The base's comments on keys that were not there when its comments ran — a base partition's
   * clone of a key its captured parent was given at the end — once that key is made and named
   * (under base names: Applier.finish opens the window).
   */
  async keyCommentsAgain(): Promise<void> {
    for (const o of this.keyCommentsWaiting.splice(0)) {
      if (this.wasDropped(o)) continue;
      const failed = await attempt(this.client, o.sql);
      if (failed) this.failed(o, failed.message);
    }
  }

  /** The base's name of a schema called `written` now (as identities write it); undefined for one made since that took a base schema's name. */
  private baseSchemaOf(written: string): string | undefined {
    const known = this.schemaBase.get(nameKey(written));
    if (known !== undefined) return known;
    const name = unquoteIdent(written);
    return [...this.schemaBase.values()].includes(name) ? undefined : name;
  }

  /** Base tables (`schema.table` in the base) the replay dropped at the end: what the base hangs on them is not made. */
  leaveOut(tables: string[]): void {
    for (const t of tables) this.droppedTables.add(t);
  }

  private wasDropped(o: SchemaObject): boolean {
    if (this.droppedNames.has(o.name) || (o.table && this.droppedTables.has(o.table))) return true;
    // A comment on a table dropped since went with it: a table made since under its name (a swap's
    // new table) has none of the base's. So did one on a column dropped since: a column added
    // since under its name is another (columns are known by number, as renames keep it).
    const commented = commentedTable(o);
    if (commented && (this.droppedTables.has(commented.table) || this.columnDropped(commented.table, commented.column))) return true;
    if (o.kind === 'comment' && this.gone.commentGone(o.name)) return true;
    return this.droppedOn(o.name, o.table);
  }

  /** Whether the captured DDL since the base dropped this column of a base table (`schema.table`); false where not known. */
  private columnDropped(table: string, column: string | undefined): boolean {
    return this.columnNow(table, column) === null;
  }

  /** A base table's column as captured shapes name it now (null: dropped since), undefined where not known. */
  private columnNow(table: string, column: string | undefined): string | null | undefined {
    if (column === undefined) return undefined;
    const t = this.baseTables.find((b) => `${b.schema}.${b.name}` === table);
    const attnum = t?.columns.find((c) => c.name === column)?.attnum;
    const now = t && this.columnsNow.get(t.oid);
    return attnum === undefined || now === undefined ? undefined : (now.get(attnum) ?? null);
  }

  /** The base's comment on a column renamed since, made on it under its name now (the window gives tables, not columns, their base names). */
  private onColumnNow(o: SchemaObject): SchemaObject {
    const c = commentedTable(o);
    const now = c && this.columnNow(c.table, c.column);
    if (!c?.written || !now || now === c.column) return o;
    const identity = o.name.slice('table column '.length);
    const renamed = `${identity.slice(0, identity.length - c.written.length)}${quoteIdent(now)}`;
    return { ...o, sql: o.sql.map((sql) => sql.replace(`COMMENT ON COLUMN ${identity} `, () => `COMMENT ON COLUMN ${renamed} `)) };
  }

  /** Whether the source dropped what hangs on a relation (`name on schema.relation`), on `table` (its base name) when given. */
  private droppedOn(name: string, table?: string): boolean {
    const [, own, schema, relation] = ON_RELATION.exec(name) ?? [];
    if (own === undefined || schema === undefined || relation === undefined) return false;
    const on = table ?? `${unquoteIdent(schema)}.${unquoteIdent(relation)}`;
    return this.droppedNames.has(`${on}:${unquoteIdent(own)}`);
  }

  /**
   * Runs each object in a savepoint: one that fails is reported (or fails the replay, for a table)
   * and the rest go on. With jobs, those of PARALLEL_KINDS go first, several at once, each in a
   * transaction of its own (this session must hold no lock on their tables: it has just committed).
   */
  private async run(all: SchemaObject[], pool?: JobPool): Promise<void> {
    let objects = all.filter((o) => this.wanted(o) && !this.wasDropped(o));
    if (pool) {
      const parallel = objects.filter((o) => PARALLEL_KINDS.has(o.kind));
      const failures = await pool.each(parallel, (client, o) => attemptAlone(client, o.sql, DDL_SETTINGS));
      for (const [i, o] of parallel.entries()) if (failures[i] && !(await this.madeAlready(o))) this.failed(o, failures[i].message);
      objects = objects.filter((o) => !PARALLEL_KINDS.has(o.kind));
    }
    for (const o of objects) {
      if (o.kind === 'enum type') {
        // Outside a savepoint: Postgres lets rows use a label added to an enum later in the same
        // transaction only when the type was created at its top level (a label added at its point
        // by captured DDL would otherwise be an "unsafe use of new value").
        for (const sql of [this.enumSql(o.name) ?? o.sql].flat()) await this.client.query(sql);
        continue;
      }
      const failed = await attempt(this.client, o.sql);
      if (failed && o.kind === 'extension') await this.extensionWithoutVersion(o, failed.message);
      else if (failed && commentedKey(o) && failed.code === NO_SUCH_CONSTRAINT) this.keyCommentsWaiting.push(o);
      else if (failed && !(await this.madeAlready(o))) this.failed(o, failed.message);
    }
  }

  /**
   * A key or check the replay holds already as the base defines it, under its name: a captured
   * shape of a partitioned table made its key (ADD CONSTRAINT recurses to the partitions, whose
   * clones the base makes one by one).
   */
  private async madeAlready(o: SchemaObject): Promise<boolean> {
    if (!CONSTRAINT_KINDS.has(o.kind) || o.kind === 'foreign key') return false;
    const [, own, schema, relation] = ON_RELATION.exec(o.name) ?? [];
    const def = /^ALTER TABLE (?:ONLY )?\S+ ADD CONSTRAINT (?:"(?:[^"]|"")*"|\S+) (.*)$/s.exec(o.sql.at(-1) ?? '')?.[1];
    if (own === undefined || schema === undefined || relation === undefined || def === undefined) return false;
    const { rows } = await this.client.query<{ def: string }>(
      'select pg_get_constraintdef(oid) as def from pg_constraint where conrelid = to_regclass($1) and conname = $2',
      [`${schema}.${relation}`, unquoteIdent(own)],
    );
    return rows[0]?.def === def;
  }

  /** An object the replay server refused: a table's essentials fail the replay (at the next check), anything else is warned of. */
  private failed(o: SchemaObject, why: string): void {
    if (ESSENTIAL.has(o.kind)) this.failedTables.set(o.table ?? o.name, `${o.kind} ${o.name}: ${why}`);
    else this.warn({ object: `${o.kind} ${o.name}`, err: why }, 'not in the replay: recreating this object failed');
  }

  /**
   * The replay server lacks the source's version of an extension: the version it has is made
   * instead, and said; lacking the extension altogether is an error naming it.
   */
  private async extensionWithoutVersion(o: SchemaObject, why: string): Promise<void> {
    const failed = await attempt(this.client, o.sql[0]!.replace(/ VERSION '(?:[^']|'')*'$/, ''));
    if (failed) {
      throw new UserError(
        `the replay server has no extension ${o.name}, which the archived database uses (${failed.message})`,
        'install it on the replay server (its contrib package, or the extension itself), or replay on a server that has it',
      );
    }
    const { rows } = await this.client.query<{ v: string }>('select extversion as v from pg_extension where extname = $1', [
      o.name.slice(1, -1).replace(/""/g, '"'),
    ]);
    this.warn(
      { extension: o.name, made: rows[0]?.v, err: why },
      "the replay server lacks the source's version of this extension: its own version was made instead",
    );
  }

  private failIfTablesFailed(): void {
    if (!this.failedTables.size) return;
    const list = [...this.failedTables].map(([t, why]) => `${t} (${why})`).join('; ');
    // A database this user may not write to fails every table alike: that is what to fix, not each table.
    const refused = [...this.failedTables.values()].every((why) => /permission denied|read-only transaction/i.test(why));
    throw new UserError(
      `the replay cannot recreate ${this.failedTables.size === 1 ? 'a table' : `${this.failedTables.size} tables`}: ${list}`,
      refused
        ? 'replay into a database this user may create tables in (CREATE on its schemas, not read-only), or use --pgdata'
        : 'install what they need on the replay server (an extension, a type), or leave them out with --tables',
    );
  }
}
