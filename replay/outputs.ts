import { createWriteStream, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { to as copyTo } from 'pg-copy-streams';
import { UserError, errorMessage } from '../src/core/errors.js';
import { interruptedBy, onInterrupt } from '../src/core/interrupt.js';
import { alive, pidNamespace } from '../src/core/spool-dir.js';
import { isWithin, lexists, makeDirectory, removeMadeDirectories, unusableDirectory } from '../src/core/paths.js';
import { DirectoryStore } from '../src/store/directory.js';
import { BASES_DIR } from '../src/log/bases.js';
import { DISCONTINUITIES_DIR } from '../src/log/discontinuities.js';
import { KMS_KEYS_DIR } from '../src/log/kms-keys.js';
import { INDEX_DIR } from '../src/log/segment-index.js';
import { SEGMENTS_DIR } from '../src/segment/name.js';
import type { Store } from '../src/store/store.js';
import { displayQualified, quoteQualified } from '../src/core/sql.js';
import { LocalCluster, runningServer } from '../src/local-pg/local-cluster.js';
import { connect, connectionLost } from '../src/source/connection.js';
import { DEFAULT_PG_MAJOR, findPgBin } from '../src/local-pg/binaries.js';
import type { Logger } from '../src/core/log.js';
import { prepareReplay, type ReplayPlan } from './plan.js';
import { replay, type ReplayOptions, type ReplayReport } from './replay.js';
import { ClusterSessions } from './jobs.js';

/** Options of the outputs that make their own cluster (--pgdata, --csv). */
export interface ClusterReplayOptions extends ReplayOptions {
  /** The Postgres major of the cluster (default: the source's, where installed). */
  major?: number;
  /** Connections loading tables and building indexes at once; 1 runs the whole replay in one session. */
  jobs: number;
}

/** Replays into an existing, empty database. */
export async function replayIntoDatabase(url: string, options: ReplayOptions): Promise<ReplayReport> {
  const planning = prepareReplay(options);
  planning.catch(() => {}); // awaited below
  const client = await connect(url, '--into');
  try {
    // Anything of the user's kind is in the way: a table, but also a type, schema or function
    // of the same name as one the replay creates would fail it halfway.
    const { rows } = await client.query<{ name: string }>(
      `with user_ns as (select oid, nspname from pg_namespace where nspname not in ('pg_catalog', 'information_schema') and nspname not like 'pg\\_%')
       select kind || ' ' || name as name from (
         select 'relation' as kind, n.nspname || '.' || c.relname as name from pg_class c join user_ns n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
         union all
         select 'type', n.nspname || '.' || t.typname from pg_type t join user_ns n on n.oid = t.typnamespace
          where t.typtype in ('b', 'c', 'd', 'e', 'r', 'm') and (t.typrelid = 0 or (select relkind from pg_class where oid = t.typrelid) = 'c')
            and t.typelem = 0 and not exists (select 1 from pg_depend d where d.objid = t.oid and d.deptype = 'e')
         union all
         select 'function', n.nspname || '.' || p.proname from pg_proc p join user_ns n on n.oid = p.pronamespace
          where not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
         union all
         select 'schema', nspname from user_ns where nspname <> 'public'
           and not exists (select 1 from pg_depend d where d.objid = user_ns.oid and d.deptype = 'e')
       ) objects order by 1 limit 5`,
    );
    if (rows.length) {
      throw new UserError(
        `the --into database is not empty (it has ${rows.map((r) => r.name).join(', ')})`,
        'replay into a new, empty database (createdb), or use --pgdata',
      );
    }
    return await replay(client, options, await planning);
  } catch (err) {
    if (!interruptedBy() && connectionLost(err))
      throw new UserError(
        `the connection to the --into database was lost during the replay (${errorMessage(err)}): the replay is one transaction, so the database holds none of it`,
        "check the server (its log says why the session ended), then run the same command again (it refuses the database if the end's commit got through)",
      );
    throw err;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The file by which a replay claims its output directory until the output is whole. */
const CLAIM = '.pgtape-replay';

/** An empty claim older than this was left by a replay killed between making it and writing its pid. */
const EMPTY_CLAIM_MS = 10_000;

/** What claimEmptyDir made: removed again if the replay fails. */
interface Claimed {
  /** Directories made for the output, outermost first: its parents, and the output itself if `madeOutput`. */
  made: string[];
  madeOutput: boolean;
}

/**
 * Claims an output directory for this replay, before anything else runs: two replays started at
 * once into the same directory must not both fill it. A new directory is made here (`mode` for
 * the output itself); either way the claim file is created exclusively, so exactly one of them goes
 * on. Another replay's failure may remove the directory between two of these steps: then the
 * claim is tried again from the start.
 */
function claimEmptyDir(dir: string, option: string, store: Store, mode?: number): Claimed {
  // A directory store's folders are pgtape's: its listings would meet the output's files (a
  // PGDATA under segments/ is "not a segment name" to every later command).
  const owned = store instanceof DirectoryStore ? ownedFolder(dir, store.root) : undefined;
  if (owned) throw new UserError(`${option} ${dir} is ${owned}, which pgtape owns`, 'give a directory outside the store');
  const unusable = unusableDirectory(dir);
  if (unusable) throw new UserError(`${option}: ${unusable}`, 'give a new or empty directory');
  const claimed: Claimed = { made: [], madeOutput: false };
  for (let attempt = 1; ; attempt++) {
    try {
      claimOnce(dir, option, mode, claimed);
      return claimed;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && attempt < 5) continue;
      removeMadeDirectories(claimed.made);
      throw err;
    }
  }
}

/** The folders of a store's layout (docs/ARCHITECTURE.md, "Store layout"), each pgtape's alone. */
const STORE_FOLDERS = [BASES_DIR, SEGMENTS_DIR, DISCONTINUITIES_DIR, INDEX_DIR, KMS_KEYS_DIR.slice(0, KMS_KEYS_DIR.indexOf('/') + 1)];

/** The store itself or the folder of its layout that `dir` would be in, if any (beside them, `dir` is the user's). */
function ownedFolder(dir: string, root: string): string | undefined {
  if (isWithin(root, dir)) return `the store ${root} itself`;
  const folder = STORE_FOLDERS.find((f) => isWithin(dir, join(root, f)));
  return folder && `inside the store's folder ${join(root, folder)}`;
}

function claimOnce(dir: string, option: string, mode: number | undefined, claimed: Claimed): void {
  // Made here, or a moment ago by another replay: the claim decides. An existing directory is
  // left as it is until the claim is won and it is found empty (LocalCluster makes it 0700 then).
  claimed.madeOutput = false;
  claimed.made.push(...makeDirectory(dirname(dir)));
  if (!lexists(dir)) {
    const made = makeDirectory(dir, mode);
    claimed.made.push(...made);
    claimed.madeOutput = made.length > 0;
  }
  const claim = join(dir, CLAIM);
  let killed: string | undefined;
  try {
    writeFileSync(claim, `${ownClaim()}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const text = readFileSync(claim, 'utf8').trim();
    const [pid, namespace] = [Number(text.split(' ')[0]), text.split(' ')[1]];
    const ours = namespace === pidNamespace();
    // Empty: claimed an instant ago, its pid not written yet — or long ago by a replay killed in
    // that instant. In this pid namespace, a live pid other than this process's is another
    // replay, and this process's own a killed one's (the pid used again). In another namespace
    // (or a claim that names none, holding this process's pid) nothing can be told.
    const live =
      text === ''
        ? Date.now() - statSync(claim).mtimeMs < EMPTY_CLAIM_MS
        : Number.isInteger(pid) && pid > 0 && pid !== process.pid && (namespace === undefined || ours) && alive(pid);
    if (live)
      throw new UserError(
        `${option} ${dir} is being filled by another replay${text ? ` (pid ${pid})` : ''}`,
        'wait for it to end, or give another directory',
      );
    if (text !== '' && (namespace === undefined ? pid === process.pid : !ours))
      throw new UserError(
        `${option} ${dir} is claimed by a replay (pid ${pid}) that cannot be seen from here: one in another container sharing this volume, or one killed in an earlier run of this container`,
        'make sure no replay is filling it, then remove the directory; or give another',
      );
    killed = text === '' ? 'a replay' : `a replay, pid ${pid},`;
  }
  const others = readdirSync(dir).filter((entry) => entry !== CLAIM);
  if (killed === undefined && others.length === 0) return;
  if (killed === undefined) {
    if (claimed.madeOutput) rmSync(dir, { recursive: true, force: true });
    else rmSync(claim, { force: true });
  }
  // What a replay killed with SIGKILL leaves: its claim, and maybe its server still running.
  const server = runningServer(dir);
  const why = server
    ? ` (a PostgreSQL server, pid ${server}, is running on it: a replay killed before it could stop it?)`
    : killed !== undefined
      ? ` (${killed} was killed while filling it)`
      : '';
  throw new UserError(
    `${option} ${dir} is not empty${why}`,
    server
      ? `stop that server (kill ${server}, or pg_ctl stop -D ${dir} as the user it runs as), then remove the directory or give another`
      : killed !== undefined
        ? 'remove the directory, or give another'
        : 'give a new or empty directory',
  );
}

/** What this process's claim holds: its pid, and its pid namespace (a pid means nothing in another container sharing the volume). */
function ownClaim(): string {
  return `${process.pid} ${pidNamespace()}`;
}

function holdsClaim(dir: string): boolean {
  try {
    return readFileSync(join(dir, CLAIM), 'utf8').trim() === ownClaim();
  } catch {
    return true; // no claim left: nobody else's either
  }
}

/** Ends the claim, once the output is whole. */
function releaseClaim(dir: string): void {
  rmSync(join(dir, CLAIM), { force: true });
}

/**
 * An output directory this replay fills: on failure, or when interrupted (SIGINT, SIGTERM),
 * what it holds is removed (and the directory, if the replay made it) and the server the replay
 * started is stopped — either the finished output or nothing, and no server left running.
 */
async function owned<T>(
  dir: string,
  option: string,
  store: Store,
  fill: (stopOnInterrupt: (stop: () => Promise<void>) => void) => Promise<T>,
  mode?: number,
): Promise<T> {
  const { made, madeOutput } = claimEmptyDir(dir, option, store, mode);
  let stop: (() => Promise<void>) | undefined;
  let clearing: Promise<void> | undefined;
  // Once, whoever asks first (a failure, a signal): the server stopped, then the output removed,
  // unless another replay holds the directory now.
  const clear = () =>
    (clearing ??= (async () => {
      await stop?.().catch(() => {});
      if (!holdsClaim(dir)) return;
      if (madeOutput) rmSync(dir, { recursive: true, force: true });
      else if (existsSync(dir)) for (const entry of readdirSync(dir)) rmSync(join(dir, entry), { recursive: true, force: true });
      removeMadeDirectories(made);
    })());
  const forget = onInterrupt(clear);
  try {
    const result = await fill((s) => (stop = s));
    releaseClaim(dir);
    return result;
  } catch (err) {
    await clear();
    throw err;
  } finally {
    forget();
  }
}

/**
 * Initializes a fresh data directory with local Postgres binaries, replays into it, and shuts
 * it down cleanly: the next pipeline step can start it as it is.
 */
export async function replayIntoPgdata(dir: string, options: ClusterReplayOptions): Promise<ReplayReport> {
  return owned(
    dir,
    '--pgdata',
    options.store,
    async (stopOnInterrupt) => {
      const plan = await prepareReplay(options);
      // Stoppable while it starts: an interrupt then waits for the server to be up, and stops it.
      // A cluster nobody else uses loads without WAL or fsync, and is made durable once at the end.
      const creating = LocalCluster.create({ dataDir: dir, major: serverMajor(plan, options), loading: true, keep: CLAIM });
      stopOnInterrupt(async () => (await creating.catch(() => undefined))?.stop('immediate'));
      const report = await withSessions(creating, options.jobs, (sessions) =>
        replay(sessions.main, options, plan, undefined, sessions.parallel),
      );
      const cluster = await creating;
      await cluster.handOver();
      writeFileSync(join(dir, 'replay.json'), JSON.stringify(report, null, 2) + '\n');
      return report;
    },
    0o700,
  );
}

/** Replays into a throwaway cluster, then writes one CSV file (with a header) per table. */
export async function replayIntoCsv(dir: string, options: ClusterReplayOptions): Promise<ReplayReport> {
  return owned(dir, '--csv', options.store, async (stopOnInterrupt) => {
    const plan = await prepareReplay(options);
    const creating = LocalCluster.create({ major: serverMajor(plan, options), unsafeFast: true, loading: true });
    stopOnInterrupt(async () => (await creating.catch(() => undefined))?.destroy());
    try {
      const report = await withSessions(creating, options.jobs, async (sessions) => {
        const r = await replay(sessions.main, options, plan, undefined, sessions.parallel);
        await sessions.pool.each(r.tables, async (client, t) => {
          const file = join(dir, `${csvName(displayQualified(t.schema, t.name))}.csv`);
          // A scan joining one already running elsewhere would start mid-table: the same replay
          // would write its rows in another order each time (a large table, with jobs).
          await client.query('set synchronize_seqscans = off');
          await pipeline(
            // A query, not the table: COPY of a table leaves its generated columns out.
            client.query(copyTo(`copy (select * from ${quoteQualified(t.schema, t.name)}) to stdout with (format csv, header)`)),
            createWriteStream(file),
          );
        });
        return r;
      });
      writeFileSync(join(dir, 'replay.json'), JSON.stringify(report, null, 2) + '\n');
      return report;
    } finally {
      await (await creating.catch(() => undefined))?.destroy();
    }
  });
}

/**
 * The Postgres major a replay starts its own server with: the one asked for, else the source's
 * (its schema — extension versions, syntax — is that version's), where its binaries are installed.
 */
function serverMajor(plan: ReplayPlan, options: { major?: number; log: Logger }): number {
  if (options.major !== undefined) return options.major;
  const source = Math.floor(plan.schema.serverVersion / 10000);
  if (source === DEFAULT_PG_MAJOR) return source;
  try {
    findPgBin(source);
    return source;
  } catch {
    options.log.warn(
      { source, using: DEFAULT_PG_MAJOR },
      `the archive comes from PostgreSQL ${source}, whose server binaries are not installed: replaying with PostgreSQL ${DEFAULT_PG_MAJOR} (install them, or point PGTAPE_PG_BIN at them, for an exact replay)`,
    );
    return DEFAULT_PG_MAJOR;
  }
}

/** A file name for schema.table: anything but `/` and NUL may stay; leading dots are escaped. */
function csvName(name: string): string {
  return name.replace(/[/\u0000%]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/^\./, '%2e');
}

/**
 * Connections to a cluster still being made, handed over at once: the replay reads and folds
 * the log while initdb and the server's start run (docs/ARCHITECTURE.md, "The replay path").
 */
async function withSessions<T>(cluster: Promise<LocalCluster>, jobs: number, fn: (sessions: ClusterSessions) => Promise<T>): Promise<T> {
  const sessions = new ClusterSessions(cluster, jobs, "the replay's own server");
  try {
    return await fn(sessions);
  } catch (err) {
    const made = await cluster.catch(() => undefined);
    throw made ? await made.explain(err, 'the replay') : err;
  } finally {
    await sessions.end();
  }
}
