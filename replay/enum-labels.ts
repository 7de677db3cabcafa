import { quoteLiteral, quoteQualified, unquoteIdent } from '../src/core/sql.js';
import type { NumberedDdl } from './log-reader.js';

/**
 * Enum labels a replay must have before rows use them. Postgres lets a transaction use a label
 * added in it only if the type was created in it at its top level, and before 17 not even then
 * ("unsafe use of new value"). A replay is one transaction: so when a value needs a label its
 * type lacked (added after the base, captured or not), the replay is made again with the label
 * in the type from its creation — in the order captured DDL gave, where it gave one. The first
 * time, every label captured DDL adds over the span is read ahead (foresee): one attempt more, not
 * one per label (on Postgres before 17, each label added after the base and used in the replay).
 */
export class EnumLabels {
  /**
   * Captured DDL commands applied so far in this attempt. Every attempt applies the same ones in
   * the same order, so a name at a time on this clock is one type in every attempt: a name may
   * pass to another type (renamed away, then made again), and what was learned of one is not the other's.
   */
  private clock = 0;
  /** Labels an earlier attempt found used before the replay's type had them: the type's name then, and when. */
  private readonly needed: { key: string; label: string; at: number }[] = [];
  /** Labels captured DDL adds over the span (read ahead: foresee), by the type's name then, and when; undefined until read. */
  private foreseen?: { key: string; label: string; at: number }[];
  /** The orders captured DDL gave types: the name then, and when. */
  private readonly captured: { key: string; labels: string[]; at: number }[] = [];
  /** Types renamed after the base (`to` empty: dropped): names `schema.name`, and when. */
  private readonly renames: { from: string; to: string; at: number }[] = [];
  /** Where each type of this attempt began, by its name now: its first name and when it was made (0: the base's). */
  private readonly made = new Map<string, { key: string; at: number }>();

  /** A new attempt: it starts at the base again. */
  restart(): void {
    this.clock = 0;
    this.made.clear();
  }

  /** A captured DDL command is applied. */
  tick(): void {
    this.clock++;
  }

  /** Learns from a failed attempt's error; false when it says nothing new (the error stands). */
  learn(err: unknown): { type: string; label: string } | undefined {
    const e = err as { code?: string; message?: string };
    const m =
      e.code === '22P02'
        ? /^invalid input value for enum (.+): "(.*)"$/s.exec(e.message ?? '')
        : e.code === '55P04'
          ? /^unsafe use of new value "(.*)" of enum type (.+)$/s.exec(e.message ?? '')
          : null;
    if (!m) return undefined;
    const [type, label] = e.code === '22P02' ? [m[1]!, m[2]!] : [m[2]!, m[1]!];
    const key = keyOf(type);
    if (this.needed.some((n) => n.key === key && n.label === label)) return undefined;
    this.needed.push({ key, label, at: this.clock });
    return { type, label };
  }

  /** Whether the span's captured labels were read ahead (foresee). */
  get read(): boolean {
    return this.foreseen !== undefined;
  }

  /**
   * Every label captured DDL adds to an enum type over the span (its type changes, numbered as
   * tick counts), with the orders, renames and drops that place them: the next attempt makes each
   * type with them. Only labels the type still has at its last change in the span: one renamed
   * since is found by RENAME VALUE where the source had it. What this misses (a type in a schema
   * renamed, say) is still learned from the attempt it fails.
   */
  foresee(base: { schema: string; name: string; labels: string[] }[], changes: NumberedDdl[]): void {
    const atBase = new Map(base.map((e) => [`${e.schema}.${e.name}`, e.labels]));
    // The enum types there are at each change, by key: a schema renamed takes those in it along.
    const types = new Map(base.map((e) => [`${e.schema}.${e.name}`, { schema: e.schema, name: e.name }]));
    const last = new Map<number, string[]>();
    const added: { oid: number; key: string; label: string; at: number }[] = [];
    for (const { at, ddl } of changes) {
      for (const o of ddl.droppedObjects ?? []) {
        if (o.type !== 'type') continue;
        this.renameAt(keyOf(o.identity), '', at);
        types.delete(keyOf(o.identity));
      }
      for (const r of ddl.renamedSchemas ?? []) {
        const [from, to] = [unquoteIdent(r.from), unquoteIdent(r.identity)];
        for (const [key, t] of [...types]) {
          if (t.schema !== from) continue;
          types.delete(key);
          types.set(`${to}.${t.name}`, { schema: to, name: t.name });
          this.renameAt(key, `${to}.${t.name}`, at);
        }
      }
      for (const t of ddl.types ?? []) {
        const key = `${t.schema}.${t.name}`;
        const was = t.was && `${t.was.schema}.${t.was.name}`;
        if (was) {
          this.renameAt(was, key, at);
          types.delete(was);
        }
        if (t.kind !== 'e' || !t.labels) continue;
        types.set(key, { schema: t.schema, name: t.name });
        if (!this.captured.some((c) => c.key === key && c.at === at)) this.captured.push({ key, labels: t.labels, at });
        const before = last.get(t.oid) ?? atBase.get(was ?? key);
        last.set(t.oid, t.labels);
        // Added (ADD VALUE), not renamed (RENAME VALUE keeps their number).
        if (before && t.labels.length > before.length)
          for (const label of t.labels) if (!before.includes(label)) added.push({ oid: t.oid, key, label, at });
      }
    }
    this.foreseen = added.filter((a) => last.get(a.oid)!.includes(a.label)).map(({ key, label, at }) => ({ key, label, at }));
  }

  /** Captured DDL gave this type these labels, in this order. */
  capturedOrder(schema: string, name: string, labels: string[]): void {
    const key = `${schema}.${name}`;
    const same = this.captured.find((c) => c.key === key && c.at === this.clock);
    if (same) same.labels = labels;
    else this.captured.push({ key, labels, at: this.clock });
  }

  /**
   * The replay renamed a type as the source did. A label found needed under the new name is
   * one the type needs from its creation, under the old: a later attempt makes it with it.
   */
  renamed(fromSchema: string, fromName: string, schema: string, name: string): void {
    this.moved(`${fromSchema}.${fromName}`, `${schema}.${name}`);
  }

  /** The source dropped the type (named as format_type writes it): a type made later under its name is another. */
  dropped(type: string): void {
    this.moved(keyOf(type), '');
  }

  private moved(from: string, to: string): void {
    this.renameAt(from, to, this.clock);
    const origin = this.made.get(from);
    this.made.delete(from);
    if (to) this.made.set(to, origin ?? { key: from, at: 0 });
  }

  private renameAt(from: string, to: string, at: number): void {
    if (!this.renames.some((r) => r.from === from && r.to === to && r.at === at)) this.renames.push({ from, to, at });
  }

  /** The names a type made as `key` at `since` has, each while it has it (renames learned in any attempt). */
  private lifetime(key: string, since: number): { key: string; from: number; to: number }[] {
    const out: { key: string; from: number; to: number }[] = [];
    for (let name = key, from = since; name;) {
      const next = this.renames.filter((r) => r.from === name && r.at > from).sort((a, b) => a.at - b.at)[0];
      out.push({ key: name, from, to: next?.at ?? Infinity });
      if (!next) break;
      [name, from] = [next.to, next.at];
    }
    return out;
  }

  /** What was learned of the type now called `schema.name` (the one being made, when none is). */
  private of<T extends { key: string; at: number }>(entries: T[], schema: string, name: string): T[] {
    const key = `${schema}.${name}`;
    const origin = this.made.get(key) ?? { key, at: this.clock };
    const life = this.lifetime(origin.key, origin.at);
    return entries.filter((e) => life.some((l) => l.key === e.key && l.from <= e.at && e.at < l.to));
  }

  /**
   * Labels the type was made with ahead of their time (found needed by an earlier attempt), under
   * any name it had: until captured DDL adds them, they are no label the type lost or renamed.
   */
  madeAhead(schema: string, name: string): string[] {
    return [...new Set(this.of([...this.needed, ...(this.foreseen ?? [])], schema, name).map((n) => n.label))];
  }

  /** The labels to create the type with: `labels`, and those found needed, in the captured order where known. */
  labelsFor(schema: string, name: string, labels: string[]): string[] {
    const needed = this.madeAhead(schema, name).filter((l) => !labels.includes(l));
    if (!needed.length) return labels;
    const order = this.of(this.captured, schema, name)
      .sort((a, b) => a.at - b.at)
      .at(-1)?.labels;
    if (!order) return [...labels, ...needed];
    // Each needed label goes before the first label it precedes in the captured order; the type's
    // own labels keep their places, those the order lacks included (renamed since: RENAME VALUE
    // finds them where the source had them), and a label the order places nowhere goes last.
    const out = [...labels];
    for (const label of [...needed].sort((a, b) => rank(order, a) - rank(order, b))) {
      const at = out.findIndex((l) => order.includes(l) && rank(order, l) > rank(order, label));
      out.splice(at < 0 ? out.length : at, 0, label);
    }
    return out;
  }

  /** Labels put in a type with no captured order to place them by (no --capture-ddl): at its end. */
  guessed(): { type: string; label: string }[] {
    return this.needed.filter((n) => !this.captured.some((c) => c.key === n.key)).map((n) => ({ type: n.key, label: n.label }));
  }

  /** The statement that makes the type now, with every label the replay will need; from here on it is this type. */
  createEnum(schema: string, name: string, labels: string[]): string {
    const key = `${schema}.${name}`;
    this.made.set(key, { key, at: this.clock });
    return `CREATE TYPE ${quoteQualified(schema, name)} AS ENUM (${this.labelsFor(schema, name, labels).map(quoteLiteral).join(', ')})`;
  }
}

function rank(order: string[], label: string): number {
  const i = order.indexOf(label);
  return i < 0 ? order.length : i;
}

/** A type as an error names it (format_type: bare when on the search path, quoted where needed) as `schema.name`. */
function keyOf(type: string): string {
  const parts = type.match(/"(?:[^"]|"")*"|[^.]+/g)!.map((p) => (p.startsWith('"') ? p.slice(1, -1).replace(/""/g, '"') : p));
  return parts.length === 1 ? `public.${parts[0]}` : `${parts[0]}.${parts[1]}`;
}

/**
 * Partitions the source detached after the base, learned as enum labels are (without
 * --capture-ddl nothing says so until a row outside the partition's bound arrives for it): the
 * replay is made again with them detached from its start, and says so.
 */
export class DetachedPartitions {
  readonly tables: { schema: string; name: string }[] = [];

  learn(err: unknown): { schema: string; name: string } | undefined {
    const e = err as { code?: string; message?: string; schema?: string; table?: string };
    if (e.code !== '23514' || !/violates partition constraint/.test(e.message ?? '') || !e.schema || !e.table) return undefined;
    if (this.tables.some((t) => t.schema === e.schema && t.name === e.table)) return undefined;
    const t = { schema: e.schema, name: e.table };
    this.tables.push(t);
    return t;
  }
}
