import type { Compression } from '../core/compression.js';
import type { Delete, Insert, PgoutputMessage, StreamCommit, Update } from '../pgoutput/messages.js';
import { PgoutputParser } from '../pgoutput/parser.js';
import { DELETE, INSERT, UPDATE, type SegmentEntry } from '../segment/format.js';
import { encodeRowChange } from '../segment/entry-encoding.js';
import { SegmentWriter, type SealedSegment, type StreamIdentity } from '../segment/writer.js';
import type { SegmentSealing } from '../segment/encryption.js';
import type { ArchiveMetrics } from '../observe/metrics.js';
import { RelationCatalog } from './relations.js';
import { RAW, StreamedTransactions } from './streamed.js';

/** A row change as the segment stores it. */
function rowChange(msg: Insert | Update | Delete): Extract<SegmentEntry, { kind: 'insert' | 'update' | 'delete' }> {
  if (msg.tag === 'insert') return { kind: 'insert', relation: msg.relation, new: msg.new };
  if (msg.tag === 'update') return { kind: 'update', relation: msg.relation, key: msg.key, old: msg.old, new: msg.new };
  return { kind: 'delete', relation: msg.relation, key: msg.key, old: msg.old };
}

export interface AssemblerOptions {
  /** A private directory for the open segment and transactions being streamed. */
  spoolDir: string;
  identity: StreamIdentity;
  compression: Compression;
  /** Encrypts each segment (segment/encryption.ts). */
  sealing?: SegmentSealing;
  /** Transactions whose commit starts before this are stored already: skipped. */
  resumeFrom: bigint;
  /** Nothing committed after this is taken (`--until`). */
  until: bigint | undefined;
  /** A segment is sealed once its uncompressed body reaches this size (at a commit). */
  segmentBytes: number;
  metrics: ArchiveMetrics;
  /** Hands a sealed segment on to be stored; resolves once there is room for another. */
  seal: (segment: SealedSegment) => Promise<void>;
  /** A transaction was taken whole into the open segment. */
  onCommit: () => void;
}

/** A write that may have had to wait, as what handling its message came to (nothing). */
function after(written: Promise<void> | undefined): Promise<undefined> | undefined {
  return written?.then(() => undefined);
}

/**
 * What handling a message came to: a transaction was taken whole (`committed`), or the stream
 * has passed --until (`until`) and nothing more will be taken.
 */
export type Handled = 'committed' | 'until' | undefined;

/**
 * The transaction assembly of the record path (docs/ARCHITECTURE.md, "The record path"):
 * pgoutput messages into whole committed transactions in segments, sealed at commit boundaries.
 * Transactions sent after their commit are written as they arrive; those streamed while in
 * progress are spooled until they commit (or are dropped when they abort) and then written at
 * their place in commit order, exactly as one sent whole would be. It knows nothing of the
 * connection or of acknowledgement: the archiver drives it and stores what it seals.
 */
export class TransactionAssembler {
  private readonly catalog = new RelationCatalog();
  private writer: SegmentWriter | undefined;
  private readonly streamed: StreamedTransactions;
  private readonly streamParser = new PgoutputParser();
  /** The transaction of the stream block being received. */
  private streamXid = 0;
  private resumeFrom: bigint;
  /** End LSN of the last commit in a sealed segment: where the next segment starts. */
  private sealedEndLsn: bigint;
  /** The last position known handled: every message before it has been taken (or skipped). */
  private receivedLsn: bigint;
  private skipping = false;
  private inTransactionNow = false;
  private openChanges = 0;
  /** Past --until, or stopped by the archiver: later messages are dropped. */
  private closed = false;

  constructor(private readonly options: AssemblerOptions) {
    this.resumeFrom = this.sealedEndLsn = this.receivedLsn = options.resumeFrom;
    this.streamed = new StreamedTransactions(options.spoolDir);
  }

  get sealedEnd(): bigint {
    return this.sealedEndLsn;
  }

  get received(): bigint {
    return this.receivedLsn;
  }

  get inTransaction(): boolean {
    return this.inTransactionNow;
  }

  /** Whether transactions wait in the open segment (not sealed yet). */
  get holdsTransactions(): boolean {
    return (this.writer?.transactions ?? 0) > 0;
  }

  /**
   * Takes one message. Returns at once (not a promise) when nothing had to wait: most messages
   * only add bytes to the open segment's buffer, and a promise per message was a good part of
   * the archiver's CPU (docs/ARCHITECTURE.md, "The record path").
   */
  handle(msg: PgoutputMessage): Handled | Promise<Handled> {
    if (this.closed) return undefined;
    switch (msg.tag) {
      case 'stream_start':
        this.streamXid = msg.xid;
        return msg.first ? after(this.streamed.begin(msg.xid)) : undefined;
      case 'stream_stop':
        return undefined;
      case 'streamed':
        this.countChange();
        return after(this.spoolStreamed(msg.xid, msg.raw));
      case 'stream_abort':
        if (msg.xid === msg.subxid) this.noOpenChanges();
        return after(this.streamed.abort(msg.xid, msg.subxid));
      case 'stream_commit':
        return this.commitStreamed(msg);
      case 'relation':
        this.catalog.define(msg);
        return undefined;
      case 'type':
        this.catalog.defineType(msg);
        return undefined;
      case 'begin':
        if (this.options.until !== undefined && msg.commitLsn > this.options.until) {
          this.closed = true;
          return 'until';
        }
        this.inTransactionNow = true;
        // Postgres resumes at max(requested, confirmed) and may resend what the store already has.
        this.skipping = msg.commitLsn < this.resumeFrom;
        return this.skipping ? undefined : after(this.openWriter().begin(msg.xid, msg.commitLsn, msg.commitTime));
      case 'origin':
        return this.skipping ? undefined : after(this.openWriter().origin(msg.name, msg.originLsn));
      case 'commit': {
        this.inTransactionNow = false;
        if (this.skipping) {
          this.skipping = false;
          return undefined;
        }
        const writer = this.openWriter();
        const written = writer.commit(msg.commitLsn, msg.endLsn, msg.commitTime, msg.flags);
        return written ? written.then(() => this.committed(writer, msg.endLsn)) : this.committed(writer, msg.endLsn);
      }
      case 'message':
        // Non-transactional messages belong to no committed transaction: not part of the history.
        if (!msg.transactional || this.skipping) return undefined;
        return after(
          this.openWriter().change({ kind: 'message', prefix: msg.prefix, content: msg.content, lsn: msg.lsn, transactional: true }),
        );
      case 'row': {
        if (this.skipping) return undefined;
        this.countChange();
        const row = encodeRowChange(msg.raw, 1);
        return after(this.openWriter().appendEncoded(row.kind, row.relation, row.encoded));
      }
      case 'insert':
      case 'update':
      case 'delete':
        if (this.skipping) return undefined;
        this.countChange();
        return after(this.openWriter().change(rowChange(msg)));
      case 'truncate':
        return this.skipping
          ? undefined
          : after(this.openWriter().change({ kind: 'truncate', relations: msg.relations, flags: msg.flags }));
    }
  }

  /** A commit's entry is written: the transaction is whole in the open segment. */
  private committed(writer: SegmentWriter, endLsn: bigint): Handled | Promise<Handled> {
    this.noOpenChanges();
    if (endLsn > this.receivedLsn) this.receivedLsn = endLsn;
    this.options.onCommit();
    if (this.options.until !== undefined && endLsn >= this.options.until) {
      this.closed = true;
      return 'until';
    }
    if (writer.rawBytes >= this.options.segmentBytes) return this.roll().then(() => 'committed' as const);
    return 'committed';
  }

  /**
   * A transaction streamed while in progress has committed: written into the segment as a whole
   * transaction, at its place in commit order, exactly as one sent after its commit would be.
   */
  private async commitStreamed(msg: StreamCommit): Promise<Handled> {
    const begun = await this.handle({ tag: 'begin', xid: msg.xid, commitLsn: msg.commitLsn, commitTime: msg.commitTime });
    for await (const chunk of this.streamed.take(msg.xid)) {
      for (const r of chunk) {
        // Past --until, or stored already: the rest is dropped, as the transaction itself is.
        if (this.closed || this.skipping) break;
        const written =
          r.type === RAW
            ? this.handle(this.streamParser.parseStreamed(r.bytes))
            : this.openWriter().appendEncoded(r.type === INSERT ? 'insert' : r.type === UPDATE ? 'update' : 'delete', r.relation, r.bytes);
        if (written instanceof Promise) await written;
      }
    }
    if (begun === 'until') return begun;
    return this.handle({ tag: 'commit', flags: msg.flags, commitLsn: msg.commitLsn, endLsn: msg.endLsn, commitTime: msg.commitTime });
  }

  /**
   * A message of a transaction being streamed: row changes are encoded as segment entries now,
   * while the walsender is still sending, so its commit only has to copy them into the segment.
   */
  private spoolStreamed(subxid: number, raw: Buffer): Promise<void> | undefined {
    const kind = raw[0];
    if (kind !== 0x49 && kind !== 0x55 && kind !== 0x44) return this.streamed.append(this.streamXid, subxid, RAW, 0, raw);
    const row = encodeRowChange(raw, 5);
    const type = row.kind === 'insert' ? INSERT : row.kind === 'update' ? UPDATE : DELETE;
    return this.streamed.append(this.streamXid, subxid, type, row.relation, row.encoded);
  }

  // The gauge moves only for transactions of 1,000 changes or more: a set per small transaction
  // cost as much as writing it (prom-client hashes the labels on every set).
  private noOpenChanges(): void {
    if (this.openChanges >= 1000) this.options.metrics.openTransactionChanges.set(0);
    this.openChanges = 0;
  }

  private countChange(): void {
    if (++this.openChanges % 1000 === 0) this.options.metrics.openTransactionChanges.set(this.openChanges);
  }

  private openWriter(): SegmentWriter {
    this.writer ??= new SegmentWriter(
      this.options.spoolDir,
      this.sealedEndLsn,
      this.options.identity,
      this.options.compression,
      (oid) => this.catalog.get(oid),
      this.options.sealing,
    );
    return this.writer;
  }

  /**
   * Seals the open segment (unless a transaction is being written into it) and hands it on.
   * Out of a transaction, everything before `received` has been handled: the segment may claim
   * up to there, so a segment without transactions marks a position the stream has passed.
   */
  async roll(): Promise<void> {
    const writer = this.writer;
    if (!writer || writer.inProgress) return;
    if (!this.inTransactionNow) writer.advanceTo(this.receivedLsn);
    if (writer.transactions === 0 && writer.endLsn <= writer.startLsn) return;
    this.writer = undefined;
    const sealed = await writer.seal();
    this.sealedEndLsn = sealed.header.endLsn;
    // Waits while the upload queue is full: no more messages are read meanwhile.
    await this.options.seal(sealed);
  }

  /** Seals the open segment if it holds transactions and was opened `ms` ago or earlier. */
  async rollIfOlder(ms: number): Promise<void> {
    const writer = this.writer;
    if (writer && !writer.inProgress && writer.transactions > 0 && Date.now() - writer.openedAt >= ms) await this.roll();
  }

  /**
   * Seals a segment without transactions up to `received` when the stream has passed that far
   * with nothing of ours in between, and it is forced or at least `minBytes` past the last seal.
   */
  async advanceIdle(force: boolean, minBytes: number): Promise<void> {
    if (this.closed) return;
    if (!force && this.receivedLsn - this.sealedEndLsn < BigInt(minBytes)) return;
    await this.sealPosition();
  }

  /**
   * Seals what is open, up to `received`: a segment without transactions when nothing of ours
   * came since the last one, so that the position the stream has passed can be acknowledged.
   */
  async sealPosition(): Promise<void> {
    if (this.inTransactionNow || this.writer?.inProgress || this.receivedLsn <= this.sealedEndLsn) return;
    this.openWriter();
    await this.roll();
  }

  /** A keepalive position reached with every message before it handled, out of a transaction. */
  passedTo(walEnd: bigint): Handled {
    if (this.inTransactionNow) return undefined;
    if (walEnd > this.receivedLsn) this.receivedLsn = walEnd;
    return this.options.until !== undefined && walEnd >= this.options.until ? 'until' : undefined;
  }

  /**
   * The connection was lost: whole transactions in the open segment are sealed, a transaction cut
   * short is dropped (with those streamed while in progress), and the stream must resume at the
   * returned point, where Postgres sends the rest again.
   */
  async restart(): Promise<bigint> {
    const writer = this.writer;
    if (writer && (this.inTransactionNow || writer.inProgress)) {
      this.writer = undefined;
      await writer.discard();
    } else await this.roll();
    await this.streamed.discardAll();
    this.inTransactionNow = this.skipping = false;
    this.noOpenChanges();
    this.resumeFrom = this.receivedLsn = this.sealedEndLsn;
    return this.resumeFrom;
  }

  /** Takes nothing more: what follows is not stored (the archiver is finishing). */
  close(): void {
    this.closed = true;
  }

  /** Removes what is not sealed: the open segment and transactions still being streamed. */
  async discard(): Promise<void> {
    await this.writer?.discard();
    this.writer = undefined;
    await this.streamed.discardAll();
  }
}
