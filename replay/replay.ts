import type pg from 'pg';
import type { Logger } from '../src/core/log.js';
import { formatLsn } from '../src/core/lsn.js';
import { formatMicros } from '../src/core/units.js';
import { readLog } from '../src/store/change-log.js';
import { DDL_PREFIX, type CapturedDdl } from '../src/source/ddl-capture.js';
import type { Store } from '../src/store/store.js';
import { Applier, type TableRows } from './applier.js';
import { Planner } from './planner.js';
import { ReplayProgress } from './progress.js';
import { indexArchive, planReplay } from './resolve.js';
import { describeTarget, type Target } from './target.js';

export interface ReplayOptions {
  store: Store;
  target: Target;
  exclusive: boolean;
  /** Only these tables (`schema.table`); all when undefined. */
  tables?: Set<string>;
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
  seconds: number;
  store: string;
}

/**
 * The replay path (DESIGN §5): the newest base at or before the target, then the segments after
 * it up to the target, folded into net effects and applied in bulk — all in one transaction of
 * the given connection, so a failure (a damaged segment found at its end, say) leaves nothing.
 */
export async function replay(client: pg.Client, options: ReplayOptions): Promise<ReplayReport> {
  const started = Date.now();
  const { store, log } = options;
  const index = await indexArchive(store, { headers: 'tail' });
  const plan = await planReplay(index, options.target, options.exclusive);
  log.info(
    { target: describeTarget(options.target), base: formatLsn(plan.base.lsn), segments: plan.segments.length, ...(plan.upTo !== undefined ? { upTo: formatLsn(plan.upTo) } : {}) },
    'replaying',
  );
  await client.query(`set datestyle = 'ISO, MDY'; set intervalstyle = 'postgres'`);
  await client.query('begin');
  const applier = new Applier(client, log);
  const planner = new Planner(applier);
  // The base loads while the first changes are read and folded.
  await planner.submit(() => applier.loadBase(store, plan.base, plan.manifest, plan.schema, options.tables));
  const wanted = (schema: string, name: string) => !options.tables || options.tables.has(`${schema}.${name}`);

  let resolved: ReplayReport['resolved'] = null;
  let current: { xid: number; commitLsn: bigint; commitTime: bigint } | undefined;
  let include = false;
  const progress = new ReplayProgress(plan.segments.length, log);
  for await (const e of readLog(store, plan.segments, () => progress.segmentStarted(applier.changesApplied))) {
    switch (e.kind) {
      case 'begin':
        // Before the base: already in it. After the cut: read on only to verify the segment's checksum.
        include = e.commitLsn >= plan.base.lsn && (plan.upTo === undefined || e.commitLsn <= plan.upTo);
        current = e;
        break;
      case 'commit':
        if (include) resolved = { commitLsn: formatLsn(e.commitLsn), endLsn: formatLsn(e.endLsn), xid: current!.xid, commitTime: formatMicros(e.commitTime) };
        progress.update(applier.changesApplied);
        include = false;
        break;
      case 'insert':
        if (include && wanted(e.relation.schema, e.relation.name)) {
          const wait = planner.insert(e.relation, e.new);
          if (wait) await wait;
        }
        break;
      case 'update':
        if (include && wanted(e.relation.schema, e.relation.name)) {
          const wait = planner.update(e.relation, e.key, e.old, e.new);
          if (wait) await wait;
        }
        break;
      case 'delete':
        if (include && wanted(e.relation.schema, e.relation.name)) {
          const wait = planner.delete(e.relation, e.key, e.old);
          if (wait) await wait;
        }
        break;
      case 'truncate': {
        const relations = e.relations.filter((r) => wanted(r.schema, r.name));
        if (include && relations.length) await planner.truncate(relations);
        break;
      }
      case 'message':
        if (include && e.prefix === DDL_PREFIX) await planner.ddl(JSON.parse(e.content.toString('utf8')) as CapturedDdl);
        break;
      default:
        break;
    }
  }
  await planner.finish();
  progress.stop(applier.changesApplied);
  const tables = await applier.countRows();
  await client.query('commit');
  const report: ReplayReport = {
    target: describeTarget(options.target),
    exclusive: options.exclusive,
    resolved,
    base: { lsn: plan.schema.lsn, snapshotTime: plan.schema.snapshotTime, key: plan.base.prefix },
    segments: plan.segments.map((s) => s.key),
    tables,
    changesApplied: applier.changesApplied,
    seconds: (Date.now() - started) / 1000,
    store: store.description,
  };
  log.info({ resolved, changesApplied: report.changesApplied, seconds: report.seconds }, 'replay done');
  return report;
}
