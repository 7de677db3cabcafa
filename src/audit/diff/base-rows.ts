import { StringDecoder } from 'node:string_decoder';
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

/**
 * The lines of one base table's COPY file, read straight from the store (no database needed),
 * fields in the order of `table.columns`: a decompressed chunk's lines at a time. COPY's text
 * format escapes every newline and carriage return inside a value, so a line ends at each `\n`.
 * The file is read to its end and checked against its manifest `entry`'s checksum: a damaged base is
 * said as such (exit 4), never compared as if its rows were right.
 */
export async function* readBaseLines(store: Store, base: BaseRef, table: BaseTable, entry: BaseFileEntry): AsyncGenerator<string[]> {
  const { text, sha256: stored } = readBaseTable(store, base, table, entry);
  // UTF-8 characters cut by a chunk's end are joined by a decoder of our own (the stream is in
  // object mode: its own setEncoding would hold only while called before the first chunk).
  const decoder = new StringDecoder('utf8');
  let rest = '';
  let ended = false;
  try {
    for await (const chunk of text as AsyncIterable<Buffer>) {
      if (ended) continue;
      const lines = (rest + decoder.write(chunk)).split('\n');
      rest = lines.pop()!;
      const end = lines.indexOf('\\.');
      if (end >= 0) {
        // The end marker: what follows is not rows, but is read for the checksum.
        ended = true;
        rest = '';
        if (end > 0) yield lines.slice(0, end);
        continue;
      }
      if (lines.length) yield lines;
    }
    if (!ended) rest += decoder.end();
    if (rest && rest !== '\\.') yield [rest];
  } finally {
    // Stopped early (the caller): the stored object is closed with it.
    text.destroy();
  }
  if (stored() !== entry.sha256) throw baseTableDamaged(store, base, table);
}
