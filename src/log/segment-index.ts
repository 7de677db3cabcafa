import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import { formatLsn, lsnKey, parseLsnKey } from '../core/lsn.js';
import { decodeWrappedKey, encodeWrappedKey, type StoredWrappedKey } from '../core/key-wrap.js';
import { openHeaderNames, openMarkName } from '../segment/encryption.js';
import { segmentKey } from '../segment/name.js';
import { keysOf } from './keys.js';
import { mapLimit } from '../core/concurrency.js';
import type { SegmentHeader } from '../segment/format.js';
import { MARK_PREFIX } from '../source/logical-messages.js';
import { readAll } from '../store/read.js';
import type { Store, StoredObject } from '../store/store.js';
import { listSegments, openSegment, readSegmentHeader, type SegmentRef } from './segments.js';
import {
  decodeMark,
  decodeSummary,
  encodeMark,
  encodeSummary,
  mergeSummaries,
  segmentSummary,
  type IndexSummary,
  type Mark,
  type StoredMark,
  type StoredSummary,
} from './index-summary.js';

export type { Mark } from './index-summary.js';

// Index objects (docs/ARCHITECTURE.md, "Index objects"): what finding a point needs of each
// segment — its header and its marks — for a closed group of segments, written once and never
// changed, so that targets are found with a few reads instead of one per segment. Four sizes: one
// object every `group` segments, and each larger one from LEVEL_FACTOR of the size below (50,
// 1,000, 20,000 and 400,000 segments by default); readers take the largest that cover, so an
// archive of any length costs fewer than LEVEL_FACTOR objects of each size and fewer than `group`
// headers. The smallest size (and a partial object) holds each segment's facts (format 1); a
// larger one holds a summary of each object it is made of (format 2), and a reader opens those
// only where a summary says what it looks for may lie (archives indexed before format 2 hold
// larger objects of format 1: they are read as they are).
//   index/<segments per object>/<firstStartLSN16>-<lastEndLSN16>.json.br
// Readers walk the index objects as a tree (walkSegments, archive-index.ts): only the tail after the
// last one is listed from the store. Between two objects of the smallest size, a partial object
// holds the segments since the last one (index/partial/…, written once like the others, left
// behind when the whole object comes): the tail a reader reads header by header stays short.

export const INDEX_DIR = 'index/';
/** Segments per small index object, by default: 50 one-minute segments are under an hour. */
export const DEFAULT_INDEX_GROUP = 50;
/** An index object of one size holds this many of the size below. */
const LEVEL_FACTOR = 20;
const LEVELS = 4;
/** Format 1 holds segments' facts; format 2 summaries of smaller index objects. */
const SEGMENTS_FORMAT = 1;
const OBJECTS_FORMAT = 2;
const PARTIAL = 'partial';
const INDEX_KEY = /^index\/(\d+|partial)\/([0-9A-F]{16})-([0-9A-F]{16})\.json\.br$/;
/**
 * Brotli quality of index objects: brotli's default (11) took 80 ms of the archiver's main thread
 * per object of 50 segments (35 KB of JSON), quality 5 under 1 ms for 15 % more bytes (3.7 KB).
 */
const INDEX_QUALITY = 5;
/** A listing page (S3's MaxKeys): an index with fewer objects is listed in one request. */
const LIST_PAGE = 1000;

export interface IndexedFacts {
  size: number;
  header: SegmentHeader;
  /** Every mark the segment holds, in order. */
  marks: Mark[];
}

/** An index object as listed: how many segments it holds and the LSN range they cover. */
export interface IndexObjectRef extends StoredObject {
  /** Segments per object of its size; 0 for a partial object (fewer than the smallest size). */
  group: number;
  startLsn: bigint;
  endLsn: bigint;
}

/** Every index object stored (verify, expire, buildIndex). */
export async function listIndexObjects(store: Store): Promise<IndexObjectRef[]> {
  return indexObjectRefs(await store.list(INDEX_DIR));
}

function indexObjectRefs(objects: StoredObject[]): IndexObjectRef[] {
  const out: IndexObjectRef[] = [];
  for (const o of objects) {
    const m = INDEX_KEY.exec(o.key);
    if (m) out.push({ ...o, group: m[1] === PARTIAL ? 0 : Number(m[1]), startLsn: parseLsnKey(m[2]!)!, endLsn: parseLsnKey(m[3]!)! });
  }
  return out;
}

/**
 * The index objects a reader needs (coveringIndexObjects), in a number of listings that does not
 * grow with the archive.
 */
export async function listNeededIndexObjects(store: Store): Promise<IndexObjectRef[]> {
  return coveringIndexObjects((await listIndex(store)).objects);
}

/**
 * The index objects that readers and buildIndex need: an index of fewer than a page of objects
 * listed at once; a longer one size by size (those given, or those found), largest first, each
 * listed from where the larger ones end (an object of one size is made from whole objects of the
 * size below, so they end where one below ends).
 */
async function listIndex(store: Store, sizes?: number[]): Promise<{ objects: IndexObjectRef[]; floor: Map<number, bigint> }> {
  const firstPage = await store.list(INDEX_DIR, { limit: LIST_PAGE });
  if (firstPage.length < LIST_PAGE) return { objects: indexObjectRefs(firstPage), floor: new Map() };
  if (sizes) return listBySize(store, sizes, true);
  // The sizes present, a one-key listing each: `~` sorts after every key inside a size's folder.
  const folders: string[] = [];
  for (let after: string | undefined; ;) {
    const [o] = await store.list(INDEX_DIR, { startAfter: after, limit: 1 });
    const folder = o?.key.slice(INDEX_DIR.length).split('/')[0];
    if (!folder) break;
    folders.push(folder);
    after = `${INDEX_DIR}${folder}/~`;
  }
  const found = folders.filter((f) => /^\d+$/.test(f)).map(Number);
  return listBySize(store, found, folders.includes(PARTIAL));
}

/**
 * The index objects a reader needs: the largest first, each covering segments no object taken
 * before covers (a small object inside a large one is left out).
 */
export function coveringIndexObjects(objects: IndexObjectRef[]): IndexObjectRef[] {
  const sorted = [...objects].sort((a, b) =>
    a.startLsn !== b.startLsn ? (a.startLsn < b.startLsn ? -1 : 1) : b.endLsn > a.endLsn ? 1 : -1,
  );
  const taken: IndexObjectRef[] = [];
  let covered = -1n;
  for (const o of sorted) {
    // Segments are contiguous (one starts where the one before ends): an object starting where
    // the last taken one ends follows it; one starting before that overlaps it.
    if (o.startLsn < covered) continue;
    taken.push(o);
    covered = o.endLsn;
  }
  return taken;
}

/**
 * The objects of each size, largest first, each size listed from where the larger ones end, and
 * the partial ones from where the smallest end; `floor` says where the larger sizes end for each.
 */
async function listBySize(
  store: Store,
  sizes: number[],
  partial: boolean,
): Promise<{ objects: IndexObjectRef[]; floor: Map<number, bigint> }> {
  const objects: IndexObjectRef[] = [];
  const floor = new Map<number, bigint>();
  let covered = -1n;
  for (const size of [...sizes.sort((a, b) => b - a), ...(partial ? [0] : [])]) {
    floor.set(size, covered);
    const prefix = `${INDEX_DIR}${size || PARTIAL}/`;
    const listed = indexObjectRefs(await store.list(prefix, covered >= 0n ? { startAfter: prefix + lsnKey(covered) } : {}));
    for (const o of listed) if (o.endLsn > covered) covered = o.endLsn;
    objects.push(...listed);
  }
  return { objects, floor };
}

async function readStoredIndex(store: Store, o: StoredObject): Promise<StoredIndex> {
  const body = JSON.parse(brotliDecompressSync(await readAll(store, o.key, o.size)).toString('utf8')) as StoredIndex;
  const version = (body as { formatVersion?: unknown }).formatVersion;
  if (version !== SEGMENTS_FORMAT && version !== OBJECTS_FORMAT)
    throw new Error(`${o.key} is of index format ${String(version)}, which this pgtape does not know (a newer one wrote it)`);
  return body;
}

/** An index object smaller than it, as a larger one holds it. */
export interface IndexChild extends IndexObjectRef {
  summary: IndexSummary;
}

/** What an index object holds: the facts of its segments, or the summaries of smaller objects. */
export type IndexContent = { facts: Map<string, IndexedFacts>; children?: undefined } | { children: IndexChild[]; facts?: undefined };

export async function readIndexObject(store: Store, o: StoredObject): Promise<IndexContent> {
  const body = await readStoredIndex(store, o);
  if (body.formatVersion === OBJECTS_FORMAT) {
    return {
      children: body.children.map((c) => {
        const [ref] = indexObjectRefs([{ key: c.key, size: c.size }]);
        if (!ref) throw new Error(`${o.key} names ${c.key}, which is not an index object's key`);
        return { ...ref, summary: decodeSummary(c.summary) };
      }),
    };
  }
  return {
    facts: new Map(
      body.segments.map((s) => {
        const header = decodeHeader(s.header, store);
        // An encrypted segment's marks are sealed: a clear name beside one was not written by pgtape.
        const marks = s.marks.map(decodeMark).filter((m) => !header.encryption || m.sealed);
        return [s.key, { size: s.size, header, marks }];
      }),
    ),
  };
}

/** The summary of what an index object holds. */
export function summaryOf(content: IndexContent): IndexSummary {
  if (content.children) return mergeSummaries(content.children.map((c) => c.summary));
  return mergeSummaries([...content.facts.values()].map((f) => segmentSummary(f.size, f.header, f.marks)));
}

/** The marks a segment holds, with the commit LSN of each one's transaction (its body is read). */
export async function readMarks(store: Store, ref: { key: string; size?: number; header?: SegmentHeader }): Promise<Mark[]> {
  if (ref.header?.encryption) return sealedMarks(ref.header);
  const marks: Mark[] = [];
  let open: bigint | undefined;
  for await (const e of openSegment(store, ref).entries()) {
    if (e.kind === 'begin') open = e.commitLsn;
    else if (e.kind === 'commit') open = undefined;
    else if (e.kind === 'message' && e.prefix === MARK_PREFIX && open !== undefined)
      marks.push({ name: e.content.toString('utf8'), commitLsn: open });
  }
  return marks;
}

/** The sizes of index object, smallest first: each holds LEVEL_FACTOR objects of the size below. */
export function indexLevels(group: number): number[] {
  return Array.from({ length: LEVELS }, (_, i) => group * LEVEL_FACTOR ** i);
}

/**
 * Writes index objects for every whole group of `group` segments after the last one of that size,
 * then each larger size from LEVEL_FACTOR whole objects of the size below (their facts, not the
 * segments: no segment is listed or read again): `pgtape index`, and the archiver as it goes.
 * The segments left after the last whole group get a partial object once `partialEvery` of them
 * are not in one yet. The last segment listed is left to the tail: the next one may still be on
 * its way. Returns the keys written.
 */
export async function buildIndex(store: Store, group = DEFAULT_INDEX_GROUP, partialEvery = Math.ceil(group / 5)): Promise<string[]> {
  const written: string[] = [];
  // Only what follows the larger sizes' last objects: listings that do not grow with the archive.
  const { objects, floor } = await listIndex(store, indexLevels(group));
  const coveredBy = (size: number) =>
    objects.filter((o) => o.group === size).reduce((end, o) => (o.endLsn > end ? o.endLsn : end), floor.get(size) ?? -1n);
  const write = async (size: number, content: StoredIndex, startLsn: bigint, endLsn: bigint) => {
    const key = `${INDEX_DIR}${size || PARTIAL}/${lsnKey(startLsn)}-${lsnKey(endLsn)}.json.br`;
    const body = await putIndex(store, key, content);
    objects.push({ key, size: body.length, group: size, startLsn, endLsn });
    written.push(key);
  };
  const [smallest, ...larger] = indexLevels(group);
  // The smallest size from the segments after its last object (one listing from there).
  const covered = coveredBy(smallest!);
  const segments = await listSegments(store, covered >= 0n ? covered : undefined);
  // What the newest partial object from there holds is not read again.
  let partial = newestPartial(objects, segments[0]?.startLsn);
  const known = new Map<string, StoredFacts>();
  try {
    const stored = partial ? await readStoredIndex(store, partial) : undefined;
    for (const e of stored?.formatVersion === SEGMENTS_FORMAT ? stored.segments : []) known.set(e.key, e);
  } catch {
    partial = undefined; // Unreadable (verify names it): a longer one from the headers supersedes it.
  }
  const entriesOf = async (refs: SegmentRef[]): Promise<StoredIndex> => ({
    formatVersion: SEGMENTS_FORMAT,
    segments: await mapLimit(refs, 16, async (s) => {
      const entry = known.get(s.key);
      if (entry?.size === s.size) return entry;
      const header = await readSegmentHeader(store, s.key);
      const marks = header.encryption ? sealedMarks(header) : header.messages > 0 ? await readMarks(store, s) : [];
      return { key: s.key, size: s.size, header: encodeHeader(header), marks: marks.map(encodeMark) };
    }),
  });
  let i = 0;
  for (; i + smallest! < segments.length; i += smallest!) {
    const refs = segments.slice(i, i + smallest!);
    await write(smallest!, await entriesOf(refs), refs[0]!.startLsn, refs.at(-1)!.endLsn);
  }
  const rest = segments.slice(i, -1);
  const inPartial = i === 0 && partial ? rest.filter((s) => s.endLsn <= partial.endLsn).length : 0;
  if (rest.length > 0 && rest.length - inPartial >= partialEvery)
    await write(0, await entriesOf(rest), rest[0]!.startLsn, rest.at(-1)!.endLsn);
  // Each larger size from a run of LEVEL_FACTOR objects of the size below, following its own last object.
  let below = smallest!;
  for (const size of larger) {
    const from = coveredBy(size);
    const run = objects.filter((o) => o.group === below && o.startLsn >= from).sort((a, b) => (a.startLsn < b.startLsn ? -1 : 1));
    for (let i = 0; i + LEVEL_FACTOR <= run.length; i += LEVEL_FACTOR) {
      const parts = run.slice(i, i + LEVEL_FACTOR);
      // One object after another, none overlapping (a run with a hole waits for `pgtape index`).
      if (parts.some((o, j) => j > 0 && o.startLsn < parts[j - 1]!.endLsn)) break;
      // Their summaries, not their segments' facts: an object's size does not grow with its level.
      const children = await mapLimit(parts, 8, async (o) => ({
        key: o.key,
        size: o.size,
        summary: encodeSummary(summaryOf(await readIndexObject(store, o))),
      }));
      await write(size, { formatVersion: OBJECTS_FORMAT, children }, parts[0]!.startLsn, parts.at(-1)!.endLsn);
    }
    below = size;
  }
  return written;
}

async function putIndex(store: Store, key: string, content: StoredIndex): Promise<Buffer> {
  const body = brotliCompressSync(Buffer.from(JSON.stringify(content)), { params: { [constants.BROTLI_PARAM_QUALITY]: INDEX_QUALITY } });
  await store.putBytes(key, body);
  return body;
}

/**
 * Rewrites an index object so that it says what the segments and smaller objects it names now
 * are (pgtape rekey, after their keys were wrapped again: another wrap, another size): each
 * encrypted segment's facts from `segments` (its header as stored now, and its size), each
 * smaller object's summary read from it again with its size. Returns its own new size, or
 * undefined, writing nothing, when it already said so. Smaller objects must be refreshed first.
 */
export async function refreshIndexObject(
  store: Store,
  o: StoredObject,
  segments: Map<string, { size: number; header: SegmentHeader }>,
  objectSizes: Map<string, number>,
): Promise<number | undefined> {
  const content = await readStoredIndex(store, o);
  const before = JSON.stringify(content);
  if (content.formatVersion === SEGMENTS_FORMAT) {
    for (const f of content.segments) {
      const now = segments.get(f.key);
      if (!now?.header.encryption) continue;
      f.size = now.size;
      (f.header as { encryption?: StoredEncryption }).encryption = encodeHeader(now.header).encryption as StoredEncryption;
      f.marks = sealedMarks(now.header).map(encodeMark);
    }
  } else {
    for (const c of content.children) {
      c.size = objectSizes.get(c.key) ?? c.size;
      c.summary = encodeSummary(summaryOf(await readIndexObject(store, { key: c.key, size: c.size })));
    }
  }
  if (JSON.stringify(content) === before) return undefined;
  return (await putIndex(store, o.key, content)).length;
}

/** The partial object starting at `startLsn` that holds the most segments. */
function newestPartial(objects: IndexObjectRef[], startLsn: bigint | undefined): IndexObjectRef | undefined {
  return objects.filter((o) => o.group === 0 && o.startLsn === startLsn).sort((a, b) => (a.endLsn < b.endLsn ? 1 : -1))[0];
}

// JSON has no bigint and no bytes: LSNs, times and checksums as text.

type StoredFacts = { key: string; size: number; header: Record<string, unknown>; marks: StoredMark[] };

type StoredIndex =
  | { formatVersion: typeof SEGMENTS_FORMAT; segments: StoredFacts[] }
  | { formatVersion: typeof OBJECTS_FORMAT; children: { key: string; size: number; summary: StoredSummary }[] };

const BIGINT_FIELDS = ['startLsn', 'endLsn', 'firstCommitLsn', 'lastCommitLsn', 'firstCommitTime', 'lastCommitTime'] as const;

// An encrypted segment's header is stored as sealed as the segment holds it (its marks are in the facts).
type StoredEncryption = { dataKey: StoredWrappedKey; sealedTables: string };

function encodeHeader(h: SegmentHeader): Record<string, unknown> {
  const out: Record<string, unknown> = { ...h, bodySha256: h.bodySha256.toString('hex') };
  for (const f of BIGINT_FIELDS) out[f] = h[f].toString();
  if (h.encryption) {
    const stored: StoredEncryption = {
      dataKey: encodeWrappedKey(h.encryption.dataKey),
      sealedTables: h.encryption.sealedTables.toString('base64'),
    };
    out.encryption = stored;
    out.tables = h.tables.map((t) => ({ ...t, schema: '', name: '' }));
  }
  return out;
}

function decodeHeader(h: Record<string, unknown>, store: Store): SegmentHeader {
  const out = { ...h, bodySha256: Buffer.from(h.bodySha256 as string, 'hex') } as Record<string, unknown>;
  for (const f of BIGINT_FIELDS) out[f] = BigInt(h[f] as string);
  const header = out as unknown as SegmentHeader;
  if (!h.encryption) return header;
  const e = h.encryption as StoredEncryption;
  header.encryption = { dataKey: decodeWrappedKey(e.dataKey), sealedTables: Buffer.from(e.sealedTables, 'base64'), marks: [] };
  return openHeaderNames(header, keysOf(store), `${store.description}/${segmentKey(header.startLsn, header.endLsn)}`);
}

/** An encrypted segment's marks as its header seals them: an index is made of them without a key. */
export const sealedMarks = (h: SegmentHeader): Mark[] =>
  h.encryption!.marks.map((m) => ({ name: '', commitLsn: m.commitLsn, sealed: { key: m.key, sealedName: m.sealedName } }));

/** A mark's name, opened with the store's keys when it is sealed (a key not given: UserError naming it, exit 2). */
export function markName(store: Store, m: Mark): string {
  if (!m.sealed) return m.name;
  return openMarkName(
    { commitLsn: m.commitLsn, ...m.sealed },
    keysOf(store) ?? [],
    `a mark of ${store.description} at ${formatLsn(m.commitLsn)}`,
  );
}
