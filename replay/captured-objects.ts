import type pg from 'pg';
import type { CapturedDdl, CapturedObject } from '../src/source/ddl-capture.js';
import { attempt } from './savepoint.js';
import { commentStatement } from '../src/base/ddl/post-data.js';
import { extensionStatements, sequenceName } from '../src/source/ddl-statements.js';

// Views, materialized views (and their indexes), functions, procedures, aggregates, triggers and sequences made or altered after
// the base, replayed from the statements captured DDL recorded (docs/ARCHITECTURE.md, "Schema
// changes"). Each at its point, in the order a dump restores them — sequences and functions
// before the tables that may use them, views after — except triggers: made at the end, with the
// base's, so that none fires for rows the log already holds.

/** undefined_table, undefined_column, undefined_function, undefined_object, undefined_schema. */
const UNDEFINED_OBJECT = new Set(['42P01', '42703', '42883', '42704', '3F000']);

type Warn = (key: string, fields: Record<string, unknown>, message: string) => void;

export class CapturedObjects {
  /** Triggers to make at the end, by identity (`name on schema.table`), in the order they were made. */
  private readonly triggers = new Map<string, string>();
  /** COMMENT statements, in order, set at the end (what they are on may be made only then). */
  private readonly comments: string[] = [];

  constructor(
    private readonly client: pg.Client,
    private readonly warn: Warn,
  ) {}

  /** What must exist before the command's tables are reshaped: extensions, sequences (a default may call nextval) and functions. */
  async beforeTables(captured: CapturedDdl): Promise<void> {
    const objects = captured.objects ?? [];
    // First: its types and functions may be what the rest is made of.
    for (const o of objects) if (o.kind === 'extension') await this.make(o, extensionStatements(o));
    for (const o of objects) if (o.kind === 'sequence') await this.sequence(o);
    for (const o of objects) if (o.kind === 'function' || o.kind === 'procedure') await this.make(o, [o.create]);
    // After the functions they are made of.
    for (const o of objects) if (o.kind === 'aggregate') await this.make(o, [o.create]);
  }

  /** What hangs on the command's tables: views, materialized views, sequences' owners; triggers kept for the end. */
  async afterTables(captured: CapturedDdl): Promise<void> {
    for (const o of captured.objects ?? []) {
      if (o.kind === 'view') await this.make(o, [o.create]);
      else if (o.kind === 'materialized view') await this.materializedView(o, captured.tag);
      else if (o.kind === 'index') await this.make(o, [`drop index if exists ${o.identity}`, o.create]);
      else if (o.kind === 'sequence' && o.ownedBy) await this.make(o, [`alter sequence ${sequenceName(o)} owned by ${o.ownedBy}`]);
      else if (o.kind === 'trigger') {
        this.triggers.delete(o.identity);
        this.triggers.set(o.identity, o.create);
      }
    }
    for (const c of captured.comments ?? []) {
      const sql = commentStatement(c.kind, c.identity, c.comment);
      if (sql) this.comments.push(sql);
    }
  }

  /** A trigger dropped after it was captured is not made at the end. */
  dropped(captured: CapturedDdl): void {
    for (const o of captured.droppedObjects ?? []) if (o.type === 'trigger') this.triggers.delete(o.identity);
  }

  /** The triggers made after the base, as they last were, once every change is applied. */
  async finish(): Promise<void> {
    for (const [identity, create] of this.triggers)
      await this.make({ kind: 'trigger', identity, create }, [`drop trigger if exists ${identity}`, create]);
    for (const sql of this.comments) {
      const failed = (await attempt(this.client, sql)) as (Error & { code?: string }) | undefined;
      // On something gone since (dropped later, or not in this replay): nothing to say it on.
      if (failed && !UNDEFINED_OBJECT.has(failed.code ?? ''))
        this.warn(
          `comment:${sql}`,
          { comment: sql, err: failed.message },
          'a comment captured from the source could not be set in the replay',
        );
    }
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
    const statements = rows[0]!.oid === null ? [o.create] : [];
    // Filled from the replay's tables as they are at this point, as the source filled it then.
    if (o.populated && (statements.length || tag.startsWith('REFRESH'))) statements.push(`refresh materialized view ${o.identity}`);
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
