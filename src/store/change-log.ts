import type { Tuple } from '../pgoutput/messages.js';
import type { RelationDef, SegmentEntry } from '../segment/format.js';
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

/** Every entry of the given segments (all of them by default), in log order, streamed. */
export async function* readLog(store: Store, segments?: SegmentRef[], onSegment?: (ref: SegmentRef) => void): AsyncGenerator<LogEntry> {
  for (const ref of segments ?? (await listSegments(store))) {
    onSegment?.(ref);
    const relations = new Map<number, RelationDef>();
    const relation = (oid: number) => {
      const def = relations.get(oid);
      if (!def) throw new Error(`${store.description}/${ref.key}: a change refers to relation ${oid} before defining it`);
      return def;
    };
    for await (const e of openSegment(store, ref.key).entries()) {
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
