import { nameKey, outsideQuotes, quoteQualified, unquoteIdent } from '../src/core/sql.js';
import type { CapturedDdl } from '../src/source/ddl-capture.js';
import { identityInRenamedSchema } from '../src/source/ddl-statements.js';

// The base's objects that captured DDL dropped since, known by the names the base gives them.
// Postgres drops an object's comment with it, so the base's comment on a view, function, type,
// index, trigger … dropped since is not made at the end: another object may hold its name by
// then (a view dropped and made again), and would take a comment it never had. Objects are
// followed through the renames captured DDL recorded (the base's statements made at the end name
// them as the base did: replay/base-names-window.ts). See docs/ARCHITECTURE.md, Schema changes.

/** A renamed object's base identity, and what it is called now. */
interface Renamed {
  type: string;
  now: string;
  base: string;
}

export class BaseObjectsGone {
  /** Base objects renamed since, by `type nameKey(identity now)`. */
  private readonly renamed = new Map<string, Renamed>();
  /** Base schemas renamed since: their base names, by nameKey of their names now. */
  private readonly schemas = new Map<string, string>();
  /** `type nameKey(base identity)` of base names their objects left: renamed away or dropped. */
  private readonly left = new Set<string>();
  /** Base objects dropped since: nameKeys of their base identities, by type. */
  private readonly gone = new Map<string, Set<string>>();
  /** What hangs on a base table or view (a trigger, rule, constraint) dropped since: `schema.relation:own` (base names, unquoted). */
  private readonly hanging = new Set<string>();

  /** One command's captured DDL, in the order of the log. */
  follow(captured: CapturedDdl): void {
    for (const r of captured.renamedSchemas ?? []) this.schemaRenamed(r.from, r.identity);
    for (const o of captured.objects ?? []) if (o.renamed) this.objectRenamed(o.kind, o.renamed.from, o.identity);
    // pg_identify_object calls every type 'type' (a domain, an enum, a composite type's row type).
    for (const t of captured.types ?? [])
      if (t.was) this.objectRenamed('type', quoteQualified(t.was.schema, t.was.name), quoteQualified(t.schema, t.name));
    for (const o of captured.droppedObjects ?? []) {
      const base = this.baseIdentity(o.type, o.identity);
      if (base === undefined) continue;
      this.gone.set(o.type, (this.gone.get(o.type) ?? new Set()).add(nameKey(base)));
      this.left.add(key(o.type, base));
      this.renamed.delete(key(o.type, o.identity));
    }
  }

  /** A trigger, rule, constraint or policy dropped from a base table or view (`table` its base name, `schema.relation`, unquoted). */
  droppedFrom(table: string, own: string): void {
    this.hanging.add(`${table}:${own}`);
  }

  /** Whether a base comment (named `type identity`, as the base names them) is on an object dropped since. */
  commentGone(name: string): boolean {
    for (const [type, identities] of this.gone)
      if (name.startsWith(`${type} `) && identities.has(nameKey(name.slice(type.length + 1)))) return true;
    // A column of a view dropped since (`view column s.v.c`).
    const column = /^(view|materialized view) column (.*)$/.exec(name);
    const dot = column ? outsideQuotes(column[2]!, '.')[1] : undefined;
    if (column && dot !== undefined && this.gone.get(column[1]!)?.has(nameKey(column[2]!.slice(0, dot)))) return true;
    // What hangs on a relation: `trigger t on s.r`, `rule r on s.v`, `table constraint k on s.t`.
    const hanging = /^(?:trigger|rule|policy|table constraint) (.*)$/.exec(name)?.[1];
    const on = hanging === undefined ? undefined : outsideQuotes(hanging, ' on ').at(-1);
    if (hanging === undefined || on === undefined) return false;
    const relation = hanging.slice(on + 4);
    const at = outsideQuotes(relation, '.')[0];
    if (at === undefined) return false;
    return this.hanging.has(
      `${unquoteIdent(relation.slice(0, at))}.${unquoteIdent(relation.slice(at + 1))}:${unquoteIdent(hanging.slice(0, on))}`,
    );
  }

  private objectRenamed(type: string, from: string, to: string): void {
    const base = this.baseIdentity(type, from);
    this.renamed.delete(key(type, from));
    if (base === undefined) return;
    this.left.add(key(type, base));
    this.renamed.set(key(type, to), { type, now: to, base });
  }

  private schemaRenamed(from: string, to: string): void {
    const base = this.baseIdentity('schema', from);
    this.schemas.delete(nameKey(from));
    if (base !== undefined) {
      this.left.add(key('schema', base));
      this.schemas.set(nameKey(to), base);
    }
    // Objects renamed before: what they are called now moves with the schema.
    for (const [k, r] of [...this.renamed]) {
      const moved = identityInRenamedSchema(r.type, r.now, { from, identity: to });
      if (moved === undefined) continue;
      this.renamed.delete(k);
      this.renamed.set(key(r.type, moved), { ...r, now: moved });
    }
  }

  /** The base identity of the object called `identity` now; undefined for one made since. */
  private baseIdentity(type: string, identity: string): string | undefined {
    const renamed = this.renamed.get(key(type, identity));
    if (renamed) return renamed.base;
    let base = identity;
    const dot = type === 'schema' ? undefined : outsideQuotes(identity, '.')[0];
    const schema = type === 'schema' ? identity : dot === undefined ? undefined : identity.slice(0, dot);
    if (schema !== undefined) {
      const baseSchema = this.schemas.get(nameKey(schema));
      if (baseSchema !== undefined) base = identityInRenamedSchema(type, identity, { from: schema, identity: baseSchema }) ?? identity;
      // A schema made since under a base schema's name holds nothing of the base's.
      else if (this.left.has(key('schema', schema))) return undefined;
    }
    return this.left.has(key(type, base)) ? undefined : base;
  }
}

function key(type: string, identity: string): string {
  return `${type} ${nameKey(identity)}`;
}
