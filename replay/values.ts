import type { Tuple } from '../src/pgoutput/messages.js';
import { decodeTuple, UNCHANGED } from '../src/pgoutput/tuple.js';

/** A column value as replay applies it: the text bytes Postgres sent, NULL, or "unchanged TOAST value". */
export type ReplayValue = Buffer | null | typeof UNCHANGED;

const binaryRefused = (): never => {
  throw new Error('binary column values are not supported by replay');
};

export function toReplayValues(t: Tuple): ReplayValue[] {
  return decodeTuple(t, (buf, start, end) => buf.subarray(start, end), binaryRefused);
}
