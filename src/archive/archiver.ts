// Over 400 lines: one class, because its state (the connection's generation, the outage, stop and
// finish, keepalive bookkeeping, the durable position) is shared by every handler. The stages it
// drives live apart: resume.ts, assembler.ts, uploader.ts.
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../core/backoff.js';
import type { Compression } from '../core/compression.js';
import { ExitCode, UserError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { formatLsn } from '../core/lsn.js';
import { createSpoolDir } from '../core/spool-dir.js';
import { PgoutputPlugin } from '../pgoutput/plugin.js';
import type { SealedSegment, StreamIdentity } from '../segment/writer.js';
import { clientConfig, connectionError, fatalConnectionError } from '../source/connection.js';
import { MARK_PREFIX, sequenceRecorder } from '../source/logical-messages.js';
import { ArchiveMetrics } from '../observe/metrics.js';
import type { Readiness } from '../observe/server.js';
import { SourceMonitor } from '../observe/source-monitor.js';
import { TransactionAssembler, type Handled } from './assembler.js';
import { Heartbeat } from './heartbeat.js';
import { MessageInbox } from './inbox.js';
import { ReplicationService, type StreamListener } from './replication.js';
import type { WriterLease } from '../log/lease.js';
import { checkSlotStillOurs, prepareStart, type ResumeOptions } from './resume.js';
import { SegmentUploader } from './uploader.js';

/** How often the sequences' values are recorded (with --capture-ddl installed). */
const SEQUENCES_SECONDS = 60;

export interface ArchiveOptions extends ResumeOptions {
  segmentBytes: number;
  segmentSeconds: number;
  compression: Compression;
  queueLimit: number;
  /** With nothing of ours pending, acknowledge the keepalive position once the slot holds this much WAL for us. */
  maxIdleWal: number;
  /** Warn (and show in the metrics) when the slot retains more WAL than this. */
  maxRetainedWal: number;
  /** A statement run every `seconds` on the source, for databases whose tables are idle. */
  heartbeat?: { sql: string; seconds: number };
  log: Logger;
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
/** Messages handled in one turn of the serial chain before ticks and keepalive checks get theirs. */
const DRAIN_TURN = 20_000;
const TICK_MS = 250;

/**
 * The record path's lifecycle (docs/ARCHITECTURE.md, "The record path"): where to start
 * (resume.ts), one replication connection at a time with reconnection, the assembly of
 * transactions into segments (assembler.ts), their storing (uploader.ts), timers, and the
 * acknowledgement back to Postgres of exactly what the store has confirmed.
 */
export class Archiver implements Readiness {
  readonly metrics = new ArchiveMetrics();
  private streaming = false;
  /** Since when received changes wait to be stored (the lag in seconds). */
  private pendingSince: number | undefined;
  private readonly plugin: PgoutputPlugin;
  private readonly service: ReplicationService;
  private readonly inbox: MessageInbox;
  /** A drain of the inbox is queued or running in the serial chain. */
  private draining = false;
  private readonly uploader: SegmentUploader;
  private assembler!: TransactionAssembler;
  private spoolDir = '';
  private identity!: StreamIdentity;
  private lease: WriterLease | undefined;
  /** Where the current (or next) replication connection starts. */
  private resumeFrom = 0n;
  /** End LSN of the last commit the store has confirmed: the only position acknowledged. */
  private durable = 0n;
  private handled = 0;
  private lastKeepalive: { walEnd: bigint; parsedBefore: number } | undefined;
  private until: bigint | undefined;
  private recordSequences = false;
  private stopping = false;
  /** Resolved by a stop request: a reconnection waiting for its next attempt wakes at once. */
  private readonly stopRequested: { promise: Promise<void>; resolve: () => void } = (() => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  })();
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
    this.inbox = new MessageInbox(this.service);
    this.uploader = new SegmentUploader(options.store, options.log, {
      queueLimit: options.queueLimit,
      onStored: (segment) => this.onStored(segment),
      onRetry: () => this.metrics.storeRetries.inc(),
      beforeWrite: () => this.lease!.check(),
    });
  }

  async run(): Promise<ArchiveSummary> {
    const { log } = this.options;
    const start = await prepareStart(this.options);
    this.lease = start.lease;
    this.identity = start.identity;
    this.resumeFrom = this.durable = start.resumeFrom;
    this.summary.durableLsn = this.durable;
    this.spoolDir = await createSpoolDir();
    this.assembler = new TransactionAssembler({
      spoolDir: this.spoolDir,
      identity: start.identity,
      compression: this.options.compression,
      sealing: start.encryptFor && { key: start.encryptFor, markPrefix: MARK_PREFIX },
      resumeFrom: start.resumeFrom,
      until: start.until,
      segmentBytes: this.options.segmentBytes,
      metrics: this.metrics,
      seal: (segment) => this.uploader.enqueue(segment),
      onCommit: () => {
        this.pendingSince ??= Date.now();
        this.summary.transactions++;
      },
    });
    this.until = start.until;
    this.recordSequences = start.recordSequences;
    log.info(
      {
        store: this.options.store.description,
        slot: this.options.slot,
        publication: this.options.publication,
        resumeFrom: formatLsn(this.resumeFrom),
        ...(this.until !== undefined ? { until: formatLsn(this.until) } : {}),
      },
      'archiving',
    );
    const done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    const stopHelpers = this.startHelpers();
    this.listen();
    this.startStreaming();
    try {
      await done;
    } finally {
      await stopHelpers();
      await this.service.stop().catch(() => {});
      await this.assembler.discard();
      await rm(this.spoolDir, { recursive: true, force: true });
      await this.lease?.release();
    }
    this.summary.receivedBytes = this.plugin.parsedBytes;
    return this.summary;
  }

  /** The timers, the heartbeat, the source monitor and the stop signal; returns what stops them. */
  private startHelpers(): () => Promise<void> {
    const { log } = this.options;
    let tickQueued = false;
    const tick = setInterval(() => {
      this.keepAlive();
      // One tick at a time in the chain: a long wait for the store must not pile them up.
      if (tickQueued) return;
      tickQueued = true;
      void this.serial(() => ((tickQueued = false), this.onTick()));
    }, TICK_MS);
    const heartbeat = this.options.heartbeat
      ? new Heartbeat(this.options.source, this.options.heartbeat.sql, this.options.heartbeat.seconds, log)
      : undefined;
    heartbeat?.start();
    // Only when a value changed: an idle source is not written to every minute.
    const sequences = this.recordSequences ? new Heartbeat(this.options.source, sequenceRecorder(), SEQUENCES_SECONDS, log) : undefined;
    sequences?.start();
    const monitor = new SourceMonitor(
      this.options.source,
      this.options.slot,
      this.options.maxRetainedWal,
      this.metrics,
      () => this.durable,
      log,
    );
    monitor.start();
    const onAbort = () => this.requestStop();
    this.options.signal?.addEventListener('abort', onAbort);
    if (this.options.signal?.aborted) onAbort();
    return async () => {
      clearInterval(tick);
      await heartbeat?.stop();
      await sequences?.stop();
      await monitor.stop();
      this.options.signal?.removeEventListener('abort', onAbort);
    };
  }

  private listen(): void {
    this.service.on('error', (err: Error) => this.connectionLost(this.generation, err));
    this.service.on('start', () => this.onStreaming());
  }

  /**
   * What the connection hands over, synchronously. A message is handled at once when nothing
   * else runs in the serial chain and nothing waits before it; otherwise it waits in the inbox
   * (docs/ARCHITECTURE.md, "The record path"). Once a connection is lost, what it still delivers
   * is dropped: streaming resumes at the end of the last sealed segment and Postgres sends it
   * again.
   */
  private readonly listener: StreamListener = {
    message: (msg) => {
      if (this.reconnecting || this.failed) return;
      if (this.running > 0 || this.inbox.length > 0) {
        this.inbox.push(msg);
        if (!this.draining) this.drainSoon();
        return;
      }
      this.handled++;
      this.lastMessageAt = Date.now();
      let handled: Handled | Promise<Handled>;
      try {
        handled = this.assembler.handle(msg);
      } catch (err) {
        return this.fail(err as Error);
      }
      if (handled instanceof Promise) {
        this.inbox.hold();
        this.drainSoon(handled);
      } else if (this.finishes(handled)) void this.serial(() => this.finish());
    },
    keepalive: (walEnd, shouldRespond) => {
      if (!this.reconnecting) this.onKeepalive(walEnd, shouldRespond);
    },
  };

  /** Starts one replication connection; its end or failure is a connection loss unless finishing. */
  private startStreaming(): void {
    const generation = ++this.generation;
    // A lost connection's messages were parsed but never handled: the count starts anew, or
    // keepalives would wait forever for them (and the archive never reach an idle position).
    this.plugin.parsed = this.handled = 0;
    this.service
      .stream(this.plugin, this.options.slot, formatLsn(this.resumeFrom), this.listener)
      .then(() => this.connectionLost(generation, new Error('the source ended replication')))
      .catch((err: Error) => this.connectionLost(generation, err));
  }

  private onStreaming(): void {
    this.streaming = true;
    this.metrics.streaming.set(1);
    this.sendStatus(false);
    if (this.outage) {
      this.options.log.info(
        { seconds: (Date.now() - this.outage.since) / 1000, attempts: this.outage.attempts, resumeFrom: formatLsn(this.resumeFrom) },
        'replication reconnected',
      );
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
    this.inbox.clear();
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
    this.resumeFrom = await this.assembler.restart();
    this.lastKeepalive = undefined;
    const outage = this.outage!;
    for (;;) {
      if (this.finishing || this.failed) return;
      // Asked to stop while the source is away: what is whole is sealed already; store it and end.
      if (this.stopping) return this.finish();
      outage.attempts++;
      await Promise.race([sleep(backoffDelay(outage.attempts - 1, RECONNECT_FIRST_MS, RECONNECT_MAX_MS)), this.stopRequested.promise]);
      if (this.stopping) return this.finish();
      try {
        await checkSlotStillOurs(this.options, this.identity.database, this.assembler.sealedEnd);
        break;
      } catch (err) {
        if (err instanceof UserError || fatalConnectionError(err as Error))
          throw err instanceof UserError ? err : connectionError(this.options.source, err);
        this.options.log.debug({ err: errorMessage(err), attempt: outage.attempts }, 'source not reachable yet');
      }
    }
    this.reconnecting = false;
    this.startStreaming();
  }

  private chain: Promise<void> = Promise.resolve();
  /** Steps queued or running in the serial chain. */
  private running = 0;

  /** Messages, ticks and stops run one at a time, in arrival order. */
  private serial(fn: () => Promise<void> | void): Promise<void> {
    this.running++;
    const next = this.chain.then(async () => {
      try {
        if (!this.failed) await fn();
      } catch (err) {
        this.fail(err as Error);
      } finally {
        this.running--;
      }
    });
    this.chain = next;
    return next;
  }

  private drainSoon(first?: Promise<Handled>): void {
    this.draining = true;
    void this.serial(() => this.drain(first));
  }

  /**
   * Handles what waits in the inbox, in order, without a promise per message where the
   * assembler did not have to wait; `first` is a message's handling still under way. A long turn
   * yields to the rest of the chain (ticks, keepalive checks) and queues itself behind them.
   */
  private async drain(first: Promise<Handled> | undefined): Promise<void> {
    let n = 0;
    try {
      this.lastMessageAt = Date.now();
      if (first && this.finishes(await first)) await this.finish();
      for (; n < DRAIN_TURN; n++) {
        const msg = this.inbox.shift();
        if (msg === undefined) break;
        this.handled++;
        let handled = this.assembler.handle(msg);
        if (handled instanceof Promise) handled = await handled;
        if (this.finishes(handled)) await this.finish();
      }
    } finally {
      this.draining = false;
      if (this.inbox.length > 0) this.drainSoon();
      else this.inbox.release();
    }
    // A keepalive's check that ran while this turn was cut short found messages still waiting: done now.
    if (n > 0 && this.inbox.length === 0) await this.checkKeepalive();
  }

  /** What a message's handling came to ends the run: past --until, or a commit boundary after a stop request. */
  private finishes(handled: Handled): boolean {
    return handled === 'until' || (handled === 'committed' && this.stopping);
  }

  /** /readyz: streaming, and the store taking writes. */
  ready(): { ready: boolean; reasons: string[] } {
    const reasons = [
      !this.streaming && 'not streaming from the source',
      this.uploader.failing && 'the store is refusing writes (retrying)',
      this.finishing && 'stopping',
    ].filter((r): r is string => typeof r === 'string');
    return { ready: reasons.length === 0, reasons };
  }

  private onStored(segment: SealedSegment): void {
    this.lease?.stored(segment.key);
    const h = segment.header;
    this.metrics.segments.inc();
    this.metrics.bytes.inc(h.bodyBytes);
    // Between the looks at the store (src/archive/archive-gauges.ts), what this archiver adds.
    this.metrics.segmentsSinceNewestBase.inc();
    this.metrics.bytesSinceNewestBase.inc(h.bodyBytes);
    this.metrics.archiveSegments.inc();
    this.metrics.archiveBytes.inc(h.bodyBytes);
    this.metrics.transactions.inc(h.transactions);
    this.metrics.rows.inc(h.changes);
    this.metrics.lastStoredCommitLsn.set(Number(h.endLsn));
    if (h.transactions > 0) this.metrics.lastStoredCommitTime.set(Number(h.lastCommitTime) / 1e6);
    if (h.endLsn >= this.assembler.received && !this.assembler.holdsTransactions && this.uploader.pending === 0)
      this.pendingSince = undefined;
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
      const a = this.assembler;
      this.options.log.trace(
        {
          walEnd: formatLsn(walEnd),
          received: formatLsn(a.received),
          sealedEnd: formatLsn(a.sealedEnd),
          durable: formatLsn(this.durable),
          inTransaction: a.inTransaction,
        },
        'ping',
      );
      // Pings in quick succession mean the walsender waits for our flush position to reach
      // what it sent: a shutting-down server does, before it can stop.
      const now = Date.now();
      const waiting = now - this.lastPingAt < PING_BURST_MS;
      this.lastPingAt = now;
      if (waiting) void this.serial(() => this.assembler.advanceIdle(true, this.options.maxIdleWal));
    }
  }

  /**
   * Once every message sent before a keepalive is handled, its position is one the stream has
   * passed. With nothing of ours pending it is stored as a segment without transactions and then
   * acknowledged (on a ping burst, or once the slot would hold --max-idle-wal for us): the slot
   * stops holding WAL that other databases of the cluster write, and a shutting-down server is
   * not kept waiting.
   */
  private async checkKeepalive(): Promise<void> {
    const k = this.lastKeepalive;
    if (k && this.handled >= k.parsedBefore && this.assembler.passedTo(k.walEnd) === 'until') await this.finish();
  }

  private async onTick(): Promise<void> {
    this.metrics.lagSeconds.set(this.pendingSince === undefined ? 0 : (Date.now() - this.pendingSince) / 1000);
    if (this.finishing) return;
    await this.assembler.advanceIdle(false, this.options.maxIdleWal);
    await this.assembler.rollIfOlder(this.options.segmentSeconds * 1000);
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
    this.stopRequested.resolve();
    this.options.log.info('stopping: storing the open segment at the next commit boundary');
    void this.serial(async () => {
      if (!this.assembler.inTransaction) await this.finish();
    });
  }

  /** Seals and stores the open segment, waits for the store, acknowledges, and ends the run. */
  private async finish(): Promise<void> {
    if (this.finishing) return this.finishing;
    this.assembler.close();
    this.finishing = (async () => {
      // Everything received is stored, and the position passed with it: the slot holds nothing for us.
      await this.assembler.sealPosition();
      await this.assembler.roll();
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
    if (this.service.sendStatus(this.assembler?.received ?? this.resumeFrom, this.durable, requestReply)) this.lastStatusAt = Date.now();
  }
}
