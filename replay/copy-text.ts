import { grown } from '../src/core/typed-arrays.js';
import { TUPLE_NULL, TUPLE_TEXT, TUPLE_UNCHANGED } from '../src/pgoutput/tuple.js';
import type { TupleView } from '../src/segment/entry-scanner.js';

// COPY's text format, written byte by byte into one growing buffer: replay turns a million folded
// rows into COPY lines, and a Buffer (or a string) per value cost more than Postgres takes to
// load them. Values are escaped exactly as Postgres' COPY TO escapes them (CopyAttributeOutText:
// backslash, and \b \f \n \r \t \v in C notation), so that a value from the change log and the
// same value in a base's COPY file are the same bytes: rows are matched on those bytes.

const BACKSLASH = 0x5c;
const TAB = 0x09;
const NEWLINE = 0x0a;
const N = 0x4e;
/** Control characters COPY writes as a backslash and a letter; 0 where it writes the byte itself. */
const ESCAPE_LETTER = new Uint8Array(256);
ESCAPE_LETTER[0x08] = 0x62; // b
ESCAPE_LETTER[0x0c] = 0x66; // f
ESCAPE_LETTER[0x0a] = 0x6e; // n
ESCAPE_LETTER[0x0d] = 0x72; // r
ESCAPE_LETTER[0x09] = 0x74; // t
ESCAPE_LETTER[0x0b] = 0x76; // v
ESCAPE_LETTER[BACKSLASH] = BACKSLASH;

/** True when the bytes hold something COPY escapes. */
export function needsEscape(src: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (ESCAPE_LETTER[src[i]!] !== 0) return true;
  return false;
}

/** A buffer that COPY text is written into, grown as needed; `take()` hands over what was written. */
export class CopyText {
  buf: Buffer;
  pos = 0;

  constructor(private readonly initial = 1 << 20) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  get length(): number {
    return this.pos;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** What was written, as one buffer; writing starts over in a new one. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(this.initial);
    this.pos = 0;
    return out;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  ascii(text: string): void {
    this.ensure(text.length);
    this.pos += this.buf.write(text, this.pos, 'latin1');
  }

  /** Bytes as they are (already COPY text). */
  raw(src: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    if (n > 32) src.copy(this.buf, this.pos, start, end);
    else for (let i = start; i < end; i++) this.buf[this.pos + i - start] = src[i]!;
    this.pos += n;
  }

  /** A value, escaped as COPY TO escapes it. */
  escaped(src: Buffer, start: number, end: number): void {
    this.ensure(2 * (end - start));
    const out = this.buf;
    let p = this.pos;
    for (let i = start; i < end; i++) {
      const c = src[i]!;
      const e = ESCAPE_LETTER[c]!;
      if (e === 0) out[p++] = c;
      else {
        out[p++] = BACKSLASH;
        out[p++] = e;
      }
    }
    this.pos = p;
  }

  null(): void {
    this.ensure(2);
    this.buf[this.pos++] = BACKSLASH;
    this.buf[this.pos++] = N;
  }

  tab(): void {
    this.byte(TAB);
  }

  newline(): void {
    this.byte(NEWLINE);
  }

  /**
   * One row's columns from a tuple, tab-separated (no newline). An unchanged TOAST value takes the
   * field of `previous` (a line's fields, already COPY text) when given, else is written as NULL
   * (the caller's statement keeps the table's value for it).
   */
  tuple(view: TupleView, previous?: LineFields): void {
    let value = 0;
    for (let i = 0; i < view.columns; i++) {
      if (i > 0) this.byte(TAB);
      const kind = view.kind(i);
      if (kind === TUPLE_TEXT) {
        this.escaped(view.buf, view.valueStart[value]!, view.valueEnd[value]!);
        value++;
      } else if (kind === TUPLE_NULL) this.null();
      else if (kind === TUPLE_UNCHANGED) {
        if (previous && i < previous.count) this.raw(previous.buf, previous.start[i]!, previous.end[i]!);
        else this.null();
      } else throw new Error('binary column values are not supported by replay');
    }
  }
}

/** Where each field of one COPY text line lies (one instance reused line after line). */
export class LineFields {
  buf: Buffer = Buffer.alloc(0);
  count = 0;
  start = new Int32Array(64);
  end = new Int32Array(64);

  /** The fields of buf[lineStart, lineEnd) (the newline excluded): all of them, or the first `fields`. */
  split(buf: Buffer, lineStart: number, lineEnd: number, fields = Infinity): this {
    this.buf = buf;
    let n = 0;
    let s = lineStart;
    while (n < fields) {
      let t = s;
      while (t < lineEnd && buf[t] !== TAB) t++;
      if (n === this.start.length) this.grow();
      this.start[n] = s;
      this.end[n] = t;
      n++;
      if (t >= lineEnd) break;
      s = t + 1;
    }
    this.count = n;
    return this;
  }

  private grow(): void {
    this.start = grown(this.start, this.start.length * 2);
    this.end = grown(this.end, this.end.length * 2);
  }
}
