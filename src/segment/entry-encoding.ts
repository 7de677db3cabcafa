import { varint64Size, varintSize, writeVarint, writeVarint64 } from '../core/varint.js';
import { carriesValue, TUPLE_NULL, TUPLE_UNCHANGED } from '../pgoutput/tuple.js';

/** A row change written as a segment entry, and what the segment's counts need of it. */
export interface EncodedRow {
  kind: 'insert' | 'update' | 'delete';
  relation: number;
  /** The length-delimited Entry, exactly as encodeEntry writes it. */
  encoded: Buffer;
}

// Protobuf keys (field number << 3 | wire type) of proto/segment.proto: Entry's begin (1) and
// commit (2) with their fields in order (varints: key = field << 3); Entry's insert (5),
// update (6), delete (7); Insert/Update/Delete's relation (1, varint) and their tuples (key 2,
// old 3, new 2 in Insert and 4 in Update); Tuple's kinds (1) and values (2).
const ENTRY_KEY = { begin: 0x0a, commit: 0x12, insert: 0x2a, update: 0x32, delete: 0x3a } as const;
const RELATION_KEY = 0x08;
const KEY_TUPLE = 0x12;
const OLD_TUPLE = 0x1a;
const INSERT_NEW_TUPLE = 0x12;
const UPDATE_NEW_TUPLE = 0x22;
const KINDS_KEY = 0x0a;
const VALUE_KEY = 0x12;

/** A TupleData of the pgoutput message: where it starts and ends, its columns, its size as a Tuple. */
interface TupleSpan {
  field: number;
  start: number;
  end: number;
  columns: number;
  size: number;
}

/**
 * An Insert, Update or Delete pgoutput message straight into its segment entry, byte for byte
 * what `encodeEntry` makes of the parsed message (test/unit/entry-encoding.test.ts holds it to that),
 * without a Buffer per column value or protobufjs' writer: on the archiver's path this was most
 * of its CPU per change (docs/ARCHITECTURE.md, "The record path").
 *
 * `at` is where the relation OID starts: 1 after the tag, 5 in a stream block (after the xid).
 * Malformed messages are refused with the parser's own errors.
 */
export function encodeRowChange(raw: Buffer, at: number): EncodedRow {
  const tag = raw[0];
  need(raw, at, 4);
  const relation = raw.readUInt32BE(at);
  let p = at + 4;
  const tuples: TupleSpan[] = [];
  let kind: EncodedRow['kind'];
  if (tag === 0x49) {
    kind = 'insert';
    marker(raw, p++, 'N', 'Insert');
    tuples.push(scanTuple(raw, p, INSERT_NEW_TUPLE));
  } else if (tag === 0x55) {
    kind = 'update';
    need(raw, p, 1);
    let m = raw[p++];
    if (m === 0x4b || m === 0x4f) {
      const t = scanTuple(raw, p, m === 0x4b ? KEY_TUPLE : OLD_TUPLE);
      tuples.push(t);
      need(raw, t.end, 1);
      m = raw[t.end];
      p = t.end + 1;
    }
    if (m !== 0x4e) throw new Error(`pgoutput: Update without new tuple (got ${JSON.stringify(String.fromCharCode(m!))})`);
    tuples.push(scanTuple(raw, p, UPDATE_NEW_TUPLE));
  } else if (tag === 0x44) {
    kind = 'delete';
    need(raw, p, 1);
    const m = raw[p++];
    if (m !== 0x4b && m !== 0x4f)
      throw new Error(`pgoutput: Delete without key or old tuple (got ${JSON.stringify(String.fromCharCode(m!))})`);
    tuples.push(scanTuple(raw, p, m === 0x4b ? KEY_TUPLE : OLD_TUPLE));
  } else throw new Error(`pgoutput: not a row change (tag ${JSON.stringify(String.fromCharCode(tag ?? 0))})`);

  // protobufjs leaves out fields at their default (0, empty): an OID is never 0, but exactly the same bytes.
  let change = relation === 0 ? 0 : 1 + varintSize(relation);
  for (const t of tuples) change += 1 + varintSize(t.size) + t.size;
  const entry = 1 + varintSize(change) + change;
  const out = Buffer.allocUnsafe(varintSize(entry) + entry);
  let o = writeVarint(out, 0, entry);
  out[o++] = ENTRY_KEY[kind];
  o = writeVarint(out, o, change);
  if (relation !== 0) {
    out[o++] = RELATION_KEY;
    o = writeVarint(out, o, relation);
  }
  for (const t of tuples) {
    out[o++] = t.field;
    o = writeVarint(out, o, t.size);
    o = writeTuple(out, o, raw, t);
  }
  return { kind, relation, encoded: out };
}

/** A Begin entry, as encodeEntry makes it: called once per transaction. */
export function encodeBegin(xid: number, commitLsn: bigint, commitTime: bigint): Buffer {
  return encodeNumbers(ENTRY_KEY.begin, [xid, u64(commitLsn), u64(commitTime)]);
}

/** A Commit entry, as encodeEntry makes it: called once per transaction. */
export function encodeCommit(commitLsn: bigint, endLsn: bigint, commitTime: bigint, flags: number): Buffer {
  return encodeNumbers(ENTRY_KEY.commit, [u64(commitLsn), u64(endLsn), u64(commitTime), flags]);
}

/** As protobufjs takes a 64-bit value: its low 64 bits, a negative one as its two's complement. */
function u64(v: bigint): bigint {
  return BigInt.asUintN(64, v);
}

/** An entry whose message holds only varint fields, numbered from 1; zeros are left out. */
function encodeNumbers(entryKey: number, fields: (number | bigint)[]): Buffer {
  let size = 0;
  for (const v of fields) if (v) size += 1 + (typeof v === 'bigint' ? varint64Size(v) : varintSize(v));
  const entry = 1 + varintSize(size) + size;
  const out = Buffer.allocUnsafe(varintSize(entry) + entry);
  let o = writeVarint(out, 0, entry);
  out[o++] = entryKey;
  o = writeVarint(out, o, size);
  for (let i = 0; i < fields.length; i++) {
    const v = fields[i]!;
    if (!v) continue;
    out[o++] = (i + 1) << 3;
    o = typeof v === 'bigint' ? writeVarint64(out, o, v) : writeVarint(out, o, v);
  }
  return out;
}

/** Walks a TupleData: its end, and the size of the Tuple message it becomes. */
function scanTuple(raw: Buffer, start: number, field: number): TupleSpan {
  need(raw, start, 2);
  const columns = raw.readInt16BE(start);
  if (columns < 0) throw new Error(`pgoutput: a tuple of ${columns} columns`);
  let p = start + 2;
  // protobufjs leaves out an empty `kinds` (a table without columns): so does this.
  let size = columns === 0 ? 0 : 1 + varintSize(columns) + columns;
  for (let i = 0; i < columns; i++) {
    need(raw, p, 1);
    const kind = raw[p++]!;
    if (carriesValue(kind)) {
      need(raw, p, 4);
      const len = raw.readUInt32BE(p);
      need(raw, p + 4, len);
      p += 4 + len;
      size += 1 + varintSize(len) + len;
    } else if (kind !== TUPLE_NULL && kind !== TUPLE_UNCHANGED) {
      throw new Error(`pgoutput: unknown tuple column kind ${JSON.stringify(String.fromCharCode(kind))}`);
    }
  }
  return { field, start, end: p, columns, size };
}

/** The Tuple: one kind byte per column first, then each sent value in column order. */
function writeTuple(out: Buffer, o: number, raw: Buffer, t: TupleSpan): number {
  if (t.columns === 0) return o;
  out[o++] = KINDS_KEY;
  o = writeVarint(out, o, t.columns);
  let k = o;
  o += t.columns;
  let p = t.start + 2;
  for (let i = 0; i < t.columns; i++) {
    const kind = raw[p++]!;
    out[k++] = kind;
    if (!carriesValue(kind)) continue;
    const len = raw.readUInt32BE(p);
    p += 4;
    out[o++] = VALUE_KEY;
    o = writeVarint(out, o, len);
    raw.copy(out, o, p, p + len);
    o += len;
    p += len;
  }
  return o;
}

function marker(raw: Buffer, p: number, expected: string, what: string): void {
  need(raw, p, 1);
  const got = String.fromCharCode(raw[p]!);
  if (got !== expected) throw new Error(`pgoutput: ${what} expected ${expected}, got ${JSON.stringify(got)}`);
}

function need(raw: Buffer, offset: number, n: number): void {
  if (offset + n > raw.length) throw new Error(`pgoutput: message truncated (need ${n} bytes at offset ${offset} of ${raw.length})`);
}
