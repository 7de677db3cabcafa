import type { Tuple } from './messages.js';

// The kind byte pgoutput sends before each column of a row image (TupleData), and how a tuple's
// columns are read. Everything that looks at a tuple's kinds — the parser, the segment scanner,
// replay, log and diff — names them from here.

/** `n`: the column is NULL. */
export const TUPLE_NULL = 0x6e;
/** `u`: an unchanged TOAST value, not sent: the row's previous value stands. */
export const TUPLE_UNCHANGED = 0x75;
/** `t`: the value in text form. */
export const TUPLE_TEXT = 0x74;
/** `b`: the value in binary form (with the `binary` option). */
export const TUPLE_BINARY = 0x62;

/** Whether a column of this kind carries bytes (text or binary) in the tuple's values. */
export function carriesValue(kind: number): boolean {
  return kind === TUPLE_TEXT || kind === TUPLE_BINARY;
}

/** The marker a decoded tuple holds for an unchanged TOAST value (never NULL: they differ). */
export const UNCHANGED: unique symbol = Symbol('unchanged');

/**
 * A tuple whose kinds and values are ranges of one buffer (a segment's body, read in place):
 * a Buffer view per value, made for every change a reader handed out, was a tenth of `log` and
 * `diff` with its collector's share. Views are made only when `kinds` or `values` is asked for;
 * the readers of every change (tupleText, diff's TupleRow) read the ranges instead.
 */
export class BufferTuple implements Tuple {
  private kindsView: Buffer | undefined;
  private valueViews: Buffer[] | undefined;

  constructor(
    readonly buf: Buffer,
    private readonly kindsStart: number,
    readonly columnCount: number,
    /** Each value's start and end in `buf`, in turn. */
    private readonly bounds: number[],
  ) {}

  get kinds(): Buffer {
    return (this.kindsView ??= this.buf.subarray(this.kindsStart, this.kindsStart + this.columnCount));
  }

  get values(): Buffer[] {
    if (this.valueViews) return this.valueViews;
    const views: Buffer[] = new Array(this.bounds.length >> 1);
    for (let v = 0; v < views.length; v++) views[v] = this.buf.subarray(this.bounds[2 * v], this.bounds[2 * v + 1]);
    return (this.valueViews = views);
  }

  kind(column: number): number {
    return this.buf[this.kindsStart + column]!;
  }

  valueStart(value: number): number {
    return this.bounds[2 * value]!;
  }

  valueEnd(value: number): number {
    return this.bounds[2 * value + 1]!;
  }
}

/** Bytes `start` to `end` of `buf`: a value of a tuple, as decodeTuple hands it over. */
export type ValueReader<T> = (buf: Buffer, start: number, end: number) => T;

/**
 * A tuple's columns: NULL, unchanged TOAST, or the sent value as `text` (or `binary`) makes it
 * from its bytes. Replay keeps the bytes; log and diff decode them once into strings.
 */
export function decodeTuple<T>(t: Tuple, text: ValueReader<T>, binary: ValueReader<T>): (T | null | typeof UNCHANGED)[] {
  const scanned = t instanceof BufferTuple ? t : undefined;
  const columns = scanned ? scanned.columnCount : t.kinds.length;
  const out: (T | null | typeof UNCHANGED)[] = new Array(columns);
  for (let i = 0, v = 0; i < columns; i++) {
    const k = scanned ? scanned.kind(i) : t.kinds[i];
    if (k === TUPLE_NULL) out[i] = null;
    else if (k === TUPLE_UNCHANGED) out[i] = UNCHANGED;
    else {
      const read = k === TUPLE_TEXT ? text : binary;
      if (scanned) out[i] = read(scanned.buf, scanned.valueStart(v), scanned.valueEnd(v));
      else out[i] = read(t.values[v]!, 0, t.values[v]!.length);
      v++;
    }
  }
  return out;
}
