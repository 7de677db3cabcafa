import { createReadStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** Records are gathered into writes of about this size. */
const WRITE_BYTES = 1 << 20;
/** A record's length (of what follows it), type and relation. */
const HEAD = 9;

/**
 * What a spooled record holds: a pgoutput message as it came (RAW: relations, types, origins,
 * messages, truncates, parsed at commit), or a row change encoded as a segment entry already
 * while the transaction was being streamed (INSERT, UPDATE, DELETE: the EntryScanner's kinds).
 */
export const RAW = 0;

export interface SpooledRecord {
  type: number;
  /** The changed relation (row changes). */
  relation: number;
  bytes: Buffer;
}

interface Spooled {
  path: string;
  file: FileHandle;
  /** Bytes in the file, and gathered for the next write. */
  written: number;
  pending: Buffer;
  pendingBytes: number;
  /** Each subtransaction, in the order its first message came, and where that message starts. */
  subxacts: { xid: number; offset: number }[];
}

/**
 * Transactions Postgres streams while they are in progress (protocol version 2), kept on local
 * disk until Stream Commit writes them into a segment as one whole transaction, or Stream Abort
 * drops them. Memory stays bounded whatever their size. Row changes are kept encoded as segment
 * entries already: the work is done while the transaction streams in, not after its commit.
 *
 * A subtransaction's abort drops its messages and everything after them, as PostgreSQL's own
 * apply worker does: subtransactions nest, so what came after an aborted subtransaction's first
 * message and before its abort belongs to it or to its children.
 */
export class StreamedTransactions {
  private readonly open = new Map<number, Spooled>();

  constructor(private readonly dir: string) {}

  /** A Stream Start that says it is the transaction's first: anything kept of it from before is stale. */
  async begin(xid: number): Promise<void> {
    await this.drop(xid);
  }

  /**
   * Copies a record of (sub)transaction `subxid` into the spool of top transaction `xid`.
   * Returns a promise only when it had to open or write the file; most records only add to a buffer.
   */
  append(xid: number, subxid: number, type: number, relation: number, bytes: Uint8Array): Promise<void> | undefined {
    const t = this.open.get(xid);
    if (!t) return this.create(xid).then(() => this.append(xid, subxid, type, relation, bytes));
    const offset = t.written + t.pendingBytes;
    if (subxid !== xid && t.subxacts.at(-1)?.xid !== subxid && !t.subxacts.some((s) => s.xid === subxid)) {
      t.subxacts.push({ xid: subxid, offset });
    }
    const size = HEAD + bytes.length;
    if (t.pendingBytes + size > t.pending.length) {
      // Copied before waiting: the bytes may be a view into the connection's read buffer, which
      // is only guaranteed intact until this returns (docs/ARCHITECTURE.md, "No promise per message").
      const kept = Buffer.from(bytes);
      return this.write(t).then(() => {
        if (size > t.pending.length) t.pending = Buffer.allocUnsafe(size);
        this.put(t, type, relation, kept);
      });
    }
    this.put(t, type, relation, bytes);
    return undefined;
  }

  private async create(xid: number): Promise<void> {
    const path = join(this.dir, `streamed-${xid}`);
    this.open.set(xid, {
      path,
      file: await open(path, 'w+'),
      written: 0,
      pending: Buffer.allocUnsafe(WRITE_BYTES),
      pendingBytes: 0,
      subxacts: [],
    });
  }

  private put(t: Spooled, type: number, relation: number, bytes: Uint8Array): void {
    // Copied: the bytes may be a view into the connection's buffer.
    const p = t.pending;
    let o = t.pendingBytes;
    o = p.writeUInt32BE(HEAD + bytes.length - 4, o);
    o = p.writeUInt8(type, o);
    o = p.writeUInt32BE(relation, o);
    p.set(bytes, o);
    t.pendingBytes += HEAD + bytes.length;
  }

  /** Stream Abort: the whole transaction, or a subtransaction and what came after it. */
  async abort(xid: number, subxid: number): Promise<void> {
    const t = this.open.get(xid);
    if (!t) return;
    if (subxid === xid) return this.drop(xid);
    const i = t.subxacts.findIndex((s) => s.xid === subxid);
    // A subtransaction that changed nothing published left nothing to drop.
    if (i < 0) return;
    const offset = t.subxacts[i]!.offset;
    await this.write(t);
    await t.file.truncate(offset);
    t.written = offset;
    t.subxacts.length = i;
  }

  /**
   * Stream Commit: the transaction's records in the order they came, a read's worth at a time
   * (one promise per read, not per record); it is forgotten afterwards. A record's bytes are a
   * view valid until the next read.
   */
  async *take(xid: number): AsyncGenerator<SpooledRecord[]> {
    const t = this.open.get(xid);
    if (!t) return;
    await this.write(t);
    try {
      let rest: Buffer = Buffer.alloc(0);
      for await (const chunk of createReadStream(t.path, { start: 0, end: t.written - 1, highWaterMark: WRITE_BYTES })) {
        const data = rest.length ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
        let pos = 0;
        const records: SpooledRecord[] = [];
        while (pos + HEAD <= data.length && pos + 4 + data.readUInt32BE(pos) <= data.length) {
          const length = data.readUInt32BE(pos);
          records.push({ type: data[pos + 4]!, relation: data.readUInt32BE(pos + 5), bytes: data.subarray(pos + HEAD, pos + 4 + length) });
          pos += 4 + length;
        }
        yield records;
        rest = data.subarray(pos);
      }
      if (rest.length) throw new Error(`the local spool of streamed transaction ${xid} ends inside a message`);
    } finally {
      await this.drop(xid);
    }
  }

  /** Everything kept: after a lost connection, Postgres streams open transactions again from their start. */
  async discardAll(): Promise<void> {
    for (const xid of [...this.open.keys()]) await this.drop(xid);
  }

  private async write(t: Spooled): Promise<void> {
    if (!t.pendingBytes) return;
    await t.file.write(t.pending, 0, t.pendingBytes, t.written);
    t.written += t.pendingBytes;
    t.pendingBytes = 0;
  }

  private async drop(xid: number): Promise<void> {
    const t = this.open.get(xid);
    if (!t) return;
    this.open.delete(xid);
    await t.file.close().catch(() => {});
    await rm(t.path, { force: true });
  }
}
