import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../core/backoff.js';
import { ExitCode, UserError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { formatLsn, parseLsn } from '../core/lsn.js';
import { quoteIdent } from '../core/sql.js';
import type { Delete, Insert, PgoutputMessage, StreamCommit, Update } from '../pgoutput/messages.js';
import { PgoutputParser } from '../pgoutput/parser.js';
import { PgoutputPlugin } from '../pgoutput/plugin.js';
import type { Compression } from '../core/compression.js';
import { DELETE, encodeEntry, INSERT, NotASegmentError, UPDATE, type SegmentEntry } from '../segment/format.js';
import { SegmentWriter, type SealedSegment, type StreamIdentity } from '../segment/writer.js';
import { listDiscontinuities, recordDiscontinuity } from '../log/discontinuities.js';
import { listSegments, openSegment } from '../log/segments.js';
import type { Store } from '../store/store.js';
import { clientConfig, connect, connectionError, connectQuietly } from '../source/connection.js';
import { checkSource, ensurePublication } from '../source/preflight.js';
import { installDdlCapture } from '../source/ddl-capture.js';
import { findSlot, type SlotState } from '../source/slot.js';
import { listBases } from '../log/bases.js';
import { takeBase } from '../base/take.js';
import { RelationCatalog } from './relations.js';
import { createSpoolDir } from '../core/spool-dir.js';
import { Heartbeat } from './heartbeat.js';
import { ReplicationService } from './replication.js';
import { ArchiveMetrics } from '../observe/metrics.js';
import { SourceMonitor } from '../observe/source-monitor.js';
import type { Readiness } from '../observe/server.js';
import { RAW, StreamedTransactions } from './streamed.js';
import { SegmentUploader } from './uploader.js';

export interface ArchiveOptions {
  source: string;
  store: Store;
  slot: string;
  publication: string;
  createPublication: boolean;
  force: boolean;
  segmentBytes: number;
  segmentSeconds: number;
  /** Store everything committed up to this point, then stop: 'now' is the source's WAL position at start. */
  until?: 'now' | bigint;
  compression: Compression;
  queueLimit: number;
  /** With nothing of ours pending, acknowledge the keepalive position once the slot holds this much WAL for us. */
  maxIdleWal: number;
  /** Warn (and show in the metrics) when the slot retains more WAL than this. */
  maxRetainedWal: number;
  /** A statement run every `seconds` on the source, for databases whose tables are idle. */
  heartbeat?: { sql: string; seconds: number };
  log: Logger;
  /** Install event triggers that record DDL as logical messages replay executes at their point. */
  captureDdl?: boolean;
  /** A lost slot, or one that moved past the archive: go on with a new slot and base, recording the discontinuity. */
  rebase?: boolean;
  /** Aborting seals and stores the open segment at the next commit boundary, then run() resolves. */
  signal?: AbortSignal;
}

export interface ArchiveSummary {
  durableLsn: bigint;
  segments: number;
  transactions: number;
  /** pgoutput bytes received, against which stored bytes are compared. */
  receivedBytes: number;
  storedBytes: number;
}

const STATUS_INTERVAL_MS = 10_000;
const RECONNECT_FIRST_MS = 500;
const PING_BURST_MS = 3_000;
const RECONNECT_MAX_MS = 30_000;

const REBASE_HINT =
  'pgtape archive --rebase goes on with a new slot and a new base, and records the discontinuity (replay works on either side of it, never across); or pass the --slot this archive was made with';

/** Why the slot can no longer continue an archive that ends at `end` (a hole), if it cannot. */
function slotProblem(name: string, slot: SlotState | undefined, end: bigint): string | undefined {
  if (!slot) return `replication slot ${quoteIdent(name)} does not exist, but the store holds an archive up to ${formatLsn(end)}: changes since then can no longer be archived into it`;
  if (slot.confirmedFlushLsn > end) {
    return `replication slot ${quoteIdent(slot.name)} has confirmed up to ${formatLsn(slot.confirmedFlushLsn)}, but the archive ends at ${formatLsn(end)}: changes between the two are not in the archive and Postgres will not send them again`;
  }
  return undefined;
}

/**
 * Connection errors that waiting will not fix: the slot, the credentials, the database or the
 * privileges are wrong. Everything else (refused, reset, shutting down, starting up, a killed
 * walsender, the slot still held by a walsender that has not noticed its client is gone) is retried.
 */
export function fatalConnectionError(err: Error): boolean {
  const code = (err as { code?: string }).code ?? '';
  return ['42704', '28P01', '28000', '3D000', '42501', '55000', '42P01'].includes(code) || code.startsWith('28');
}
const TICK_MS = 250;

/** A row change as the segment stores it. */
function rowChange(msg: Insert | Update | Delete): Extract<SegmentEntry, { kind: 'insert' | 'update' | 'delete' }> {
  if (msg.tag === 'insert') return { kind: 'insert', relation: msg.relation, new: msg.new };
  if (msg.tag === 'update') return { kind: 'update', relation: msg.relation, key: msg.key, old: msg.old, new: msg.new };
  return { kind: 'delete', relation: msg.relation, key: msg.key, old: msg.old };
}

/**
 * The record path (DESIGN §3): walsender → decoder → transaction assembly → segment writer →
 * store, and the acknowledgement of what the store has confirmed back to Postgres.
 */
export class Archiver implements Readiness {
  readonly metrics = new ArchiveMetrics();
  private streaming = false;
  /** Since when received changes wait to be stored (the lag in seconds). */
  private pendingSince: number | undefined;
  private openChanges = 0;
  private readonly catalog = new RelationCatalog();
  private readonly plugin: PgoutputPlugin;
  private readonly service: ReplicationService;
  private readonly uploader: SegmentUploader;
  private writer: SegmentWriter | undefined;
  private spoolDir = '';
  /** Transactions streamed while in progress, kept locally until they commit. */
  private streamed!: StreamedTransactions;
  private readonly streamParser = new PgoutputParser();
  /** The transaction of the stream block being received. */
  private streamXid = 0;
  private identity!: StreamIdentity;

  /** Transactions whose commit starts before this are already stored: skipped on resume. */
  private resumeFrom = 0n;
  /** End LSN of the last commit in a sealed segment: where the next segment starts. */
  private sealedEnd = 0n;
  /** End LSN of the last commit the store has confirmed: the only position acknowledged. */
  private durable = 0n;
  /** The last position the walsender reported, once every message before it has been handled. */
  private received = 0n;
  private skipping = false;
  private inTransaction = false;
  private handled = 0;
  private lastKeepalive: { walEnd: bigint; parsedBefore: number } | undefined;
  private until: bigint | undefined;
  private stopping = false;
  private finishing: Promise<void> | undefined;
  private lastStatusAt = 0;
  private lastPingAt = 0;
  private lastMessageAt = Date.now();
  /** Which subscription is current: a late error from an earlier one is not a new outage. */
  private generation = 0;
  private reconnecting = false;
  private outage: { since: number; attempts: number } | undefined;
  private summary: ArchiveSummary = { durableLsn: 0n, segments: 0, transactions: 0, receivedBytes: 0, storedBytes: 0 };
  private settle!: { resolve: () => void; reject: (err: Error) => void };
  private failed = false;

  constructor(private readonly options: ArchiveOptions) {
    // Every supported Postgres (14+) streams large transactions while they are in progress.
    this.plugin = new PgoutputPlugin({ publication: options.publication, messages: true, streaming: true });
    this.service = new ReplicationService(clientConfig(options.source));
    this.uploader = new SegmentUploader(options.store, options.log, {
      queueLimit: options.queueLimit,
      onStored: (segment) => this.onStored(segment),
      onRetry: () => this.metrics.storeRetries.inc(),
    });
  }

  async run(): Promise<ArchiveSummary> {
    const { log, store } = this.options;
    await store.checkWritable();
    const storedEnd = await this.lastStoredEnd();

    const client = await connect(this.options.source);
    try {
      const facts = await checkSource(client);
      await ensurePublication(client, this.options.publication, { create: this.options.createPublication, force: this.options.force }, log);
      if (this.options.captureDdl) {
        await installDdlCapture(client, this.options.publication, log).catch((err: { code?: string; message?: string }) => {
          throw err.code === '42501'
            ? new UserError(`--capture-ddl: ${err.message}`, 'event triggers need a superuser: install once as one (pgtape archive --capture-ddl --until now), then archive as the usual role')
            : err;
        });
      }
      this.identity = { ...facts, slot: this.options.slot };
      const slot = await findSlot(client, this.options.slot, facts.database, log);
      const baseOptions = { source: this.options.source, store, publication: this.options.publication, facts, log };
      const why = storedEnd && slotProblem(this.options.slot, slot, storedEnd.endLsn);
      if (storedEnd && why) {
        if (!this.options.rebase) throw new UserError(why, REBASE_HINT);
        if (slot) {
          log.warn({ slot: slot.name }, 'dropping the slot that moved past the archive (--rebase)');
          await client.query('select pg_drop_replication_slot($1)', [slot.name]);
        }
        this.resumeFrom = await takeBase({ ...baseOptions, slot: this.options.slot });
        await recordDiscontinuity(store, { from: storedEnd.endLsn, to: this.resumeFrom, reason: slot ? 'the slot had moved past the archive' : 'the slot was lost' });
        log.warn({ from: formatLsn(storedEnd.endLsn), to: formatLsn(this.resumeFrom) }, 'rebased: a new slot and base; the changes between are not in the archive (recorded as a discontinuity)');
      } else if (!slot) {
        // A new stream: the slot's exported snapshot gives the base, and the log starts where it ends.
        this.resumeFrom = await takeBase({ ...baseOptions, slot: this.options.slot });
      } else {
        if ((await listBases(store)).length === 0) {
          log.warn('the store holds no base, without which nothing can be replayed: taking one now');
          await takeBase(baseOptions);
        }
        this.resumeFrom = storedEnd?.endLsn ?? slot.confirmedFlushLsn;
      }
      if (this.options.until === 'now') {
        const r = await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
        this.until = parseLsn(r.rows[0]!.lsn);
      } else {
        this.until = this.options.until;
      }
    } finally {
      await client.end().catch(() => {});
    }
    this.sealedEnd = this.durable = this.received = this.resumeFrom;
    this.summary.durableLsn = this.durable;
    this.spoolDir = await createSpoolDir();
    this.streamed = new StreamedTransactions(this.spoolDir);
    log.info(
      {
        store: store.description,
        slot: this.options.slot,
        publication: this.options.publication,
        resumeFrom: formatLsn(this.resumeFrom),
        ...(this.until !== undefined ? { until: formatLsn(this.until) } : {}),
      },
      'archiving',
    );

    const done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    let tickQueued = false;
    const tick = setInterval(() => {
      this.keepAlive();
      // One tick at a time in the chain: a long wait for the store must not pile them up.
      if (tickQueued) return;
      tickQueued = true;
      void this.serial(() => ((tickQueued = false), this.onTick()));
    }, TICK_MS);
    const heartbeat = this.options.heartbeat ? new Heartbeat(this.options.source, this.options.heartbeat.sql, this.options.heartbeat.seconds, log) : undefined;
    heartbeat?.start();
    const monitor = new SourceMonitor(this.options.source, this.options.slot, this.options.maxRetainedWal, this.metrics, () => this.durable, log);
    monitor.start();
    const onAbort = () => this.requestStop();
    this.options.signal?.addEventListener('abort', onAbort);
    if (this.options.signal?.aborted) onAbort();
    // Once a connection is lost, what it still delivers is dropped: streaming resumes at the end
    // of the last sealed segment and Postgres sends it again.
    this.service.on('data', (_lsn: string, msg: PgoutputMessage) => (this.reconnecting ? undefined : this.serial(() => this.onMessage(msg))));
    this.service.on('heartbeat', (lsn: string, _time: number, shouldRespond: boolean) => {
      if (!this.reconnecting) this.onKeepalive(parseLsn(lsn), shouldRespond);
    });
    this.service.on('error', (err: Error) => this.connectionLost(this.generation, err));
    this.service.on('start', () => this.onStreaming());
    this.startStreaming();
    try {
      await done;
    } finally {
      clearInterval(tick);
      await heartbeat?.stop();
      await monitor.stop();
      this.options.signal?.removeEventListener('abort', onAbort);
      await this.service.stop().catch(() => {});
      await this.writer?.discard();
      await this.streamed.discardAll();
      await rm(this.spoolDir, { recursive: true, force: true });
    }
    this.summary.receivedBytes = this.plugin.parsedBytes;
    return this.summary;
  }

  /** Starts one replication connection; its end or failure is a connection loss unless finishing. */
  private startStreaming(): void {
    const generation = ++this.generation;
    // A lost connection's messages were parsed but never handled: the count starts anew, or
    // keepalives would wait forever for them (and the archive never reach an idle position).
    this.plugin.parsed = this.handled = 0;
    this.service
      .subscribe(this.plugin, this.options.slot, formatLsn(this.resumeFrom))
      .then(() => this.connectionLost(generation, new Error('the source ended replication')))
      .catch((err: Error) => this.connectionLost(generation, err));
  }

  private onStreaming(): void {
    this.streaming = true;
    this.metrics.streaming.set(1);
    this.sendStatus(false);
    if (this.outage) {
      this.options.log.info({ seconds: (Date.now() - this.outage.since) / 1000, attempts: this.outage.attempts, resumeFrom: formatLsn(this.resumeFrom) }, 'replication reconnected');
      this.outage = undefined;
    }
  }

  /**
   * The replication connection failed or ended (a restart of Postgres, a killed walsender, the
   * network). Errors that waiting cannot fix stop the archiver; the others are retried with a
   * capped, jittered backoff, logged once per outage.
   */
  private connectionLost(generation: number, err: Error): void {
    if (generation !== this.generation || this.finishing || this.failed || this.reconnecting) return;
    const fatal = fatalConnectionError(err);
    if (fatal) return this.fail(connectionError(this.options.source, err));
    this.reconnecting = true;
    this.streaming = false;
    this.metrics.streaming.set(0);
    this.metrics.reconnects.inc();
    if (!this.outage) {
      this.outage = { since: Date.now(), attempts: 0 };
      this.options.log.warn({ err: errorMessage(err) }, 'replication connection lost; reconnecting (nothing unstored is acknowledged)');
    }
    void this.serial(() => this.reconnect());
  }

  /**
   * Runs in the serial chain, after every message already received: whole transactions in the
   * open segment are sealed and queued, a transaction cut short is dropped, and streaming
   * resumes at the end of the last sealed segment, where Postgres sends them again.
   */
  private async reconnect(): Promise<void> {
    await this.service.stop().catch(() => {});
    const writer = this.writer;
    if (writer && (this.inTransaction || writer.inProgress)) {
      this.writer = undefined;
      await writer.discard();
    } else await this.rollSegment();
    // Transactions still in progress are streamed again from their start.
    await this.streamed.discardAll();
    this.inTransaction = this.skipping = false;
    this.resumeFrom = this.received = this.sealedEnd;
    this.lastKeepalive = undefined;
    const outage = this.outage!;
    for (;;) {
      if (this.finishing || this.failed) return;
      outage.attempts++;
      await sleep(backoffDelay(outage.attempts - 1, RECONNECT_FIRST_MS, RECONNECT_MAX_MS));
      try {
        await this.checkSlotStillOurs();
        break;
      } catch (err) {
        if (err instanceof UserError || fatalConnectionError(err as Error)) throw err instanceof UserError ? err : connectionError(this.options.source, err);
        this.options.log.debug({ err: errorMessage(err), attempt: outage.attempts }, 'source not reachable yet');
      }
    }
    this.reconnecting = false;
    this.startStreaming();
  }

  /** Before streaming again: the slot must still exist and must not have moved past the archive. */
  private async checkSlotStillOurs(): Promise<void> {
    const client = await connectQuietly(this.options.source);
    try {
      const why = slotProblem(this.options.slot, await findSlot(client, this.options.slot, this.identity.database, this.options.log), this.sealedEnd);
      if (why) throw new UserError(why, REBASE_HINT);
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** The end of the archive as stored: read from the last segment's header, which also proves it is ours. */
  private async lastStoredEnd(): Promise<{ endLsn: bigint } | undefined> {
    const segments = await listSegments(this.options.store);
    const last = segments.at(-1);
    // After a rebase, the archive goes on from the new base, before its first segment is stored.
    const rebased = (await listDiscontinuities(this.options.store)).at(-1);
    if (rebased && (!last || rebased.to >= last.endLsn)) return { endLsn: rebased.to };
    if (!last) return undefined;
    try {
      const header = await openSegment(this.options.store, last.key).header();
      if (header.endLsn !== last.endLsn) {
        throw new UserError(`${this.options.store.description}/${last.key} says it ends at ${formatLsn(header.endLsn)}, unlike its name`, 'run pgtape verify');
      }
      return { endLsn: header.endLsn };
    } catch (err) {
      if (err instanceof NotASegmentError) {
        throw new UserError(err.message, 'the store holds something that is not pgtape\'s: move it away, or choose another --store');
      }
      throw err;
    }
  }

  private chain: Promise<void> = Promise.resolve();

  /** Messages, ticks and stops run one at a time, in arrival order. */
  private serial(fn: () => Promise<void> | void): Promise<void> {
    const next = this.chain.then(async () => {
      if (this.failed) return;
      try {
        await fn();
      } catch (err) {
        this.fail(err as Error);
      }
    });
    this.chain = next;
    return next;
  }

  private async onMessage(msg: PgoutputMessage): Promise<void> {
    this.handled++;
    this.lastMessageAt = Date.now();
    await this.handle(msg);
  }

  private async handle(msg: PgoutputMessage): Promise<void> {
    if (this.finishing) return;
    switch (msg.tag) {
      case 'stream_start':
        this.streamXid = msg.xid;
        if (msg.first) await this.streamed.begin(msg.xid);
        return;
      case 'stream_stop':
        return;
      case 'streamed':
        if (++this.openChanges % 1000 === 1) this.metrics.openTransactionChanges.set(this.openChanges);
        return this.spoolStreamed(msg.xid, msg.raw);
      case 'stream_abort':
        await this.streamed.abort(msg.xid, msg.subxid);
        return;
      case 'stream_commit':
        return this.commitStreamed(msg);
      case 'relation':
        this.catalog.define(msg);
        return;
      case 'type':
        this.catalog.defineType(msg);
        return;
      case 'begin':
        if (this.until !== undefined && msg.commitLsn > this.until) {
          await this.finish();
          return;
        }
        this.inTransaction = true;
        // Postgres resumes at max(requested, confirmed) and may resend what the store already has.
        this.skipping = msg.commitLsn < this.resumeFrom;
        if (!this.skipping) await this.openWriter().begin(msg.xid, msg.commitLsn, msg.commitTime);
        return;
      case 'origin':
        if (!this.skipping) await this.openWriter().origin(msg.name, msg.originLsn);
        return;
      case 'commit': {
        this.inTransaction = false;
        if (this.skipping) {
          this.skipping = false;
          return;
        }
        const writer = this.openWriter();
        await writer.commit(msg.commitLsn, msg.endLsn, msg.commitTime, msg.flags);
        this.pendingSince ??= Date.now();
        this.metrics.openTransactionChanges.set((this.openChanges = 0));
        this.received = msg.endLsn > this.received ? msg.endLsn : this.received;
        this.summary.transactions++;
        if (this.stopping || (this.until !== undefined && msg.endLsn >= this.until)) await this.finish();
        else if (writer.rawBytes >= this.options.segmentBytes) await this.rollSegment();
        return;
      }
      case 'message':
        // Non-transactional messages belong to no committed transaction: not part of the history.
        if (!msg.transactional || this.skipping) return;
        await this.openWriter().change({ kind: 'message', prefix: msg.prefix, content: msg.content, lsn: msg.lsn, transactional: true });
        return;
      case 'insert':
      case 'update':
      case 'delete':
        return this.storeChange(rowChange(msg));
      case 'truncate':
        if (!this.skipping) await this.openWriter().change({ kind: 'truncate', relations: msg.relations, flags: msg.flags });
        return;
    }
  }

  /**
   * A transaction streamed while in progress has committed: written into the segment as a whole
   * transaction, at its place in commit order, exactly as one sent after its commit would be.
   */
  private async commitStreamed(msg: StreamCommit): Promise<void> {
    await this.handle({ tag: 'begin', xid: msg.xid, commitLsn: msg.commitLsn, commitTime: msg.commitTime });
    for await (const r of this.streamed.take(msg.xid)) {
      // Past --until, or stored already: the rest is dropped, as the transaction itself is.
      if (this.finishing || this.skipping) continue;
      if (r.type === RAW) await this.handle(this.streamParser.parseStreamed(r.bytes));
      else await this.openWriter().appendEncoded(r.type === INSERT ? 'insert' : r.type === UPDATE ? 'update' : 'delete', r.relation, r.bytes);
    }
    await this.handle({ tag: 'commit', flags: msg.flags, commitLsn: msg.commitLsn, endLsn: msg.endLsn, commitTime: msg.commitTime });
  }

  /**
   * A message of a transaction being streamed: row changes are encoded as segment entries now,
   * while the walsender is still sending, so its commit only has to copy them into the segment.
   */
  private async spoolStreamed(subxid: number, raw: Buffer): Promise<void> {
    const kind = raw[0];
    if (kind !== 0x49 && kind !== 0x55 && kind !== 0x44) return this.streamed.append(this.streamXid, subxid, RAW, 0, raw);
    const m = this.streamParser.parseStreamed(raw) as Insert | Update | Delete;
    const type = m.tag === 'insert' ? INSERT : m.tag === 'update' ? UPDATE : DELETE;
    return this.streamed.append(this.streamXid, subxid, type, m.relation, encodeEntry(rowChange(m)));
  }

  /** /readyz: streaming, and the store taking writes. */
  ready(): { ready: boolean; reasons: string[] } {
    const reasons = [!this.streaming && 'not streaming from the source', this.uploader.failing && 'the store is refusing writes (retrying)', this.finishing && 'stopping'].filter(
      (r): r is string => typeof r === 'string',
    );
    return { ready: reasons.length === 0, reasons };
  }

  /** A row change of the transaction being received (unless it is stored already). */
  private async storeChange(change: Extract<SegmentEntry, { kind: 'insert' | 'update' | 'delete' }>): Promise<void> {
    if (this.skipping) return;
    if (++this.openChanges % 1000 === 1) this.metrics.openTransactionChanges.set(this.openChanges);
    await this.openWriter().change(change);
  }

  private openWriter(): SegmentWriter {
    this.writer ??= new SegmentWriter(this.spoolDir, this.sealedEnd, this.identity, this.options.compression, (oid) => this.catalog.get(oid));
    return this.writer;
  }

  private async rollSegment(): Promise<void> {
    const writer = this.writer;
    if (!writer || writer.inProgress) return;
    // Everything before `received` has been handled: the segment may claim up to there.
    if (!this.inTransaction) writer.advanceTo(this.received);
    if (writer.transactions === 0 && writer.endLsn <= writer.startLsn) return;
    this.writer = undefined;
    const sealed = await writer.seal();
    this.sealedEnd = sealed.header.endLsn;
    // Waits while the upload queue is full: no more messages are read meanwhile.
    await this.uploader.enqueue(sealed);
  }

  private onStored(segment: SealedSegment): void {
    const h = segment.header;
    this.metrics.segments.inc();
    this.metrics.bytes.inc(h.bodyBytes);
    this.metrics.transactions.inc(h.transactions);
    this.metrics.rows.inc(h.changes);
    this.metrics.lastStoredCommitLsn.set(Number(h.endLsn));
    if (h.transactions > 0) this.metrics.lastStoredCommitTime.set(Number(h.lastCommitTime) / 1e6);
    if (h.endLsn >= this.received && !this.writer?.transactions && this.uploader.pending === 0) this.pendingSince = undefined;
    this.durable = segment.header.endLsn;
    this.summary.durableLsn = this.durable;
    this.summary.segments++;
    this.summary.storedBytes += segment.header.bodyBytes;
    this.sendStatus(false);
  }

  private onKeepalive(walEnd: bigint, shouldRespond: boolean): void {
    // Answered at once, not behind a message that waits for the store: the walsender drops
    // a client that stays silent for wal_sender_timeout.
    if (shouldRespond) this.sendStatus(false);
    // Arrives ahead of the data messages still queued before it: remember how many there were.
    this.lastKeepalive = { walEnd, parsedBefore: this.plugin.parsed };
    void this.serial(() => this.checkKeepalive());
    if (shouldRespond) {
      this.options.log.trace({ walEnd: formatLsn(walEnd), received: formatLsn(this.received), sealedEnd: formatLsn(this.sealedEnd), durable: formatLsn(this.durable), inTransaction: this.inTransaction }, 'ping');
      // Pings in quick succession mean the walsender waits for our flush position to reach
      // what it sent: a shutting-down server does, before it can stop.
      const now = Date.now();
      const waiting = now - this.lastPingAt < PING_BURST_MS;
      this.lastPingAt = now;
      if (waiting) void this.serial(() => this.advanceIdle(true));
    }
  }

  /**
   * With nothing of ours pending, the keepalive position is stored as a segment without
   * transactions and then acknowledged: the slot stops holding WAL that other databases of
   * the cluster write, and a shutting-down server is not kept waiting. Otherwise only once the
   * slot would hold --max-idle-wal for us.
   */
  private async advanceIdle(force: boolean): Promise<void> {
    if (this.finishing || this.inTransaction || this.writer?.inProgress || this.received <= this.sealedEnd) return;
    if (!force && this.received - this.sealedEnd < BigInt(this.options.maxIdleWal)) return;
    this.openWriter();
    await this.rollSegment();
  }

  private async checkKeepalive(): Promise<void> {
    const k = this.lastKeepalive;
    if (k && this.handled >= k.parsedBefore && !this.inTransaction) {
      if (k.walEnd > this.received) this.received = k.walEnd;
      if (this.until !== undefined && k.walEnd >= this.until && !this.finishing) {
        await this.finish();
      }
    }
  }

  private async onTick(): Promise<void> {
    this.metrics.lagSeconds.set(this.pendingSince === undefined ? 0 : (Date.now() - this.pendingSince) / 1000);
    if (this.finishing) return;
    await this.advanceIdle(false);
    const writer = this.writer;
    if (writer && !writer.inProgress && writer.transactions > 0 && Date.now() - writer.openedAt >= this.options.segmentSeconds * 1000) {
      await this.rollSegment();
    }
    if (this.until !== undefined && Date.now() - this.lastMessageAt > TICK_MS) {
      // Ask for a keepalive: its position tells whether everything up to --until has been sent.
      this.sendStatus(true);
    }
  }

  /** Outside the serial chain, so that a store outage that stops reading does not silence the connection. */
  private keepAlive(): void {
    if (Date.now() - this.lastStatusAt >= STATUS_INTERVAL_MS) this.sendStatus(false);
  }

  private requestStop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.options.log.info('stopping: storing the open segment at the next commit boundary');
    void this.serial(async () => {
      if (!this.inTransaction) await this.finish();
    });
  }

  /** Seals and stores the open segment, waits for the store, acknowledges, and ends the run. */
  private async finish(): Promise<void> {
    if (this.finishing) return this.finishing;
    this.finishing = (async () => {
      await this.rollSegment();
      await this.uploader.flush();
      this.sendStatus(false);
      this.options.log.info(
        {
          durableLsn: formatLsn(this.durable),
          segments: this.summary.segments,
          transactions: this.summary.transactions,
          pgoutputBytes: this.plugin.parsedBytes,
          storedBytes: this.summary.storedBytes,
          peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
        },
        'archive stopped; everything received is stored and acknowledged',
      );
      this.settle.resolve();
    })();
    return this.finishing;
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    if (this.uploader.failing || (err instanceof UserError && err.exitCode === ExitCode.CONFLICT)) this.metrics.storeErrors.inc();
    this.options.log.error({ err: errorMessage(err) }, 'archiving failed');
    this.settle.reject(err);
  }

  private sendStatus(requestReply: boolean): void {
    if (this.service.sendStatus(this.received, this.durable, requestReply)) this.lastStatusAt = Date.now();
  }
}
