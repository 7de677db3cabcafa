import { describe, expect, it } from 'vitest';
import type { Tuple } from '../../src/pgoutput/messages.js';
import { EntryScanner, TupleView } from '../../src/segment/entry-scanner.js';
import { encodeEntry } from '../../src/segment/format.js';
import { CopyText, LineFields, needsEscape } from '../../replay/copy-text.js';

/**
 * One row as PostgreSQL 17.10 wrote it with `COPY t TO STDOUT` (text format), captured once: the
 * columns are every byte 0x01–0x1f and 0x7f (a text value cannot hold 0x00), 'a\b', 'ü€😀', the
 * two characters '\N', '', NULL and ' plain '.
 */
const CONTROL = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join('') + '\x7f';
const PG_VALUES = [CONTROL, 'a\\b', 'ü€😀', '\\N', '', null, ' plain '];
const PG_LINE = Buffer.from(
  '010203040506075c625c745c6e5c765c665c720e0f101112131415161718191a1b1c1d1e1f7f09615c5c6209c3bce282acf09f9880095c5c4e09095c4e0920706c61696e200a',
  'hex',
);

/** What COPY writes for each byte 0x00–0x7f (CopyAttributeOutText), as written out by hand from its C source. */
const LETTER: Record<number, string> = { 0x08: 'b', 0x09: 't', 0x0a: 'n', 0x0b: 'v', 0x0c: 'f', 0x0d: 'r', 0x5c: '\\' };
const expectedFor = (b: number) => (LETTER[b] ? Buffer.from(`\\${LETTER[b]}`, 'latin1') : Buffer.from([b]));

/** The inverse, for round trips: COPY text's backslash sequences (only those COPY TO writes). */
function unescape(field: Buffer): string | null {
  const text = field.toString('utf8');
  if (text === '\\N') return null;
  const back: Record<string, string> = { b: '\b', t: '\t', n: '\n', v: '\v', f: '\f', r: '\r', '\\': '\\' };
  return text.replace(/\\(.)/gs, (_, c: string) => back[c] ?? `\\${c}`);
}

type Cell = string | null | 'UNCHANGED';
const tuple = (cells: Cell[]): Tuple => ({
  kinds: Buffer.from(cells.map((c) => (c === null ? 'n' : c === 'UNCHANGED' ? 'u' : 't')).join('')),
  values: cells.flatMap((c) => (c === null || c === 'UNCHANGED' ? [] : [Buffer.from(c)])),
});

/** A TupleView on a tuple as replay reads it: inside an encoded segment entry. */
function view(t: Tuple): TupleView {
  const s = new EntryScanner();
  s.reset(Buffer.from(encodeEntry({ kind: 'insert', relation: 1, new: t })));
  if (!s.next()) throw new Error('no entry');
  return new TupleView().read(s.buf, s.newStart, s.newEnd);
}

function line(cells: Cell[], initial = 16, previous?: LineFields): Buffer {
  const text = new CopyText(initial);
  text.tuple(view(tuple(cells)), previous);
  return text.take();
}

const fieldsOf = (buf: Buffer) => {
  const f = new LineFields().split(buf, 0, buf.length);
  return Array.from({ length: f.count }, (_, i) => buf.subarray(f.start[i]!, f.end[i]!));
};

describe('COPY text escaping (as COPY TO writes it)', () => {
  it('escapes each byte 0x00–0x7f as CopyAttributeOutText does, and says which need escaping', () => {
    for (let b = 0; b < 0x80; b++) {
      const text = new CopyText(4);
      text.escaped(Buffer.from([b]), 0, 1);
      expect(text.take().toString('hex'), `byte 0x${b.toString(16)}`).toBe(expectedFor(b).toString('hex'));
      expect(needsEscape(Buffer.from([b]), 0, 1), `byte 0x${b.toString(16)}`).toBe(LETTER[b] !== undefined);
    }
  });

  it('leaves every byte of multi-byte UTF-8 as it is', () => {
    const utf8 = Buffer.from('ü€😀 日本 ✓ ñ');
    const bytes = Buffer.from(Array.from({ length: 128 }, (_, i) => 0x80 + i));
    for (const b of [utf8, bytes]) {
      expect(needsEscape(b, 0, b.length)).toBe(false);
      const text = new CopyText(1);
      text.escaped(b, 0, b.length);
      expect(text.take().equals(b)).toBe(true);
    }
  });

  it('looks only at the range it is given', () => {
    const b = Buffer.from('a\tbc\\d');
    expect([needsEscape(b, 0, 1), needsEscape(b, 0, 2), needsEscape(b, 2, 4), needsEscape(b, 2, 5), needsEscape(b, 3, 3)]).toEqual([
      false,
      true,
      false,
      true,
      false,
    ]);
    const text = new CopyText(2);
    text.escaped(b, 1, 5);
    expect(text.take().toString('latin1')).toBe('\\tbc\\\\');
  });

  it('writes the same bytes as PostgreSQL 17 COPY TO for the same row', () => {
    expect(Buffer.concat([line(PG_VALUES), Buffer.from('\n')]).toString('hex')).toBe(PG_LINE.toString('hex'));
  });
});

describe('COPY text lines and fields', () => {
  it('reads back the values written into a line, NULL and empty string apart', () => {
    const rows: Cell[][] = [
      PG_VALUES,
      [''],
      [null],
      ['', '', ''],
      ['tab\there', 'new\nline', 'cr\rlf', 'back\\\\slash\\', '\\N', '\\n'],
      Array.from({ length: 100 }, (_, i) => (i % 7 === 0 ? null : `c${i}\t${'é'.repeat(i)}`)),
    ];
    for (const cells of rows) {
      const fields = fieldsOf(line(cells, 1));
      expect(fields.length).toBe(cells.length);
      expect(fields.map(unescape)).toEqual(cells);
    }
  });

  it('writes a value left unchanged (TOAST) as the field of the previous line, or NULL without one', () => {
    const previous = line(['1', 'old\tvalue', 'kept'], 64);
    const fields = new LineFields().split(previous, 0, previous.length);
    expect(line(['2', 'UNCHANGED', 'new'], 64, fields).toString('latin1')).toBe('2\told\\tvalue\tnew');
    expect(line(['2', 'UNCHANGED', 'UNCHANGED'], 64, fields).toString('latin1')).toBe('2\told\\tvalue\tkept');
    expect(line(['2', 'UNCHANGED', 'new'], 64).toString('latin1')).toBe('2\t\\N\tnew');
  });

  it('refuses binary column values', () => {
    const t = tuple(['x']);
    t.kinds[0] = 0x62;
    expect(() => new CopyText(8).tuple(view(t))).toThrow('binary column values are not supported by replay');
  });

  it('splits a line into all its fields or only the first few, empty fields included', () => {
    const split = (s: string, fields?: number) => {
      const b = Buffer.from(s, 'latin1');
      const f = new LineFields().split(b, 0, b.length, fields);
      return Array.from({ length: f.count }, (_, i) => b.toString('latin1', f.start[i]!, f.end[i]!));
    };
    expect(split('')).toEqual(['']);
    expect(split('a')).toEqual(['a']);
    expect(split('a\t')).toEqual(['a', '']);
    expect(split('\t\t')).toEqual(['', '', '']);
    expect(split('a\\tb\tc')).toEqual(['a\\tb', 'c']);
    expect(split('a\tb\tc', 2)).toEqual(['a', 'b']);
    expect(split('a\tb\tc', 0)).toEqual([]);
    expect(split(Array.from({ length: 200 }, (_, i) => String(i)).join('\t'))).toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
  });

  it('splits a line inside a larger buffer by its own bounds', () => {
    const b = Buffer.from('x\ty\na\tb\tc\nz', 'latin1');
    const f = new LineFields().split(b, 4, 9);
    expect(Array.from({ length: f.count }, (_, i) => b.toString('latin1', f.start[i]!, f.end[i]!))).toEqual(['a', 'b', 'c']);
  });

  it('grows its buffer as needed and starts over after take()', () => {
    const text = new CopyText(2);
    const long = Buffer.from('x'.repeat(100) + '\\'.repeat(50));
    text.raw(long, 0, 10);
    text.raw(long, 0, 100);
    text.escaped(long, 100, 150);
    text.tab();
    text.null();
    text.ascii('i\t1\t');
    text.newline();
    const out = text.take();
    expect(out.toString('latin1')).toBe('x'.repeat(110) + '\\\\'.repeat(50) + '\t\\N' + 'i\t1\t\n');
    expect(text.length).toBe(0);
    text.byte(0x41);
    expect(text.take().toString('latin1')).toBe('A');
  });
});
