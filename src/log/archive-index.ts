import { listBases, readBase, type BaseRef } from './bases.js';
import { errorMessage, UserError } from '../core/errors.js';
import { sayWarning } from '../core/output.js';
import { listNeededIndexObjects, readIndexObject, type IndexedFacts, type IndexObjectRef, type Mark } from './segment-index.js';
import { formatLsn } from '../core/lsn.js';
import { formatMicros } from '../core/units.js';
import { mapLimit } from '../core/concurrency.js';
import type { SegmentHeader } from '../segment/format.js';
import { listDiscontinuities, type Discontinuity } from './discontinuities.js';
import { lastCommittedHeader, listSegments, readSegmentHeader, type SegmentRef } from './segments.js';
import type { Store } from '../store/store.js';
import { parseSegmentKey } from '../segment/name.js';

export interface IndexedSegment extends SegmentRef {
  /** Read when needed: a replay to an LSN or to the end needs only the names (and the last header). */
  header?: SegmentHeader;
  /** Its marks, where an index object said them (else the segment is read to find them). */
  marks?: Mark[];
}

/** What the store holds: bases with a manifest, and segments (with their headers once read). */
export interface ArchiveIndex {
  store: Store;
  bases: BaseRef[];
  segments: IndexedSegment[];
  /** Where the archive was rebased: nothing recorded between `from` and `to`. */
  discontinuities: Discontinuity[];
  /** The index objects' facts were taken (loadHeaders reads them once, before any header). */
  indexObjectsRead?: boolean;
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
  /**
   * 'index' lists the segments through the index objects where they cover the archive's start
   * (only the tail after them is listed from the store); 'store' lists every segment key.
   */
  listing?: 'index' | 'store';
}

/** Lists bases and segments (the listing is the index: docs/ARCHITECTURE.md, Store layout) and reads segment headers. */
export async function indexArchive(store: Store, options: IndexOptions = {}): Promise<ArchiveIndex> {
  const { requireBase = true, skipUnreadable = false, headers = 'all', listing = 'index' } = options;
  const bases = await listBases(store);
  const throughIndex = listing === 'index' ? await listThroughIndex(store) : undefined;
  const segments: IndexedSegment[] = throughIndex ?? (await listSegments(store));
  const index: ArchiveIndex = { store, bases, segments, discontinuities: [], indexObjectsRead: throughIndex !== undefined };
  if (headers === 'all') await loadHeaders(index, skipUnreadable);
  else await lastCommittedHeader(store, segments);
  // A base alone is an archive: it replays to its own point.
  if (segments.length === 0 && bases.length === 0) {
    throw new UserError(`${store.description} holds no archive (no base, no segments)`, 'check --store; pgtape archive writes there');
  }
  if (requireBase && bases.length === 0) {
    throw new UserError(
      `${store.description} holds segments but no base to replay them onto`,
      'take one with pgtape base; replays start from it',
    );
  }
  index.discontinuities = await listDiscontinuities(store);
  return index;
}

/**
 * The segments as the index objects list them, with their headers and marks, and the tail after
 * the last object as the store lists it: a few requests where listing every key is one per
 * 1,000 segments (docs/ARCHITECTURE.md, "Index objects"). Undefined where the objects do not
 * cover the archive from its first segment without a hole (the store's listing is used then).
 * Entries of segments `pgtape expire` removed (before the first segment stored) are dropped.
 */
async function listThroughIndex(store: Store): Promise<IndexedSegment[] | undefined> {
  const chain = await listNeededIndexObjects(store);
  if (!chain.length) return undefined;
  const [first] = await listSegments(store, undefined, 1);
  if (!first || first.startLsn < chain[0]!.startLsn) return undefined;
  // Between two objects that do not meet, the next segment stored must start the second (a
  // rebase leaves such a gap); otherwise segments lie there that no object holds.
  for (const [i, o] of chain.entries()) {
    const before = chain[i - 1];
    if (!before || o.startLsn === before.endLsn) continue;
    const [next] = await listSegments(store, before.endLsn, 1);
    if (next?.startLsn !== o.startLsn) return undefined;
  }
  const read = await readIndexObjects(store, chain);
  if (read.some((facts) => !facts)) {
    // Slower, never wrong: every key listed, the facts of the objects that could be read used.
    const segments: IndexedSegment[] = await listSegments(store);
    applyFacts(segments, read);
    return segments;
  }
  const segments: IndexedSegment[] = [];
  for (const facts of read) {
    for (const [key, f] of facts!) {
      const range = parseSegmentKey(key);
      if (range && range.startLsn >= first.startLsn) segments.push({ key, size: f.size, ...range, header: f.header, marks: f.marks });
    }
  }
  const tail = await listSegments(store, (segments.at(-1)?.startLsn ?? first.startLsn - 1n) + 1n);
  return [...segments, ...tail];
}

/** Each object's facts, or undefined (with a warning) for one that cannot be read. */
async function readIndexObjects(store: Store, objects: IndexObjectRef[]): Promise<(Map<string, IndexedFacts> | undefined)[]> {
  return mapLimit(objects, 8, async (o) => {
    try {
      return await readIndexObject(store, o);
    } catch (err) {
      sayWarning(
        `${store.description}/${o.key} cannot be read (${errorMessage(err)}): reading its segments' headers instead; pgtape verify checks it`,
      );
      return undefined;
    }
  });
}

/**
 * Takes headers and marks from the index objects for the segments listed under the same key with
 * the same size. An index object that cannot be read is passed over: its segments' headers are
 * read instead, as slowly as without it.
 */
function applyFacts(segments: IndexedSegment[], read: (Map<string, IndexedFacts> | undefined)[]): void {
  const byKey = new Map(segments.map((s) => [s.key, s]));
  for (const facts of read) {
    for (const [key, f] of facts ?? []) {
      const s = byKey.get(key);
      if (s && s.size === f.size) {
        s.header = f.header;
        s.marks = f.marks;
      }
    }
  }
}

/** Reads the headers not read yet (unreadable ones are dropped from the index when asked). */
export async function loadHeaders(index: ArchiveIndex, skipUnreadable = false): Promise<void> {
  if (!index.indexObjectsRead && index.segments.some((s) => !s.header)) {
    applyFacts(index.segments, await readIndexObjects(index.store, await listNeededIndexObjects(index.store)));
    index.indexObjectsRead = true;
  }
  const unreadable = new Set<IndexedSegment>();
  await mapLimit(index.segments, HEADER_CONCURRENCY, async (s) => {
    if (s.header) return;
    try {
      s.header = await readSegmentHeader(index.store, s.key);
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

export function describeDiscontinuity(d: Discontinuity): string {
  return `nothing was recorded from ${formatLsn(d.from)} to ${formatLsn(d.to)} (${d.reason}; rebased ${d.at}); targets before ${formatLsn(d.from)} and from ${formatLsn(d.to)} on work, not across`;
}

/**
 * Where a segment's first transaction commits, or its start when that is not known or it holds
 * none: a segment without transactions only marks a position, and its header's first commit is 0.
 */
function firstCommitOrStart(s: IndexedSegment): bigint {
  return s.header && s.header.transactions > 0 ? s.header.firstCommitLsn : s.startLsn;
}

/**
 * The segments that hold the transactions committed after point `after` up to point `upTo`
 * (commit LSN in (after, upTo]; undefined: from the start, to the end), checked to leave no gap.
 */
export function segmentsBetween(
  index: ArchiveIndex,
  after: bigint | undefined,
  upTo: bigint | undefined,
  acrossDiscontinuities = false,
): IndexedSegment[] {
  const segments = index.segments.filter(
    (s) => (after === undefined || s.endLsn > after + 1n) && (upTo === undefined || firstCommitOrStart(s) <= upTo),
  );
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
      if (d)
        throw new UserError(
          `the range crosses a discontinuity of the archive: ${describeDiscontinuity(d)}`,
          'choose both points on the same side of it',
        );
      throw new UserError(
        `the archive has a gap: nothing covers ${formatLsn(expected)} to ${formatLsn(s.startLsn)} (before ${index.store.description}/${s.key})`,
        `a segment is missing; points before ${formatLsn(expected)} can still be read, and pgtape verify lists what is damaged`,
      );
    }
    expected = s.endLsn;
  }
  return segments;
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

/**
 * Which of `names` (`schema.table`) the archive knows nothing of: in none of its bases, and
 * changed by none of `segments` (their headers are read as needed). A filter on such a table
 * would print nothing and look like "no changes".
 */
async function unknownTables(index: ArchiveIndex, names: Iterable<string>, segments: IndexedSegment[]): Promise<string[]> {
  const known = new Set<string>();
  for (const b of index.bases) for (const t of (await readBase(index.store, b)).schema.tables) known.add(`${t.schema}.${t.name}`);
  let unknown = [...names].filter((n) => !known.has(n));
  if (!unknown.length) return [];
  await loadHeaders({ ...index, segments });
  for (const s of segments) for (const t of s.header?.tables ?? []) known.add(`${t.schema}.${t.name}`);
  unknown = unknown.filter((n) => !known.has(n));
  return unknown;
}

/** `--table` naming a table the archive never held: an error, not an empty answer. */
export async function refuseUnknownTables(index: ArchiveIndex, tables: Set<string> | undefined, segments: IndexedSegment[]): Promise<void> {
  if (!tables?.size) return;
  const unknown = await unknownTables(index, tables, segments);
  if (unknown.length) {
    throw new UserError(
      `--table: the archive has no table ${unknown.join(', ')} (in none of its bases, changed by no segment of the range)`,
      'name tables as schema.table; pgtape log lists the tables each transaction changed',
    );
  }
}
