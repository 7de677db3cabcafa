import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '../core/backoff.js';
import { UserError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { formatLsn } from '../core/lsn.js';
import type { SealedSegment } from '../segment/writer.js';
import { putSegment } from '../log/segments.js';
import type { Store } from '../store/store.js';

export interface UploaderOptions {
  /** Sealed segments waiting to be stored before the archiver stops reading (back-pressure). */
  queueLimit: number;
  onStored: (segment: SealedSegment) => void;
  /** A put failed and will be retried. */
  onRetry?: () => void;
  /** Before each put: throws when this archiver may no longer write (its lease was taken over). */
  beforeWrite?: () => Promise<void>;
}

const RETRY_BASE_MS = 200;
const RETRY_CAP_MS = 30_000;

/**
 * Stores sealed segments in order, one at a time, while the next one fills. A failed put is
 * retried with capped, jittered exponential backoff until it succeeds; only a conflict (another
 * body under the same name) stops the archiver. Nothing is acknowledged before its put succeeded.
 */
export class SegmentUploader {
  private readonly queue: SealedSegment[] = [];
  private running: Promise<void> | undefined;
  private fatal: Error | undefined;
  private readonly waiters: (() => void)[] = [];
  /** Whether the last put failed (and is being retried): the store is not taking writes. */
  failing = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly options: UploaderOptions,
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  /** Queues a sealed segment; resolves once there is room for another (the caller's back-pressure). */
  async enqueue(segment: SealedSegment): Promise<void> {
    this.throwIfFailed();
    this.queue.push(segment);
    this.running ??= this.drainQueue();
    while (this.queue.length > this.options.queueLimit) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      this.throwIfFailed();
    }
  }

  /** Resolves when every queued segment is stored. */
  async flush(): Promise<void> {
    while (this.running) await this.running;
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.fatal) throw this.fatal;
  }

  private async drainQueue(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const segment = this.queue[0]!;
        await this.storeWithRetry(segment);
        this.queue.shift();
        await rm(segment.path, { force: true });
        this.options.onStored(segment);
        this.waiters.splice(0).forEach((w) => w());
      }
    } catch (err) {
      this.fatal = err as Error;
      this.waiters.splice(0).forEach((w) => w());
    } finally {
      this.running = undefined;
    }
  }

  private async storeWithRetry(segment: SealedSegment): Promise<void> {
    const h = segment.header;
    for (let attempt = 0; ; attempt++) {
      const started = Date.now();
      try {
        await this.options.beforeWrite?.();
        const { versionId, existed } = await putSegment(this.store, segment);
        this.failing = false;
        this.log.info(
          {
            segment: segment.key,
            startLsn: formatLsn(h.startLsn),
            endLsn: formatLsn(h.endLsn),
            transactions: h.transactions,
            changes: h.changes,
            bytes: h.bodyBytes,
            rawBytes: h.rawBodyBytes,
            ms: Date.now() - started,
            ...(versionId ? { versionId } : {}),
            ...(existed ? { alreadyStored: true } : {}),
          },
          existed ? 'segment was already stored' : 'stored segment',
        );
        return;
      } catch (err) {
        if (err instanceof UserError) throw err;
        this.failing = true;
        this.options.onRetry?.();
        const delay = backoffDelay(attempt, RETRY_BASE_MS, RETRY_CAP_MS);
        // Logged on the first failure and then at growing intervals, not once per retry.
        if (attempt === 0 || Number.isInteger(Math.log2(attempt))) {
          this.log.warn(
            { segment: segment.key, attempt: attempt + 1, retryInMs: Math.round(delay), err: errorMessage(err) },
            'storing segment failed; retrying',
          );
        }
        await sleep(delay);
      }
    }
  }
}
