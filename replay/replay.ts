import type pg from 'pg';
import type { Logger } from '../src/core/log.js';
import { formatLsn } from '../src/core/lsn.js';
import { formatMicros } from '../src/core/units.js';
import { BEGIN, COMMIT, DELETE, EntryScanner, INSERT, MESSAGE, RELATION, TRUNCATE, UPDATE } from '../src/segment/entry-scanner.js';
import type { RelationDef } from '../src/segment/format.js';
import { CorruptSegmentError } from '../src/segment/reader.js';
import { segmentReaders } from '../src/store/change-log.js';
import { DDL_PREFIX, type CapturedDdl } from '../src/source/ddl-capture.js';
import type { Store } from '../src/store/store.js';
import { Applier, type TableRows } from './applier.js';
import { Planner } from './planner.js';
import { ReplayProgress } from './progress.js';
import { indexArchive, planReplay, type ReplayPlan } from './resolve.js';
import { describeTarget, type Target } from './target.js';

export interface ReplayOptions {
  store: Store;
  target: Target;
  exclusive: boolean;
  /** Only these tables (`schema.table`); all when undefined. */
  tables?: Set<string>;
  /** Memory for folding changes before they are applied (default 512 MiB). */
  memoryBytes?: number;
  log: Logger;
}

/** What replay.json records. */
export interface ReplayReport {
  target: string;
  exclusive: boolean;
  /** The last transaction replayed; null when the state is the base's. */
  resolved: { commitLsn: string; endLsn: string; xid: number; commitTime: string } | null;
  base: { lsn: string; snapshotTime: string; key: string };
  segments: string[];
  tables: TableRows[];
  changesApplied: number;
  /** How many batches the changes were folded into (each applied in bulk; the first with the base). */
  batches: number;
  seconds: number;
  store: string;
}

/**
 * Which base and segments a replay uses, and where it stops: resolved before any database is
 * touched, so that a target the archive cannot reach fails at once (and alongside connecting).
 */
export async function prepareReplay(options: ReplayOptions): Promise<ReplayPlan> {
  const index = await indexArchive(options.store, { headers: 'tail' });
  return planReplay(index, options.target, options.exclusive);
}

/**
 * The replay path (DESIGN §5): the newest base at or before the target, then the segments after
 * it up to the target, folded into net effects and applied in bulk — all in one transaction of
 * the given connection, so a failure (a damaged segment found at its end, say) leaves nothing.
 */
export async function replay(client: pg.Client, options: ReplayOptions, planned?: ReplayPlan): Promise<ReplayReport> {
  const started = Date.now();
  const { store, log } = options;
  const plan = planned ?? (await prepareReplay(options));
  log.info(
    { target: describeTarget(options.target), base: formatLsn(plan.base.lsn), segments: plan.segments.length, ...(plan.upTo !== undefined ? { upTo: formatLsn(plan.upTo) } : {}) },
    'replaying',
  );
  await client.query(`begin; set datestyle = 'ISO, MDY'; set intervalstyle = 'postgres'`);
  const applier = new Applier(client, { store, base: plan.base, manifest: plan.manifest, schema: plan.schema, only: options.tables }, log);
  const planner = new Planner(applier, options.memoryBytes, log);
  const wantedByDef = new Map<RelationDef, boolean>();
  const wanted = (r: RelationDef) => {
    let w = wantedByDef.get(r);
    if (w === undefined) wantedByDef.set(r, (w = !options.tables || options.tables.has(`${r.schema}.${r.name}`)));
    return w;
  };

  let resolved: ReplayReport['resolved'] = null;
  let current: { xid: number; commitLsn: bigint; commitTime: bigint } | undefined;
  let include = false;
  const progress = new ReplayProgress(plan.segments.length, log);
  const scanner = new EntryScanner();
  for await (const { ref, reader } of segmentReaders(store, plan.segments)) {
    progress.segmentStarted(planner.changes);
    planner.expect((await reader.header()).tables);
    const relations = new Map<number, RelationDef>();
    const relation = (oid: number) => {
      const def = relations.get(oid);
      if (!def) throw new CorruptSegmentError(`${store.description}/${ref.key}: a change refers to relation ${oid} before defining it`);
      return def;
    };
    for await (const chunk of reader.wholeEntryChunks()) {
      scanner.reset(chunk);
      while (scanner.next()) {
        switch (scanner.kind) {
          case BEGIN:
            current = scanner.begin();
            // Before the base: already in it. After the cut: read on only to verify the segment's checksum.
            include = current.commitLsn >= plan.base.lsn && (plan.upTo === undefined || current.commitLsn <= plan.upTo);
            break;
          case COMMIT: {
            if (include) {
              const c = scanner.commit();
              resolved = { commitLsn: formatLsn(c.commitLsn), endLsn: formatLsn(c.endLsn), xid: current!.xid, commitTime: formatMicros(c.commitTime) };
            }
            progress.update(planner.changes);
            include = false;
            break;
          }
          case RELATION: {
            const e = scanner.entry();
            if (e.kind === 'relation') relations.set(e.relation.oid, e.relation);
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
            const e = scanner.entry();
            if (!include || e.kind !== 'truncate') break;
            const truncated = e.relations.map(relation).filter(wanted);
            if (truncated.length) await planner.truncate(truncated);
            break;
          }
          case MESSAGE: {
            if (!include) break;
            const e = scanner.entry();
            if (e.kind === 'message' && e.prefix === DDL_PREFIX) await planner.ddl(JSON.parse(e.content.toString('utf8')) as CapturedDdl);
            break;
          }
          default:
            break;
        }
      }
    }
  }
  await planner.finish();
  progress.stop(planner.changes);
  const tables = await applier.countRows();
  const committing = Date.now();
  await client.query('commit');
  log.debug({ ms: Date.now() - committing }, 'committed');
  const report: ReplayReport = {
    target: describeTarget(options.target),
    exclusive: options.exclusive,
    resolved,
    base: { lsn: plan.schema.lsn, snapshotTime: plan.schema.snapshotTime, key: plan.base.prefix },
    segments: plan.segments.map((s) => s.key),
    tables,
    changesApplied: planner.changes,
    batches: planner.batchCount,
    seconds: (Date.now() - started) / 1000,
    store: store.description,
  };
  log.info({ resolved, changesApplied: report.changesApplied, seconds: report.seconds }, 'replay done');
  return report;
}
