import type pg from 'pg';
import type { CapturedDdl, CapturedObject, RenamedObject } from '../src/source/ddl-capture.js';
import type { RenamedOfKind } from './base-names-window.js';
import { attempt } from './savepoint.js';
import { commentStatement } from '../src/base/ddl/post-data.js';
import {
  accessMethodFollow,
  TriggerStates,
  extensionStatements,
  commentsOnRenamed,
  identityInRenamedSchema,
  KeptTriggers,
  onMovedTable,
  sequenceName,
  madeWhereMissing,
  viewDefaults,
} from '../src/source/ddl-statements.js';

// Views, materialized views (and their indexes), functions, procedures, aggregates, triggers, sequences, collations and text search objects made or altered after
// the base, replayed from the statements captured DDL recorded (docs/ARCHITECTURE.md, "Schema
// changes"). Each at its point, in the order a dump restores them — sequences and functions
// before the tables that may use them, views after — except triggers: made at the end, with the
// base's, so that none fires for rows the log already holds.

/** undefined_table, undefined_column, undefined_function, undefined_object, undefined_schema. */
const UNDEFINED_OBJECT = new Set(['42P01', '42703', '42883', '42704', '3F000']);
/** duplicate_table, duplicate_function, duplicate_object. */
const DUPLICATE_OBJECT = new Set(['42P07', '42723', '42710']);
/** Kinds made or altered after the command's tables are: renamed then too. */
const AFTER_TABLES = new Set(['view', 'materialized view', 'trigger', 'index']);

type Warn = (key: string, fields: Record<string, unknown>, message: string) => void;

export class CapturedObjects {
  /** Triggers to make at the end, by identity (`name on schema.table`), in the order they were made. */
  private readonly triggers = new KeptTriggers();
  /** Comments, in order, set at the end (what they are on may be made only then), on what their object is called by then. */
  private readonly comments: { kind: string; identity: string; comment?: string | null }[] = [];
  /** The renames and moves the replay made as the source did, in order. */
  private readonly renamed: RenamedOfKind[] = [];
  /** Triggers' states as the source last set them, set once every trigger is made. */
  readonly triggerStates = new TriggerStates();

  constructor(
    private readonly client: pg.Client,
    private readonly warn: Warn,
  ) {}

  /** What must exist before the command's tables are reshaped: extensions, sequences (a default may call nextval) and functions. */
  async beforeTables(captured: CapturedDdl): Promise<void> {
    const objects = captured.objects ?? [];
    // First: its types and functions may be what the rest is made of.
    for (const o of objects) if (o.kind === 'extension') await this.make(o, extensionStatements(o));
    // Renamed or moved: the replay's own under its former name is, before anything is made under the new one.
    for (const o of objects) if (o.renamed && !AFTER_TABLES.has(o.kind)) await this.rename(o);
    // What a column, a domain or a generated column may name: collations, then text search
    // dictionaries and the configurations made of them.
    for (const o of objects) if (o.kind === 'collation') await this.make(o, [o.create]);
    // What a table, an operator family or class is made USING.
    for (const o of objects) if (o.kind === 'access method') await this.make(o, madeWhereMissing(o));
    for (const kind of ['text search dictionary', 'text search configuration'])
      for (const o of objects) if (o.kind === kind) await this.make(o, madeWhereMissing(o));
    for (const o of objects) if (o.kind === 'sequence') await this.sequence(o);
    for (const o of objects) if (o.kind === 'function' || o.kind === 'procedure') await this.make(o, [o.create]);
    // After the functions they are made of.
    for (const o of objects) if (o.kind === 'aggregate') await this.make(o, [o.create]);
    // After the functions they call (casts: and the types they join); families before the classes that join them.
    for (const kind of ['operator', 'operator family', 'operator class', 'cast', 'conversion'])
      for (const o of objects) if (o.kind === kind) await this.make(o, madeWhereMissing(o));
  }

  /** What hangs on the command's tables: views, materialized views, sequences' owners; triggers kept for the end. */
  async afterTables(captured: CapturedDdl): Promise<void> {
    for (const o of captured.objects ?? []) if (o.renamed && AFTER_TABLES.has(o.kind)) await this.rename(o);
    for (const o of captured.objects ?? []) {
      if (o.kind === 'view') await this.make(o, [o.create, ...viewDefaults(o)]);
      else if (o.kind === 'materialized view') await this.materializedView(o, captured.tag);
      else if (o.kind === 'index') await this.make(o, [`drop index if exists ${o.identity}`, o.create]);
      else if (o.kind === 'sequence' && o.ownedBy) await this.make(o, [`alter sequence ${sequenceName(o)} owned by ${o.ownedBy}`]);
      else if (o.kind === 'trigger') {
        // One of the base's renamed is not made at the end under its former name (RestoreSchema.dropped).
        if (o.renamed) this.triggers.delete(o.renamed.from);
        this.triggers.delete(o.identity);
        this.triggers.set(o.identity, o.create);
        this.triggerStates.object(o);
      }
    }
    for (const c of captured.comments ?? []) this.comments.push({ ...c });
  }

  /**
   * A table renamed or moved (`schema.name` as Postgres writes identities): the triggers to make
   * on it at the end, and the comments on it or on what hangs on it, follow it.
   */
  tableMoved(from: string, to: string): void {
    this.triggers.moved(from, to);
    for (const c of this.comments) c.identity = onMovedTable(c, from, to) ?? c.identity;
  }

  /**
   * The objects renamed since the base, the newest first (one renamed twice goes back through
   * each): the base's statements made at the end (an index of a materialized view, a trigger
   * calling a function, a REFRESH) name them as the base did (replay/base-names-window.ts).
   */
  renamedNewestFirst(): RenamedOfKind[] {
    return [...this.renamed].reverse();
  }

  /** A trigger dropped after it was captured is not made at the end. */
  dropped(captured: CapturedDdl): void {
    for (const o of captured.droppedObjects ?? []) if (o.type === 'trigger') this.triggers.delete(o.identity);
  }

  /**
   * The triggers made after the base, as they last were, once every change is applied; then every
   * trigger's state as the source last set it (`nameOf`: a table's name in the replay, by source oid).
   */
  async finish(nameOf: (oid: number) => string | undefined): Promise<void> {
    for (const { identity, create } of this.triggers)
      await this.make({ kind: 'trigger', identity, create }, [`drop trigger if exists ${identity}`, create]);
    const states = this.triggerStates.statement(nameOf);
    const failed = states && (await attempt(this.client, states));
    if (failed)
      this.warn(
        'trigger states',
        { err: failed.message },
        "the triggers' states (enabled, disabled, replica, always) could not be set as the source's",
      );
    for (const c of this.comments) {
      const sql = commentStatement(c.kind, c.identity, c.comment);
      if (!sql) continue;
      const failed = await attempt(this.client, sql);
      // On something gone since (dropped later, or not in this replay): nothing to say it on.
      if (failed && !UNDEFINED_OBJECT.has(failed.code ?? ''))
        this.warn(
          `comment:${sql}`,
          { comment: sql, err: failed.message },
          'a comment captured from the source could not be set in the replay',
        );
    }
  }

  /**
   * A schema renamed at the source: renamed in the replay too (what is in it follows by oid), and
   * the comments kept for the end on what is in it follow. False when the replay could not.
   */
  async renameSchema(r: RenamedObject & { identity: string }): Promise<boolean> {
    const failed = await attempt(this.client, [r.rename]);
    if (failed) {
      if (!UNDEFINED_OBJECT.has(failed.code ?? ''))
        this.warn(
          `schema:${r.identity}`,
          { schema: r.identity, was: r.from, err: failed.message },
          'renamed at the source, and the replay could not rename it: the replay differs from the source here',
        );
      return false;
    }
    this.renamed.push({ ...r, kind: 'schema' });
    for (const c of this.comments) c.identity = identityInRenamedSchema(c.kind, c.identity, r) ?? c.identity;
    this.triggers.schemaRenamed(r.from, r.identity);
    return true;
  }

  /**
   * Renames the replay's object as the source did. One the replay does not have under its former
   * name (one of the base's made only at the end, a trigger), or already has under the new one, is left to be made.
   */
  private async rename(o: CapturedObject): Promise<void> {
    const r = o.renamed!;
    commentsOnRenamed(this.comments, r.from, o.identity);
    if (o.kind === 'function') this.triggers.functionRenamed(r.from, o.identity);
    const failed = await attempt(this.client, [r.rename]);
    if (!failed) this.renamed.push({ ...r, kind: o.kind, identity: o.identity });
    else if (!UNDEFINED_OBJECT.has(failed.code ?? '') && !DUPLICATE_OBJECT.has(failed.code ?? ''))
      this.warn(
        `object:${o.kind}:${o.identity}`,
        { object: `${o.kind} ${o.identity}`, was: r.from, err: failed.message },
        'renamed or moved at the source, and the replay could not rename it: the replay differs from the source here',
      );
  }

  private async sequence(o: CapturedObject): Promise<void> {
    const name = sequenceName(o);
    const { rows } = await this.client.query<{ oid: number | null }>('select to_regclass($1)::oid::int as oid', [name]);
    if (rows[0]!.oid === null) return this.make(o, [o.create]);
    // An existing one takes the captured parameters (ALTER SEQUENCE takes CREATE's clauses but AS first).
    const alter = o.create.replace(/^create sequence /, 'alter sequence ');
    // Its value in the replay is an earlier one (values are not decoded; they are set at the end):
    // new bounds may leave it outside, where the source's was inside. Then it restarts inside them.
    if (await attempt(this.client, [alter])) await this.make(o, [`${alter} restart`]);
  }

  private async materializedView(o: CapturedObject, tag: string): Promise<void> {
    const { rows } = await this.client.query<{ oid: number | null }>('select to_regclass($1)::oid::int as oid', [o.identity]);
    const made = rows[0]!.oid === null;
    // One made already is brought to the access method the command left it with (made, it has it).
    const statements = made ? [o.create] : o.accessMethod ? [accessMethodFollow(o.identity, o.accessMethod, 'materialized view')] : [];
    // Filled from the replay's tables as they are at this point, as the source filled it then.
    if (o.populated && (made || tag.startsWith('REFRESH'))) statements.push(`refresh materialized view ${o.identity}`);
    if (statements.length) await this.make(o, statements);
  }

  private async make(o: CapturedObject, statements: string[]): Promise<void> {
    const failed = await attempt(this.client, statements);
    if (failed) {
      this.warn(
        `object:${o.kind}:${o.identity}`,
        { object: `${o.kind} ${o.identity}`, err: failed.message },
        'made or altered after the base, and the replay could not make it: the replay differs from the source here',
      );
    }
  }
}
