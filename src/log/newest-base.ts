import { listBases, baseSnapshotTime, type BaseRef } from './bases.js';
import { listSegments } from './segments.js';
import type { Store } from '../store/store.js';

/** The base a replay of `latest` starts from, and the change it then applies. */
export interface NewestBaseFacts {
  base: BaseRef;
  /** When its snapshot was taken (ISO time). */
  snapshotTime: string;
  segmentsSince: number;
  bytesSince: number;
}

/**
 * The newest base and what follows it, listing only the segments after it (an S3 listing starts
 * there): cheap enough to ask every minute of a months-long archive. `snapshotTimes` keeps each
 * base's time between calls (one read of its schema per base).
 */
export async function newestBaseFacts(store: Store, snapshotTimes = new Map<bigint, string>()): Promise<NewestBaseFacts | undefined> {
  const base = (await listBases(store)).at(-1);
  if (!base) return undefined;
  let snapshotTime = snapshotTimes.get(base.lsn);
  if (snapshotTime === undefined) snapshotTimes.set(base.lsn, (snapshotTime = await baseSnapshotTime(store, base)));
  const since = (await listSegments(store, base.lsn)).filter((s) => s.endLsn > base.lsn);
  return { base, snapshotTime, segmentsSince: since.length, bytesSince: since.reduce((n, s) => n + s.size, 0) };
}
