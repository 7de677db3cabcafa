import { BufferReader } from './buffer-reader.js';
import { PG_EPOCH_OFFSET_US, type PgoutputMessage, type RelationColumn, type Tuple } from './messages.js';
import { carriesValue, TUPLE_NULL, TUPLE_UNCHANGED } from './tuple.js';

const EMPTY = Buffer.alloc(0);

/**
 * Decodes one pgoutput message (the payload of an XLogData message) into a plain object.
 * Column values stay the bytes Postgres sent: parsing them into JavaScript values would lose
 * precision (numeric, int8, timestamps with microseconds) and is not needed to archive them.
 *
 * With protocol version 2, messages between Stream Start and Stream Stop belong to a transaction
 * still in progress and carry its xid after their tag: they are handed out as their bytes
 * (`streamed`), to be parsed with parseStreamed once the transaction commits.
 */
export class PgoutputParser {
  /** The transaction of the stream block being received, if one is open. */
  private streamXid: number | undefined;

  /** rowsAsBytes: Insert, Update and Delete outside stream blocks are handed out as their bytes (`row`). */
  constructor(private readonly options: { rowsAsBytes?: boolean } = {}) {}

  /** A new replication connection starts outside any stream block. */
  reset(): void {
    this.streamXid = undefined;
  }

  parse(buffer: Buffer): PgoutputMessage {
    const tag = String.fromCharCode(buffer[0]!);
    if (this.streamXid !== undefined && tag !== 'E') {
      // Origin carries no xid: it belongs to the block's transaction.
      const xid = tag === 'O' ? this.streamXid : buffer.readUInt32BE(1);
      // A view into the connection's buffer, like every message's values: kept only until handled.
      return { tag: 'streamed', xid, raw: buffer };
    }
    if (this.options.rowsAsBytes && (tag === 'I' || tag === 'U' || tag === 'D')) return { tag: 'row', raw: buffer };
    const r = new BufferReader(buffer);
    r.uint8();
    switch (tag) {
      case 'S': {
        const xid = r.uint32();
        this.streamXid = xid;
        return { tag: 'stream_start', xid, first: r.uint8() === 1 };
      }
      case 'E':
        this.streamXid = undefined;
        return { tag: 'stream_stop' };
      case 'c':
        return {
          tag: 'stream_commit',
          xid: r.uint32(),
          flags: r.uint8(),
          commitLsn: r.uint64(),
          endLsn: r.uint64(),
          commitTime: toUnixMicros(r.int64()),
        };
      case 'A':
        // Protocol 4 adds the abort's LSN and time, which pgtape does not ask for.
        return { tag: 'stream_abort', xid: r.uint32(), subxid: r.uint32() };
      default:
        return this.body(r, tag);
    }
  }

  /** A message of a stream block (its xid after the tag), as parse() would have made it outside one. */
  parseStreamed(buffer: Buffer): PgoutputMessage {
    const r = new BufferReader(buffer);
    const tag = String.fromCharCode(r.uint8());
    if (tag !== 'O') r.uint32();
    return this.body(r, tag);
  }

  private body(r: BufferReader, tag: string): PgoutputMessage {
    switch (tag) {
      case 'B':
        return { tag: 'begin', commitLsn: r.uint64(), commitTime: toUnixMicros(r.int64()), xid: r.uint32() };
      case 'C':
        return { tag: 'commit', flags: r.uint8(), commitLsn: r.uint64(), endLsn: r.uint64(), commitTime: toUnixMicros(r.int64()) };
      case 'O':
        return { tag: 'origin', originLsn: r.uint64(), name: r.cstring() };
      case 'R':
        return this.relation(r);
      case 'Y':
        return { tag: 'type', oid: r.uint32(), schema: r.cstring(), name: r.cstring() };
      case 'I': {
        const relation = r.uint32();
        expect(r, 'N', 'Insert');
        return { tag: 'insert', relation, new: tuple(r) };
      }
      case 'U': {
        const relation = r.uint32();
        let marker = String.fromCharCode(r.uint8());
        let key: Tuple | undefined;
        let old: Tuple | undefined;
        if (marker === 'K' || marker === 'O') {
          if (marker === 'K') key = tuple(r);
          else old = tuple(r);
          marker = String.fromCharCode(r.uint8());
        }
        if (marker !== 'N') throw new Error(`pgoutput: Update without new tuple (got ${JSON.stringify(marker)})`);
        return { tag: 'update', relation, key, old, new: tuple(r) };
      }
      case 'D': {
        const relation = r.uint32();
        const marker = String.fromCharCode(r.uint8());
        if (marker === 'K') return { tag: 'delete', relation, key: tuple(r) };
        if (marker === 'O') return { tag: 'delete', relation, old: tuple(r) };
        throw new Error(`pgoutput: Delete without key or old tuple (got ${JSON.stringify(marker)})`);
      }
      case 'T': {
        const count = r.uint32();
        const flags = r.uint8();
        const relations: number[] = [];
        for (let i = 0; i < count; i++) relations.push(r.uint32());
        return { tag: 'truncate', flags, relations };
      }
      case 'M': {
        const flags = r.uint8();
        const lsn = r.uint64();
        const prefix = r.cstring();
        const content = r.bytes(r.uint32());
        return { tag: 'message', transactional: (flags & 1) === 1, lsn, prefix, content };
      }
      default:
        throw new Error(
          `pgoutput: unsupported message type ${JSON.stringify(tag)} (pgtape asks for protocol version 1, or 2 with streaming, without two-phase)`,
        );
    }
  }

  private relation(r: BufferReader): PgoutputMessage {
    const oid = r.uint32();
    const schema = r.cstring();
    const name = r.cstring();
    const replicaIdentity = String.fromCharCode(r.uint8());
    const n = r.int16();
    const columns: RelationColumn[] = [];
    for (let i = 0; i < n; i++) {
      const flags = r.uint8();
      columns.push({ key: (flags & 1) === 1, name: r.cstring(), typeOid: r.uint32(), typmod: r.int32() });
    }
    return { tag: 'relation', oid, schema, name, replicaIdentity, columns };
  }
}

function expect(r: BufferReader, marker: string, what: string): void {
  const got = String.fromCharCode(r.uint8());
  if (got !== marker) throw new Error(`pgoutput: ${what} expected ${marker}, got ${JSON.stringify(got)}`);
}

function tuple(r: BufferReader): Tuple {
  const n = r.int16();
  const kinds = Buffer.allocUnsafe(n);
  const values: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.uint8();
    kinds[i] = kind;
    if (carriesValue(kind)) {
      const len = r.uint32();
      values.push(len === 0 ? EMPTY : r.bytes(len));
    } else if (kind !== TUPLE_NULL && kind !== TUPLE_UNCHANGED) {
      throw new Error(`pgoutput: unknown tuple column kind ${JSON.stringify(String.fromCharCode(kind))}`);
    }
  }
  return { kinds, values };
}

function toUnixMicros(pgMicros: bigint): bigint {
  return pgMicros + PG_EPOCH_OFFSET_US;
}
