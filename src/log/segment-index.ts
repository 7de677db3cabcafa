import { brotliCompressSync, brotliDecompressSync } from 'node:zlib';
import { lsnKey, parseLsnKey } from '../core/lsn.js';
import { mapLimit } from '../core/concurrency.js';
import type { SegmentHeader } from '../segment/format.js';
import { MARK_PREFIX } from '../source/logical-messages.js';
import { readAll } from '../store/read.js';
import type { Store, StoredObject } from '../store/store.js';
import { listSegments, openSegment, readSegmentHeader } from './segments.js';

// Index objects (docs/ARCHITECTURE.md, "Index objects"): what finding a point needs of each
// segment — its header and its marks — for a closed group of segments, written once and never
// changed, so that targets are found with a few reads instead of one per segment. Two sizes: one
// object every `group` segments, and one every LARGE_FACTOR groups; readers take the largest
// that cover, so an archive of N segments costs about N / (group × LARGE_FACTOR) + LARGE_FACTOR
// objects and fewer than `group` headers.
//   index/<segments per object>/<firstStartLSN16>-<lastEndLSN16>.json.br
// A segment is taken from an index object only when the listing holds it under the same key with
// the same size; segments after the last index object (the tail) are read from their headers.

export const INDEX_DIR = 'index/';
/** Segments per small index object, by default: 50 one-minute segments are under an hour. */
export const DEFAULT_INDEX_GROUP = 50;
/** A large index object holds this many small ones' segments. */
const LARGE_FACTOR = 20;
const INDEX_FORMAT_VERSION = 1;
const INDEX_KEY = /^index\/(\d+)\/([0-9A-F]{16})-([0-9A-F]{16})\.json\.br$/;

export interface Mark {
  name: string;
  commitLsn: bigint;
}

export interface IndexedFacts {
  size: number;
  header: SegmentHeader;
  /** Every mark the segment holds, in order. */
  marks: Mark[];
}

/** An index object as listed: how many segments it holds and the LSN range they cover. */
export interface IndexObjectRef extends StoredObject {
  group: number;
  startLsn: bigint;
  endLsn: bigint;
}

export async function listIndexObjects(store: Store): Promise<IndexObjectRef[]> {
  const out: IndexObjectRef[] = [];
  for (const o of await store.list(INDEX_DIR)) {
    const m = INDEX_KEY.exec(o.key);
    if (m) out.push({ ...o, group: Number(m[1]), startLsn: parseLsnKey(m[2]!)!, endLsn: parseLsnKey(m[3]!)! });
  }
  return out;
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

/** The facts of every segment the index objects hold, by segment key. Throws on an object that cannot be read. */
async function readIndexObjects(store: Store, objects: IndexObjectRef[]): Promise<Map<string, IndexedFacts>> {
  const facts = new Map<string, IndexedFacts>();
  const bodies = await mapLimit(objects, 8, (o) => readIndexObject(store, o));
  for (const entries of bodies) for (const [key, f] of entries) facts.set(key, f);
  return facts;
}

export async function readIndexObject(store: Store, o: StoredObject): Promise<Map<string, IndexedFacts>> {
  const body = JSON.parse(brotliDecompressSync(await readAll(store, o.key, o.size)).toString('utf8')) as StoredIndex;
  if (body.formatVersion !== INDEX_FORMAT_VERSION) throw new Error(`${o.key} is of index format ${body.formatVersion}`);
  return new Map(body.segments.map((s) => [s.key, { size: s.size, header: decodeHeader(s.header), marks: s.marks.map(decodeMark) }]));
}

/** The marks a segment holds, with the commit LSN of each one's transaction (its body is read). */
export async function readMarks(store: Store, ref: { key: string; size?: number }): Promise<Mark[]> {
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

/**
 * Writes index objects for every whole group of `group` segments after the last one of that size,
 * then the large ones (LARGE_FACTOR groups each, from the small objects' facts): `pgtape index`,
 * and the archiver as it goes. The last segment listed is left to the tail: the next one may
 * still be on its way. Returns the keys written.
 */
export async function buildIndex(store: Store, group = DEFAULT_INDEX_GROUP): Promise<string[]> {
  const written: string[] = [];
  // One listing of each kind per call (the archiver calls it every few seconds): the segments
  // after the least covered size serve both sizes, and the objects written are added to the list.
  const objects = await listIndexObjects(store);
  const sizes = [group, group * LARGE_FACTOR];
  const coveredBy = (size: number) => objects.filter((o) => o.group === size).reduce((end, o) => (o.endLsn > end ? o.endLsn : end), -1n);
  const from = sizes.map(coveredBy).reduce((a, b) => (a < b ? a : b));
  const listed = await listSegments(store, from >= 0n ? from : undefined);
  for (const size of sizes) {
    const covered = coveredBy(size);
    // Segments are contiguous: the next group's first one starts where the last object's ends.
    const segments = listed.filter((s) => s.startLsn >= covered);
    if (segments.length <= size) continue;
    // What the small objects of this stretch already say is taken from them; the rest is read from the segments.
    const known =
      size > group
        ? await readIndexObjects(store, coveringIndexObjects(objects.filter((o) => o.group === group && o.startLsn >= covered)))
        : new Map<string, IndexedFacts>();
    for (let i = 0; i + size < segments.length; i += size) {
      const refs = segments.slice(i, i + size);
      const entries = await mapLimit(refs, 16, async (s) => {
        const k = known.get(s.key);
        const header = k && k.size === s.size ? k.header : await readSegmentHeader(store, s.key);
        const marks = k && k.size === s.size ? k.marks : header.messages > 0 ? await readMarks(store, s) : [];
        return { key: s.key, size: s.size, header: encodeHeader(header), marks: marks.map(encodeMark) };
      });
      const startLsn = refs[0]!.startLsn;
      const endLsn = refs.at(-1)!.endLsn;
      const key = `${INDEX_DIR}${size}/${lsnKey(startLsn)}-${lsnKey(endLsn)}.json.br`;
      const body = brotliCompressSync(
        Buffer.from(JSON.stringify({ formatVersion: INDEX_FORMAT_VERSION, segments: entries } satisfies StoredIndex)),
      );
      await store.putBytes(key, body);
      objects.push({ key, size: body.length, group: size, startLsn, endLsn });
      written.push(key);
    }
  }
  return written;
}

// JSON has no bigint and no bytes: LSNs, times and checksums as text.

interface StoredIndex {
  formatVersion: number;
  segments: { key: string; size: number; header: Record<string, unknown>; marks: { name: string; commitLsn: string }[] }[];
}

const BIGINT_FIELDS = ['startLsn', 'endLsn', 'firstCommitLsn', 'lastCommitLsn', 'firstCommitTime', 'lastCommitTime'] as const;

function encodeHeader(h: SegmentHeader): Record<string, unknown> {
  const out: Record<string, unknown> = { ...h, bodySha256: h.bodySha256.toString('hex') };
  for (const f of BIGINT_FIELDS) out[f] = h[f].toString();
  return out;
}

function decodeHeader(h: Record<string, unknown>): SegmentHeader {
  const out = { ...h, bodySha256: Buffer.from(h.bodySha256 as string, 'hex') } as Record<string, unknown>;
  for (const f of BIGINT_FIELDS) out[f] = BigInt(h[f] as string);
  return out as unknown as SegmentHeader;
}

const encodeMark = (m: Mark) => ({ name: m.name, commitLsn: m.commitLsn.toString() });
const decodeMark = (m: { name: string; commitLsn: string }): Mark => ({ name: m.name, commitLsn: BigInt(m.commitLsn) });
