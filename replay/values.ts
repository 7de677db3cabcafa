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
