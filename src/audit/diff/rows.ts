import type { RowValues, TextValue } from '../row-text.js';
import type { RelationDef } from '../../segment/format.js';
import { UNCHANGED } from '../../pgoutput/tuple.js';
import { copyFieldValue, parseCopyLine } from './base-rows.js';

/** A row and the names of its columns (one array per relation definition, compared by identity). */
export interface Row {
  readonly values: TextValue[];
  readonly columns: string[];
}

// A row kept as one text (what diff spills, and a base's line without escapes): each value tagged
// t (text), n (NULL) or u (unchanged), each after a NUL, which text values never hold.
const NULL_TAG = '\u0000n';
const UNCHANGED_TAG = '\u0000u';
const TEXT_TAG = '\u0000t';

/**
 * A row held as its one text, its values split out only when asked: most rows diff reads back
 * from disk are overwritten by a later change of their key, or compared equal as a whole, and a
 * string and an array per value of a million rows was a third of diff's time (its collector's).
 */
export class EncodedRow implements Row {
  private decoded: TextValue[] | undefined;

  constructor(
    readonly columns: string[],
    readonly text: string,
  ) {}

  get values(): TextValue[] {
    if (this.decoded) return this.decoded;
    const parts = this.text.split('\u0000');
    const values: TextValue[] = new Array(parts.length - 1);
    for (let i = 1; i < parts.length; i++) {
      const p = parts[i]!;
      values[i - 1] = p === 'n' ? null : p === 'u' ? UNCHANGED : p.slice(1);
    }
    return (this.decoded = values);
  }
}

/** The row as one text (EncodedRow's). */
export function rowText(r: Row): string {
  if (r instanceof EncodedRow) return r.text;
  let text = '';
  for (const v of r.values) text += v === null ? NULL_TAG : v === UNCHANGED ? UNCHANGED_TAG : TEXT_TAG + v;
  return text;
}

/** A line of a COPY text file as a row: kept as its text when no value is escaped (nor NULL, `\\N`). */
export function copyLineRow(line: string, columns: string[]): Row {
  if (line.includes('\\')) return { values: parseCopyLine(line), columns };
  return new EncodedRow(columns, TEXT_TAG + line.replaceAll('\t', TEXT_TAG));
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

const TAB = 0x09;

/**
 * The key text (joinParts) of COPY text lines of `columnCount` fields whose key columns are at
 * `positions`, read from the key's fields alone (a tab byte is never part of another UTF-8
 * character). A line's last field is not searched for its tab: the search would run on through
 * the lines after it (a one-column table's have none).
 */
export class LineKeys {
  private readonly last: number;
  private readonly starts: number[];
  private readonly ends: number[];

  constructor(
    private readonly positions: number[],
    private readonly columnCount: number,
  ) {
    this.last = Math.max(...positions);
    this.starts = new Array<number>(this.last + 1).fill(0);
    this.ends = new Array<number>(this.last + 1).fill(0);
  }

  /** The key of the line at bytes `start` to `end` of `buf`. */
  of(buf: Buffer, start: number, end: number): string {
    let at = start;
    for (let f = 0; f <= this.last; f++) {
      const tab = f === this.columnCount - 1 ? -1 : buf.indexOf(TAB, at);
      const fieldEnd = tab < 0 || tab > end ? end : tab;
      this.starts[f] = at;
      this.ends[f] = fieldEnd;
      at = fieldEnd + 1;
    }
    return joinParts(this.positions.map((p) => copyFieldValue(buf.toString('utf8', this.starts[p], this.ends[p]))));
  }
}

// Column lists are made once per shape and compared by identity: a million rows must not mean a
// million small arrays and maps. Each segment defines its relations anew, so lists are shared by
// content (the shapes a history has are few), not per definition: otherwise 150,000 one-row
// segments would mean 150,000 lists, each its own number on disk (ColumnLists).
const namesCache = new WeakMap<RelationDef, { columns: string[]; keys: string[] }>();
const listsByContent = new Map<string, string[]>();
/** The one array of these names: rows of one shape, from the log or from a base, share it. */
export function sharedColumns(names: string[]): string[] {
  const content = JSON.stringify(names);
  let list = listsByContent.get(content);
  if (!list) listsByContent.set(content, (list = names));
  return list;
}
function names(def: RelationDef): { columns: string[]; keys: string[] } {
  let n = namesCache.get(def);
  if (!n) {
    const columns = sharedColumns(def.columns.map((c) => c.name));
    const keys = sharedColumns(def.replicaIdentity === 'f' ? [] : def.columns.filter((c) => c.key).map((c) => c.name));
    namesCache.set(def, (n = { columns, keys }));
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

export const hasUnchanged = (row: Row) => (row instanceof EncodedRow ? row.text.includes(UNCHANGED_TAG) : row.values.includes(UNCHANGED));

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
  const cells = changedColumns(before, after, columns);
  if (!cells.length) return undefined;
  return {
    change: 'modified',
    ...key(after),
    before: toText(align(before, columns), columns),
    after: toText(align(after, columns), columns),
    cells,
  };
}

/** Both rows' texts, when both are held as texts of one column list: compared without splitting either. */
function sameShapeTexts(before: Row, after: Row): [string, string] | undefined {
  return before instanceof EncodedRow && after instanceof EncodedRow && before.columns === after.columns
    ? [before.text, after.text]
    : undefined;
}

/** How many of the columns differ between two rows (as they are at --to: `columns`). */
export function changedCount(before: Row, after: Row, columns: string[]): number {
  const texts = before.columns === columns ? sameShapeTexts(before, after) : undefined;
  if (!texts) return changedColumns(before, after, columns).length;
  // Value by value, tag and text (nothing split out or allocated).
  const [a, b] = texts;
  let changed = 0;
  for (let i = 0, j = 0; i < a.length || j < b.length;) {
    let iEnd = a.indexOf('\u0000', i + 1);
    if (iEnd < 0) iEnd = a.length;
    let jEnd = b.indexOf('\u0000', j + 1);
    if (jEnd < 0) jEnd = b.length;
    let same = iEnd - i === jEnd - j;
    for (let k = 0; same && k < iEnd - i; k++) same = a.charCodeAt(i + k) === b.charCodeAt(j + k);
    if (!same) changed++;
    i = iEnd;
    j = jEnd;
  }
  return changed;
}

/** The columns whose values differ between two rows (as they are at --to: `columns`). */
export function changedColumns(before: Row, after: Row, columns: string[]): string[] {
  // Equal texts of one shape: equal rows, without splitting either.
  const texts = sameShapeTexts(before, after);
  if (texts && texts[0] === texts[1]) return [];
  const b = align(before, columns);
  const a = align(after, columns);
  return columns.filter((_, i) => b[i] !== a[i]);
}

/** Rows of whole-row tables, added (copies > 0) or deleted (copies < 0). */
export function countedRows(row: Row, copies: number, columns: string[]): RowDiff | undefined {
  if (copies > 0) return { change: 'added', after: toText(align(row, columns), columns), copies };
  if (copies < 0) return { change: 'deleted', before: toText(row.values, row.columns), copies: -copies };
  return undefined;
}
