import type { BaseSchema } from '../../log/bases.js';
import type { LogEntry } from '../../log/change-log.js';
import type { Tuple } from '../../pgoutput/messages.js';
import { carriesValue } from '../../pgoutput/tuple.js';
import type { RelationDef } from '../../segment/format.js';
import type { CapturedDdl } from '../../source/ddl-capture.js';

type RowChange = Extract<LogEntry, { kind: 'insert' | 'update' | 'delete' }>;

/**
 * Stored generated columns, which a Postgres 18 publication sends where it says
 * `publish_generated_columns = stored` (or its column list names them) and leaves out otherwise,
 * as the base's rows (COPY) always do. diff leaves them out of the rows it compares and the
 * shapes it reports: the database computes them, and a publication setting changed is no change
 * of the table (docs/ARCHITECTURE.md, "Audit"). Known from the base (bases since 2026-12) and
 * from captured shapes, each from its point on in the order entries are read. Without
 * --capture-ddl, a generated column added after the base is not known, and stays in; one the
 * source dropped and added again as a plain column of its name is still left out.
 */
export class GeneratedColumns {
  private readonly byOid = new Map<number, Set<string>>();
  /** Each relation object's columns kept (undefined: all), for the knowledge of `version`. */
  private readonly kept = new WeakMap<RelationDef, { version: number; def: RelationDef; keep: number[] | undefined }>();
  private version = 0;

  constructor(schema?: BaseSchema) {
    for (const t of schema?.tables ?? []) if (t.generatedColumns?.length) this.byOid.set(t.oid, new Set(t.generatedColumns));
  }

  /** A captured DDL message: its tables' generated columns from here on. */
  learn(captured: CapturedDdl): void {
    for (const s of captured.tables ?? []) {
      const names = s.columns.filter((c) => c.generated && !c.virtual).map((c) => c.name);
      const known = this.byOid.get(s.oid);
      if (!names.length && !known) continue;
      this.byOid.set(s.oid, new Set(names));
      this.version++;
    }
  }

  /** The relation without its generated columns (the same object when it has none). */
  relation(def: RelationDef): RelationDef {
    return this.of(def).def;
  }

  /** The row change without its generated columns' values (the same object when it has none). */
  entry<E extends RowChange>(e: E): E {
    const { def, keep } = this.of(e.relation);
    if (!keep) return e;
    const cut = (t: Tuple | undefined) => t && tupleOf(t, keep);
    if (e.kind === 'insert') return { ...e, relation: def, new: cut(e.new)! };
    if (e.kind === 'update') return { ...e, relation: def, new: cut(e.new)!, key: cut(e.key), old: cut(e.old) };
    return { ...e, relation: def, key: cut(e.key), old: cut(e.old) };
  }

  private of(def: RelationDef): { def: RelationDef; keep: number[] | undefined } {
    const cached = this.kept.get(def);
    if (cached?.version === this.version) return cached;
    const generated = this.byOid.get(def.oid);
    const keep =
      generated && def.columns.some((c) => generated.has(c.name))
        ? def.columns.flatMap((c, i) => (generated.has(c.name) ? [] : [i]))
        : undefined;
    const made = { version: this.version, def: keep ? { ...def, columns: keep.map((i) => def.columns[i]!) } : def, keep };
    this.kept.set(def, made);
    return made;
  }
}

/** A tuple's columns at `keep` (its values are those of the columns that carry one). */
function tupleOf(t: Tuple, keep: number[]): Tuple {
  const at: number[] = [];
  let v = 0;
  for (let i = 0; i < t.kinds.length; i++) at.push(carriesValue(t.kinds[i]!) ? v++ : -1);
  const kinds = Buffer.from(keep.map((i) => t.kinds[i]!));
  const values = keep.flatMap((i) => (at[i]! >= 0 ? [t.values[at[i]!]!] : []));
  return { kinds, values };
}
