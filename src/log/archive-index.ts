import { listBases, readBase, unfinishedBases, type BaseRef } from './bases.js';
import { errorMessage, ExitCode, UserError } from '../core/errors.js';
import { sayWarning } from '../core/output.js';
import { listNeededIndexObjects, readIndexObject, type IndexObjectRef, type Mark } from './segment-index.js';
import type { IndexSummary } from './index-summary.js';
import { formatLsn } from '../core/lsn.js';
import { formatMicros } from '../core/units.js';
import { mapLimit } from '../core/concurrency.js';
import type { SegmentHeader } from '../segment/format.js';
import { listDiscontinuities, type Discontinuity } from './discontinuities.js';
import { lastCommittedHeader, listSegments, readSegmentHeader, streamSegments, type SegmentRef } from './segments.js';
import { ObjectMissingError, type Store } from '../store/store.js';
import { LEASE_KEY, recordedLastSegment } from './lease.js';
import { parseSegmentKey } from '../segment/name.js';

export interface IndexedSegment extends SegmentRef {
  /** Read when needed: a replay to an LSN or to the end needs only the names (and the last header). */
  header?: SegmentHeader;
  /** Its marks, where an index object said them (else the segment is read to find them). */
  marks?: Mark[];
}

/**
 * A stretch of the archive as a reader meets it: an index object not opened yet (with its summary
 * where the larger object holding it gave one), or a segment.
 */
export type IndexNode = { object: IndexObjectRef; summary?: IndexSummary; segment?: undefined } | { segment: IndexedSegment };

/**
 * What the store holds: bases with a manifest, and the segments as index objects and the
 * segments after them (opened as a reader walks into them: memory follows what a command reads,
 * not the archive's length).
 */
export interface ArchiveIndex {
  store: Store;
  bases: BaseRef[];
  /** Where the archive was rebased: nothing recorded between `from` and `to`. */
  discontinuities: Discontinuity[];
  /** The segments in LSN order. */
  nodes: IndexNode[];
  /** Where the first segment stored starts (entries of index objects before it were expired). */
  firstLsn?: bigint;
  /** Where the last segment ends. */
  endLsn?: bigint;
  /** The archive's last commit (a segment without transactions only marks a position). */
  lastCommit?: { lsn: bigint; time: bigint };
  /** verify walks around damaged segments (it reports them itself); others stop at them. */
  skipUnreadable: boolean;
  /**
   * The store lost the newest segment the archiver recorded storing (IndexOptions.lostTail):
   * targets before its start still resolve, any other says this error.
   */
  lostTail?: { startLsn: bigint; error: UserError };
  /** Index objects opened lately: finding a target and reading the range after it open the same ones. */
  opened: Map<string, Promise<IndexNode[]>>;
  /** How many segments' facts each opened object holds, once read (what the cache weighs). */
  openedSegments: Map<string, number>;
}

/** Segment headers read at once: a remote store's latency overlaps. */
const HEADER_CONCURRENCY = 16;
/**
 * Index objects read ahead of a walk that opens them in turn. More at once made log's first line
 * later on S3 (24: by 0.2 s at 20 ms a request), its first segment queued behind them.
 */
const OPEN_AHEAD = 8;
/**
 * Opened index objects kept: a whole top chain (under 4 × 20 objects, which a name: or time:
 * target opens whole: it has no summaries) and a path down, so that resolving --to after --from,
 * and the range's walk after both, open none of it again. Objects of summaries are small (20
 * each); segments' facts are not (each header lists the tables its segment touched: 1 MB for 50
 * segments of 200 tables each), so those are kept up to OPENED_SEGMENTS_KEPT in all.
 */
const OPENED_KEPT = 128;
const OPENED_SEGMENTS_KEPT = 24 * 50;

export interface IndexOptions {
  /** Replay needs a base; log, diff and verify can read a change log without one. */
  requireBase?: boolean;
  /** verify resolves its range around damaged segments, and reports them itself. */
  skipUnreadable?: boolean;
  /** status reports an empty store as such. */
  allowEmpty?: boolean;
  /**
   * A reader whose targets resolve through resolve.ts: a lost newest segment refuses only the
   * targets it could change (ArchiveIndex.lostTail). Others refuse the store at once.
   */
  lostTail?: boolean;
  /**
   * The caller walks from the archive's start (log without --from): the index objects down to
   * the first segment are opened while the last commit is looked up, a store's latency overlapping.
   */
  walksFromStart?: boolean;
}

/** Lists bases, and segments through the index objects (docs/ARCHITECTURE.md, "Index objects"). */
export async function indexArchive(store: Store, options: IndexOptions = {}): Promise<ArchiveIndex> {
  const { requireBase = true, skipUnreadable = false, allowEmpty = false } = options;
  // Independent listings at once: on an object store each is a round trip.
  const [bases, { nodes, firstLsn }, discontinuities, recorded] = await Promise.all([
    listBases(store),
    topNodes(store),
    listDiscontinuities(store),
    recordedLastSegment(store),
  ]);
  const last = nodes.at(-1);
  const lostTail = await lastSegmentListed(
    store,
    recorded,
    last && (last.segment ?? last.object).endLsn,
    bases.at(-1)?.lsn,
    options.lostTail,
  );
  const index: ArchiveIndex = {
    store,
    bases,
    discontinuities: [],
    nodes,
    firstLsn,
    endLsn: last && (last.segment ?? last.object).endLsn,
    skipUnreadable,
    ...(lostTail ? { lostTail } : {}),
    opened: new Map(),
    openedSegments: new Map(),
  };
  if (options.walksFromStart) openFirst(index, nodes);
  index.lastCommit = await lastCommitIn(index, nodes);
  // A base alone is an archive: it replays to its own point.
  if (nodes.length === 0 && bases.length === 0 && !allowEmpty) {
    throw new UserError(`${store.description} holds no archive (no base, no segments)`, 'check --store; pgtape archive writes there');
  }
  if (requireBase && bases.length === 0 && nodes.length > 0) {
    const unfinished = await unfinishedBases(store);
    const said = unfinished.length ? ` (${unfinished.join(', ')}: never finished, no manifest.json)` : '';
    throw new UserError(
      `${store.description} holds segments but no base to replay them onto${said}`,
      'take one with pgtape base; replays start from it',
    );
  }
  index.discontinuities = discontinuities;
  return index;
}

/**
 * The index objects that cover the archive from its first segment without a hole, then the
 * segments after them as the store lists them: a few requests where listing every key is one
 * per 1,000 segments. Every segment listed where the objects do not cover the start.
 */
async function topNodes(store: Store): Promise<{ nodes: IndexNode[]; firstLsn?: bigint }> {
  // Both at once: on an object store each is a round trip.
  const [[first], objects] = await Promise.all([listSegments(store, undefined, 1), listNeededIndexObjects(store)]);
  if (!first) return { nodes: [] };
  // Objects wholly before the first segment stored hold only segments `pgtape expire` removed.
  const chain = objects.filter((o) => o.endLsn > first.startLsn);
  const covered = chain.length > 0 && chain[0]!.startLsn <= first.startLsn && (await withoutHoles(store, chain));
  const segments = await listSegments(store, covered ? chain.at(-1)!.endLsn : undefined);
  return {
    nodes: [...(covered ? chain.map((object) => ({ object })) : []), ...segments.map((segment) => ({ segment }))],
    firstLsn: first.startLsn,
  };
}

/**
 * The newest segment the archiver recorded storing (lease.json) must be in the listing, or
 * after it: a store that lost its newest segments would otherwise read as an archive that ends
 * earlier, and every reader would answer for the wrong end with exit 0.
 */
async function lastSegmentListed(
  store: Store,
  recorded: string | undefined,
  endLsn: bigint | undefined,
  newestBase: bigint | undefined,
  tolerate = false,
): Promise<ArchiveIndex['lostTail']> {
  const lost = await lostNewestSegment(store, recorded, endLsn, newestBase);
  if (!lost) return undefined;
  const why = `the archiver recorded storing it (${LEASE_KEY}) and no later segment is listed`;
  if (!tolerate) throw new ObjectMissingError(store.description, lost, why);
  // Its changes all commit at or after its start: a point before it is whole without them. The
  // listing may end sooner (more than the newest lost): nothing is known past its end (or, with
  // no segment listed, past the newest base) either.
  const lostStart = parseSegmentKey(lost)!.startLsn;
  const known = endLsn ?? newestBase;
  const startLsn = known !== undefined && known < lostStart ? known : lostStart;
  const error = new UserError(
    `the archive is damaged: ${new ObjectMissingError(store.description, lost, why).message}`,
    `targets before ${formatLsn(startLsn)} still work (lsn:${formatLsn(startLsn - 1n)}, or an earlier time or mark); restore the segment from a copy (a PFS commit's history keeps earlier versions) to reach later ones`,
    ExitCode.ATTENTION,
  );
  return { startLsn, error };
}

/**
 * The segment the archiver recorded storing last (`recorded`), when a listing that ends at
 * `endLsn` lacks it and the store does not hold it; undefined when all is well. One stored after
 * the listing was made is listed when asked again; one that ends at or before the newest base
 * may have been expired with the segments before that base.
 */
export async function lostNewestSegment(
  store: Store,
  recorded: string | undefined,
  endLsn: bigint | undefined,
  newestBase: bigint | undefined,
): Promise<string | undefined> {
  const range = recorded === undefined ? undefined : parseSegmentKey(recorded);
  if (!range || (endLsn !== undefined && range.endLsn <= endLsn) || (newestBase !== undefined && range.endLsn <= newestBase))
    return undefined;
  // Files that are no segments are passed over here: verify reports them itself.
  const listing = streamSegments(store, range.startLsn, () => {});
  const first = await listing.next();
  await listing.return(undefined);
  return first.value?.key === recorded ? undefined : recorded;
}

/**
 * The last segment stored, listing from where the last index object ends (the archiver's start
 * and its metrics: one listing, not one per 1,000 segments).
 */
export async function lastSegment(store: Store): Promise<SegmentRef | undefined> {
  const indexed = (await listNeededIndexObjects(store)).at(-1);
  const after = indexed ? await listSegments(store, indexed.endLsn) : [];
  return after.at(-1) ?? (await listSegments(store)).at(-1);
}

/**
 * Between two objects that do not meet, the next segment stored must start the second (a rebase
 * leaves such a gap); otherwise segments lie there that no object holds.
 */
async function withoutHoles(store: Store, chain: IndexObjectRef[]): Promise<boolean> {
  for (const [i, o] of chain.entries()) {
    const before = chain[i - 1];
    if (!before || o.startLsn === before.endLsn) continue;
    const [next] = await listSegments(store, before.endLsn, 1);
    if (next?.startLsn !== o.startLsn) return false;
  }
  return true;
}

/**
 * What an index object holds, as nodes. One that cannot be read is replaced by the segments the
 * store lists in its range (with a warning): slower, never wrong.
 */
function open(index: ArchiveIndex, o: IndexObjectRef): Promise<IndexNode[]> {
  let opening = index.opened.get(o.key);
  if (!opening) {
    if (index.opened.size >= OPENED_KEPT) forgetOldest(index);
    opening = openUncached(index, o).then((nodes) => {
      if (index.opened.has(o.key)) index.openedSegments.set(o.key, nodes.filter((n) => n.segment).length);
      let held = 0;
      for (const n of index.openedSegments.values()) held += n;
      for (; held > OPENED_SEGMENTS_KEPT && index.opened.size > 1;) held -= forgetOldest(index);
      return nodes;
    });
    index.opened.set(o.key, opening);
  }
  return opening;
}

/** Forgets the object opened first; returns how many segments' facts it held. */
function forgetOldest(index: ArchiveIndex): number {
  const key = index.opened.keys().next().value!;
  const held = index.openedSegments.get(key) ?? 0;
  index.opened.delete(key);
  index.openedSegments.delete(key);
  return held;
}

/** Opens the index objects from the first of `nodes` down to the archive's first segment, without waiting (a walk surfaces errors). */
function openFirst(index: ArchiveIndex, nodes: IndexNode[]): void {
  const from = index.firstLsn ?? 0n;
  const first = nodes.find((n) => (n.segment ?? n.object).endLsn > from);
  if (!first || first.segment) return;
  open(index, first.object).then(
    (children) => openFirst(index, children),
    () => {},
  );
}

async function openUncached(index: ArchiveIndex, o: IndexObjectRef): Promise<IndexNode[]> {
  let nodes: IndexNode[];
  try {
    const content = await readIndexObject(index.store, o);
    nodes = content.children
      ? content.children.map((c): IndexNode => ({ object: c, summary: c.summary }))
      : [...content.facts].map(([key, f]): IndexNode => {
          const range = parseSegmentKey(key);
          if (!range) throw new Error(`it names ${key}, which is not a segment's key`);
          return { segment: { key, size: f.size, ...range, header: f.header, marks: f.marks } };
        });
  } catch (err) {
    sayWarning(
      `${index.store.description}/${o.key} cannot be read (${errorMessage(err)}): listing its segments instead; pgtape verify checks it`,
    );
    nodes = (await listSegmentsIn(index.store, o.startLsn, o.endLsn)).map((segment) => ({ segment }));
  }
  return nodes;
}

/** The segments stored that start in [start, end), listed a page at a time from `start`. */
async function listSegmentsIn(store: Store, start: bigint, end: bigint): Promise<SegmentRef[]> {
  const out: SegmentRef[] = [];
  for await (const s of streamSegments(store, start)) {
    if (s.startLsn >= end) break;
    out.push(s);
  }
  return out;
}

export interface WalkOptions {
  /** Only segments that may hold transactions committed after this point (undefined: from the start)… */
  after?: bigint;
  /** …up to this one (undefined: to the end). */
  upTo?: bigint;
  /** Whether to open an index object, from its summary (the archive's top objects have none and are opened). */
  enter?: (summary: IndexSummary) => boolean;
  /** Read the headers of the segments no index object holds (the tail), HEADER_CONCURRENCY ahead of the walk. */
  headers?: boolean;
}

/** The archive's segments in LSN order, opening only the index objects the walk needs. */
export function walkSegments(index: ArchiveIndex, options: WalkOptions = {}): AsyncGenerator<IndexedSegment> {
  return walkNodes(index, index.nodes, options);
}

async function* walkNodes(index: ArchiveIndex, nodes: IndexNode[], options: WalkOptions): AsyncGenerator<IndexedSegment> {
  const { after, upTo, enter, headers } = options;
  const from = index.firstLsn ?? 0n;
  // Header reads in flight ahead of the walk, HEADER_CONCURRENCY at all times (a batch at a
  // time would leave the store idle while its slowest read finishes). Each settles to its error.
  const reading = new Map<IndexedSegment, Promise<unknown>>();
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]!;
    const { startLsn, endLsn } = node.segment ?? node.object;
    if (upTo !== undefined && startLsn > upTo) return;
    if (endLsn <= from || (after !== undefined && endLsn <= after + 1n)) continue;
    if (!node.segment) {
      if (node.summary && enter && !enter(node.summary)) continue;
      // The next few the walk will open too, read meanwhile: a remote store's latency overlaps.
      // (Not those a predicate decides on: it may have effects, and most are not opened.)
      for (let j = i + 1, n = 0; j < nodes.length && n < OPEN_AHEAD; j++) {
        const next = nodes[j]!;
        if (next.segment || (upTo !== undefined && next.object.startLsn > upTo)) break;
        if (next.summary && enter) continue;
        n++;
        open(index, next.object).catch(() => {}); // surfaced when its turn comes
      }
      yield* walkNodes(index, await open(index, node.object), options);
      continue;
    }
    const s = node.segment;
    if (s.startLsn < from) continue;
    if (headers && !s.header) {
      for (let j = i, n = 0; j < nodes.length && n < HEADER_CONCURRENCY; j++) {
        const next = nodes[j]!.segment;
        if (!next) break;
        if (next.header) continue;
        n++;
        if (!reading.has(next))
          reading.set(
            next,
            readSegmentHeader(index.store, next.key).then(
              (h) => void (next.header = h),
              (err: unknown) => err,
            ),
          );
      }
      const failed = await reading.get(s);
      reading.delete(s);
      if (failed && !index.skipUnreadable) throw failed;
      if (failed) continue; // unreadable, and verify asked to walk around it
    }
    if (upTo !== undefined && firstCommitOrStart(s) > upTo) continue;
    yield s;
  }
}

/**
 * Reads the headers not read yet; returns the segments, without those that could not be read
 * when `skipUnreadable` (else the first such error is thrown).
 */
export async function loadHeaders(store: Store, segments: IndexedSegment[], skipUnreadable = false): Promise<IndexedSegment[]> {
  const unreadable = new Set<IndexedSegment>();
  await mapLimit(segments, HEADER_CONCURRENCY, async (s) => {
    if (s.header) return;
    try {
      s.header = await readSegmentHeader(store, s.key);
    } catch (err) {
      if (!skipUnreadable) throw err;
      unreadable.add(s);
    }
  });
  return unreadable.size ? segments.filter((s) => !unreadable.has(s)) : segments;
}

/**
 * The last commit among `nodes`, from the end: a segment's header, or an object's summary (one
 * without a summary, or reaching before the first segment stored, is opened).
 */
async function lastCommitIn(index: ArchiveIndex, nodes: IndexNode[]): Promise<ArchiveIndex['lastCommit']> {
  const from = index.firstLsn ?? 0n;
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (node.segment) {
      if (node.segment.startLsn < from) return undefined;
      const header = await lastCommittedHeader(index.store, [node.segment]);
      if (header) return { lsn: header.lastCommitLsn, time: header.lastCommitTime };
      continue;
    }
    const { object, summary } = node;
    if (object.endLsn <= from) return undefined;
    if (summary?.transactions === 0) continue;
    if (summary && object.startLsn >= from) return { lsn: summary.lastCommitLsn, time: summary.lastCommitTime };
    const found = await lastCommitIn(index, await open(index, object));
    if (found) return found;
  }
  return undefined;
}

/** How many segments the archive holds and their bytes, from the summaries where they say it. */
export async function segmentTotals(index: ArchiveIndex, nodes = index.nodes): Promise<{ segments: number; bytes: number }> {
  const from = index.firstLsn ?? 0n;
  const total = { segments: 0, bytes: 0 };
  for (const node of nodes) {
    const part = node.segment
      ? node.segment.startLsn >= from
        ? { segments: 1, bytes: node.segment.size }
        : undefined
      : node.object.endLsn <= from
        ? undefined
        : node.summary && node.object.startLsn >= from
          ? node.summary
          : await segmentTotals(index, await open(index, node.object));
    total.segments += part?.segments ?? 0;
    total.bytes += part?.bytes ?? 0;
  }
  return total;
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

/** The segments that may hold transactions committed in (after, upTo] (undefined: from the start, to the end). */
export async function segmentsIn(index: ArchiveIndex, after: bigint | undefined, upTo: bigint | undefined): Promise<IndexedSegment[]> {
  const out: IndexedSegment[] = [];
  for await (const s of walkSegments(index, { after, upTo })) out.push(s);
  return out;
}

/**
 * The segments that hold the transactions committed after point `after` up to point `upTo`
 * (commit LSN in (after, upTo]; undefined: from the start, to the end), streamed (a range of a
 * year holds one index object's segments at a time, not every one) and checked to leave no gap:
 * a gap, an overlap or a discontinuity not to be crossed is thrown where the walk meets it.
 */
export async function* rangeSegments(
  index: ArchiveIndex,
  after: bigint | undefined,
  upTo: bigint | undefined,
  options: { acrossDiscontinuities?: boolean; headers?: boolean } = {},
): AsyncGenerator<IndexedSegment> {
  let previous: IndexedSegment | undefined;
  let expected = after === undefined ? undefined : after + 1n;
  for await (const s of walkSegments(index, { after, upTo, headers: options.headers })) {
    if (previous && s.startLsn < expected!) {
      throw new UserError(
        `the archive has overlapping segments: ${index.store.description}/${s.key} starts before ${previous.key} ends`,
        'the same transactions may be stored twice; pgtape verify lists them: remove the one that should not be there',
        ExitCode.ATTENTION,
      );
    }
    if (expected !== undefined && s.startLsn > expected) {
      const d = index.discontinuities.find((d) => d.from <= expected! && d.to >= s.startLsn);
      if (d && !options.acrossDiscontinuities)
        throw new UserError(
          `the range crosses a discontinuity of the archive: ${describeDiscontinuity(d)}`,
          'choose both points on the same side of it',
        );
      if (!d)
        // Damage, not bad input (README, Exit codes): 4, as a segment found missing when read.
        throw new UserError(
          `the archive has a gap: nothing covers ${formatLsn(expected)} to ${formatLsn(s.startLsn)} (before ${index.store.description}/${s.key})`,
          `a segment is missing; points before ${formatLsn(expected)} can still be read, and pgtape verify lists what is damaged`,
          ExitCode.ATTENTION,
        );
    }
    previous = s;
    expected = s.endLsn;
    yield s;
  }
}

/** What the archive covers, in words. */
export function coverage(index: ArchiveIndex): string {
  const first = index.bases[0];
  const last = index.lastCommit;
  const start = first ? `${formatLsn(first.lsn)} (first base)` : `${formatLsn(index.firstLsn!)} (first segment, no base)`;
  const end =
    last && index.endLsn !== undefined
      ? `${formatLsn(index.endLsn)} (last commit ${formatLsn(last.lsn)} at ${formatMicros(last.time)})`
      : `${formatLsn(index.endLsn ?? index.bases.at(-1)!.lsn)} (${index.endLsn === undefined ? 'bases only, no segments yet' : 'no commits yet'})`;
  return `${start} to ${end}`;
}

/**
 * Which of `names` (`schema.table`) the archive knows nothing of: in none of its bases, and
 * changed by none of the range's segments (their headers are read as needed). A filter on such
 * a table would print nothing and look like "no changes".
 */
async function unknownTables(index: ArchiveIndex, names: Iterable<string>, range: { after?: bigint; upTo?: bigint }): Promise<string[]> {
  const known = new Set<string>();
  for (const b of index.bases) for (const t of (await readBase(index.store, b)).schema.tables) known.add(`${t.schema}.${t.name}`);
  const unknown = new Set([...names].filter((n) => !known.has(n)));
  if (!unknown.size) return [];
  for await (const s of walkSegments(index, { ...range, headers: true })) {
    for (const t of s.header?.tables ?? []) unknown.delete(`${t.schema}.${t.name}`);
    if (!unknown.size) break;
  }
  return [...unknown];
}

/** `--table` naming a table the archive never held: an error, not an empty answer. */
export async function refuseUnknownTables(
  index: ArchiveIndex,
  tables: Set<string> | undefined,
  range: { after?: bigint; upTo?: bigint },
): Promise<void> {
  if (!tables?.size) return;
  const unknown = await unknownTables(index, tables, range);
  if (unknown.length) {
    throw new UserError(
      `--table: the archive has no table ${unknown.join(', ')} (in none of its bases, changed by no segment of the range)`,
      'name tables as schema.table; pgtape log lists the tables each transaction changed',
    );
  }
}
