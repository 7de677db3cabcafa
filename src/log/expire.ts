import { UserError } from '../core/errors.js';
import { formatLsn } from '../core/lsn.js';
import { batches, mapLimit } from '../core/concurrency.js';
import { parseTimeMicros } from './target.js';
import { BASES_DIR, listBases, baseSnapshotTime, type BaseRef } from './bases.js';
import { listDiscontinuities } from './discontinuities.js';
import { streamSegments, type SegmentRef } from './segments.js';
import { listIndexObjects } from './segment-index.js';
import type { Store, StoredObject } from '../store/store.js';

// Retention (docs/ARCHITECTURE.md, "Compacted bases and retention"): the oldest base kept is the archive's new start.
// Everything only a replay to a point before it needs goes: older bases (and unfinished bases
// older than it), the segments whose transactions all committed before it, and the records of
// discontinuities and index objects that lie wholly before it. What a kept base needs is never touched.

export interface ExpiryRule {
  /** Keep this many of the newest bases (and every point since the oldest of them). */
  keepBases?: number;
  /** Keep every point since this time (microseconds since the epoch). */
  keepSinceMicros?: bigint;
}

export interface ExpiryPlan {
  /** The oldest base kept: replays reach every point from it on. */
  keep: BaseRef;
  keepSnapshotTime: string;
  bases: BaseRef[];
  /** Every object to remove but the segments, in the order to remove them (see expire). */
  objects: StoredObject[];
  /** The segments to remove: those that end at or before the kept base (streamed, never held). */
  segments: { count: number; bytes: number };
  bytes: number;
}

/** Which base is the oldest to keep under `rule`, and what goes with the ones before it. */
export async function planExpiry(store: Store, rule: ExpiryRule): Promise<ExpiryPlan> {
  const bases = await listBases(store);
  if (bases.length === 0) {
    throw new UserError(`${store.description} holds no base: there is nothing to expire`, 'check --store');
  }
  const times = new Map<BaseRef, string>();
  const snapshotTime = async (b: BaseRef) => {
    let t = times.get(b);
    if (t === undefined) times.set(b, (t = await baseSnapshotTime(store, b)));
    return t;
  };
  let keepIndex = bases.length - 1;
  if (rule.keepBases !== undefined) keepIndex = Math.min(keepIndex, Math.max(0, bases.length - rule.keepBases));
  if (rule.keepSinceMicros !== undefined) {
    // The newest base at or before the time: every point since then replays from it.
    let since = 0;
    for (let i = bases.length - 1; i >= 0; i--) {
      if (parseTimeMicros(await snapshotTime(bases[i]!))! <= rule.keepSinceMicros) {
        since = i;
        break;
      }
    }
    keepIndex = Math.min(keepIndex, since);
  }
  const keep = bases[keepIndex]!;
  const older = bases.slice(0, keepIndex);
  // Manifests first: a base stops existing before its files go, so an interrupted expire never
  // leaves a base that looks whole. Then segments, oldest first (the archive's start moves up),
  // then the bases' other files and unfinished bases older than the kept one.
  const manifests: StoredObject[] = [];
  const files: StoredObject[] = [];
  for (const o of await store.list(BASES_DIR)) {
    const m = /^base\/([0-9A-F]{16})\//.exec(o.key);
    if (!m || BigInt(`0x${m[1]}`) >= keep.lsn) continue;
    (o.key.endsWith('/manifest.json') ? manifests : files).push(o);
  }
  const segments = { count: 0, bytes: 0 };
  for await (const s of segmentsBefore(store, keep.lsn)) {
    segments.count++;
    segments.bytes += s.size;
  }
  const discontinuities = (await listDiscontinuities(store)).filter((d) => d.to <= keep.lsn).map((d) => d.record);
  // Index objects whose every segment goes (one that also covers kept segments stays: readers skip the entries of segments gone).
  const indexObjects = (await listIndexObjects(store)).filter((o) => o.endLsn <= keep.lsn);
  const objects = [...manifests, ...files, ...discontinuities, ...indexObjects];
  return {
    keep,
    keepSnapshotTime: await snapshotTime(keep),
    bases: older,
    objects,
    segments,
    bytes: objects.reduce((n, o) => n + o.size, segments.bytes),
  };
}

/** The segments whose transactions all committed before `lsn`, oldest first, a listing page at a time. */
async function* segmentsBefore(store: Store, lsn: bigint): AsyncGenerator<SegmentRef> {
  for await (const s of streamSegments(store)) {
    // Keys sort by start: none after this one ends before the kept base.
    if (s.startLsn >= lsn) return;
    if (s.endLsn <= lsn) yield s;
  }
}

/** Removes what the plan names, in its order; returns how many objects went. */
export async function expire(store: Store, plan: ExpiryPlan): Promise<number> {
  let done = 0;
  const remove = (objects: { key: string }[]) =>
    mapLimit(objects, 8, async (o) => {
      await store.delete(o.key);
      done++;
    });
  // In order, a few at a time: the manifests all go before any segment, the segments oldest first.
  const manifests = plan.objects.filter((o) => o.key.startsWith(BASES_DIR) && o.key.endsWith('/manifest.json'));
  await remove(manifests);
  for await (const page of batches(segmentsBefore(store, plan.keep.lsn), 1000)) await remove(page);
  await remove(plan.objects.slice(manifests.length));
  return done;
}

export function describeExpiry(plan: ExpiryPlan): string {
  return `keeps the base at ${formatLsn(plan.keep.lsn)} (${plan.keepSnapshotTime}) and every point after it`;
}
