import { ExitCode, UserError } from '../src/core/errors.js';
import { formatLsn } from '../src/core/lsn.js';
import { formatMicros } from '../src/core/units.js';
import { EntryScanner } from '../src/segment/entry-scanner.js';
import { BEGIN, COMMIT, DELETE, INSERT, MESSAGE, RELATION, TRUNCATE, UPDATE, type RelationDef } from '../src/segment/format.js';
import { isSegmentDamage } from '../src/segment/reader.js';
import { parseCapturedDdl, type CapturedDdl } from '../src/source/ddl-capture.js';
import { DDL_PREFIX, SEQUENCES_PREFIX } from '../src/source/logical-messages.js';
import { SegmentRelations, segmentReaders, type SegmentSource } from '../src/log/change-log.js';
import type { Store } from '../src/store/store.js';
import type { Planner } from './planner.js';
import type { ReplayProgress } from './progress.js';

/** The last transaction a replay took: what it resolved its target to. */
export interface Resolved {
  commitLsn: string;
  endLsn: string;
  xid: number;
  commitTime: string;
}

export interface LogCut {
  /** Transactions committed before this were in the base. */
  from: bigint;
  /** The last commit LSN to take (all when undefined). */
  upTo: bigint | undefined;
}

/**
 * The stage between the store and the planner: reads the segments of a replay in order and
 * hands the planner each change of the transactions inside the cut (and of the tables asked
 * for), straight from the decompressed bytes. Returns the last transaction taken.
 */
export async function feedLog(
  store: Store,
  segments: SegmentSource,
  cut: LogCut,
  planner: Planner,
  options: { tables?: Set<string>; progress: ReplayProgress },
): Promise<Resolved | null> {
  // Weak: each segment defines its relations anew; a map would keep every one of a year's segments.
  const wantedByDef = new WeakMap<RelationDef, boolean>();
  const wanted = (r: RelationDef) => {
    let w = wantedByDef.get(r);
    if (w === undefined) wantedByDef.set(r, (w = !options.tables || options.tables.has(`${r.schema}.${r.name}`)));
    return w;
  };
  let resolved: Resolved | null = null;
  let current: { xid: number; commitLsn: bigint } | undefined;
  let include = false;
  const scanner = new EntryScanner();
  // Decompressed ahead: the bodies are kept until their batch is applied anyway, and brotli,
  // not the fold, sets the pace of reading.
  for await (const { ref, reader } of segmentReaders(store, segments, { decompressAhead: true })) {
    options.progress.segmentStarted(planner.changes);
    const what = `${store.description}/${ref.key}`;
    const relations = new SegmentRelations(what);
    const relation = (oid: number) => relations.get(oid);
    try {
      planner.expect((await reader.header()).tables);
      for await (const chunk of reader.wholeEntryChunks()) {
        scanner.reset(chunk);
        while (scanner.next()) {
          switch (scanner.kind) {
            case BEGIN:
              current = scanner.begin();
              // Before the base: already in it. After the cut: read on only to verify the segment's checksum.
              include = inCut(cut, current.commitLsn);
              break;
            case COMMIT:
              if (include) {
                const c = scanner.commit();
                resolved = {
                  commitLsn: formatLsn(c.commitLsn),
                  endLsn: formatLsn(c.endLsn),
                  xid: current!.xid,
                  commitTime: formatMicros(c.commitTime),
                };
              }
              options.progress.update(planner.changes);
              include = false;
              break;
            case RELATION: {
              const e = scanner.entry();
              if (e.kind === 'relation') relations.define(e.relation);
              break;
            }
            case INSERT:
            case UPDATE:
            case DELETE:
              if (include) {
                const r = relation(scanner.relation);
                if (wanted(r)) {
                  const wait = planner.change(scanner, r);
                  if (wait) await wait;
                }
              }
              break;
            case TRUNCATE: {
              if (!include) break;
              const e = scanner.entry();
              const truncated = e.kind === 'truncate' ? e.relations.map(relation).filter(wanted) : [];
              if (truncated.length) await planner.truncate(truncated);
              break;
            }
            case MESSAGE: {
              if (!include) break;
              const e = scanner.entry();
              if (e.kind === 'message' && e.prefix === DDL_PREFIX) await planner.ddl(parseCapturedDdl(e.content));
              if (e.kind === 'message' && e.prefix === SEQUENCES_PREFIX)
                planner.sequences(JSON.parse(e.content.toString('utf8')) as Record<string, string>);
              break;
            }
            default:
              break;
          }
        }
      }
    } catch (err) {
      throw damaged(what, err);
    }
  }
  return resolved;
}

/** Whether a transaction committed at this LSN is one the replay takes (after the base, up to the target). */
function inCut(cut: LogCut, commitLsn: bigint): boolean {
  return commitLsn >= cut.from && (cut.upTo === undefined || commitLsn <= cut.upTo);
}

/** A segment that cannot be read is the archive's damage: said as such, with what to do (exit 4). */
function damaged(what: string, err: unknown): unknown {
  if (isSegmentDamage(err)) {
    const message = err.message.startsWith(what) ? err.message : `${what}: ${err.message}`;
    return new UserError(
      `the archive is damaged: ${message}`,
      'nothing was replayed; pgtape verify names the damaged objects and the stretches still replayable',
      ExitCode.ATTENTION,
    );
  }
  return err;
}

/** A captured DDL command of a replay's span, and its place among them (EnumLabels' clock). */
export interface NumberedDdl {
  at: number;
  ddl: CapturedDdl;
}

/**
 * The captured DDL of the span that may change an enum type (types made, altered, renamed or
 * dropped, schemas renamed), each numbered by its place among every captured command the span holds, as a replay
 * counts them; nothing else is kept and no change is folded. Read when a replay must begin again
 * for an enum label, to learn every label the span adds at once (EnumLabels.foresee).
 */
export async function typeChangesOf(store: Store, segments: SegmentSource, cut: LogCut): Promise<NumberedDdl[]> {
  const out: NumberedDdl[] = [];
  let include = false;
  let at = 0;
  const scanner = new EntryScanner();
  for await (const { ref, reader } of segmentReaders(store, segments, { decompressAhead: true })) {
    try {
      await reader.header();
      for await (const chunk of reader.wholeEntryChunks()) {
        scanner.reset(chunk);
        while (scanner.next()) {
          if (scanner.kind === BEGIN) {
            include = inCut(cut, scanner.begin().commitLsn);
          } else if (scanner.kind === MESSAGE && include) {
            const e = scanner.entry();
            if (e.kind !== 'message' || e.prefix !== DDL_PREFIX) continue;
            at++;
            // Rewritten rows travel as messages of their own: large, and no type's.
            if (!['"types"', '"droppedObjects"', '"renamedSchemas"'].some((k) => e.content.includes(k))) continue;
            const { types, droppedObjects, renamedSchemas } = parseCapturedDdl(e.content);
            if (types || droppedObjects || renamedSchemas) out.push({ at, ddl: { tag: '', types, droppedObjects, renamedSchemas } });
          }
        }
      }
    } catch (err) {
      throw damaged(`${store.description}/${ref.key}`, err);
    }
  }
  return out;
}
