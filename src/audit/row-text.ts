import type { Tuple } from '../pgoutput/messages.js';
import { decodeTuple, UNCHANGED } from '../pgoutput/tuple.js';

/**
 * A column as log and diff read it: text as Postgres sent it (a binary value as `\\x` hex),
 * NULL, or an unchanged TOAST value. Decoded once to a string: a Buffer view would keep the whole
 * decompressed chunk it points into alive.
 */
export type TextValue = string | null | typeof UNCHANGED;

const utf8 = (buf: Buffer, start: number, end: number) => buf.toString('utf8', start, end);
const hexText = (buf: Buffer, start: number, end: number) => `\\x${buf.toString('hex', start, end)}`;

export const tupleText = (t: Tuple): TextValue[] => decodeTuple(t, utf8, hexText);

/** A row's columns by name: text as Postgres sent it, or null. What log and diff print. */
export type RowValues = Record<string, string | null>;

/**
 * On a terminal, a value longer than this is cut, with a marker saying how much was left out: a
 * 200 kB TOAST value on one line helps nobody reading it. Piped output, --json and --format
 * sql/jsonl/csv are always whole.
 */
const TERMINAL_VALUE_CHARS = 200;
const cutValues = process.stdout.isTTY === true;

/** A value as log and diff print it for people: quoted text, or NULL. */
export function literal(v: string | null | undefined): string {
  if (v === null || v === undefined) return 'NULL';
  if (cutValues && v.length > TERMINAL_VALUE_CHARS)
    return `${JSON.stringify(v.slice(0, TERMINAL_VALUE_CHARS))}…(${v.length - TERMINAL_VALUE_CHARS} more characters)`;
  return JSON.stringify(v);
}

/** `name="value" other=NULL`, with `mark` applied to the columns `highlight` picks. */
export function pairs(
  row: RowValues | undefined,
  separator = ' ',
  highlight: (column: string) => boolean = () => false,
  mark: (s: string) => string = (s) => s,
): string {
  return Object.entries(row ?? {})
    .map(([c, v]) => (highlight(c) ? mark(`${c}=${literal(v)}`) : `${c}=${literal(v)}`))
    .join(separator);
}
