import type { RowValues, TextValue } from '../row-text.js';
import type { RelationDef } from '../../segment/format.js';
import { UNCHANGED } from '../../pgoutput/tuple.js';

/** A row and the names of its columns (one array per relation definition, compared by identity). */
export interface Row {
  values: TextValue[];
  columns: string[];
}

export interface RowDiff {
  change: 'added' | 'deleted' | 'modified';
  /** The replica identity's key; absent for tables matched on the whole row. */
  key?: RowValues;
  before?: RowValues;
  after?: RowValues;
  /** Modified rows: the columns whose value changed. */
  cells?: string[];
  /** Tables matched on the whole row: how many equal rows were added or deleted. */
  copies?: number;
}

// Text never holds NUL: it separates the parts of a key, and marks NULL and unchanged apart from any text.
const part = (v: TextValue) => (v === null ? '\u0000n' : v === UNCHANGED ? '\u0000u' : v);
export const joinParts = (values: TextValue[]) => (values.length === 1 ? part(values[0]!) : values.map(part).join('\u0000|'));

// Column lists are made once per shape and compared by identity: a million rows must not mean a
// million small arrays and maps. Each segment defines its relations anew, so lists are shared by
// content (the shapes a history has are few), not per definition: otherwise 150,000 one-row
// segments would mean 150,000 lists, each its own number on disk (ColumnLists).
const namesCache = new WeakMap<RelationDef, { columns: string[]; keys: string[] }>();
const namesByShape = new Map<string, { columns: string[]; keys: string[] }>();
function names(def: RelationDef): { columns: string[]; keys: string[] } {
  let n = namesCache.get(def);
  if (!n) {
    const columns = def.columns.map((c) => c.name);
    const keys = def.replicaIdentity === 'f' ? [] : def.columns.filter((c) => c.key).map((c) => c.name);
    const shape = JSON.stringify([columns, keys]);
    n = namesByShape.get(shape);
    if (!n) namesByShape.set(shape, (n = { columns, keys }));
    namesCache.set(def, n);
  }
  return n;
}
export const columnNames = (def: RelationDef) => names(def).columns;
export const keyNames = (def: RelationDef) => names(def).keys;

const mappings = new WeakMap<string[], Map<string[], number[]>>();
/** Where each of `to`'s columns is in `from` (-1: not there). */
function mapping(from: string[], to: string[]): number[] {
  let byTarget = mappings.get(from);
  if (!byTarget) mappings.set(from, (byTarget = new Map()));
  let m = byTarget.get(to);
  if (!m) byTarget.set(to, (m = to.map((c) => from.indexOf(c))));
  return m;
}

/** A row's values in another column order (by name; missing columns are NULL). */
export function align(row: Row, columns: string[]): TextValue[] {
  if (row.columns === columns) return row.values;
  return mapping(row.columns, columns).map((i) => (i < 0 ? null : row.values[i]!));
}

const sortedCache = new WeakMap<string[], string[]>();
/** The row's values by column name order: equal rows of differently ordered shapes compare equal. */
export function image(row: Row): string {
  let sorted = sortedCache.get(row.columns);
  if (!sorted) sortedCache.set(row.columns, (sorted = [...row.columns].sort()));
  return align(row, sorted).map(part).join('\u0000|');
}

export const keyText = (row: Row, keys: string[]): string => joinParts(align(row, keys));

export const hasUnchanged = (row: Row) => row.values.includes(UNCHANGED);

/** The row with its unchanged TOAST values taken from the same row before the change. */
export function withCarry(next: Row, previous: Row | null | undefined): Row {
  if (!previous || !hasUnchanged(next)) return next;
  const was = align(previous, next.columns);
  return { values: next.values.map((v, i) => (v === UNCHANGED ? (was[i] ?? UNCHANGED) : v)), columns: next.columns };
}

function toText(values: TextValue[], columns: string[]): RowValues {
  const out: RowValues = {};
  columns.forEach((c, i) => {
    const v = values[i];
    out[c] = v === null || v === undefined || v === UNCHANGED ? null : v;
  });
  return out;
}

/** A row as it was at --from against the same key's row at --to (absent: no such row). */
export function compareRows(
  before: Row | undefined,
  after: Row | null | undefined,
  columns: string[],
  keys: string[],
): RowDiff | undefined {
  const key = (r: Row) => (keys.length ? { key: toText(align(r, keys), keys) } : {});
  if (!before && !after) return undefined;
  if (!before) return { change: 'added', ...key(after!), after: toText(align(after!, columns), columns) };
  if (!after) return { change: 'deleted', ...key(before), before: toText(before.values, before.columns) };
  const b = align(before, columns);
  const a = align(after, columns);
  const cells = columns.filter((_, i) => b[i] !== a[i]);
  if (!cells.length) return undefined;
  return { change: 'modified', ...key(after), before: toText(b, columns), after: toText(a, columns), cells };
}

/** Rows of whole-row tables, added (copies > 0) or deleted (copies < 0). */
export function countedRows(row: Row, copies: number, columns: string[]): RowDiff | undefined {
  if (copies > 0) return { change: 'added', after: toText(align(row, columns), columns), copies };
  if (copies < 0) return { change: 'deleted', before: toText(row.values, row.columns), copies: -copies };
  return undefined;
}
