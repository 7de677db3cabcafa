import type { Tuple } from '../pgoutput/messages.js';
import { BufferTuple } from '../pgoutput/tuple.js';
import { readAll } from '../store/read.js';
import { EntryScanner, TupleView } from '../segment/entry-scanner.js';
import { DELETE, INSERT, UPDATE, type RelationDef, type SegmentEntry } from '../segment/format.js';
import { CorruptSegmentError, type SegmentReader } from '../segment/reader.js';
import { openSegment, streamSegments, type SegmentRef } from './segments.js';
import type { Store } from '../store/store.js';

/**
 * A change-log entry with its relations resolved: what readers (log, replay, diff) work with,
 * instead of each tracking the Relation entries of every segment.
 */
export type LogEntry =
  | Extract<SegmentEntry, { kind: 'begin' | 'commit' | 'origin' | 'message' }>
  | { kind: 'insert'; relation: RelationDef; new: Tuple }
  | { kind: 'update'; relation: RelationDef; key?: Tuple; old?: Tuple; new: Tuple }
  | { kind: 'delete'; relation: RelationDef; key?: Tuple; old?: Tuple }
  | { kind: 'truncate'; relations: RelationDef[]; flags: number };

/**
 * Segments are downloaded ahead of the one being read within a window of bytes and of count:
 * small segments many at a time (each one a request, whose latency is what a remote store costs),
 * large ones a few. A segment larger than PREFETCH_MAX_BYTES is streamed when its turn comes.
 */
const PREFETCH_WINDOW_BYTES = 64 << 20;
const PREFETCH_MAX_AHEAD = 32;
const PREFETCH_MAX_BYTES = 64 << 20;

/** Segments as a caller has them: a list, or a walk of the index that yields them in turn. */
export type SegmentSource = Iterable<SegmentRef> | AsyncIterable<SegmentRef>;

/**
 * Readers of the given segments (all of them by default), in log order. The next segments are
 * downloaded while one is read (bounded in count and bytes), so a remote store's latency
 * overlaps with decoding and applying; a downloaded segment is checked whole before it is read.
 * Only the segments within that window are taken from `segments` ahead of the one being read.
 */
export async function* segmentReaders(
  store: Store,
  segments?: SegmentSource,
  /** decompressAhead: the next segment downloaded is decompressed while one is read (SegmentReader.decompressAhead). */
  options: { decompressAhead?: boolean } = {},
): AsyncGenerator<{ ref: SegmentRef; reader: SegmentReader }> {
  const source = segments ?? streamSegments(store);
  const refs: Iterator<SegmentRef> | AsyncIterator<SegmentRef> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  const ahead: { ref: SegmentRef; download?: Promise<Buffer>; reader?: SegmentReader }[] = [];
  let aheadBytes = 0;
  let exhausted = false;
  const prefetch = async () => {
    while (!exhausted && ahead.length < PREFETCH_MAX_AHEAD) {
      const next = await refs.next();
      if (next.done) exhausted = true;
      else ahead.push({ ref: next.value });
    }
    for (const [i, a] of ahead.entries()) {
      if (a.download || a.ref.size > PREFETCH_MAX_BYTES) continue;
      if (i > 0 && aheadBytes + a.ref.size > PREFETCH_WINDOW_BYTES) break;
      a.download = readAll(store, a.ref.key, a.ref.size);
      a.download.catch(() => {}); // surfaced when the segment's turn comes
      aheadBytes += a.ref.size;
    }
  };
  let stopped = false;
  // The next segment's reader, made once its download is there, while it is still ahead.
  const openAhead = () => {
    const a = ahead[0];
    if (!a?.download || a.reader) return;
    a.download.then(
      (file) => {
        // Not once the caller has stopped: nothing would read or close it.
        if (stopped || a.reader || !ahead.includes(a)) return;
        a.reader = openSegment(store, a.ref, file);
        a.reader.decompressAhead();
      },
      () => {},
    );
  };
  let reader: SegmentReader | undefined;
  try {
    for (;;) {
      await prefetch();
      const next = ahead.shift();
      if (!next) return;
      if (next.download) aheadBytes -= next.ref.size;
      reader = next.reader ?? openSegment(store, next.ref, next.download ? await next.download : undefined);
      if (options.decompressAhead) openAhead();
      yield { ref: next.ref, reader };
    }
  } finally {
    // A caller that stops early may leave the last reader unread: its object is released, and
    // so is one decompressed ahead.
    stopped = true;
    reader?.close();
    for (const a of ahead) a.reader?.close();
    await refs.return?.();
  }
}

/** The relations one segment has defined so far: its changes name them by oid. */
export class SegmentRelations {
  private readonly defs = new Map<number, RelationDef>();

  constructor(readonly what: string) {}

  define(def: RelationDef): void {
    this.defs.set(def.oid, def);
  }

  get(oid: number): RelationDef {
    const def = this.defs.get(oid);
    if (!def) throw new CorruptSegmentError(`${this.what}: a change refers to relation ${oid} before defining it`);
    return def;
  }
}

/** A tuple of the body as ranges of its bytes (absent when `start` is -1). */
function tupleAt(view: TupleView, buf: Buffer, start: number, end: number): Tuple | undefined {
  if (start < 0) return undefined;
  view.read(buf, start, end);
  const bounds: number[] = new Array(2 * view.values);
  for (let i = 0; i < view.values; i++) {
    bounds[2 * i] = view.valueStart[i]!;
    bounds[2 * i + 1] = view.valueEnd[i]!;
  }
  return new BufferTuple(buf, view.kindsStart, view.columns, bounds);
}

/** A change without its values: what `log` needs to count changes per table. */
export interface ChangeHead {
  kind: 'insert' | 'update' | 'delete';
  relation: RelationDef;
  head: true;
}

/**
 * Entries handed out at once: enough that the turns of the generator cost nothing, few enough
 * that they die young (a whole chunk's, ten thousand or more, outlived the young generation's
 * collections and made reading slower than one entry a turn).
 */
const BATCH_ENTRIES = 256;

const CHANGE_KINDS: Record<number, ChangeHead['kind']> = { [INSERT]: 'insert', [UPDATE]: 'update', [DELETE]: 'delete' };

/**
 * Every entry of the given segments (all of them by default), in log order, streamed: up to
 * BATCH_ENTRIES at a time (of one segment), so that a million changes are not a million turns of
 * an async generator. An entry's values are views valid while its batch is
 * being handled. With `values: false`, changes come as their kind and relation only: their
 * tuples are not decoded.
 */
export function readLog(store: Store, segments?: SegmentSource, onSegment?: (ref: SegmentRef) => void): AsyncGenerator<LogEntry[]>;
export function readLog(
  store: Store,
  segments: SegmentSource | undefined,
  onSegment: ((ref: SegmentRef) => void) | undefined,
  options: { values: boolean },
): AsyncGenerator<(LogEntry | ChangeHead)[]>;
export async function* readLog(
  store: Store,
  segments?: SegmentSource,
  onSegment?: (ref: SegmentRef) => void,
  options: { values: boolean } = { values: true },
): AsyncGenerator<(LogEntry | ChangeHead)[]> {
  const scanner = new EntryScanner();
  const view = new TupleView();
  for await (const { ref, reader } of segmentReaders(store, segments)) {
    onSegment?.(ref);
    const relations = new SegmentRelations(`${store.description}/${ref.key}`);
    const relation = (oid: number) => relations.get(oid);
    for await (const chunk of reader.wholeEntryChunks()) {
      let batch: (LogEntry | ChangeHead)[] = [];
      scanner.reset(chunk);
      while (scanner.next()) {
        if (batch.length === BATCH_ENTRIES) {
          yield batch;
          batch = [];
        }
        const change = CHANGE_KINDS[scanner.kind];
        if (change && !options.values) {
          batch.push({ kind: change, relation: relation(scanner.relation), head: true });
          continue;
        }
        if (change) {
          // Read in place (no protobuf objects): a million changes are most of a log.
          const s = scanner;
          const rel = relation(s.relation);
          if (change === 'insert') batch.push({ kind: change, relation: rel, new: tupleAt(view, s.buf, s.newStart, s.newEnd)! });
          else if (change === 'update')
            batch.push({
              kind: change,
              relation: rel,
              key: tupleAt(view, s.buf, s.keyStart, s.keyEnd),
              old: tupleAt(view, s.buf, s.oldStart, s.oldEnd),
              new: tupleAt(view, s.buf, s.newStart, s.newEnd)!,
            });
          else
            batch.push({
              kind: change,
              relation: rel,
              key: tupleAt(view, s.buf, s.keyStart, s.keyEnd),
              old: tupleAt(view, s.buf, s.oldStart, s.oldEnd),
            });
          continue;
        }
        let e: SegmentEntry;
        try {
          e = scanner.entry();
        } catch (err) {
          throw new CorruptSegmentError(`${relations.what}: body cannot be decoded (${(err as Error).message})`);
        }
        switch (e.kind) {
          case 'relation':
            relations.define(e.relation);
            break;
          case 'insert':
          case 'update':
          case 'delete':
            batch.push({ ...e, relation: relation(e.relation) });
            break;
          case 'truncate':
            batch.push({ ...e, relations: e.relations.map(relation) });
            break;
          default:
            batch.push(e);
        }
      }
      if (batch.length) yield batch;
    }
  }
}

/**
 * Change entries of the given segments whose transaction's commit LSN passes `include`, with
 * that LSN: in readLog's batches, handed to `each` without a turn of an async generator apiece.
 */
export async function eachEntryIn(
  store: Store,
  segments: SegmentSource,
  include: (commitLsn: bigint) => boolean,
  each: (e: LogEntry, commitLsn: bigint) => void,
): Promise<void> {
  let on = false;
  let commitLsn = 0n;
  for await (const entries of readLog(store, segments)) {
    for (const e of entries) {
      if (e.kind === 'begin') {
        on = include(e.commitLsn);
        commitLsn = e.commitLsn;
      } else if (on) each(e, commitLsn);
    }
  }
}
