import { Readable } from 'node:stream';
import { ExitCode, UserError } from '../core/errors.js';
import { formatLsn, lsnKey } from '../core/lsn.js';
import { CorruptSegmentError, readOpenHeader, SegmentReader } from '../segment/reader.js';
import { keysOf } from './keys.js';
import { parseSegmentKey, SEGMENTS_DIR } from '../segment/name.js';
import type { SealedSegment } from '../segment/writer.js';
import { NotASegmentError, type SegmentHeader } from '../segment/format.js';
import type { Store, StoredObject } from '../store/store.js';

export interface SegmentRef {
  key: string;
  startLsn: bigint;
  endLsn: bigint;
  size: number;
}

/**
 * The change log's index is the listing of `segments/` (docs/ARCHITECTURE.md, Store layout): sorted by key, which is
 * sorted by start LSN. Anything else in that folder is refused rather than skipped.
 */
export async function listSegments(store: Store, startingFrom?: bigint, limit?: number): Promise<SegmentRef[]> {
  const objects = await store.list(SEGMENTS_DIR, { startAfter: startAfterKey(startingFrom), limit });
  return objects.map((o) => segmentRef(store, o));
}

/**
 * The same listing streamed a page at a time: a walk over every segment holds one page of them.
 * With `onStray`, an object that is no segment is handed to it and passed over (verify reports
 * it) instead of refused.
 */
export async function* streamSegments(store: Store, startingFrom?: bigint, onStray?: (key: string) => void): AsyncGenerator<SegmentRef> {
  for await (const page of store.listPages(SEGMENTS_DIR, { startAfter: startAfterKey(startingFrom) }))
    for (const o of page) {
      if (onStray && !parseSegmentKey(o.key)) onStray(o.key);
      else yield segmentRef(store, o);
    }
}

/**
 * Segments starting at or after an LSN: keys sort by start LSN, and `<LSN-1>.` sorts after
 * every key starting at LSN-1 (`-` < `.`) and before any starting at LSN.
 */
function startAfterKey(startingFrom: bigint | undefined): string | undefined {
  return startingFrom !== undefined && startingFrom > 0n ? `${SEGMENTS_DIR}${lsnKey(startingFrom - 1n)}.` : undefined;
}

function segmentRef(store: Store, o: StoredObject): SegmentRef {
  const range = parseSegmentKey(o.key);
  if (!range) {
    throw new UserError(
      `${store.description}/${o.key} is not a pgtape segment name (expected segments/<startLSN16>-<endLSN16>.pgtape)`,
      'move the file out of the segments/ folder; pgtape owns it',
    );
  }
  return { key: o.key, size: o.size, ...range };
}

/**
 * The header of the last segment holding transactions, read back from the end (segments without
 * transactions only mark positions). Every header read is kept on its ref. A segment whose header
 * cannot be read is passed over: targets before it still work, and a reader that needs it
 * reports the damage.
 */
export async function lastCommittedHeader(
  store: Store,
  refs: (SegmentRef & { header?: SegmentHeader })[],
): Promise<SegmentHeader | undefined> {
  for (let i = refs.length - 1; i >= 0; i--) {
    const ref = refs[i]!;
    try {
      ref.header ??= await readSegmentHeader(store, ref.key);
    } catch (err) {
      if (err instanceof NotASegmentError || err instanceof CorruptSegmentError) continue;
      throw err;
    }
    if (ref.header.transactions > 0) return ref.header;
  }
  return undefined;
}

/**
 * A reader of one stored segment; from `downloaded` bytes when it was fetched already. Reading
 * it to its end, or stopping early through its iterators, releases the stored object; a reader
 * used for less (its header alone) must be closed — or use readSegmentHeader instead.
 */
export function openSegment(store: Store, ref: { key: string; size?: number }, downloaded?: Buffer): SegmentReader {
  const source = downloaded ? Readable.from([downloaded]) : store.read(ref.key, { size: ref.size });
  return new SegmentReader(source, `${store.description}/${ref.key}`, downloaded, keysOf(store));
}

/** A stored segment's header, read with a small ranged read (the body is not fetched). */
export function readSegmentHeader(store: Store, key: string): Promise<SegmentHeader> {
  return readOpenHeader((offset, length) => store.readRange(key, offset, length), `${store.description}/${key}`, keysOf(store));
}

/**
 * Stores a sealed segment. Idempotent: a segment already stored under the same key with the same
 * body checksum is left as it is (a re-upload after a crash); a different body under that key is
 * an error, never an overwrite.
 */
export async function putSegment(store: Store, segment: SealedSegment): Promise<{ versionId?: string; existed: boolean }> {
  const existing = await store.stat(segment.key);
  if (existing) {
    const header = await readSegmentHeader(store, segment.key);
    if (sameSegment(header, segment.header)) return { existed: true };
    throw new UserError(
      `${store.description}/${segment.key} already exists with a different body (range ${formatLsn(segment.header.startLsn)}–${formatLsn(segment.header.endLsn)})`,
      'two archivers may be writing the same store, or the store holds another stream: stop and inspect it with pgtape verify',
      ExitCode.CONFLICT,
    );
  }
  const result = await store.putFile(segment.key, segment.path);
  return { ...result, existed: false };
}

/**
 * Whether a stored segment is the one sealed again under its name (a re-upload after a crash).
 * An encrypted body differs every time it is sealed (a new data key), and an archiver holding a
 * public key cannot open the stored one: the same range of the same stream with the same facts
 * (every count, commit, xid and the body's size before encryption) is the same segment.
 */
function sameSegment(stored: SegmentHeader, sealed: SegmentHeader): boolean {
  if (!stored.encryption && !sealed.encryption) return stored.bodySha256.equals(sealed.bodySha256);
  const facts = (h: SegmentHeader) =>
    JSON.stringify(
      { ...h, bodySha256: undefined, encryption: undefined, tables: h.tables.map((t) => ({ ...t, schema: '', name: '' })) },
      (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v),
    );
  return Boolean(stored.encryption) === Boolean(sealed.encryption) && facts(stored) === facts(sealed);
}
