import { quoteLiteral, quoteQualified } from '../src/core/sql.js';

/**
 * Enum labels a replay must have before rows use them. Postgres lets a transaction use a label
 * added in it only if the type was created in it at its top level, and before 17 not even then
 * ("unsafe use of new value"). A replay is one transaction: so when a value needs a label its
 * type lacked (added after the base, captured or not), the replay is made again with the label
 * in the type from its creation — in the order captured DDL gave, where it gave one.
 */
export class EnumLabels {
  /** Labels an earlier attempt found used before the replay's type had them, by `schema.name`. */
  private readonly needed = new Map<string, string[]>();
  /** The newest order captured DDL gave each type. */
  private readonly captured = new Map<string, string[]>();
  /** Names a type had before it was renamed after the base (new `schema.name` → old). */
  private readonly formerly = new Map<string, string>();

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
    const labels = this.needed.get(key) ?? [];
    if (labels.includes(label)) return undefined;
    this.needed.set(key, [...labels, label]);
    return { type, label };
  }

  /** Captured DDL gave this type these labels, in this order. */
  capturedOrder(schema: string, name: string, labels: string[]): void {
    this.captured.set(`${schema}.${name}`, labels);
  }

  /**
   * The replay renamed a type as the source did. A label found needed under the new name is
   * one the type needs from its creation, under the old: a later attempt makes it with it.
   */
  renamed(fromSchema: string, fromName: string, schema: string, name: string): void {
    this.formerly.set(`${schema}.${name}`, `${fromSchema}.${fromName}`);
  }

  /**
   * Labels the type was made with ahead of their time (found needed by an earlier attempt), under
   * any name it had: until captured DDL adds them, they are no label the type lost or renamed.
   */
  madeAhead(schema: string, name: string): string[] {
    return [...new Set(this.names(`${schema}.${name}`, true).flatMap((k) => this.needed.get(k) ?? []))];
  }

  /** `key` and every later name of the type (renames are learned as the replay goes, the same in each attempt); also the earlier ones with `both`. */
  private names(key: string, both = false): string[] {
    const keys = [key];
    for (let grew = true; grew;) {
      grew = false;
      for (const [later, earlier] of this.formerly) {
        for (const [from, to] of both
          ? [
              [earlier, later],
              [later, earlier],
            ]
          : [[earlier, later]])
          if (keys.includes(from!) && !keys.includes(to!)) grew = !!keys.push(to!);
      }
    }
    return keys;
  }

  /** The labels to create the type with: `labels`, and those found needed, in the captured order where known. */
  labelsFor(schema: string, name: string, labels: string[]): string[] {
    const keys = this.names(`${schema}.${name}`);
    const needed = [...new Set(keys.flatMap((k) => this.needed.get(k) ?? []))].filter((l) => !labels.includes(l));
    if (!needed.length) return labels;
    const order = keys.map((k) => this.captured.get(k)).findLast((o) => o !== undefined);
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
    return [...this.needed]
      .filter(([key]) => !this.captured.has(key))
      .flatMap(([type, labels]) => labels.map((label) => ({ type, label })));
  }

  createEnum(schema: string, name: string, labels: string[]): string {
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
