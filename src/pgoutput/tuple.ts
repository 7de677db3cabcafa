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
 * A tuple's columns: NULL, unchanged TOAST, or the sent value as `text` (or `binary`) makes it.
 * Replay keeps the bytes; log and diff decode them once into strings.
 */
export function decodeTuple<T>(t: Tuple, text: (bytes: Buffer) => T, binary: (bytes: Buffer) => T): (T | null | typeof UNCHANGED)[] {
  const out: (T | null | typeof UNCHANGED)[] = new Array(t.kinds.length);
  let v = 0;
  for (let i = 0; i < t.kinds.length; i++) {
    const k = t.kinds[i];
    if (k === TUPLE_NULL) out[i] = null;
    else if (k === TUPLE_UNCHANGED) out[i] = UNCHANGED;
    else if (k === TUPLE_TEXT) out[i] = text(t.values[v++]!);
    else out[i] = binary(t.values[v++]!);
  }
  return out;
}
