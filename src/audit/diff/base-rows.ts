import { baseTableDamaged, readBaseTable, type BaseFileEntry, type BaseRef, type BaseTable } from '../../log/bases.js';
import type { Store } from '../../store/store.js';

const ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** One field of COPY's text format as its value (the text form, as pgoutput sends it). */
export function copyFieldValue(field: string): string | null {
  if (field === '\\N') return null;
  if (!field.includes('\\')) return field;
  // COPY TO escapes only these; octal and hex forms are accepted for completeness.
  return field.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    if (e[0] === 'x' && e.length > 1) return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8));
    return ESCAPES[e] ?? e;
  });
}

/** One line of COPY's text format as column values. */
export function parseCopyLine(line: string): (string | null)[] {
  return line.split('\t').map(copyFieldValue);
}

const NEWLINE = 0x0a;
const END_MARKER = Buffer.from('\\.');

const isEndMarker = (buf: Buffer, start: number, end: number) => end - start === 2 && buf.compare(END_MARKER, 0, 2, start, end) === 0;

/**
 * Each line of one base table's COPY file, read straight from the store (no database needed),
 * fields in the order of `table.columns`, as the bytes `start` to `end` of `buf` (valid only
 * during the call): most lines are skipped by their key alone (LineKeys), so a line becomes text
 * only where it is used (a chunk decoded and split into strings was a quarter of diff's base
 * pass). COPY's text format escapes every newline inside a value, and a
 * newline byte is never part of another UTF-8 character, so a line ends at each `\n`. The file is
 * read to its end and checked against its manifest `entry`'s checksum: a damaged base is said as
 * such (exit 4), never compared as if its rows were right.
 */
export async function eachBaseLine(
  store: Store,
  base: BaseRef,
  table: BaseTable,
  entry: BaseFileEntry,
  line: (buf: Buffer, start: number, end: number) => void,
): Promise<void> {
  const { text, sha256: stored } = readBaseTable(store, base, table, entry);
  // The start of a line the last chunk cut.
  let rest: Buffer | undefined;
  let ended = false;
  try {
    for await (const chunk of text as AsyncIterable<Buffer>) {
      // After the end marker nothing is rows, but all is read for the checksum.
      if (ended) continue;
      let start = 0;
      if (rest) {
        const nl = chunk.indexOf(NEWLINE);
        if (nl < 0) {
          rest = Buffer.concat([rest, chunk]);
          continue;
        }
        // Only the line cut in two is joined: the chunk is not copied for it.
        const whole = Buffer.concat([rest, chunk.subarray(0, nl)]);
        rest = undefined;
        if (isEndMarker(whole, 0, whole.length)) {
          ended = true;
          continue;
        }
        line(whole, 0, whole.length);
        start = nl + 1;
      }
      for (let nl = chunk.indexOf(NEWLINE, start); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
        if (isEndMarker(chunk, start, nl)) {
          ended = true;
          break;
        }
        line(chunk, start, nl);
        start = nl + 1;
      }
      // Kept as a copy: the chunk is not held for a line's sake.
      if (!ended && start < chunk.length) rest = Buffer.from(chunk.subarray(start));
    }
    if (!ended && rest && !isEndMarker(rest, 0, rest.length)) line(rest, 0, rest.length);
  } finally {
    // Stopped early (the caller, a failure): the stored object is closed with it.
    text.destroy();
  }
  if (stored() !== entry.sha256) throw baseTableDamaged(store, base, table);
}
