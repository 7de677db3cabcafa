import { errorMessage, UserError } from '../core/errors.js';
import { formatLsn } from '../core/lsn.js';
import { sayWarning } from '../core/output.js';
import { coverage, headerOf, rangeSegments, walkSegments, type ArchiveIndex, type IndexedSegment } from './archive-index.js';
import { openSegment } from './segments.js';
import { isSegmentDamage } from '../segment/reader.js';
import { markName, readMarks } from './segment-index.js';
import type { IndexSummary, Mark } from './index-summary.js';
import { baseSnapshotTime } from './bases.js';
import { describeTarget, parseTimeMicros, type Target } from './target.js';

// Targets as points of the log (docs/ARCHITECTURE.md, "Targets"): a point is "after every
// transaction whose commit LSN is at most P".

/**
 * A target as a point of the log: the state after every transaction whose commit LSN is at most
 * the returned LSN (undefined: after all of them).
 */
export async function resolvePoint(
  index: ArchiveIndex,
  target: Target,
  exclusive: boolean,
  warn: (message: string) => void = sayWarning,
): Promise<bigint | undefined> {
  const end = index.endLsn ?? index.bases.at(-1)?.lsn ?? 0n;
  // The store lost its newest segment: what it held may be the target, or come before it.
  const lost = index.lostTail;
  switch (target.kind) {
    case 'latest':
    case 'commit':
      if (lost) throw lost.error;
      // A commit target has opened the store as of that commit: its end is the target.
      return undefined;
    case 'lsn':
      if (lost && target.lsn >= lost.startLsn) throw lost.error;
      if (target.lsn > end) throw outside(index, target, 'is after the end of the archive');
      return exclusive ? target.lsn - 1n : target.lsn;
    case 'xid': {
      // Only where a summary's xid range holds it are the index objects opened (docs/ARCHITECTURE.md, "Index objects").
      const holds = (s: { transactions: number; minXid: number; maxXid: number }) =>
        s.transactions > 0 && target.xid >= s.minXid && target.xid <= s.maxXid;
      for await (const s of walkSegments(index, { headers: true, enter: holds })) {
        if (!holds(headerOf(s))) continue;
        for await (const e of openSegment(index.store, s).entries()) {
          if (e.kind === 'begin' && e.xid === target.xid) return exclusive ? e.commitLsn - 1n : e.commitLsn;
        }
      }
      if (lost) throw lost.error;
      throw outside(index, target, 'is not a transaction in the archive (never committed, or outside it)');
    }
    case 'time': {
      // The cut falls before the first commit stamped after the time (at or after it with --exclusive).
      const beyond = (t: bigint) => (exclusive ? t >= target.micros : t > target.micros);
      for await (const s of walkSegments(index, { headers: true, enter: (m) => beyond(m.maxCommitTime) })) {
        const header = headerOf(s);
        if (header.transactions === 0 || !beyond(header.lastCommitTime)) continue;
        // Its first commit already after the time: the cut is before it, and its body is not
        // opened (a damaged segment after the target does not fail a target before it).
        if (beyond(header.firstCommitTime)) return header.firstCommitLsn - 1n;
        for await (const e of openSegment(index.store, s).entries()) {
          if (e.kind === 'begin' && beyond(e.commitTime)) return e.commitLsn - 1n;
        }
      }
      // No commit listed is after the time: the lost segment's may be.
      if (lost) throw lost.error;
      if (index.lastCommit && target.micros > index.lastCommit.time) throw outside(index, target, 'is after the last commit');
      return undefined;
    }
    case 'name': {
      const known: string[] = [];
      let found: { lsn: bigint; count: number } | undefined;
      // The first mark no key given opens (rotated keys): the target cannot be after it.
      let sealed: { lsn: bigint; err: unknown } | undefined;
      const see = (marks: Mark[]) => {
        for (const m of marks) {
          const { commitLsn } = m;
          if (commitLsn < (index.firstLsn ?? 0n)) continue; // its segment was expired
          let name: string;
          try {
            name = markName(index.store, m);
          } catch (err) {
            if (!(err instanceof UserError)) throw err;
            sealed ??= { lsn: commitLsn, err };
            continue;
          }
          // Every mark of the name is counted: a name given twice is said, with the one used.
          if (name === target.name) found = found ? { ...found, count: found.count + 1 } : { lsn: commitLsn, count: 1 };
          else if (known.length < 20) known.push(name);
        }
      };
      // A summary lists its objects' marks: none is opened to find one.
      const summarized = (m: IndexSummary) => {
        see(m.marks);
        return false;
      };
      // The first segment whose body cannot be read: a mark in it after the one found changes
      // only the count said, one before it could be the target.
      let damaged: { lsn: bigint; err: unknown; key: string } | undefined;
      for await (const s of walkSegments(index, { headers: true, enter: summarized })) {
        const header = headerOf(s);
        if (header.messages === 0) continue;
        // From the index object that holds the segment, else from its body.
        if (s.marks) see(s.marks);
        else if (!damaged) {
          try {
            see(await readMarks(index.store, { key: s.key, size: s.size, header }));
          } catch (err) {
            if (!isSegmentDamage(err)) throw err;
            damaged = { lsn: header.firstCommitLsn, err, key: s.key };
          }
        }
      }
      // A mark that could not be opened or read, before the one found (or with none found), could be it.
      for (const unread of [sealed, damaged]) if (unread && (!found || unread.lsn <= found.lsn)) throw unread.err;
      if (lost && !found) throw lost.error;
      if (found) {
        if (lost) {
          warn(`name:${target.name}: ${errorMessage(lost.error)}; a later mark of the same name there would not be counted`);
        }
        if (damaged) {
          warn(
            `name:${target.name}: the marks after ${index.store.description}/${damaged.key} could not be read (${errorMessage(damaged.err)}); a later mark of the same name would not be counted (pgtape verify names the damage)`,
          );
        }
        if (found.count > 1) {
          warn(
            `name:${target.name} names ${found.count} marks; the first, committed at ${formatLsn(found.lsn)}, is used (give lsn: for another)`,
          );
        }
        return exclusive ? found.lsn - 1n : found.lsn;
      }
      const list = known.length ? ` (marks in the archive: ${known.join(', ')})` : ' (the archive holds no marks)';
      throw outside(index, target, `names no mark in the archive${list}`);
    }
  }
}

export function outside(index: ArchiveIndex, target: Target, why: string): UserError {
  return new UserError(`target ${describeTarget(target)} ${why}`, `the archive covers ${coverage(index)}`);
}

/** A stretch of history between two points: the transactions committed in (after, upTo]. */
export interface LogRange {
  after: bigint | undefined;
  upTo: bigint | undefined;
  /**
   * Its segments in LSN order, walked anew at each call (memory follows an index object's
   * segments, not the range's length); with `headers`, each with its header.
   */
  segments(options?: { headers?: boolean }): AsyncGenerator<IndexedSegment>;
}

/**
 * `--from A --to B`: A is a state (its transactions are not in the range), B the last state.
 * Its segments are not walked here: `log` of a year starts printing at once, and stops with
 * an error where its walk meets a gap (what came before it was read whole and is right).
 */
export async function resolveRange(
  index: ArchiveIndex,
  from: Target | undefined,
  to: Target | undefined,
  acrossDiscontinuities = false,
): Promise<LogRange> {
  // Up to the end (no --to) would end early, without the lost segment's changes.
  if (index.lostTail && !to) throw index.lostTail.error;
  // `--from latest` is the end of the archive: an empty range, not an error.
  const end = index.lastCommit?.lsn ?? index.bases.at(-1)?.lsn;
  const after = from ? ((await resolvePoint(index, from, false)) ?? end) : undefined;
  const upTo = to ? await resolvePoint(index, to, false) : undefined;
  refuseReversed(after, upTo, describeTarget(from ?? { kind: 'latest' }), describeTarget(to ?? { kind: 'latest' }));
  return { after, upTo, segments: (options = {}) => rangeSegments(index, after, upTo, { ...options, acrossDiscontinuities }) };
}

/** Refuses `--from` resolving after `--to` (each as the user gave it). */
export function refuseReversed(from: bigint | undefined, to: bigint | undefined, fromText: string, toText: string): void {
  if (from !== undefined && to !== undefined && from > to)
    throw new UserError(`--from ${fromText} is after --to ${toText}`, 'swap them: --from names the earlier point');
}

/** Whether a transaction committed at `commitLsn` lies in the range. */
export function inRange(range: Pick<LogRange, 'after' | 'upTo'>, commitLsn: bigint): boolean {
  return (range.after === undefined || commitLsn > range.after) && (range.upTo === undefined || commitLsn <= range.upTo);
}

/**
 * Whether `target` names a moment before the archive's first base: nothing of the database was
 * recorded then, so no state there is known (replay and diff refuse it; log says so).
 */
export async function beforeFirstBase(index: ArchiveIndex, target: Target | undefined): Promise<boolean> {
  const first = index.bases[0];
  if (!first || !target) return false;
  if (target.kind === 'lsn') return target.lsn < first.lsn - 1n;
  if (target.kind !== 'time') return false;
  return target.micros < parseTimeMicros(await baseSnapshotTime(index.store, first))!;
}

/** Said when a target lies before the first base. */
export async function firstBaseDescription(index: ArchiveIndex): Promise<string> {
  const first = index.bases[0]!;
  return `the archive begins with its first base, at ${await baseSnapshotTime(index.store, first)} (LSN ${formatLsn(first.lsn)})`;
}
