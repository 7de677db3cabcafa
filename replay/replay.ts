import type { SourceTable } from './target-tables.js';
import type pg from 'pg';
import type { Logger } from '../src/core/log.js';
import { formatLsn } from '../src/core/lsn.js';
import type { Store } from '../src/store/store.js';
import { DeferredSink } from './deferred-sink.js';
import { Applier, type TableRows } from './applier.js';
import { DetachedPartitions, EnumLabels } from './enum-labels.js';
import { feedLog, typeChangesOf, type Resolved } from './log-reader.js';
import { Planner } from './planner.js';
import { ReplayProgress } from './progress.js';
import type { ReplayPlan } from './plan.js';
import { describeTarget, type Target } from '../src/log/target.js';
import { SESSION_SETTINGS, type Jobs } from './jobs.js';

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
  resolved: Resolved | null;
  base: { lsn: string; snapshotTime: string; key: string };
  /** The segments read: how many, the first and the last (a replay of a year reads half a million). */
  segments: { count: number; first: string | null; last: string | null };
  tables: TableRows[];
  changesApplied: number;
  /** How many batches the changes were folded into (each applied in bulk; the first with the base). */
  batches: number;
  seconds: number;
  store: string;
  /** Every place the replay may differ from the source, as warned while replaying. */
  warnings: { message: string; [field: string]: unknown }[];
}

/**
 * The replay path (docs/ARCHITECTURE.md): the newest base at or before the target, then the segments after
 * it up to the target, folded into net effects and applied in bulk — all in one transaction of
 * the given connection, so a failure (a damaged segment found at its end, say) leaves nothing.
 * With `jobs` (a cluster nobody else uses), tables are loaded and indexed in parallel, each job
 * committing on its own (docs/ARCHITECTURE.md, "Parallel jobs"): the caller removes the cluster
 * on failure. `plan` comes from prepareReplay, which every output runs before touching a database.
 */
export async function replay(
  /** A connection, or one still being made: the log is read and folded meanwhile. */
  connection: pg.Client | Promise<pg.Client>,
  options: ReplayOptions,
  plan: ReplayPlan,
  /** Filled, when given, with the source's oid of each table replayed (pgtape compact needs them). */
  sourceOids?: Map<string, SourceTable>,
  jobs?: Jobs,
): Promise<ReplayReport> {
  // A value that needs an enum label the replay's type lacks fails the (one) transaction: it is
  // rolled back and made again with the label in the type from its creation (EnumLabels).
  const labels = new EnumLabels();
  const detached = new DetachedPartitions();
  for (;;) {
    try {
      return await replayOnce(connection, options, plan, labels, detached, sourceOids, jobs);
    } catch (err) {
      const label = labels.learn(err);
      const partition = label ? undefined : detached.learn(err);
      if (!label && !partition) throw err;
      if (jobs) connection = await jobs.restart();
      else await (await connection).query('rollback');
      // Once: every label the span's captured DDL adds, so that one attempt more makes them all.
      if (label && !labels.read)
        labels.foresee(plan.schema.enums, await typeChangesOf(options.store, plan.segments(), { from: plan.base.lsn, upTo: plan.upTo }));
      if (label) options.log.info(label, 'a value uses an enum label the replay had not made yet: replaying again with it');
      else options.log.info(partition, 'a row lies outside its partition: the source detached it; replaying again with it detached');
    }
  }
}

async function replayOnce(
  connection: pg.Client | Promise<pg.Client>,
  options: ReplayOptions,
  plan: ReplayPlan,
  labels: EnumLabels,
  detached: DetachedPartitions,
  sourceOids: Map<string, SourceTable> | undefined,
  jobs: Jobs | undefined,
): Promise<ReplayReport> {
  const started = Date.now();
  const { store, log } = options;
  labels.restart();
  log.info(
    {
      target: describeTarget(options.target),
      base: formatLsn(plan.base.lsn),
      segments: plan.span.count,
      ...(plan.upTo !== undefined ? { upTo: formatLsn(plan.upTo) } : {}),
    },
    'replaying',
  );
  const session = (async () => {
    const client = await connection;
    await client.query(`begin; ${SESSION_SETTINGS}`);
    const applier = new Applier(
      client,
      { store, base: plan.base, manifest: plan.manifest, schema: plan.schema, only: options.tables, labels, detached, pool: jobs?.pool },
      log,
    );
    applier.preload(plan.span.changedInPlace);
    return { client, applier };
  })();
  session.catch(() => {}); // surfaced where it is awaited
  const planner = new Planner(new DeferredSink(session.then((s) => s.applier)), options.memoryBytes, log, plan.span.changedInPlace);
  planner.expectInAll(plan.span.changes);
  const progress = new ReplayProgress(plan.span.count, log);
  let resolved: Resolved | null;
  let client: pg.Client;
  let applier: Applier;
  try {
    resolved = await feedLog(store, plan.segments(), { from: plan.base.lsn, upTo: plan.upTo }, planner, {
      tables: options.tables,
      progress,
    });
    await planner.finish();
    ({ client, applier } = await session);
    await applier.finish();
  } catch (err) {
    await (await session.catch(() => undefined))?.applier.settled();
    throw err;
  }
  progress.stop(planner.changes);
  const tables = await applier.countRows();
  for (const [name, table] of applier.sourceOids()) sourceOids?.set(name, table);
  const committing = Date.now();
  await client.query('commit');
  log.debug({ ms: Date.now() - committing }, 'committed');
  const report: ReplayReport = {
    target: describeTarget(options.target),
    exclusive: options.exclusive,
    resolved,
    base: { lsn: plan.schema.lsn, snapshotTime: plan.schema.snapshotTime, key: plan.base.prefix },
    segments: { count: plan.span.count, first: plan.span.first ?? null, last: plan.span.last ?? null },
    tables,
    changesApplied: planner.changes,
    batches: planner.batchCount,
    seconds: (Date.now() - started) / 1000,
    store: store.description,
    // A compacted base carries what the replay that made it warned of: still true of this one.
    warnings: [...(plan.schema.compactedFrom?.warnings ?? []), ...applier.warnings],
  };
  log.info({ resolved, changesApplied: report.changesApplied, seconds: report.seconds }, 'replay done');
  return report;
}
