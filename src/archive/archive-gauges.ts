import { sleepUnlessAborted } from '../core/concurrency.js';
import type { Logger } from '../core/log.js';
import { newestBaseFacts } from '../log/newest-base.js';
import type { ArchiveMetrics } from '../observe/metrics.js';
import { indexArchive, segmentTotals } from '../log/archive-index.js';
import { BASES_DIR } from '../log/bases.js';
import { INDEX_DIR } from '../log/segment-index.js';
import type { Store } from '../store/store.js';

/** The newest base is looked at every minute: a few small listings. */
const NEWEST_BASE_MS = 60_000;
const FIRST_BASE_MS = 2_000;
/** The whole archive is counted hourly: on S3 that is one listing request per 1,000 objects. */
const COUNT_MS = 3_600_000;

/**
 * Keeps the metrics about the archive as stored (docs/ARCHITECTURE.md, "Compacted bases and
 * retention") up to date: the newest base's age and what follows it, and the archive's size —
 * what an operator watches to know that replays stay cheap and the bucket does not run away.
 * The archiver adds each segment it stores as it goes; these looks correct the figures for what
 * others did (a base compacted, an expire).
 * Beside the archiver's loop, never in it: a failure is logged and the next look tries again.
 */
export async function keepArchiveGauges(options: {
  store: Store;
  metrics: ArchiveMetrics;
  log: Logger;
  signal: AbortSignal;
}): Promise<void> {
  const { store, metrics, log, signal } = options;
  const snapshotTimes = new Map<bigint, string>();
  let counted = -Infinity;
  while (!signal.aborted) {
    try {
      const newest = await newestBaseFacts(store, snapshotTimes);
      if (newest) {
        metrics.newestBaseTime = Date.parse(newest.snapshotTime);
        metrics.segmentsSinceNewestBase.set(newest.segmentsSince);
        metrics.bytesSinceNewestBase.set(newest.bytesSince);
      }
      if (Date.now() - counted >= COUNT_MS) {
        // The segments through the index objects' summaries: not a listing of every one.
        const totals = await segmentTotals(await indexArchive(store, { requireBase: false, allowEmpty: true }));
        const others = [...(await store.list(BASES_DIR)), ...(await store.list(INDEX_DIR))];
        metrics.archiveBytes.set(totals.bytes + others.reduce((n, o) => n + o.size, 0));
        metrics.archiveSegments.set(totals.segments);
        counted = Date.now();
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not look at the archive for its metrics: trying again');
    }
    // Until the archiver's first base is stored, look again soon.
    await sleepUnlessAborted(metrics.newestBaseTime === undefined ? FIRST_BASE_MS : NEWEST_BASE_MS, signal);
  }
}
