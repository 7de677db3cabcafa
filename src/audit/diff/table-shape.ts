import type { BaseRef, BaseSchema } from '../../log/bases.js';
import { eachEntryIn } from '../../log/change-log.js';
import { headerOf, loadHeaders, segmentsIn, type ArchiveIndex } from '../../log/archive-index.js';
import { columnTypeName, sameColumnTypes, type RelationDef } from '../../segment/format.js';
import type { Store } from '../../store/store.js';
import { keyNames } from './rows.js';

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
 * The table as it was at --from: the last definition the log carried for it before that point
 * (segment headers say which segments touched it), else the base's, else null (created later).
 */
export async function shapeAt(
  store: Store,
  index: ArchiveIndex,
  base: BaseRef | undefined,
  schema: BaseSchema | undefined,
  at: bigint | undefined,
  oid: number,
): Promise<TableShape | null> {
  if (at === undefined) return null;
  const since = await loadHeaders(store, await segmentsIn(index, base ? base.lsn - 1n : undefined, at));
  const candidates = since.filter((s) => headerOf(s).firstCommitLsn <= at && headerOf(s).tables.some((t) => t.oid === oid));
  for (const s of candidates.reverse()) {
    let def: RelationDef | undefined;
    await eachEntryIn(
      store,
      [s],
      (lsn) => lsn <= at,
      (e) => {
        if ((e.kind === 'insert' || e.kind === 'update' || e.kind === 'delete') && e.relation.oid === oid) def = e.relation;
        if (e.kind === 'truncate') def = e.relations.find((r) => r.oid === oid) ?? def;
      },
    );
    if (def) return shapeOf(def);
  }
  const t = schema?.tables.find((t) => t.oid === oid);
  if (!t) return null;
  return {
    schema: t.schema,
    name: t.name,
    columns: t.columns.map((c) => ({ name: c.name, type: c.type, typeOid: c.typeOid, typmod: c.typmod })),
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
