import { tupleText, type RowValues, type TextValue } from '../row-text.js';
import type { Tuple } from '../../pgoutput/messages.js';
import type { RelationDef } from '../../segment/format.js';
import { BufferTuple, carriesValue, TUPLE_NULL, TUPLE_TEXT, TUPLE_UNCHANGED, UNCHANGED } from '../../pgoutput/tuple.js';
import { copyFieldValue, parseCopyLine } from './base-rows.js';

/** A row and the names of its columns (one array per relation definition, compared by identity). */
export interface Row {
  readonly values: TextValue[];
  readonly columns: string[];
}

const TAB = 0x09;

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

/**
 * A row of the log still as its tuple's bytes, for a change that goes to a spilled table's part
 * file at once (writeOp copies its values' bytes there as they are, tagged as EncodedRow's text):
 * decoding every value into a string only to write it back out as UTF-8 was a fifth of diff's
 * time. Only the key's values are decoded (keyText). Never kept: its tuple is views of a
 * decompressed chunk, valid only while the log's batch is handled (readLog).
 */
export class TupleRow implements Row {
  private decoded: TextValue[] | undefined;
  /** The tuple as ranges of its segment's body (readLog's), else read as any tuple (decoded whole). */
  private readonly scanned: BufferTuple | undefined;

  constructor(
    readonly columns: string[],
    readonly tuple: Tuple,
  ) {
    this.scanned = tuple instanceof BufferTuple ? tuple : undefined;
  }

  get values(): TextValue[] {
    return (this.decoded ??= tupleText(this.tuple));
  }

  /** The value of column `i`, decoded alone. */
  value(i: number): TextValue {
    const t = this.scanned;
    if (!t || this.decoded) return this.values[i]!;
    const k = t.kind(i);
    if (k === TUPLE_NULL) return null;
    if (k === TUPLE_UNCHANGED) return UNCHANGED;
    let v = 0;
    for (let c = 0; c < i; c++) if (carriesValue(t.kind(c))) v++;
    return k === TUPLE_TEXT ? t.buf.toString('utf8', t.valueStart(v), t.valueEnd(v)) : this.values[i]!;
  }

  hasUnchanged(): boolean {
    const t = this.scanned;
    if (!t) return this.values.includes(UNCHANGED);
    for (let i = 0; i < t.columnCount; i++) if (t.kind(i) === TUPLE_UNCHANGED) return true;
    return false;
  }

  /** The bytes of EncodedRow's text of this row; undefined when it is made a string first (a binary value, sent as hex text). */
  encodedLength(): number | undefined {
    const t = this.scanned;
    if (!t) return undefined;
    let n = t.columnCount * 2;
    for (let i = 0, v = 0; i < t.columnCount; i++) {
      const k = t.kind(i);
      if (k === TUPLE_TEXT) n += t.valueEnd(v) - t.valueStart(v++);
      else if (carriesValue(k)) return undefined;
    }
    return n;
  }

  /** Writes EncodedRow's text of this row into `out` at `at` (encodedLength bytes). */
  encodeInto(out: Buffer, at: number): void {
    const t = this.scanned!;
    for (let i = 0, v = 0; i < t.columnCount; i++) {
      const k = t.kind(i);
      out[at++] = 0;
      out[at++] = k;
      if (k === TUPLE_TEXT) at += t.buf.copy(out, at, t.valueStart(v), t.valueEnd(v++));
    }
  }
}

/** The row as one text (EncodedRow's). */
export function rowText(r: Row): string {
  if (r instanceof EncodedRow) return r.text;
  let text = '';
  for (const v of r.values) text += v === null ? NULL_TAG : v === UNCHANGED ? UNCHANGED_TAG : TEXT_TAG + v;
  return text;
}

const BACKSLASH = 0x5c;

/**
 * Whether a line holds a backslash (an escape, or NULL's `\\N`), for the lines of a buffer asked
 * in order: the buffer is searched once, not once per line.
 */
export class Backslashes {
  private buf: Buffer | undefined;
  private next = -1;

  in(buf: Buffer, start: number, end: number): boolean {
    if (buf !== this.buf || (this.next >= 0 && this.next < start)) {
      this.buf = buf;
      this.next = buf.indexOf(BACKSLASH, start);
    }
    return this.next >= 0 && this.next < end;
  }
}

/**
 * A base's line without a backslash (no escape, no NULL) still as its bytes, for a row that goes
 * to a spilled table's part file at once: writeOp copies it there as EncodedRow's text (each tab
 * a text tag), never made a string here. Never kept: `buf` is valid only during eachBaseLine's call.
 */
export class LineRow implements Row {
  constructor(
    readonly columns: string[],
    private readonly buf: Buffer,
    private readonly start: number,
    private readonly end: number,
  ) {}

  get values(): TextValue[] {
    return copyLineRow(this.buf.toString('utf8', this.start, this.end), this.columns).values;
  }

  /** Each field tagged: a line of n fields has n - 1 tabs, each becoming a two-byte tag. */
  encodedLength(): number {
    return this.end - this.start + this.columns.length + 1;
  }

  encodeInto(out: Buffer, at: number): void {
    const { buf, end } = this;
    let from = this.start;
    for (let f = 0; f < this.columns.length; f++) {
      out[at++] = 0;
      out[at++] = TUPLE_TEXT;
      // The last field is not searched for a tab (LineKeys says why). A damaged line fails the
      // base's checksum when its file has been read (eachBaseLine), before anything is printed.
      const tab = f === this.columns.length - 1 ? end : buf.indexOf(TAB, from);
      if (tab < 0 || tab > end) throw new Error(`a base line does not have the table's ${this.columns.length} fields`);
      at += buf.copy(out, at, from, tab);
      from = tab + 1;
    }
  }
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

export function keyText(row: Row, keys: string[]): string {
  if (!(row instanceof TupleRow)) return joinParts(align(row, keys));
  // The key's values alone.
  const at = mapping(row.columns, keys);
  return joinParts(at.map((i) => (i < 0 ? null : row.value(i))));
}

export function hasUnchanged(row: Row): boolean {
  if (row instanceof EncodedRow) return row.text.includes(UNCHANGED_TAG);
  if (row instanceof TupleRow) return row.hasUnchanged();
  return row.values.includes(UNCHANGED);
}

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
