import { grown } from '../core/typed-arrays.js';
import { carriesValue, TUPLE_UNCHANGED } from '../pgoutput/tuple.js';
import { DELETE, EntryType, fromProto, INSERT, UPDATE, type SegmentEntry } from './format.js';

const EMPTY = Buffer.alloc(0);
const TWO_POW_32 = 2 ** 32;

export class MalformedEntryError extends Error {}

/**
 * The bytes the entry at `pos` takes, its length varint included; -1 when the buffer ends
 * inside that varint.
 */
function entryExtent(buf: Buffer, pos: number): number {
  let length = 0;
  for (let i = pos, shift = 0; i < buf.length; i++, shift += 7) {
    if (shift > 28) throw new MalformedEntryError('an entry length does not fit 32 bits');
    const b = buf[i]!;
    length += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return i + 1 - pos + length;
  }
  return -1;
}

/**
 * Walks the length-delimited entries of a decompressed segment body without making an object per
 * entry. Replay folds a million changes a second; an object (and a Buffer per column value) for
 * each of them cost more than applying them. A change is read as positions in the body: the
 * relation, and where its new, key and old tuples lie (-1 when absent). Everything else (and any
 * entry, when asked) decodes through protobufjs as `entry()`.
 *
 * The scanned buffer may end inside an entry: `next()` then returns false with `rest` at that
 * entry's start, so the caller prepends those bytes to the next chunk.
 */
export class EntryScanner {
  buf: Buffer = EMPTY;
  private pos = 0;
  /** Where the unread bytes start: after the last whole entry returned. */
  rest = 0;
  /** The current entry: its field number (BEGIN … ORIGIN) and its whole bytes (length excluded). */
  kind = 0;
  entryStart = 0;
  entryEnd = 0;
  /** The current entry's message (Insert, Begin, …). */
  start = 0;
  end = 0;
  // Insert, Update, Delete.
  relation = 0;
  newStart = -1;
  newEnd = -1;
  keyStart = -1;
  keyEnd = -1;
  oldStart = -1;
  oldEnd = -1;

  reset(buf: Buffer): void {
    this.buf = buf;
    this.pos = 0;
    this.rest = 0;
  }

  /** Moves to the next whole entry; false when none is left whole in the buffer. */
  next(): boolean {
    const buf = this.buf;
    const extent = entryExtent(buf, this.rest);
    if (extent < 0 || this.rest + extent > buf.length) return false;
    this.pos = this.rest;
    const length = this.varint();
    this.entryStart = this.pos;
    this.entryEnd = this.pos + length;
    this.rest = this.entryEnd;
    this.kind = 0;
    while (this.pos < this.entryEnd) {
      const tag = this.varint();
      if ((tag & 7) === 2) {
        const len = this.varint();
        this.kind = tag >>> 3;
        this.start = this.pos;
        this.end = this.pos + len;
        this.pos = this.end;
      } else this.skip(tag & 7);
    }
    if (this.pos !== this.entryEnd) throw new MalformedEntryError(`an entry overruns its length (${length} bytes)`);
    if (this.kind === INSERT || this.kind === UPDATE || this.kind === DELETE) this.readChange();
    return true;
  }

  /** The bytes the first entry of `buf` takes with its length, or -1 when its length is cut off. */
  static extent(buf: Buffer): number {
    return entryExtent(buf, 0);
  }

  /** Where the last whole entry of `buf` ends (only lengths are read: the cheap way to cut a chunk). */
  static wholeEntries(buf: Buffer): number {
    let pos = 0;
    for (;;) {
      const extent = entryExtent(buf, pos);
      if (extent < 0 || pos + extent > buf.length) return pos;
      pos += extent;
    }
  }

  /** The current entry decoded whole: for the rare kinds, and for readers that want objects. */
  entry(): SegmentEntry {
    return fromProto(EntryType.decode(this.buf.subarray(this.entryStart, this.entryEnd)) as unknown as Record<string, unknown>);
  }

  /** Begin's fields, read in place. */
  begin(): { xid: number; commitLsn: bigint; commitTime: bigint } {
    let xid = 0;
    let commitLsn = 0n;
    let commitTime = 0n;
    this.pos = this.start;
    while (this.pos < this.end) {
      const tag = this.varint();
      if (tag === 0x08) xid = this.varint();
      else if (tag === 0x10) commitLsn = this.varint64(false);
      else if (tag === 0x18) commitTime = this.varint64(true);
      else this.skip(tag & 7);
    }
    return { xid, commitLsn, commitTime };
  }

  /** Commit's fields, read in place. */
  commit(): { commitLsn: bigint; endLsn: bigint; commitTime: bigint; flags: number } {
    let commitLsn = 0n;
    let endLsn = 0n;
    let commitTime = 0n;
    let flags = 0;
    this.pos = this.start;
    while (this.pos < this.end) {
      const tag = this.varint();
      if (tag === 0x08) commitLsn = this.varint64(false);
      else if (tag === 0x10) endLsn = this.varint64(false);
      else if (tag === 0x18) commitTime = this.varint64(true);
      else if (tag === 0x20) flags = this.varint();
      else this.skip(tag & 7);
    }
    return { commitLsn, endLsn, commitTime, flags };
  }

  private readChange(): void {
    this.relation = 0;
    this.newStart = this.newEnd = this.keyStart = this.keyEnd = this.oldStart = this.oldEnd = -1;
    const update = this.kind === UPDATE;
    this.pos = this.start;
    while (this.pos < this.end) {
      const tag = this.varint();
      if (tag === 0x08) {
        this.relation = this.varint();
        continue;
      }
      if ((tag & 7) !== 2) {
        this.skip(tag & 7);
        continue;
      }
      const len = this.varint();
      const s = this.pos;
      this.pos += len;
      // Insert: new = 2. Update: key = 2, old = 3, new = 4. Delete: key = 2, old = 3.
      const field = tag >>> 3;
      if ((field === 2 && this.kind === INSERT) || (field === 4 && update)) {
        this.newStart = s;
        this.newEnd = this.pos;
      } else if (field === 2) {
        this.keyStart = s;
        this.keyEnd = this.pos;
      } else if (field === 3) {
        this.oldStart = s;
        this.oldEnd = this.pos;
      }
    }
    // An empty tuple (a table without columns) is left out by the encoder: present all the same.
    if (this.kind !== DELETE && this.newStart < 0) this.newStart = this.newEnd = this.end;
  }

  /** A varint of up to 32 bits. */
  private varint(): number {
    const buf = this.buf;
    let b = buf[this.pos++]!;
    let value = b & 0x7f;
    if (b < 0x80) return value;
    b = buf[this.pos++]!;
    value |= (b & 0x7f) << 7;
    if (b < 0x80) return value;
    b = buf[this.pos++]!;
    value |= (b & 0x7f) << 14;
    if (b < 0x80) return value;
    b = buf[this.pos++]!;
    value |= (b & 0x7f) << 21;
    if (b < 0x80) return value;
    b = buf[this.pos++]!;
    value = (value >>> 0) + (b & 0x0f) * 2 ** 28;
    // Bits past 32 (a negative int32 is sent in ten bytes): skipped.
    while (b >= 0x80) {
      if (this.pos >= buf.length) throw new MalformedEntryError('a varint runs past the end of the body');
      b = buf[this.pos++]!;
    }
    return value >>> 0;
  }

  private varint64(signed: boolean): bigint {
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.pos++]!;
      if (shift < 28) lo |= (b & 0x7f) << shift;
      else if (shift === 28) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (shift - 32);
      if (b < 0x80) {
        const u = (lo >>> 0) + (hi >>> 0) * TWO_POW_32;
        if (Number.isSafeInteger(u)) return BigInt(u);
        const big = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
        return signed ? BigInt.asIntN(64, big) : big;
      }
      shift += 7;
    }
    throw new MalformedEntryError('a 64-bit varint is longer than ten bytes');
  }

  private skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else if (wire === 2) this.pos += this.varint();
    else throw new MalformedEntryError(`unknown wire type ${wire}`);
  }
}

/**
 * Reads a Tuple's bytes in place (kinds = 1, values = 2): one byte per column in `kinds`, and
 * where each sent value lies. One instance is reused: nothing is allocated per row.
 */
export class TupleView {
  buf: Buffer = EMPTY;
  kindsStart = 0;
  columns = 0;
  values = 0;
  valueStart = new Int32Array(64);
  valueEnd = new Int32Array(64);

  read(buf: Buffer, start: number, end: number): this {
    this.buf = buf;
    this.columns = 0;
    this.values = 0;
    let pos = start;
    while (pos < end) {
      const tag = buf[pos++]!;
      let len = 0;
      let shift = 0;
      for (;;) {
        const b = buf[pos++]!;
        len += (b & 0x7f) * 2 ** shift;
        if (b < 0x80) break;
        shift += 7;
      }
      if (tag === 0x0a) {
        this.kindsStart = pos;
        this.columns = len;
      } else if (tag === 0x12) {
        if (this.values === this.valueStart.length) this.grow();
        this.valueStart[this.values] = pos;
        this.valueEnd[this.values] = pos + len;
        this.values++;
      } else throw new MalformedEntryError(`unexpected field in a tuple (tag ${tag})`);
      pos += len;
    }
    return this;
  }

  /** `n` null, `u` unchanged TOAST value, `t` text, `b` binary. */
  kind(column: number): number {
    return this.buf[this.kindsStart + column]!;
  }

  /** Which of `values` holds a column's value (its kind must be text or binary). */
  valueIndex(column: number): number {
    let v = 0;
    for (let i = 0; i < column; i++) {
      const k = this.buf[this.kindsStart + i];
      if (carriesValue(k!)) v++;
    }
    return v;
  }

  /** True when some column is an unchanged TOAST value. */
  hasUnchanged(): boolean {
    for (let i = 0; i < this.columns; i++) if (this.buf[this.kindsStart + i] === TUPLE_UNCHANGED) return true;
    return false;
  }

  private grow(): void {
    this.valueStart = grown(this.valueStart, this.valueStart.length * 2);
    this.valueEnd = grown(this.valueEnd, this.valueEnd.length * 2);
  }
}
