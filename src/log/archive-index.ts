import { listBases, readBase, type BaseManifest, type BaseRef, type BaseSchema } from './bases.js';
import { UserError } from '../core/errors.js';
import { formatLsn } from '../core/lsn.js';
import { formatMicros } from '../core/units.js';
import { mapLimit } from '../core/concurrency.js';
import { MARK_PREFIX } from '../source/logical-messages.js';
import type { SegmentHeader } from '../segment/format.js';
import { listDiscontinuities, type Discontinuity } from './discontinuities.js';
import { lastCommittedHeader, listSegments, openSegment, type SegmentRef } from './segments.js';
import type { Store } from '../store/store.js';
import { describeTarget, parseTimeMicros, type Target } from './target.js';

export interface IndexedSegment extends SegmentRef {
  /** Read when needed: a replay to an LSN or to the end needs only the names (and the last header). */
  header?: SegmentHeader;
}

/** What the store holds: bases with a manifest, and segments (with their headers once read). */
export interface ArchiveIndex {
  store: Store;
  bases: BaseRef[];
  segments: IndexedSegment[];
  /** Where the archive was rebased: nothing recorded between `from` and `to`. */
  discontinuities: Discontinuity[];
}

/** Segment headers read at once: a remote store's latency overlaps. */
const HEADER_CONCURRENCY = 16;

export interface IndexOptions {
  /** Replay needs a base; log, diff and verify can read a change log without one. */
  requireBase?: boolean;
  /** verify resolves its range around damaged segments, and reports them itself. */
  skipUnreadable?: boolean;
  /**
   * 'all' reads every header; 'tail' only the last ones, back to the last segment with
   * transactions (what messages about the archive's end need). A months-long archive has tens of
   * thousands of segments: a replay to the end should not read them all twice.
   */
  headers?: 'all' | 'tail';
}

/** Lists bases and segments (the listing is the index, DESIGN §4) and reads segment headers. */
export async function indexArchive(store: Store, options: IndexOptions = {}): Promise<ArchiveIndex> {
  const { requireBase = true, skipUnreadable = false, headers = 'all' } = options;
  const bases = await listBases(store);
  const segments: IndexedSegment[] = await listSegments(store);
  const index: ArchiveIndex = { store, bases, segments, discontinuities: [] };
  if (headers === 'all') await loadHeaders(index, skipUnreadable);
  else await lastCommittedHeader(store, segments);
  if (segments.length === 0 && (requireBase || bases.length === 0)) {
    throw new UserError(`${store.description} holds no archive (no base, no segments)`, 'check --store; pgtape archive writes there');
  }
  if (requireBase && bases.length === 0) {
    throw new UserError(`${store.description} holds segments but no base to replay them onto`, 'take one with pgtape base; replays start from it');
  }
  index.discontinuities = await listDiscontinuities(store);
  return index;
}

/** Reads the headers not read yet (unreadable ones are dropped from the index when asked). */
export async function loadHeaders(index: ArchiveIndex, skipUnreadable = false): Promise<void> {
  const unreadable = new Set<IndexedSegment>();
  await mapLimit(index.segments, HEADER_CONCURRENCY, async (s) => {
    if (s.header) return;
    try {
      s.header = await openSegment(index.store, s.key).header();
    } catch (err) {
      if (!skipUnreadable) throw err;
      unreadable.add(s);
    }
  });
  if (unreadable.size) index.segments = index.segments.filter((s) => !unreadable.has(s));
}

/** A segment's header, which the caller has made sure was read (loadHeaders). */
export function headerOf(s: IndexedSegment): SegmentHeader {
  if (!s.header) throw new Error(`the header of ${s.key} was not read`);
  return s.header;
}

export interface ReplayPlan {
  base: BaseRef;
  manifest: BaseManifest;
  schema: BaseSchema;
  /** Replay transactions whose commit LSN is at least base.lsn and at most this (all when undefined). */
  upTo: bigint | undefined;
  segments: IndexedSegment[];
}

/** Resolves a target against the archive: which base, which segments, where to stop. */
export async function planReplay(index: ArchiveIndex, target: Target, exclusive: boolean): Promise<ReplayPlan> {
  const upTo = await resolvePoint(index, target, exclusive);
  if (target.kind === 'time') {
    const first = await readBase(index.store, index.bases[0]!);
    if (target.micros < parseTimeMicros(first.schema.snapshotTime)!) throw outside(index, target, 'is before the first base');
  }
  const cut = upTo !== undefined && index.discontinuities.find((d) => upTo >= d.from && upTo + 1n < d.to);
  if (cut) throw outside(index, target, `falls in a discontinuity of the archive: ${describeDiscontinuity(cut)}`);
  const candidates = index.bases.filter((b) => upTo === undefined || b.lsn <= upTo + 1n);
  const base = candidates.at(-1);
  if (!base) throw outside(index, target, 'is before the first base');
  const { manifest, schema } = await readBase(index.store, base);
  return { base, manifest, schema, upTo, segments: segmentsBetween(index, base.lsn - 1n, upTo) };
}

/**
 * The segments that hold the transactions committed after point `after` up to point `upTo`
 * (commit LSN in (after, upTo]; undefined: from the start, to the end), checked to leave no gap.
 */
export function describeDiscontinuity(d: Discontinuity): string {
  return `nothing was recorded from ${formatLsn(d.from)} to ${formatLsn(d.to)} (${d.reason}; rebased ${d.at}); targets before ${formatLsn(d.from)} and from ${formatLsn(d.to)} on work, not across`;
}

export function segmentsBetween(index: ArchiveIndex, after: bigint | undefined, upTo: bigint | undefined, acrossDiscontinuities = false): IndexedSegment[] {
  const segments = index.segments.filter((s) => (after === undefined || s.endLsn > after + 1n) && (upTo === undefined || (s.header?.firstCommitLsn ?? s.startLsn) <= upTo));
  let expected = after === undefined ? segments[0]?.startLsn : after + 1n;
  for (const [i, s] of segments.entries()) {
    if (i > 0 && s.startLsn < expected!) {
      throw new UserError(
        `the archive has overlapping segments: ${index.store.description}/${s.key} starts before ${segments[i - 1]!.key} ends`,
        'the same transactions may be stored twice; pgtape verify lists them: remove the one that should not be there',
      );
    }
    if (expected !== undefined && s.startLsn > expected) {
      const d = index.discontinuities.find((d) => d.from <= expected! && d.to >= s.startLsn);
      if (d && acrossDiscontinuities) {
        expected = s.endLsn;
        continue;
      }
      if (d) throw new UserError(`the range crosses a discontinuity of the archive: ${describeDiscontinuity(d)}`, 'choose both points on the same side of it');
      throw new UserError(
        `the archive has a gap: nothing covers ${formatLsn(expected)} to ${formatLsn(s.startLsn)} (before ${index.store.description}/${s.key})`,
        `a segment is missing; points before ${formatLsn(expected)} can still be read, and pgtape verify lists what is damaged`,
      );
    }
    expected = s.endLsn;
  }
  return segments;
}

/**
 * A target as a point of the log: the state after every transaction whose commit LSN is at most
 * the returned LSN (undefined: after all of them).
 */
export async function resolvePoint(index: ArchiveIndex, target: Target, exclusive: boolean): Promise<bigint | undefined> {
  const last = index.segments.at(-1);
  const end = last?.endLsn ?? index.bases.at(-1)?.lsn ?? 0n;
  switch (target.kind) {
    case 'latest':
    case 'commit':
      // A commit target has opened the store as of that commit: its end is the target.
      return undefined;
    case 'lsn':
      if (target.lsn > end) throw outside(index, target, 'is after the end of the archive');
      return exclusive ? target.lsn - 1n : target.lsn;
    case 'xid': {
      await loadHeaders(index);
      for (const s of index.segments) {
        if (target.xid < headerOf(s).minXid || target.xid > headerOf(s).maxXid) continue;
        for await (const e of openSegment(index.store, s.key).entries()) {
          if (e.kind === 'begin' && e.xid === target.xid) return exclusive ? e.commitLsn - 1n : e.commitLsn;
        }
      }
      throw outside(index, target, 'is not a transaction in the archive (never committed, or outside it)');
    }
    case 'time': {
      // The cut falls before the first commit stamped after the time (at or after it with --exclusive).
      const beyond = (t: bigint) => (exclusive ? t >= target.micros : t > target.micros);
      await loadHeaders(index);
      for (const s of index.segments) {
        if (!beyond(headerOf(s).lastCommitTime)) continue;
        for await (const e of openSegment(index.store, s.key).entries()) {
          if (e.kind === 'begin' && beyond(e.commitTime)) return e.commitLsn - 1n;
        }
      }
      const lastCommit = lastWithCommits(index);
      if (lastCommit && target.micros > headerOf(lastCommit).lastCommitTime) throw outside(index, target, 'is after the last commit');
      return undefined;
    }
    case 'name': {
      const known: string[] = [];
      await loadHeaders(index);
      for (const s of index.segments) {
        if (headerOf(s).messages === 0) continue;
        let commitLsn = 0n;
        for await (const e of openSegment(index.store, s.key).entries()) {
          if (e.kind === 'begin') commitLsn = e.commitLsn;
          if (e.kind === 'message' && e.prefix === MARK_PREFIX) {
            const name = e.content.toString('utf8');
            if (name === target.name) return exclusive ? commitLsn - 1n : commitLsn;
            if (known.length < 20) known.push(name);
          }
        }
      }
      const list = known.length ? ` (marks in the archive: ${known.join(', ')})` : ' (the archive holds no marks)';
      throw outside(index, target, `names no mark in the archive${list}`);
    }
  }
}

export function outside(index: ArchiveIndex, target: Target, why: string): UserError {
  return new UserError(`target ${describeTarget(target)} ${why}`, `the archive covers ${coverage(index)}`);
}

/** The last segment holding transactions (segments without any only mark positions). */
export function lastWithCommits(index: ArchiveIndex): IndexedSegment | undefined {
  return index.segments.findLast((s) => (s.header?.transactions ?? 0) > 0);
}

/** What the archive covers, in words. */
export function coverage(index: ArchiveIndex): string {
  const first = index.bases[0];
  const last = lastWithCommits(index);
  const start = first ? `${formatLsn(first.lsn)} (first base)` : `${formatLsn(index.segments[0]!.startLsn)} (first segment, no base)`;
  const end = last
    ? `${formatLsn(index.segments.at(-1)!.endLsn)} (last commit ${formatLsn(headerOf(last).lastCommitLsn)} at ${formatMicros(headerOf(last).lastCommitTime)})`
    : `${formatLsn(index.bases.at(-1)!.lsn)} (bases only, no segments yet)`;
  return `${start} to ${end}`;
}

/** A stretch of history between two points: the transactions committed in (after, upTo]. */
export interface LogRange {
  after: bigint | undefined;
  upTo: bigint | undefined;
  segments: IndexedSegment[];
}

/** `--from A --to B`: A is a state (its transactions are not in the range), B the last state. */
export async function resolveRange(index: ArchiveIndex, from: Target | undefined, to: Target | undefined, acrossDiscontinuities = false): Promise<LogRange> {
  // `--from latest` is the end of the archive: an empty range, not an error.
  const end = lastWithCommits(index)?.header?.lastCommitLsn ?? index.bases.at(-1)?.lsn;
  const after = from ? ((await resolvePoint(index, from, false)) ?? end) : undefined;
  const upTo = to ? await resolvePoint(index, to, false) : undefined;
  if (after !== undefined && upTo !== undefined && after > upTo) {
    throw new UserError(`--from ${describeTarget(from!)} is after --to ${describeTarget(to!)}`, 'swap them: --from names the earlier point');
  }
  return { after, upTo, segments: segmentsBetween(index, after, upTo, acrossDiscontinuities) };
}

/** Whether a transaction committed at `commitLsn` lies in the range. */
export function inRange(range: Pick<LogRange, 'after' | 'upTo'>, commitLsn: bigint): boolean {
  return (range.after === undefined || commitLsn > range.after) && (range.upTo === undefined || commitLsn <= range.upTo);
}
