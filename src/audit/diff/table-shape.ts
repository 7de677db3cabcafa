import type { BaseRef, BaseSchema } from '../../log/bases.js';
import { eachEntryIn } from '../../log/change-log.js';
import { headerOf, loadHeaders, segmentsIn, type ArchiveIndex } from '../../log/archive-index.js';
import { columnTypeName, sameColumnTypes, type RelationDef } from '../../segment/format.js';
import type { Store } from '../../store/store.js';
import { GeneratedColumns } from './generated-columns.js';
import { keyNames } from './rows.js';
import { parseCapturedDdl, type TableSnapshot } from '../../source/ddl-capture.js';
import { DDL_PREFIX } from '../../source/logical-messages.js';

// A table's shape (columns, types, key) at either end of a diff: what `diff` reports as the
// schema side of a difference, from Relation entries or from a base's schema.

export interface ColumnShape {
  name: string;
  /** SQL type, with modifiers. */
  type: string;
  typeOid: number;
  typmod: number;
}

export interface TableShape {
  schema: string;
  name: string;
  columns: ColumnShape[];
  key: string[];
  replicaIdentity: string;
}

export function shapeOf(def: RelationDef): TableShape {
  return {
    schema: def.schema,
    name: def.name,
    columns: def.columns.map((c) => ({ name: c.name, type: sqlType(c.typeName, c.typmod), typeOid: c.typeOid, typmod: c.typmod })),
    key: keyNames(def),
    replicaIdentity: def.replicaIdentity,
  };
}

export function sameTableShape(a: TableShape | null, b: TableShape): boolean {
  return !!a && a.schema === b.schema && a.name === b.name && sameColumnTypes(a.columns, b.columns);
}

/**
 * Tables as they were at --from, by source oid: the last the log carried of each before that
 * point — the Relation of a row written, or captured DDL's shape or drop (a table renamed, or
 * dropped, names itself there alone when no row was written since: the name a Relation last gave
 * may be another table's by then, as after an online schema change's swap) — else the base's,
 * else null (made later, or dropped). A captured shape gives the name and key; the columns are
 * the last Relation's or the base's, which leave out what a column list does not publish (the
 * shape's own only where there are none). Segments are read newest first, and the search stops
 * once every table is known.
 */
export async function shapesAt(
  store: Store,
  index: ArchiveIndex,
  base: BaseRef | undefined,
  schema: BaseSchema | undefined,
  at: bigint | undefined,
  oids: Iterable<number>,
): Promise<Map<number, TableShape | null>> {
  const out = new Map<number, TableShape | null>();
  const wanted = new Set(oids);
  if (at === undefined) {
    for (const oid of wanted) out.set(oid, null);
    return out;
  }
  /** Named by captured DDL, its columns still to find in older entries. */
  const named = new Map<number, TableSnapshot>();
  const since = await loadHeaders(store, await segmentsIn(index, base ? base.lsn - 1n : undefined, at));
  const segments = since.filter((s) => {
    const h = headerOf(s);
    return h.firstCommitLsn <= at && (h.messages > 0 || h.tables.some((t) => wanted.has(t.oid)));
  });
  // Known from the base, and from captured shapes as they are read (newest first across segments).
  const generated = new GeneratedColumns(schema);
  for (const s of segments.reverse()) {
    if (!wanted.size) break;
    // The segment's last word on each table still wanted (read forwards, each later entry overriding).
    const last = new Map<number, { relation: RelationDef } | { captured: TableSnapshot } | { dropped: true }>();
    /** The segment's last Relation of each: the columns of one captured DDL names after it. */
    const relations = new Map<number, RelationDef>();
    await eachEntryIn(
      store,
      [s],
      (lsn) => lsn <= at && (!base || lsn >= base.lsn),
      (e) => {
        if (e.kind === 'insert' || e.kind === 'update' || e.kind === 'delete') {
          if (wanted.has(e.relation.oid)) {
            const relation = generated.relation(e.relation);
            last.set(e.relation.oid, { relation });
            relations.set(e.relation.oid, relation);
          }
        } else if (e.kind === 'truncate') {
          for (const r of e.relations) {
            if (!wanted.has(r.oid)) continue;
            last.set(r.oid, { relation: generated.relation(r) });
            relations.set(r.oid, generated.relation(r));
          }
        } else if (e.kind === 'message' && e.prefix === DDL_PREFIX && (e.content.includes('"tables"') || e.content.includes('"dropped"'))) {
          const captured = parseCapturedDdl(e.content);
          generated.learn(captured);
          for (const t of captured.tables ?? []) if (wanted.has(t.oid)) last.set(t.oid, { captured: t });
          for (const d of captured.dropped ?? []) if (wanted.has(d.oid)) last.set(d.oid, { dropped: true });
        }
      },
    );
    for (const [oid, word] of last) {
      if ('captured' in word && !named.has(oid)) named.set(oid, word.captured);
      const name = named.get(oid);
      const relation = 'relation' in word ? word.relation : 'captured' in word ? relations.get(oid) : undefined;
      if (!relation && !('dropped' in word)) continue;
      wanted.delete(oid);
      if (!relation) out.set(oid, null);
      else out.set(oid, name ? { ...shapeOf(relation), schema: name.schema, name: name.name, key: name.primaryKey } : shapeOf(relation));
    }
  }
  for (const oid of wanted) {
    const t = schema?.tables.find((t) => t.oid === oid);
    const name = named.get(oid);
    const fromBase: TableShape | null = t
      ? {
          schema: t.schema,
          name: t.name,
          columns: t.columns.map((c) => ({ name: c.name, type: c.type, typeOid: c.typeOid, typmod: c.typmod })),
          key: t.primaryKey,
          replicaIdentity: t.replicaIdentity,
        }
      : null;
    out.set(
      oid,
      name ? (fromBase ? { ...fromBase, schema: name.schema, name: name.name, key: name.primaryKey } : capturedShape(name)) : fromBase,
    );
  }
  return out;
}

/** A captured table's shape as a Relation would give it: its columns but generated ones, which pgoutput does not send. */
function capturedShape(t: TableSnapshot): TableShape {
  return {
    schema: t.schema,
    name: t.name,
    columns: t.columns.filter((c) => !c.generated).map((c) => ({ name: c.name, type: c.type, typeOid: c.typeOid, typmod: c.typmod })),
    key: t.primaryKey,
    replicaIdentity: t.replicaIdentity,
  };
}

/**
 * A column's SQL type with its modifiers, from what a Relation message gives (format_type()
 * without the typmod, which is added here for the types that have one).
 */
export function sqlType(archived: string, typmod: number): string {
  const typeName = columnTypeName(archived);
  if (typmod < 0) return typeName;
  const array = typeName.endsWith('[]');
  const element = array ? typeName.slice(0, -2) : typeName;
  let out = element;
  switch (element) {
    case 'character varying':
    case 'bpchar':
    case 'character':
      out = `${element === 'character varying' ? 'character varying' : 'character'}(${typmod - 4})`;
      break;
    case 'numeric': {
      const m = typmod - 4;
      out = `numeric(${(m >> 16) & 0xffff},${((m & 0x7ff) ^ 1024) - 1024})`;
      break;
    }
    case 'bit':
    case 'bit varying':
      out = `${element}(${typmod})`;
      break;
    case 'time without time zone':
    case 'time with time zone':
    case 'timestamp without time zone':
    case 'timestamp with time zone': {
      const [head, ...rest] = element.split(' ');
      out = `${head}(${typmod}) ${rest.join(' ')}`;
      break;
    }
  }
  return array ? `${out}[]` : out;
}
