import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { encryptingStream } from '../core/chunked-aead.js';
import { digestTap } from '../core/digest-tap.js';
import type { Compression } from '../core/compression.js';
import {
  encodeEntry,
  encodeHead,
  FORMAT_VERSION,
  type RelationDef,
  type SegmentEntry,
  type SegmentHeader,
  type TableCount,
} from './format.js';
import { encodeBegin, encodeCommit } from './entry-encoding.js';
import { segmentKey } from './name.js';
import { BodySpool } from './spool.js';
import { sealSegmentHead, type SegmentSealing } from './encryption.js';

/** What every segment of a stream says about where it comes from. */
export interface StreamIdentity {
  systemIdentifier: string;
  database: string;
  slot: string;
  serverVersion: number;
}

export interface SealedSegment {
  key: string;
  /** A local file holding the whole segment (head and body). */
  path: string;
  header: SegmentHeader;
}

type ChangeEntry = Extract<SegmentEntry, { kind: 'insert' | 'update' | 'delete' | 'truncate' | 'message' }>;

/**
 * One open segment: whole transactions appended in commit order, sealed into a file whose name
 * is its LSN range. Knows nothing of Postgres connections or stores.
 */
export class SegmentWriter {
  private readonly spool: BodySpool;
  private readonly bodyPath: string;
  /** Relation definitions written into this segment, by oid: identity tells when one changed. */
  private readonly emitted = new Map<number, RelationDef>();
  private readonly tables = new Map<number, TableCount>();
  private inTransaction = false;
  private end: bigint;
  private first: { commitLsn: bigint; commitTime: bigint } | undefined;
  private last: { commitLsn: bigint; commitTime: bigint } | undefined;
  private minXid = 0;
  private maxXid = 0;
  private currentXid = 0;
  private currentCommitLsn = 0n;
  /** Marks written, for an encrypted segment's header. */
  private readonly marks: { name: string; commitLsn: bigint }[] = [];
  private counts = { transactions: 0, changes: 0, messages: 0 };
  readonly openedAt = Date.now();

  constructor(
    private readonly spoolDir: string,
    readonly startLsn: bigint,
    private readonly identity: StreamIdentity,
    private readonly compression: Compression,
    private readonly relation: (oid: number) => RelationDef,
    /** Encrypts the body, the tables' names and the marks for this key (segment/encryption.ts). */
    private readonly sealing?: SegmentSealing,
  ) {
    this.end = startLsn;
    this.bodyPath = join(spoolDir, `body-${randomBytes(6).toString('hex')}`);
    this.spool = new BodySpool(this.bodyPath, compression);
  }

  get transactions(): number {
    return this.counts.transactions;
  }

  get inProgress(): boolean {
    return this.inTransaction;
  }

  /** Uncompressed body bytes so far: what --segment-bytes measures. */
  get rawBytes(): number {
    return this.spool.rawBytes;
  }

  begin(xid: number, commitLsn: bigint, commitTime: bigint): Promise<void> | undefined {
    this.inTransaction = true;
    this.currentXid = xid;
    this.currentCommitLsn = commitLsn;
    return this.spool.append(encodeBegin(xid, commitLsn, commitTime));
  }

  origin(name: string, originLsn: bigint): Promise<void> | undefined {
    return this.spool.append(encodeEntry({ kind: 'origin', name, originLsn }));
  }

  change(entry: ChangeEntry): Promise<void> | undefined {
    if (entry.kind === 'message') {
      this.counts.messages++;
      if (this.sealing && entry.transactional && entry.prefix === this.sealing.markPrefix)
        this.marks.push({ name: entry.content.toString('utf8'), commitLsn: this.currentCommitLsn });
    } else this.count(entry.kind, entry.kind === 'truncate' ? entry.relations : [entry.relation]);
    return this.spool.append(encodeEntry(entry));
  }

  /** A row change encoded already (by encodeRowChange, from pgoutput's bytes). */
  appendEncoded(kind: 'insert' | 'update' | 'delete', relation: number, encoded: Uint8Array): Promise<void> | undefined {
    this.count(kind, [relation]);
    return this.spool.append(encoded);
  }

  private count(kind: 'insert' | 'update' | 'delete' | 'truncate', oids: number[]): void {
    this.counts.changes++;
    for (const oid of oids) {
      this.defineRelation(oid);
      const t = this.tables.get(oid)!;
      if (kind === 'insert') t.inserts++;
      else if (kind === 'update') t.updates++;
      else if (kind === 'delete') t.deletes++;
      else t.truncates++;
    }
  }

  commit(commitLsn: bigint, endLsn: bigint, commitTime: bigint, flags: number): Promise<void> | undefined {
    const xid = this.currentXid;
    this.inTransaction = false;
    this.end = endLsn;
    this.first ??= { commitLsn, commitTime };
    this.last = { commitLsn, commitTime };
    this.minXid = this.counts.transactions === 0 ? xid : Math.min(this.minXid, xid);
    this.maxXid = Math.max(this.maxXid, xid);
    this.counts.transactions++;
    return this.spool.append(encodeCommit(commitLsn, endLsn, commitTime, flags));
  }

  get endLsn(): bigint {
    return this.end;
  }

  /**
   * Extends the segment to a position up to which the walsender has sent everything (a
   * keepalive's): no transaction of ours commits before it. The store then knows the archive
   * reaches there, so that position can be acknowledged and the slot stops holding WAL for it.
   */
  advanceTo(lsn: bigint): void {
    if (this.inTransaction) throw new Error('a segment can only be extended between transactions');
    if (lsn > this.end) this.end = lsn;
  }

  private defineRelation(oid: number): void {
    const def = this.relation(oid);
    if (this.emitted.get(oid) === def) return;
    this.emitted.set(oid, def);
    // Table counts follow the relation's current name; a rename mid-segment keeps the first name.
    if (!this.tables.has(oid)) {
      this.tables.set(oid, { oid, schema: def.schema, name: def.name, inserts: 0, updates: 0, deletes: 0, truncates: 0 });
    }
    // Appended synchronously before the change that needs it; back-pressure is left to the change.
    void this.spool.append(encodeEntry({ kind: 'relation', relation: def }));
  }

  /** Finishes the body and writes the whole segment file. Only at a commit boundary. */
  async seal(): Promise<SealedSegment> {
    if (this.inTransaction) throw new Error('a segment can only be sealed between transactions');
    // A segment without transactions is a position marker: it says nothing of ours happened in its range.
    if (this.end <= this.startLsn) throw new Error('an empty segment is never sealed');
    const none = { commitLsn: 0n, commitTime: 0n };
    const first = this.first ?? none;
    const last = this.last ?? none;
    const body = await this.spool.finish();
    const header: SegmentHeader = {
      formatVersion: FORMAT_VERSION,
      startLsn: this.startLsn,
      endLsn: this.end,
      firstCommitLsn: first.commitLsn,
      lastCommitLsn: last.commitLsn,
      firstCommitTime: first.commitTime,
      lastCommitTime: last.commitTime,
      minXid: this.minXid,
      maxXid: this.maxXid,
      ...this.counts,
      tables: [...this.tables.values()],
      compression: this.compression,
      ...body,
      ...this.identity,
    };
    const key = segmentKey(this.startLsn, this.end);
    const path = join(this.spoolDir, key.slice(key.lastIndexOf('/') + 1));
    let bodyPath = this.bodyPath;
    if (this.sealing) bodyPath = await this.encryptBody(header, this.sealing);
    await writeFile(path, encodeHead(header));
    await pipeline(createReadStream(bodyPath), createWriteStream(path, { flags: 'a' }));
    await rm(this.bodyPath, { force: true });
    await rm(bodyPath, { force: true });
    return { key, path, header };
  }

  /**
   * Seals the compressed body into a file beside it and makes the header say so: its size and
   * checksum become the ciphertext's (what verify checks without a key), its names are sealed.
   */
  private async encryptBody(header: SegmentHeader, sealing: SegmentSealing): Promise<string> {
    const sealed = sealSegmentHead(sealing, header, this.marks);
    const path = `${this.bodyPath}.sealed`;
    const digest = digestTap();
    await pipeline(
      createReadStream(this.bodyPath),
      encryptingStream(sealed.dataKey, sealed.bodyContext),
      digest.tap,
      createWriteStream(path),
    );
    Object.assign(header, { tables: sealed.tables, encryption: sealed.encryption, bodyBytes: digest.bytes(), bodySha256: digest.sha256() });
    return path;
  }

  /** Drops the open segment's local files (on shutdown without sealing, or after a failure). */
  async discard(): Promise<void> {
    this.spool.destroy();
    await rm(this.bodyPath, { force: true });
  }
}
