import type pg from 'pg';
import { quoteIdent, quoteQualified, unquoteIdent } from '../src/core/sql.js';
import type { RenamedObject } from '../src/source/ddl-capture.js';
import { attempt } from './savepoint.js';

// The window in which the base's statements made at the end run (docs/ARCHITECTURE.md, "Schema
// changes"): those statements name the base's tables, and the objects renamed since, as the base
// did. Inside it, each goes back to that name; a relation or schema that took such a name since
// (a table swapped for a new one of its name, as online schema-change tools do: `t` renamed to
// `t_old`, a new `t`) is set aside under a name of its own; on closing, every move is undone, the
// newest first.

/** Where a relation stands: its schema and its own name, unquoted. */
export interface Place {
  schema: string;
  name: string;
}

/** A table of the replay that the window may move: where it stands, and where the base's statements look for it. */
export interface WindowTable extends Place {
  backTo?: Place;
  base?: Place;
}

/** An object the replay renamed as the source did (its kind as captured: `view`, `sequence`, `schema` …; its identity now). */
export type RenamedOfKind = RenamedObject & { kind: string; identity: string };

/** Kinds of captured objects that are relations: ALTER TABLE renames any of them. */
const RELATION_KINDS = new Set(['view', 'materialized view', 'sequence', 'index']);

type Warn = (key: string, fields: Record<string, unknown>, message: string) => void;

export class BaseNamesWindow {
  private readonly back = new Set<WindowTable>();
  /** Where a table stands inside the window when not at its own name: moved back, or set aside. */
  private readonly at = new Map<WindowTable, Place>();
  /** What undoes each move made, in the order they were made. */
  private readonly undo: string[][] = [];
  private asides = 0;

  constructor(
    private readonly client: pg.Client,
    /** Every table the replay holds; those with a `backTo` other than their name go back. */
    private readonly tables: WindowTable[],
    /** The objects renamed since the base, the newest first. */
    private readonly objects: RenamedOfKind[],
    private readonly warn: Warn,
  ) {}

  /**
   * Moves everything back. Returns the base tables left where they are (`schema.table` in the
   * base): something the window cannot set aside holds their name, and what the base makes on
   * them is left out.
   */
  async open(): Promise<string[]> {
    const renamed = this.tables.filter((t) => t.backTo && (t.backTo.schema !== t.schema || t.backTo.name !== t.name));
    await this.tablesBack(renamed);
    // Then the objects, schemas among them: a table back in its schema as renamed is back in the base's.
    for (const r of this.objects) {
      let failed = await this.run([r.back], [r.rename]);
      if (failed && (await this.setAside(await this.holder(r)))) failed = await this.run([r.back], [r.rename]);
      if (!failed && r.kind === 'schema') this.schemaMoved(unquoteIdent(r.identity), unquoteIdent(r.from));
      if (!failed) continue;
      this.warn(
        `back:${r.back}`,
        { object: r.from, err: failed.message },
        "renamed at the source, and another object took its former name since: the base's statements made at the end that name it may be made on that other object",
      );
    }
    // And the tables whose base name a renamed object held.
    await this.tablesBack(renamed);
    // A name a relation took since: set aside, one at a time (setting one aside may free others).
    for (const t of renamed)
      if (!this.back.has(t) && (await this.setAside({ kind: 'table', place: t.backTo! }))) await this.tablesBack(renamed);
    return renamed.filter((t) => !this.back.has(t)).map((t) => `${t.base!.schema}.${t.base!.name}`);
  }

  /** Undoes every move, the newest first. */
  async close(): Promise<void> {
    for (const sql of this.undo.reverse()) {
      const failed = await attempt(this.client, sql);
      if (failed)
        this.warn(
          `forward:${sql.join(';')}`,
          { statement: sql.join('; '), err: failed.message },
          "a rename the replay made as the source did could not be made again after the base's last statements",
        );
    }
    this.undo.length = 0;
  }

  /** Until none more goes back: one may take the name another gives up. */
  private async tablesBack(renamed: WindowTable[]): Promise<void> {
    for (let more = true; more;) {
      more = false;
      for (const t of renamed) {
        if (this.back.has(t)) continue;
        const from = this.placeOf(t);
        if (!(await this.run(moveStatements(from, t.backTo!), moveStatements(t.backTo!, from)))) {
          this.back.add(t);
          this.at.set(t, t.backTo!);
          more = true;
        }
      }
    }
  }

  private placeOf(t: WindowTable): Place {
    return this.at.get(t) ?? t;
  }

  /**
   * What holds a renamed object's former name, if the window can set it aside: a relation, or a
   * schema. None when the object itself is gone (dropped since its rename): nothing to give back.
   */
  private async holder(r: RenamedOfKind): Promise<{ kind: 'table' | 'schema'; place: Place } | undefined> {
    if (r.kind === 'schema') {
      const { rows } = await this.client.query('select 1 from pg_namespace where nspname = $1', [unquoteIdent(r.identity)]);
      return rows.length ? { kind: 'schema', place: { schema: unquoteIdent(r.from), name: '' } } : undefined;
    }
    if (!RELATION_KINDS.has(r.kind)) return undefined;
    const { rows: there } = await this.client.query('select 1 where to_regclass($1) is not null', [r.identity]);
    if (!there.length) return undefined;
    const { rows } = await this.client.query<Place>(
      `select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass($1)`,
      [r.from],
    );
    return rows[0] && { kind: 'table', place: rows[0] };
  }

  /**
   * Renames what holds `place` (a relation but a composite type, or a schema) to a name of its own
   * for the window. False when nothing the window may move holds it.
   */
  private async setAside(holder: { kind: 'table' | 'schema'; place: Place } | undefined): Promise<boolean> {
    if (!holder) return false;
    const { kind, place } = holder;
    const taken = (name: string) =>
      kind === 'schema'
        ? this.client.query('select 1 from pg_namespace where nspname = $1', [name])
        : // A relation's name is taken by a type of that name too (every table has its row type).
          this.client.query(
            `select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2 and c.relkind <> 'c'
             union all select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace where n.nspname = $1 and t.typname = $2`,
            [place.schema, name],
          );
    if (!(await taken(kind === 'schema' ? place.schema : place.name)).rows.length) return false;
    // A table where the base's statements look for it stays there: what they make is its.
    if (kind === 'table' && this.tables.some((t) => t.backTo && samePlace(this.placeOf(t), place) && samePlace(t.backTo, place)))
      return false;
    let aside: string;
    do aside = `pgtape_aside_${++this.asides}`;
    while ((await taken(aside)).rows.length);
    const to = { schema: kind === 'schema' ? aside : place.schema, name: kind === 'schema' ? '' : aside };
    const failed =
      kind === 'schema'
        ? await this.run(
            [`alter schema ${quoteIdent(place.schema)} rename to ${quoteIdent(aside)}`],
            [`alter schema ${quoteIdent(aside)} rename to ${quoteIdent(place.schema)}`],
          )
        : await this.run(moveStatements(place, to), moveStatements(to, place));
    if (failed) return false;
    // The tables it held (the relation, or those in the schema) stand there now.
    if (kind === 'schema') this.schemaMoved(place.schema, aside);
    else for (const t of this.tables) if (samePlace(this.placeOf(t), place)) this.at.set(t, to);
    return true;
  }

  /** The tables in a schema renamed inside the window stand in it under its new name. */
  private schemaMoved(from: string, to: string): void {
    for (const t of this.tables) {
      const at = this.placeOf(t);
      if (at.schema === from) this.at.set(t, { schema: to, name: at.name });
    }
  }

  /** Runs a move; when it is made, what undoes it is kept. Returns why it was not. */
  private async run(sql: string[], undo: string[]): Promise<Error | undefined> {
    if (!sql.length) return undefined;
    const failed = await attempt(this.client, sql);
    if (!failed) this.undo.push(undo);
    return failed;
  }
}

function samePlace(a: Place, b: Place): boolean {
  return a.schema === b.schema && a.name === b.name;
}

/** A table moved to another schema, then renamed, from one name to another. */
export function moveStatements(from: Place, to: Place): string[] {
  return [
    ...(from.schema !== to.schema ? [`alter table ${quoteQualified(from.schema, from.name)} set schema ${quoteIdent(to.schema)}`] : []),
    ...(from.name !== to.name ? [`alter table ${quoteQualified(to.schema, from.name)} rename to ${quoteIdent(to.name)}`] : []),
  ];
}
