import type { Tuple } from '../src/pgoutput/messages.js';

/** A column value as replay and diff see it: the text bytes Postgres sent, NULL, or "unchanged TOAST value". */
export type Value = Buffer | null | typeof UNCHANGED;
export const UNCHANGED: unique symbol = Symbol('unchanged');

/**
 * A tuple's columns: NULL, unchanged TOAST, or the sent value as `text` (or `binary`) makes it.
 * Replay keeps the bytes; diff decodes them once into strings.
 */
export function decodeTuple<T>(t: Tuple, text: (bytes: Buffer) => T, binary: (bytes: Buffer) => T): (T | null | typeof UNCHANGED)[] {
  const out: (T | null | typeof UNCHANGED)[] = new Array(t.kinds.length);
  let v = 0;
  for (let i = 0; i < t.kinds.length; i++) {
    const k = t.kinds[i];
    if (k === 0x6e) out[i] = null;
    else if (k === 0x75) out[i] = UNCHANGED;
    else if (k === 0x74) out[i] = text(t.values[v++]!);
    else out[i] = binary(t.values[v++]!);
  }
  return out;
}

const binaryRefused = (): never => {
  throw new Error('binary column values are not supported by replay');
};

export function toValues(t: Tuple): Value[] {
  return decodeTuple(t, (b) => b, binaryRefused);
}

/** Unchanged columns of `next` take their value from `previous` (which may itself be unchanged). */
export function carry(next: Value[], previous: Value[]): Value[] {
  if (!next.includes(UNCHANGED)) return next;
  return next.map((v, i) => (v === UNCHANGED ? (previous[i] ?? UNCHANGED) : v));
}


function valueText(v: Value): string {
  if (v === null) return '\u0000null';
  if (v === UNCHANGED) return '\u0000unchanged';
  return v.toString('latin1');
}

/** A map key for a row's identity: the values of its key columns. */
export function keyOf(row: Value[], keyColumns: number[]): string {
  if (keyColumns.length === 1) return valueText(row[keyColumns[0]!]!);
  return JSON.stringify(keyColumns.map((i) => valueText(row[i]!)));
}

/** A map key for a whole row (tables matched on the whole row). */
export function rowImage(row: Value[]): string {
  return JSON.stringify(row.map(valueText));
}
