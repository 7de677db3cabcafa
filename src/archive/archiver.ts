import { rm } from 'node:fs/promises';
import { UserError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { formatLsn, parseLsn } from '../core/lsn.js';
import { quoteIdent } from '../core/sql.js';
import type { PgoutputMessage } from '../pgoutput/messages.js';
import { PgoutputPlugin } from '../pgoutput/plugin.js';
import { NotASegmentError, type Compression } from '../segment/format.js';
import { SegmentWriter, type SealedSegment, type StreamIdentity } from '../segment/writer.js';
import { listSegments, openSegment } from '../store/segments.js';
import type { Store } from '../store/store.js';
import { clientConfig, connect, connectionError } from '../source/connection.js';
import { checkSource, ensurePublication } from '../source/preflight.js';
import { findSlot } from '../source/slot.js';
import { listBases } from '../base/format.js';
import { takeBase } from '../base/take.js';
import { RelationCatalog } from './catalog.js';
import { createSpoolDir } from '../core/spool-dir.js';
import { ReplicationService } from './replication.js';
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
const TICK_MS = 250;

/**
 * The record path (DESIGN §3): walsender → decoder → transaction assembly → segment writer →
 * store, and the acknowledgement of what the store has confirmed back to Postgres.
 */
export class Archiver {
  private readonly catalog = new RelationCatalog();
  private readonly plugin: PgoutputPlugin;
  private readonly service: ReplicationService;
  private readonly uploader: SegmentUploader;
  private writer: SegmentWriter | undefined;
  private spoolDir = '';
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
  private lastMessageAt = Date.now();
  private summary: ArchiveSummary = { durableLsn: 0n, segments: 0, transactions: 0, receivedBytes: 0, storedBytes: 0 };
  private settle!: { resolve: () => void; reject: (err: Error) => void };
  private failed = false;

  constructor(private readonly options: ArchiveOptions) {
    this.plugin = new PgoutputPlugin({ publication: options.publication, messages: true });
    this.service = new ReplicationService(clientConfig(options.source));
    this.uploader = new SegmentUploader(options.store, options.log, {
      queueLimit: options.queueLimit,
      onStored: (segment) => this.onStored(segment),
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
      this.identity = { ...facts, slot: this.options.slot };
      const slot = await findSlot(client, this.options.slot, facts.database, log);
      const baseOptions = { source: this.options.source, store, publication: this.options.publication, facts, log };
      if (!slot) {
        if (storedEnd) {
          throw new UserError(
            `replication slot ${quoteIdent(this.options.slot)} does not exist, but the store holds an archive up to ${formatLsn(storedEnd.endLsn)}: ` +
              'changes since then can no longer be archived into it',
            'archive into a new store (pgtape then creates a new slot and a new base), or pass the --slot this archive was made with',
          );
        }
        // A new stream: the slot's exported snapshot gives the base, and the log starts where it ends.
        this.resumeFrom = await takeBase({ ...baseOptions, slot: this.options.slot });
      } else if ((await listBases(store)).length === 0) {
        log.warn('the store holds no base, without which nothing can be replayed: taking one now');
        await takeBase(baseOptions);
      }
      if (slot && storedEnd && slot.confirmedFlushLsn > storedEnd.endLsn) {
        throw new UserError(
          `replication slot ${quoteIdent(slot.name)} has confirmed up to ${formatLsn(slot.confirmedFlushLsn)}, but the archive ends at ${formatLsn(storedEnd.endLsn)}: ` +
            'changes between the two are not in the archive and Postgres will not send them again',
          'the slot was advanced by something else, or this store belongs to another stream; archive into a new store with a new slot',
        );
      }
      if (slot) this.resumeFrom = storedEnd?.endLsn ?? slot.confirmedFlushLsn;
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
    const onAbort = () => this.requestStop();
    this.options.signal?.addEventListener('abort', onAbort);
    if (this.options.signal?.aborted) onAbort();
    this.service.on('data', (_lsn: string, msg: PgoutputMessage) => this.serial(() => this.onMessage(msg)));
    this.service.on('heartbeat', (lsn: string, _time: number, shouldRespond: boolean) => this.onKeepalive(parseLsn(lsn), shouldRespond));
    this.service.on('error', (err: Error) => this.fail(connectionError(this.options.source, err)));
    this.service.on('start', () => this.sendStatus(false));
    this.service
      .subscribe(this.plugin, this.options.slot, formatLsn(this.resumeFrom))
      .then(() => {
        if (!this.finishing) this.fail(new Error('the source ended replication unexpectedly'));
      })
      .catch((err) => this.fail(err.code ? connectionError(this.options.source, err) : err));
    try {
      await done;
    } finally {
      clearInterval(tick);
      this.options.signal?.removeEventListener('abort', onAbort);
      await this.service.stop().catch(() => {});
      await this.writer?.discard();
      await rm(this.spoolDir, { recursive: true, force: true });
    }
    this.summary.receivedBytes = this.plugin.parsedBytes;
    return this.summary;
  }

  /** The end of the archive as stored: read from the last segment's header, which also proves it is ours. */
  private async lastStoredEnd(): Promise<{ endLsn: bigint } | undefined> {
    const segments = await listSegments(this.options.store);
    const last = segments.at(-1);
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
    if (this.finishing) return;
    switch (msg.tag) {
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
        if (!this.skipping) await this.openWriter().change({ kind: 'insert', relation: msg.relation, new: msg.new });
        return;
      case 'update':
        if (!this.skipping) await this.openWriter().change({ kind: 'update', relation: msg.relation, key: msg.key, old: msg.old, new: msg.new });
        return;
      case 'delete':
        if (!this.skipping) await this.openWriter().change({ kind: 'delete', relation: msg.relation, key: msg.key, old: msg.old });
        return;
      case 'truncate':
        if (!this.skipping) await this.openWriter().change({ kind: 'truncate', relations: msg.relations, flags: msg.flags });
        return;
    }
  }

  private openWriter(): SegmentWriter {
    this.writer ??= new SegmentWriter(this.spoolDir, this.sealedEnd, this.identity, this.options.compression, (oid) => this.catalog.get(oid));
    return this.writer;
  }

  private async rollSegment(): Promise<void> {
    const writer = this.writer;
    if (!writer || writer.transactions === 0 || writer.inProgress) return;
    this.writer = undefined;
    const sealed = await writer.seal();
    this.sealedEnd = sealed.header.endLsn;
    // Waits while the upload queue is full: no more messages are read meanwhile.
    await this.uploader.enqueue(sealed);
  }

  private onStored(segment: SealedSegment): void {
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
    if (this.finishing) return;
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
    this.options.log.error({ err: errorMessage(err) }, 'archiving failed');
    this.settle.reject(err);
  }

  private sendStatus(requestReply: boolean): void {
    if (this.service.sendStatus(this.received, this.durable, requestReply)) this.lastStatusAt = Date.now();
  }
}
