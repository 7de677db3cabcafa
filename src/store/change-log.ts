import type { Tuple } from '../pgoutput/messages.js';
import type { RelationDef, SegmentEntry } from '../segment/format.js';
import { readAll } from './read.js';
import type { SegmentReader } from '../segment/reader.js';
import { listSegments, openSegment, type SegmentRef } from './segments.js';
import type { Store } from './store.js';

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

/** Segments downloaded ahead of the one being read, and the largest one fetched whole. */
const PREFETCH_DEPTH = 2;
const PREFETCH_MAX_BYTES = 64 << 20;

/**
 * Readers of the given segments (all of them by default), in log order. The next segments are
 * downloaded while one is read (bounded in count and size), so a remote store's latency
 * overlaps with decoding and applying; a downloaded segment is checked whole before it is read.
 */
export async function* segmentReaders(store: Store, segments?: SegmentRef[]): AsyncGenerator<{ ref: SegmentRef; reader: SegmentReader }> {
  const refs = segments ?? (await listSegments(store));
  const ahead = new Map<number, Promise<Buffer>>();
  const prefetch = (i: number) => {
    const ref = refs[i];
    if (!ref || ahead.has(i) || ref.size > PREFETCH_MAX_BYTES) return;
    const download = readAll(store, ref.key);
    download.catch(() => {}); // surfaced when the segment's turn comes
    ahead.set(i, download);
  };
  for (let i = 0; i < refs.length; i++) {
    const ref = refs[i]!;
    for (let k = 0; k <= PREFETCH_DEPTH; k++) prefetch(i + k);
    const fetched = ahead.get(i);
    ahead.delete(i);
    yield { ref, reader: openSegment(store, ref.key, fetched ? await fetched : undefined) };
  }
}

/** Every entry of the given segments (all of them by default), in log order, streamed. */
export async function* readLog(store: Store, segments?: SegmentRef[], onSegment?: (ref: SegmentRef) => void): AsyncGenerator<LogEntry> {
  for await (const { ref, reader } of segmentReaders(store, segments)) {
    onSegment?.(ref);
    const relations = new Map<number, RelationDef>();
    const relation = (oid: number) => {
      const def = relations.get(oid);
      if (!def) throw new Error(`${store.description}/${ref.key}: a change refers to relation ${oid} before defining it`);
      return def;
    };
    for await (const e of reader.entries()) {
      switch (e.kind) {
        case 'relation':
          relations.set(e.relation.oid, e.relation);
          break;
        case 'insert':
        case 'update':
        case 'delete':
          yield { ...e, relation: relation(e.relation) };
          break;
        case 'truncate':
          yield { ...e, relations: e.relations.map(relation) };
          break;
        default:
          yield e;
      }
    }
  }
}
