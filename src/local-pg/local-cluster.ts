import { setTimeout as sleep } from 'node:timers/promises';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { alive, privateTempDir, sweepStale } from '../core/spool-dir.js';
import {
  appendFileSync,
  chownSync,
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { makeDirectory } from '../core/paths.js';
import { createServer } from 'node:net';
import { tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { findPgBin, reachableBin, serverUserReaches } from './binaries.js';
import { initdbFromTemplate } from './initdb-template.js';
import { awaitSharedSignal } from '../core/interrupt.js';
import { UserError } from '../core/errors.js';

const execFileAsync = promisify(execFile);
type ExecError = Error & { stdout?: string; stderr?: string; signal?: NodeJS.Signals | null };

export interface LocalClusterOptions {
  major?: number;
  /** Where the data directory goes; a fresh temporary directory by default. */
  dataDir?: string;
  port?: number;
  password?: string;
  /** postgresql.conf settings appended after initdb. */
  settings?: Record<string, string | number>;
  /** Faster and less durable: fsync off. For tests and throwaway replays. */
  unsafeFast?: boolean;
  /**
   * Settings for one bulk load that nobody else sees (replay --pgdata), until handOver() puts the
   * normal ones back: no WAL for tables created in the loading transaction (wal_level minimal),
   * no fsync, no full-page writes, memory for the index builds.
   */
  loading?: boolean;
  /**
   * A file of the caller's in `dataDir` (replay's claim on its output), left in place: the
   * directory counts as empty with it, and initdb, which wants an empty one, then runs into a
   * folder inside it whose entries are moved up.
   */
  keep?: string;
}

/** Temporary directories: a scratch cluster's, and the one initdb reads the password from. */
const SCRATCH_PREFIX = 'pgtape-pg-';
const PASSWORD_PREFIX = 'pgtape-pw-';

/** Marks the block handOver() removes from postgresql.conf. */
const LOADING_BLOCK = '# pgtape: while loading (removed when the cluster is handed over)';

/** Postgres refuses to run as root: as root, the server runs as this unprivileged user. */
export const SERVER_USER = 'postgres';

/**
 * A Postgres cluster of our own, from local server binaries: initdb, start, stop, remove.
 * Used by the tests, the demo and `replay --pgdata`.
 */
export class LocalCluster {
  private process: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly onExit = () => this.process?.kill('SIGQUIT');
  /** The server being stopped by stop(): its exit is expected. */
  private stopping: ChildProcess | undefined;
  /** How the server ended when nobody stopped it (killed, crashed), with its log's last lines. */
  private death: string | undefined;
  /** The first crash of a server process, after which the server reset every session. */
  private crash: string | undefined;

  private constructor(
    readonly bin: string,
    readonly dataDir: string,
    readonly port: number,
    readonly password: string,
    private readonly ownsParent: string | undefined,
    private readonly ids: { uid: number; gid: number } | undefined,
  ) {}

  static async create(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const ids = serverUserIds();
    const bin = await reachableBin(findPgBin(options.major), ids, SERVER_USER);
    if (!options.dataDir) await sweepStaleClusters();
    const ownsParent = options.dataDir ? undefined : privateTempDir(SCRATCH_PREFIX);
    // Absolute: the server is found again by its directory (runningServer), whatever the cwd was.
    const dataDir = resolve(options.dataDir ?? join(ownsParent!, 'data'));
    try {
      return await LocalCluster.init(bin, ids, dataDir, ownsParent, options);
    } catch (err) {
      // A start that failed or was interrupted (initdb, the server) leaves nothing: what it made goes.
      if (ownsParent) rmSync(ownsParent, { recursive: true, force: true });
      throw err;
    }
  }

  private static async init(
    bin: string,
    ids: { uid: number; gid: number } | undefined,
    dataDir: string,
    ownsParent: string | undefined,
    options: LocalClusterOptions,
  ): Promise<LocalCluster> {
    // Postgres refuses a data directory others can read (an empty one given with mode 0755, say).
    makeDirectory(dataDir, 0o700);
    if (ids) {
      if (ownsParent) chownSync(ownsParent, ids.uid, ids.gid);
      chownSync(dataDir, ids.uid, ids.gid);
      if (!serverUserReaches(dataDir, ids)) {
        throw new UserError(
          `the unprivileged user ${SERVER_USER}, which runs the Postgres server when pgtape runs as root, cannot reach ${dataDir}`,
          'make its parent directories traversable by others (chmod o+x), or choose a directory under /tmp',
        );
      }
    }
    const password = options.password ?? 'pgtape';
    // initdb reads the password as the server user: a private directory that user owns.
    const pwdir = privateTempDir(PASSWORD_PREFIX);
    const pwfile = join(pwdir, 'pw');
    writeFileSync(pwfile, password + '\n', { mode: 0o600 });
    if (ids) {
      chownSync(pwdir, ids.uid, ids.gid);
      chownSync(pwfile, ids.uid, ids.gid);
    }
    try {
      const args = ['-U', 'postgres', '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C'];
      // Not spawnSync: a replay reads and folds its log while the cluster is made.
      const initdb = (dir: string) =>
        execFileAsync(join(bin, 'initdb'), ['-D', dir, ...args, `--pwfile=${pwfile}`], {
          encoding: 'utf8',
          ...(ids ?? {}),
          env: serverEnv(),
        }).then(
          () => {},
          async (err: ExecError) => {
            await awaitSharedSignal(err);
            throw new Error(`initdb failed: ${err.stderr || err.stdout || err.message}`);
          },
        );
      // A loading cluster is synced whole when handed over; neither it nor a throwaway one needs
      // initdb's own sync. With pgtape's own password, either is a copy of one initdb made before;
      // one with a password of its own (the tests') is made by initdb: a template per password
      // would leave 40 MiB per cluster behind.
      if (options.unsafeFast || options.loading) args.push('--no-sync');
      const initdbBeside = keepingFile(initdb, options.keep);
      if ((options.unsafeFast || options.loading) && options.password === undefined)
        await initdbFromTemplate(bin, ids, dataDir, args, password, initdbBeside, options.keep);
      else await initdbBeside(dataDir);
    } finally {
      rmSync(pwdir, { recursive: true, force: true });
    }
    const port = options.port ?? (await freePort());
    const settings: Record<string, string | number> = {
      listen_addresses: "'127.0.0.1'",
      port,
      unix_socket_directories: "''",
      wal_level: 'logical',
      max_wal_senders: 20,
      max_replication_slots: 20,
      ...(options.unsafeFast ? { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' } : {}),
      ...options.settings,
    };
    const block = (title: string, values: Record<string, string | number>) =>
      `\n${title}\n${Object.entries(values)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n')}\n`;
    appendFileSync(join(dataDir, 'postgresql.conf'), block('# pgtape', settings));
    // Later lines win: removing this block restores the settings above.
    if (options.loading) appendFileSync(join(dataDir, 'postgresql.conf'), block(LOADING_BLOCK, loadingSettings()));
    const cluster = new LocalCluster(bin, dataDir, port, password, ownsParent, ids);
    try {
      await cluster.start();
    } catch (err) {
      await cluster.stop('immediate').catch(() => {});
      throw err;
    }
    return cluster;
  }

  /** Starts a data directory made earlier (by `replay --pgdata`, say) on a free port, with the binaries of its major. */
  static async open(dataDir: string, options: { major?: number; password?: string } = {}): Promise<LocalCluster> {
    const port = await freePort();
    const ids = serverUserIds();
    const version = join(dataDir, 'PG_VERSION');
    const major = options.major ?? (existsSync(version) ? Number(readFileSync(version, 'utf8').trim()) : undefined);
    const cluster = new LocalCluster(
      await reachableBin(findPgBin(major), ids, SERVER_USER),
      dataDir,
      port,
      options.password ?? 'pgtape',
      undefined,
      ids,
    );
    await cluster.start();
    return cluster;
  }

  url(database = 'postgres', user = 'postgres', password = this.password): string {
    return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  get running(): boolean {
    return this.process !== undefined;
  }

  async start(): Promise<void> {
    if (this.process) return;
    const child = spawn(join(this.bin, 'postgres'), ['-D', this.dataDir, '-p', String(this.port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: serverEnv(),
      ...(this.ids ?? {}),
    });
    let output = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      output = (output + d).slice(-8000);
      // A backend killed (the OOM killer, say): the server restarts every session, ours too.
      const crash = /server process \(PID \d+\) was terminated by .*|server process \(PID \d+\) exited with exit code .*/.exec(d);
      if (crash) this.crash ??= `a server process ended: ${crash[0]}`;
      // A session ended from outside (pg_terminate_backend, SIGTERM to its process), not by stop().
      const ended = /FATAL:\s+terminating connection due to administrator command/.exec(d);
      if (ended && this.stopping !== child)
        this.crash ??= `a session was ended from outside (${ended[0]}): pg_terminate_backend, or a signal to its process`;
    });
    this.process = child;
    this.death = undefined;
    this.crash = undefined;
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        if (this.stopping !== child) {
          const tail = output.trim().split('\n').slice(-8).join('\n');
          this.death = `${signal ? `killed by ${signal}` : `exit code ${code}`}${tail ? `; its log ends:\n${tail}` : ''}`;
        }
        resolve();
      }),
    );
    process.once('exit', this.onExit);
    const deadline = Date.now() + 60_000;
    for (;;) {
      // Killed, it has a signal and no exit code.
      if (child.exitCode !== null || child.signalCode !== null) {
        this.process = undefined;
        await this.exited;
        throw new UserError(
          `the PostgreSQL server pgtape started (${this.dataDir}) stopped while starting (${this.death ?? 'no reason given'})`,
          'its log says why (memory, disk space, a port or a setting it refused): fix that and run again',
        );
      }
      const client = new pg.Client({ connectionString: this.url() });
      // The server dying under the probe must fail the start, not crash the process ('error' unheard).
      client.on('error', () => {});
      try {
        await client.connect();
        await client.end();
        return;
      } catch (err) {
        await client.end().catch(() => {});
        if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 60 s:\n${output}`);
        await sleep(100);
      }
    }
  }

  /**
   * `err` as it is, or — when this server stopped though nobody stopped it (killed, out of memory,
   * a crash) — an error that says so, with the server's last log lines: node-postgres only says its
   * connection ended. `user` names what used the server ("the replay").
   */
  async explain(err: unknown, user: string): Promise<unknown> {
    // The server logs why a moment after the connection broke (it reaps the process first); a
    // statement Postgres refused, or pgtape's own error, is not that.
    const deadline = Date.now() + 1000;
    while (!this.death && !this.crash && this.process && !refusedOrOwn(err) && Date.now() < deadline) await sleep(20);
    const why = this.death ? `stopped (${this.death})` : this.crash ? `lost its session (${this.crash})` : undefined;
    if (!why) return err;
    return new UserError(
      `${user}'s own PostgreSQL server ${why}`,
      'its log says why (memory, disk space, a process that killed it): fix that and run again',
    );
  }

  /** fast: roll back sessions and shut down cleanly; immediate: crash-like, recovery on next start. */
  async stop(mode: 'smart' | 'fast' | 'immediate' = 'fast'): Promise<void> {
    const child = this.process;
    if (!child) return;
    this.stopping = child;
    child.kill(mode === 'smart' ? 'SIGTERM' : mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
    await this.exited;
    this.process = undefined;
    this.stopping = undefined;
    process.removeListener('exit', this.onExit);
  }

  async restart(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.stop(mode);
    await this.start();
  }

  /**
   * After a load with `loading`: stops the server cleanly, puts the normal settings back, and
   * flushes the whole data directory to disk (initdb --sync-only) — the cluster is then as
   * durable as one that never ran without fsync, and starts as any other.
   */
  async handOver(): Promise<void> {
    await this.stop('fast');
    const conf = join(this.dataDir, 'postgresql.conf');
    const text = readFileSync(conf, 'utf8');
    const at = text.indexOf(`\n${LOADING_BLOCK}\n`);
    if (at >= 0) writeFileSync(conf, text.slice(0, at + 1));
    // Not spawnSync: a signal meanwhile must reach its handler, not wait for the sync to end.
    await execFileAsync(join(this.bin, 'initdb'), ['--sync-only', '-D', this.dataDir], {
      encoding: 'utf8',
      ...(this.ids ?? {}),
      env: serverEnv(),
    }).catch(async (err: ExecError) => {
      await awaitSharedSignal(err);
      throw new Error(`initdb --sync-only failed: ${err.stderr || err.stdout || err.message}`);
    });
  }

  /** Stops the server and removes the data directory if this cluster created it. */
  async destroy(): Promise<void> {
    await this.stop('immediate');
    if (this.ownsParent) rmSync(this.ownsParent, { recursive: true, force: true });
  }
}

/**
 * A load nobody else sees: COPY into a table created in the same transaction writes no WAL at
 * wal_level minimal (which needs max_wal_senders 0); nothing is fsynced until handOver() syncs
 * the whole directory once; index builds get memory (an eighth of the machine's, at most 1 GB);
 * no checkpoint and no autovacuum in the middle.
 */
function loadingSettings(): Record<string, string | number> {
  const maintenanceMb = Math.max(64, Math.min(1024, Math.floor(totalmem() / 8 / 2 ** 20)));
  return {
    wal_level: 'minimal',
    max_wal_senders: 0,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    maintenance_work_mem: `'${maintenanceMb}MB'`,
    max_wal_size: "'8GB'",
    checkpoint_timeout: "'1h'",
    autovacuum: 'off',
  };
}

/** As root, the ids of the unprivileged user the server runs as, created if missing. */
function serverUserIds(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const lookup = () => spawnSync('id', ['-u', SERVER_USER], { encoding: 'utf8' });
  let r = lookup();
  if (r.status !== 0) {
    spawnSync('groupadd', ['--system', SERVER_USER]);
    spawnSync('useradd', ['--system', '-g', SERVER_USER, '--no-create-home', SERVER_USER]);
    r = lookup();
    if (r.status !== 0) throw new Error(`running as root and cannot create the user ${SERVER_USER} for the Postgres server`);
  }
  const gid = spawnSync('id', ['-g', SERVER_USER], { encoding: 'utf8' });
  return { uid: Number(r.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function serverEnv(): NodeJS.ProcessEnv {
  // Messages in English whatever the machine's locale; no PG* variables leaking in.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LC_ALL: 'C', LANG: 'C' };
  return env;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * An error that says all there is: a statement the server refused (it is up), or one of pgtape's
 * own. Anything else — node-postgres' "Connection terminated", ECONNRESET, or a TypeError from its
 * internals when a query meets a connection already gone — may be the server going away.
 */
function refusedOrOwn(err: unknown): boolean {
  if (err instanceof UserError) return true;
  const e = err as { severity?: string };
  return err instanceof pg.DatabaseError && e.severity === 'ERROR';
}

/**
 * Scratch clusters of pgtape processes killed with SIGKILL (no exit handler ran): their server,
 * still running on a directory nobody will use, is stopped, and the directory removed.
 */
async function sweepStaleClusters(): Promise<void> {
  const parent = tmpdir();
  await sweepStale(parent, PASSWORD_PREFIX);
  await sweepStale(parent, SCRATCH_PREFIX, async (dir) => {
    const postmaster = runningServer(join(dir, 'data'));
    if (!postmaster) return;
    process.kill(postmaster, 'SIGQUIT');
    for (let i = 0; i < 100 && alive(postmaster); i++) await sleep(50);
  });
}

/** initdb into a directory that may hold `keep` (initdb refuses a directory that is not empty). */
function keepingFile(initdb: (dir: string) => Promise<void>, keep: string | undefined): (dir: string) => Promise<void> {
  return async (dir) => {
    if (!keep || !existsSync(join(dir, keep))) return initdb(dir);
    const inner = join(dir, '.pgtape-initdb');
    await initdb(inner);
    for (const entry of readdirSync(inner)) renameSync(join(inner, entry), join(dir, entry));
    rmdirSync(inner);
  };
}

/** The pid of a Postgres server running on `dataDir` (its postmaster.pid, still that server's), if any. */
export function runningServer(dataDir: string): number | undefined {
  try {
    const postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!postmaster || !alive(postmaster)) return undefined;
    // Still the server of this directory, not a pid reused since: a postmaster works in its data
    // directory (relative paths and symlinks resolved on both sides).
    return realpathSync(`/proc/${postmaster}/cwd`) === realpathSync(dataDir) ? postmaster : undefined;
  } catch {
    return undefined; // no server ran, it stopped, or this system has no /proc
  }
}
