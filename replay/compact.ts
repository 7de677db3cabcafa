import type { SourceTable } from './target-tables.js';
import { captureBase } from '../src/base/capture.js';
import { UserError } from '../src/core/errors.js';
import { onInterrupt } from '../src/core/interrupt.js';
import type { Logger } from '../src/core/log.js';
import { formatLsn, parseLsn } from '../src/core/lsn.js';
import { quoteIdent, quoteQualified } from '../src/core/sql.js';
import { findPgBin } from '../src/local-pg/binaries.js';
import { LocalCluster } from '../src/local-pg/local-cluster.js';
import { basePrefix, type BaseSchema } from '../src/log/bases.js';
import type { WrappingKey } from '../src/core/key-wrap.js';
import { keyForNewFiles } from '../src/log/encrypted-archive.js';
import { describeTarget, type Target } from '../src/log/target.js';
import { connect } from '../src/source/connection.js';
import type { Store } from '../src/store/store.js';
import { prepareReplay } from './plan.js';
import { replay, type ReplayReport } from './replay.js';
import { ClusterSessions, defaultJobs } from './jobs.js';

/** The publication a compaction reads its scratch cluster through (it never leaves that cluster). */
const SCRATCH_PUBLICATION = 'pgtape_compact';

export interface Compacted {
  /** The new base's LSN; undefined when the newest base already is the state at the target. */
  lsn?: bigint;
  /** The base it was folded from. */
  from: bigint;
  /** The replay that made it (none when there was nothing to fold). */
  report?: ReplayReport;
}

/**
 * A base made from the archive alone (docs/ARCHITECTURE.md, "Compacted bases and retention"): the archive is
 * replayed to the target into a scratch cluster of the source's major version — the replay's
 * own path, schema changes included — and that cluster is then read as `pgtape base` reads a
 * source, in one snapshot, into `base/<LSN16>/` at the end LSN of the last transaction folded.
 * The tables keep the source's oids (the segments after it name tables by oid) and the schema
 * the source's identity, so replays and verify cannot tell it from a base taken on the source —
 * except through `compactedFrom`, which carries what that replay warned of.
 */
export async function compactBase(options: {
  store: Store;
  target: Target;
  memoryBytes?: number;
  log: Logger;
  /** The key the new base is encrypted for; by default the archive's, when it is encrypted and a key given to read with is it. */
  encryptFor?: WrappingKey;
}): Promise<Compacted> {
  const { store, log } = options;
  await store.checkWritable();
  const plan = await prepareReplay({ store, target: options.target, exclusive: false });
  // A compacted base is never less protected than the archive it comes from.
  const encryptFor = await keyForNewFiles(store, options.encryptFor, 'pgtape compact');
  // Nothing committed after the base up to the target: no cluster is started for nothing.
  const last = plan.upTo ?? plan.lastCommitLsn;
  if (last === undefined || last < plan.base.lsn) return { from: plan.base.lsn };
  const major = Math.floor(plan.schema.serverVersion / 10000);
  try {
    findPgBin(major);
  } catch {
    // Another major's catalog functions would write DDL the source's version may not read.
    throw new UserError(
      `compacting needs PostgreSQL ${major}'s server binaries (the archive's source is of that version), and they are not installed`,
      `install them, or point PGTAPE_PG_BIN at their bin directory`,
    );
  }
  // Interrupted — even while the scratch cluster is being made — it is removed, and a base not
  // finished has no manifest (it does not exist).
  // One removal, awaited by both the signal and the command's own end (the replay fails as its
  // server stops; the CLI then waits for the signal's exit). The handler comes first: a signal
  // during the cluster's (partly synchronous) making would otherwise kill the process with its
  // directories made.
  let creating: Promise<LocalCluster> | undefined;
  let destroying: Promise<void> | undefined;
  const destroy = () => (destroying ??= (creating ?? Promise.reject(new Error('no cluster'))).then((c) => c.destroy()).catch(() => {}));
  // A base being copied when the command fails or is stopped: its files go, so that no unfinished
  // base is left for verify to report (a base whose manifest was stored is whole, and stays).
  let capture: { prefix: string; done: Promise<unknown> } | undefined;
  const abandonCapture = async () => {
    if (!capture) return;
    await capture.done.catch(() => {});
    if (await store.stat(`${capture.prefix}manifest.json`)) return;
    for (const o of await store.list(capture.prefix)) await store.delete(o.key);
  };
  const forget = onInterrupt(() => destroy().then(abandonCapture));
  creating = LocalCluster.create({ major, unsafeFast: true });
  let cluster: LocalCluster;
  try {
    cluster = await creating;
  } catch (err) {
    forget();
    throw err;
  }
  try {
    // The scratch cluster is nobody else's, and removed on failure: the replay loads it on parallel jobs.
    const sessions = new ClusterSessions(Promise.resolve(cluster), defaultJobs(), "the compaction's scratch server");
    const sourceOids = new Map<string, SourceTable>();
    let report: ReplayReport;
    try {
      report = await replay(
        sessions.main,
        { store, target: options.target, exclusive: false, memoryBytes: options.memoryBytes, log },
        plan,
        sourceOids,
        sessions.parallel,
      );
      if (!report.resolved) return { from: plan.base.lsn, report };
      await publishReplayedTables(await sessions.main, plan.schema, sourceOids);
    } finally {
      await sessions.end();
    }
    const lsn = parseLsn(report.resolved.endLsn);
    if (await store.stat(`${basePrefix(lsn)}manifest.json`)) {
      log.info({ lsn: formatLsn(lsn) }, 'a base at this point is stored already');
      return { lsn, from: plan.base.lsn, report };
    }
    // One snapshot, as on a source; nobody else writes to the scratch cluster.
    const holder = await connect(cluster.url());
    try {
      await holder.query('begin transaction isolation level repeatable read');
      const snapshot = (await holder.query<{ s: string }>('select pg_export_snapshot() as s')).rows[0]!.s;
      const scratchVersion = Number((await holder.query<{ v: string }>(`select current_setting('server_version_num') as v`)).rows[0]!.v);
      capture = {
        prefix: basePrefix(lsn),
        done: captureBase({
          source: cluster.url(),
          store,
          publication: SCRATCH_PUBLICATION,
          lsn,
          snapshot,
          facts: { database: plan.schema.database, systemIdentifier: plan.schema.systemIdentifier, serverVersion: scratchVersion },
          log,
          amend: (schema) => asSourceBase(schema, plan.schema, sourceOids, report),
          encryptFor,
        }),
      };
      await capture.done;
    } catch (err) {
      await abandonCapture();
      throw err;
    } finally {
      await holder.end().catch(() => {});
    }
    return { lsn, from: plan.base.lsn, report };
  } catch (err) {
    throw await cluster.explain(err, 'the compaction');
  } finally {
    await destroy();
    forget();
  }
}

/**
 * Publishes, in the scratch cluster, the tables the replay made, as the source's publication
 * did: partitioned roots through their root, and the columns the source's column lists kept.
 */
async function publishReplayedTables(client: import('pg').Client, from: BaseSchema, sourceOids: Map<string, SourceTable>): Promise<void> {
  const kept = new Map(from.tables.filter((t) => t.unpublishedColumns).map((t) => [JSON.stringify([t.schema, t.name]), t]));
  const tables = [...sourceOids.keys()].map((key) => {
    const [schema, name] = JSON.parse(key) as [string, string];
    const columns = kept.get(key)?.columns.map((c) => quoteIdent(c.name));
    return `${quoteQualified(schema, name)}${columns ? ` (${columns.join(', ')})` : ''}`;
  });
  if (tables.length === 0) {
    throw new UserError(
      'the archive has no table at the target: there is nothing to compact',
      'compact an archive of a publication with tables',
    );
  }
  const viaRoot = from.tables.some((t) => t.partitioned);
  await client.query(
    `create publication ${quoteIdent(SCRATCH_PUBLICATION)} for table ${tables.join(', ')} with (publish_via_partition_root = ${viaRoot})`,
  );
}

/** The scratch cluster's schema made the source's: its identity, its tables' oids and row filters, the time of the point. */
function asSourceBase(schema: BaseSchema, from: BaseSchema, sourceOids: Map<string, SourceTable>, report: ReplayReport): void {
  const filters = new Map(from.tables.map((t) => [JSON.stringify([t.schema, t.name]), t.rowFilter]));
  for (const t of schema.tables) {
    const key = JSON.stringify([t.schema, t.name]);
    const source = sourceOids.get(key);
    if (source === undefined) {
      throw new UserError(
        `compacting: the replay made ${quoteQualified(t.schema, t.name)} without knowing its oid on the source`,
        'report this; take a base from the source instead (pgtape base)',
      );
    }
    t.oid = source.oid;
    // Its columns as the source numbers and types them: the Relation messages after the base say
    // the source's type oids (the scratch cluster's differ for a type made after initdb), and a
    // rename is known by the column's number (the scratch cluster has no dropped columns between).
    for (const c of t.columns) {
      const known = source.columns.get(c.name);
      if (known && known.typeOid > 0) c.typeOid = known.typeOid;
      if (known?.attnum !== undefined) c.attnum = known.attnum;
      else delete c.attnum;
    }
    const rowFilter = filters.get(key);
    if (rowFilter) t.rowFilter = rowFilter;
  }
  schema.snapshotTime = report.resolved!.commitTime;
  schema.serverVersion = from.serverVersion;
  schema.compactedFrom = { lsn: from.lsn, warnings: report.warnings };
}

/** What compact prints: the LSN of the base that now serves the target (stdout), and a note when it made none. */
export function sayCompacted(c: Compacted, target: Target): void {
  if (c.lsn === undefined) {
    process.stderr.write(
      `pgtape: the base at ${formatLsn(c.from)} already is the archive at ${describeTarget(target)}: nothing to compact\n`,
    );
  }
  process.stdout.write(`${formatLsn(c.lsn ?? c.from)}\n`);
}
