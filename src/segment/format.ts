import { join } from 'node:path';
import protobuf from 'protobufjs';
import { packageRoot } from '../core/paths.js';
import type { Compression } from '../core/compression.js';
import type { Tuple } from '../pgoutput/messages.js';
import type { WrappedKey } from '../core/key-wrap.js';

/** "PGTAPE", 0, then the file layout version. */
export const MAGIC = Buffer.from([0x50, 0x47, 0x54, 0x41, 0x50, 0x45, 0x00, 0x01]);
export const FORMAT_VERSION = 1;
export const SEGMENT_EXTENSION = '.pgtape';
/** Bytes before the header: magic and the header's length. */
export const HEAD_PREFIX_BYTES = MAGIC.length + 4;

// The kinds of entry: the field numbers of Entry's oneof (proto/segment.proto), as the writer
// encodes them and `EntryScanner.kind` reads them.
export const BEGIN = 1;
export const COMMIT = 2;
export const RELATION = 3;
export const INSERT = 5;
export const UPDATE = 6;
export const DELETE = 7;
export const TRUNCATE = 8;
export const MESSAGE = 9;
export const ORIGIN = 10;

const root = protobuf.loadSync(join(packageRoot(), 'proto', 'segment.proto'));
const HeaderType = root.lookupType('pgtape.segment.v1.Header');
export const EntryType = root.lookupType('pgtape.segment.v1.Entry');

export interface TableCount {
  oid: number;
  schema: string;
  name: string;
  inserts: number;
  updates: number;
  deletes: number;
  truncates: number;
}

export interface SegmentHeader {
  formatVersion: number;
  startLsn: bigint;
  endLsn: bigint;
  firstCommitLsn: bigint;
  lastCommitLsn: bigint;
  /** Microseconds since the Unix epoch. */
  firstCommitTime: bigint;
  lastCommitTime: bigint;
  minXid: number;
  maxXid: number;
  transactions: number;
  changes: number;
  messages: number;
  tables: TableCount[];
  compression: Compression;
  bodyBytes: number;
  rawBodyBytes: number;
  bodySha256: Buffer;
  systemIdentifier: string;
  database: string;
  slot: string;
  serverVersion: number;
  /** Present when the body is encrypted: then `tables` hold no names until opened (segment/encryption.ts). */
  encryption?: SegmentEncryption;
}

/** How a segment is encrypted (proto/segment.proto, Encryption). */
export interface SegmentEncryption {
  dataKey: WrappedKey;
  sealedTables: Buffer;
  marks: SealedMark[];
}

export interface SealedMark {
  commitLsn: bigint;
  key: WrappedKey;
  sealedName: Buffer;
}

export interface RelationDef {
  oid: number;
  schema: string;
  name: string;
  replicaIdentity: string;
  columns: { name: string; key: boolean; typeOid: number; typmod: number; typeName: string }[];
}

type TypedColumn = { name: string; typeOid: number; typmod: number };

/**
 * A column's type name as SQL takes it. pgoutput writes pg_catalog as an empty namespace
 * (logicalrep_write_namespace), and names a domain by its base type: archives written before
 * this was known hold `"".` for it.
 */
export function columnTypeName(typeName: string): string {
  return typeName.startsWith('"".') ? `"pg_catalog".${typeName.slice(3)}` : typeName;
}

/** Columns with the same names and types (OID and modifier), in the same order. */
export function sameColumnTypes(a: readonly TypedColumn[], b: readonly TypedColumn[]): boolean {
  return a.length === b.length && a.every((c, i) => c.name === b[i]!.name && c.typeOid === b[i]!.typeOid && c.typmod === b[i]!.typmod);
}

/** One entry of a segment body, as the reader hands it out. */
export type SegmentEntry =
  | { kind: 'begin'; xid: number; commitLsn: bigint; commitTime: bigint }
  | { kind: 'commit'; commitLsn: bigint; endLsn: bigint; commitTime: bigint; flags: number }
  | { kind: 'origin'; name: string; originLsn: bigint }
  | { kind: 'relation'; relation: RelationDef }
  | { kind: 'insert'; relation: number; new: Tuple }
  | { kind: 'update'; relation: number; key?: Tuple; old?: Tuple; new: Tuple }
  | { kind: 'delete'; relation: number; key?: Tuple; old?: Tuple }
  | { kind: 'truncate'; relations: number[]; flags: number }
  | { kind: 'message'; prefix: string; content: Buffer; lsn: bigint; transactional: boolean };

/** protobufjs takes 64-bit values as {low, high} and hands them back as Long. */
export function toLong(v: bigint): { low: number; high: number; unsigned: boolean } {
  const u = BigInt.asUintN(64, v);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0, unsigned: v >= 0n };
}

export function fromLong(v: unknown, signed = false): bigint {
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'bigint') return v;
  if (v && typeof v === 'object' && 'low' in v && 'high' in v) {
    const l = v as { low: number; high: number };
    const u = (BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0);
    return signed ? BigInt.asIntN(64, u) : u;
  }
  return 0n;
}

/** Encodes one entry, length-delimited, ready to append to a body. */
export function encodeEntry(entry: SegmentEntry): Uint8Array {
  return EntryType.encodeDelimited(toProto(entry)).finish();
}

function toProto(e: SegmentEntry): Record<string, unknown> {
  switch (e.kind) {
    case 'begin':
      return { begin: { xid: e.xid, commitLsn: toLong(e.commitLsn), commitTime: toLong(e.commitTime) } };
    case 'commit':
      return { commit: { commitLsn: toLong(e.commitLsn), endLsn: toLong(e.endLsn), commitTime: toLong(e.commitTime), flags: e.flags } };
    case 'origin':
      return { origin: { name: e.name, originLsn: toLong(e.originLsn) } };
    case 'relation':
      return { relation: e.relation };
    case 'insert':
      return { insert: { relation: e.relation, new: e.new } };
    case 'update':
      return { update: { relation: e.relation, key: e.key, old: e.old, new: e.new } };
    case 'delete':
      return { delete: { relation: e.relation, key: e.key, old: e.old } };
    case 'truncate':
      return { truncate: { relations: e.relations, flags: e.flags } };
    case 'message':
      return { message: { prefix: e.prefix, content: e.content, lsn: toLong(e.lsn), transactional: e.transactional } };
  }
}

type Decoded = Record<string, any>;

/** Turns a decoded protobuf Entry into a SegmentEntry. */
export function fromProto(m: Decoded): SegmentEntry {
  const kind = m.kind as string | undefined;
  const v = kind ? (m[kind] as Decoded) : undefined;
  switch (kind) {
    case 'begin':
      return { kind, xid: v!.xid, commitLsn: fromLong(v!.commitLsn), commitTime: fromLong(v!.commitTime, true) };
    case 'commit':
      return {
        kind,
        commitLsn: fromLong(v!.commitLsn),
        endLsn: fromLong(v!.endLsn),
        commitTime: fromLong(v!.commitTime, true),
        flags: v!.flags,
      };
    case 'origin':
      return { kind, name: v!.name, originLsn: fromLong(v!.originLsn) };
    case 'relation':
      return {
        kind,
        relation: {
          oid: v!.oid,
          schema: v!.schema,
          name: v!.name,
          replicaIdentity: v!.replicaIdentity,
          columns: (v!.columns as Decoded[]).map((c) => ({
            name: c.name,
            key: c.key,
            typeOid: c.typeOid,
            typmod: c.typmod,
            typeName: c.typeName,
          })),
        },
      };
    case 'insert':
      return { kind, relation: v!.relation, new: tuple(v!.new)! };
    case 'update':
      return { kind, relation: v!.relation, key: tuple(v!.key), old: tuple(v!.old), new: tuple(v!.new)! };
    case 'delete':
      return { kind, relation: v!.relation, key: tuple(v!.key), old: tuple(v!.old) };
    case 'truncate':
      return { kind, relations: v!.relations, flags: v!.flags };
    case 'message':
      return { kind, prefix: v!.prefix, content: Buffer.from(v!.content), lsn: fromLong(v!.lsn), transactional: v!.transactional };
    default:
      throw new Error(`unknown segment entry ${JSON.stringify(kind)}`);
  }
}

function tuple(t: Decoded | null | undefined): Tuple | undefined {
  if (!t) return undefined;
  return { kinds: Buffer.from(t.kinds), values: (t.values as Uint8Array[]).map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)) };
}

/** Magic, header length and header: the part of a segment file before its body. */
export function encodeHead(header: SegmentHeader): Buffer {
  const proto = HeaderType.fromObject({
    ...header,
    startLsn: toLong(header.startLsn),
    endLsn: toLong(header.endLsn),
    firstCommitLsn: toLong(header.firstCommitLsn),
    lastCommitLsn: toLong(header.lastCommitLsn),
    firstCommitTime: toLong(header.firstCommitTime),
    lastCommitTime: toLong(header.lastCommitTime),
    encryption: header.encryption && {
      ...header.encryption,
      marks: header.encryption.marks.map((m) => ({ ...m, commitLsn: toLong(m.commitLsn) })),
    },
  });
  const bytes = HeaderType.encode(proto).finish();
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([MAGIC, length, bytes]);
}

export class NotASegmentError extends Error {}

/** How many bytes the head takes, from its first HEAD_PREFIX_BYTES bytes. */
export function headLength(prefix: Buffer, what: string): number {
  if (prefix.length < HEAD_PREFIX_BYTES || !prefix.subarray(0, MAGIC.length - 1).equals(MAGIC.subarray(0, MAGIC.length - 1))) {
    throw new NotASegmentError(`${what} is not a pgtape segment (no PGTAPE magic at its start)`);
  }
  if (prefix[MAGIC.length - 1] !== MAGIC[MAGIC.length - 1]) {
    throw new NotASegmentError(
      `${what} has segment layout version ${prefix[MAGIC.length - 1]}, this pgtape reads ${MAGIC[MAGIC.length - 1]}`,
    );
  }
  return HEAD_PREFIX_BYTES + prefix.readUInt32BE(MAGIC.length);
}

export function decodeHead(file: Buffer, what: string): { header: SegmentHeader; bodyOffset: number } {
  const bodyOffset = headLength(file, what);
  if (file.length < bodyOffset) throw new NotASegmentError(`${what} is truncated inside its header`);
  let m: Decoded;
  try {
    m = HeaderType.toObject(HeaderType.decode(file.subarray(HEAD_PREFIX_BYTES, bodyOffset)), { defaults: true, arrays: true });
  } catch (err) {
    throw new NotASegmentError(`${what} has an unreadable header: ${(err as Error).message}`);
  }
  const header: SegmentHeader = {
    formatVersion: m.formatVersion,
    startLsn: fromLong(m.startLsn),
    endLsn: fromLong(m.endLsn),
    firstCommitLsn: fromLong(m.firstCommitLsn),
    lastCommitLsn: fromLong(m.lastCommitLsn),
    firstCommitTime: fromLong(m.firstCommitTime, true),
    lastCommitTime: fromLong(m.lastCommitTime, true),
    minXid: m.minXid,
    maxXid: m.maxXid,
    transactions: Number(fromLong(m.transactions)),
    changes: Number(fromLong(m.changes)),
    messages: Number(fromLong(m.messages)),
    tables: (m.tables as Decoded[]).map((t) => ({
      oid: t.oid,
      schema: t.schema,
      name: t.name,
      inserts: Number(fromLong(t.inserts)),
      updates: Number(fromLong(t.updates)),
      deletes: Number(fromLong(t.deletes)),
      truncates: Number(fromLong(t.truncates)),
    })),
    compression: m.compression as Compression,
    bodyBytes: Number(fromLong(m.bodyBytes)),
    rawBodyBytes: Number(fromLong(m.rawBodyBytes)),
    bodySha256: Buffer.from(m.bodySha256),
    systemIdentifier: m.systemIdentifier,
    database: m.database,
    slot: m.slot,
    serverVersion: m.serverVersion,
  };
  if (m.encryption) header.encryption = decodeEncryption(m.encryption as Decoded);
  if (header.formatVersion !== FORMAT_VERSION) {
    throw new NotASegmentError(`${what} has format version ${header.formatVersion}; this pgtape reads version ${FORMAT_VERSION}`);
  }
  return { header, bodyOffset };
}

const wrappedKey = (w: Decoded | null): WrappedKey => ({ mode: w?.mode, keyId: w?.keyId ?? '', wrapped: Buffer.from(w?.wrapped ?? []) });

function decodeEncryption(e: Decoded): SegmentEncryption {
  return {
    dataKey: wrappedKey(e.dataKey),
    sealedTables: Buffer.from(e.sealedTables),
    marks: (e.marks as Decoded[]).map((m) => ({
      commitLsn: fromLong(m.commitLsn),
      key: wrappedKey(m.key),
      sealedName: Buffer.from(m.sealedName),
    })),
  };
}
