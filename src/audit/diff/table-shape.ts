import type { BaseRef, BaseSchema } from '../../log/bases.js';
import { eachEntryIn } from '../../log/change-log.js';
import { headerOf, loadHeaders, segmentsIn, type ArchiveIndex } from '../../log/archive-index.js';
import { columnTypeName, sameColumnTypes, type RelationDef } from '../../segment/format.js';
import type { Store } from '../../store/store.js';
import { keyNames } from './rows.js';
import type { CapturedDdl, TableSnapshot } from '../../source/ddl-capture.js';
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
 * point — the Relation of a row written, or a shape captured DDL recorded (a table renamed, or
 * dropped, names itself there alone when no row was written since: the name a Relation last gave
 * may be another table's by then, as after an online schema change's swap) — else the base's,
 * else null (made later, or dropped). One pass over the segments since the base that hold rows
 * of them or messages.
 */
export async function shapesAt(
  store: Store,
  index: ArchiveIndex,
  base: BaseRef | undefined,
  schema: BaseSchema | undefined,
  at: bigint | undefined,
  oids: Iterable<number>,
): Promise<Map<number, TableShape | null>> {
  const wanted = new Set(oids);
  const out = new Map<number, TableShape | null>();
  if (at === undefined) {
    for (const oid of wanted) out.set(oid, null);
    return out;
  }
  for (const oid of wanted) {
    const t = schema?.tables.find((t) => t.oid === oid);
    out.set(
      oid,
      t
        ? {
            schema: t.schema,
            name: t.name,
            columns: t.columns.map((c) => ({ name: c.name, type: c.type, typeOid: c.typeOid, typmod: c.typmod })),
            key: t.primaryKey,
            replicaIdentity: t.replicaIdentity,
          }
        : null,
    );
  }
  if (!wanted.size) return out;
  const since = await loadHeaders(store, await segmentsIn(index, base ? base.lsn - 1n : undefined, at));
  const segments = since.filter((s) => {
    const h = headerOf(s);
    return h.firstCommitLsn <= at && (h.messages > 0 || h.tables.some((t) => wanted.has(t.oid)));
  });
  await eachEntryIn(
    store,
    segments,
    (lsn) => lsn <= at,
    (e) => {
      if (e.kind === 'insert' || e.kind === 'update' || e.kind === 'delete') {
        if (wanted.has(e.relation.oid)) out.set(e.relation.oid, shapeOf(e.relation));
      } else if (e.kind === 'truncate') {
        for (const r of e.relations) if (wanted.has(r.oid)) out.set(r.oid, shapeOf(r));
      } else if (e.kind === 'message' && e.prefix === DDL_PREFIX) {
        const captured = JSON.parse(e.content.toString('utf8')) as CapturedDdl;
        for (const t of captured.tables ?? []) if (wanted.has(t.oid)) out.set(t.oid, capturedShape(t));
        for (const d of captured.dropped ?? []) if (wanted.has(d.oid)) out.set(d.oid, null);
      }
    },
  );
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
