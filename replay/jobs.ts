import { availableParallelism } from 'node:os';
import type pg from 'pg';
import type { LocalCluster } from '../src/local-pg/local-cluster.js';
import { connect } from '../src/source/connection.js';

// Parallel jobs (docs/ARCHITECTURE.md, "Parallel jobs"): in a cluster nobody else uses
// (--pgdata, --csv), tables are loaded and indexes built on several connections at once, as
// pg_restore -j does. Each job commits on its own; the cluster is either handed over whole or
// removed, so no one ever sees a half-made database.

/**
 * The settings of every connection of a replay: values read as the base wrote them; function
 * bodies checked when called, not when made (as pg_restore does: a function made by captured DDL
 * may name a table made after it). Session-wide, so that a commit between jobs keeps them.
 */
export const SESSION_SETTINGS = `set datestyle = 'ISO, MDY'; set intervalstyle = 'postgres'; set check_function_bodies = off`;

/** More jobs than a replay's own cluster has connections for (max_connections 100) would fail it. */
export const MAX_JOBS = 64;

/** Connections beside the replay's own session, at most `size` of them, opened as needed. */
export class JobPool {
  private readonly idle: pg.Client[] = [];
  private readonly open = new Set<pg.Client>();
  private readonly waiting: ((client: pg.Client | undefined) => void)[] = [];
  private opening = 0;
  private ended = false;

  constructor(
    private readonly connect: () => Promise<pg.Client>,
    readonly size: number,
  ) {}

  /**
   * Runs `fn` on each item, at most `size` at once, in the items' order. When one fails no
   * further item starts, and the first failure is thrown once every job already started has
   * ended: nothing of this call still uses a connection after it returns or throws.
   */
  async each<T, R>(items: readonly T[], fn: (client: pg.Client, item: T) => Promise<R>): Promise<R[]> {
    const out = new Array<R>(items.length);
    let next = 0;
    let failure: { err: unknown } | undefined;
    const worker = async () => {
      while (!failure && next < items.length) {
        const i = next++;
        try {
          out[i] = await this.run((client) => fn(client, items[i]!));
        } catch (err) {
          failure ??= { err };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.size, items.length) }, worker));
    if (failure) throw failure.err;
    return out;
  }

  /** Runs `fn` on a connection of its own. A connection whose job failed is closed, not reused (it may be mid-transaction). */
  async run<R>(fn: (client: pg.Client) => Promise<R>): Promise<R> {
    const client = await this.acquire();
    let result: R;
    try {
      result = await fn(client);
    } catch (err) {
      this.open.delete(client);
      await client.end().catch(() => {});
      this.handBack(undefined);
      throw err;
    }
    this.handBack(client);
    return result;
  }

  /** Closes every connection (none may be in use). */
  async end(): Promise<void> {
    this.ended = true;
    const clients = [...this.open];
    this.open.clear();
    this.idle.length = 0;
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }

  private async acquire(): Promise<pg.Client> {
    if (this.ended) throw new Error('the replay has ended its connections');
    const idle = this.idle.pop();
    if (idle) return idle;
    if (this.open.size + this.opening < this.size) {
      this.opening++;
      try {
        const client = await this.connect();
        await client.query(SESSION_SETTINGS);
        this.open.add(client);
        return client;
      } finally {
        this.opening--;
      }
    }
    const handed = await new Promise<pg.Client | undefined>((resolve) => this.waiting.push(resolve));
    return handed ?? this.acquire();
  }

  /** A connection back (or a slot freed, when undefined) to the first job waiting. */
  private handBack(client: pg.Client | undefined): void {
    const waiter = this.waiting.shift();
    if (waiter) waiter(client);
    else if (client) this.idle.push(client);
  }
}

/** Runs statements in a transaction of their own: one the server refuses is returned, and rolled back. */
export async function attemptAlone(client: pg.Client, sql: string[], settings = ''): Promise<Error | undefined> {
  try {
    await client.query(`begin; ${settings}`);
    for (const statement of sql) await client.query(statement);
    await client.query('commit');
    return undefined;
  } catch (err) {
    await client.query('rollback');
    return err as Error;
  }
}

/** What a replay needs to run jobs: the pool, and a way to start again from an empty database. */
export interface Jobs {
  readonly pool: JobPool;
  /**
   * Empties the replay's database for another attempt (what the single transaction's rollback
   * does without jobs: their work is committed) and returns the replay's session anew.
   */
  restart(): Promise<pg.Client>;
}

/** Jobs when none are asked for: one per core, within what the cluster allows. */
export function defaultJobs(): number {
  return Math.min(MAX_JOBS, availableParallelism());
}

/**
 * The connections of a replay into a cluster only it uses: its own session (`main`, while the
 * cluster is still being made) and `jobs` more for parallel work. end() closes them all.
 */
export class ClusterSessions implements Jobs {
  main: Promise<pg.Client>;
  pool: JobPool;

  constructor(
    private readonly cluster: Promise<LocalCluster>,
    private readonly jobs: number,
    /** What connection errors call the cluster ("the replay's own server"). */
    private readonly what: string,
  ) {
    this.main = this.connect();
    this.main.catch(() => {}); // surfaced where the replay awaits it
    this.pool = this.newPool();
  }

  /** What the replay runs with: these sessions with more than one job, else its one session alone. */
  get parallel(): Jobs | undefined {
    return this.jobs > 1 ? this : undefined;
  }

  private async connect(database?: string): Promise<pg.Client> {
    return connect((await this.cluster).url(database), this.what);
  }

  private newPool(): JobPool {
    return new JobPool(() => this.connect(), this.jobs);
  }

  async restart(): Promise<pg.Client> {
    await this.end();
    const admin = await this.connect('template1');
    try {
      // Waits (up to 5 s) for the backends of the connections just closed to exit.
      await admin.query('drop database postgres');
      await admin.query('create database postgres');
    } finally {
      await admin.end().catch(() => {});
    }
    this.pool = this.newPool();
    this.main = this.connect();
    return this.main;
  }

  async end(): Promise<void> {
    await this.pool.end();
    await (await this.main.catch(() => undefined))?.end().catch(() => {});
  }
}
