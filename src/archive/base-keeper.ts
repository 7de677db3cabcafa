import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { sleepUnlessAborted } from '../core/concurrency.js';
import type { Logger } from '../core/log.js';
import { formatBytes } from '../core/units.js';
import { newestBaseFacts } from '../log/newest-base.js';
import type { Store } from '../store/store.js';

export interface BaseKeeperOptions {
  store: Store;
  /** How `pgtape compact` is pointed at the same store (the archive's --store and --s3-endpoint). */
  storeArgs: string[];
  /** The archiver's --encrypt and --key-file, so that the compaction reads and encrypts as it does. */
  keyArgs?: string[];
  /** Compact once the newest base is this old (ms). */
  everyMs?: number;
  /** Compact once this many bytes of segments lie after the newest base. */
  afterBytes?: number;
  log: Logger;
  signal: AbortSignal;
}

/**
 * Keeps bases fresh from what the archive stored, never touching the source
 * (docs/ARCHITECTURE.md, "Compacted bases and retention"): when the newest base is older than --base-every, or
 * more than --base-after of segments follow it, `pgtape compact` runs as a child process at a
 * lower CPU priority — the archiver's own work (and the walsender's, next to it) comes first,
 * and a compaction that fails or is killed costs the archiver nothing. One at a time; a failure
 * is logged and tried again after the interval.
 */
export class BaseKeeper {
  private child: ChildProcess | undefined;
  private readonly times = new Map<bigint, string>();
  /** Not before this (ms since the epoch): after a failure, the next try waits. */
  private notBefore = 0;

  constructor(private readonly options: BaseKeeperOptions) {}

  /** Until the signal: checks at a quarter of the interval (between 1 s and 60 s). */
  async run(): Promise<void> {
    const { signal } = this.options;
    const interval = Math.min(60_000, Math.max(1_000, (this.options.everyMs ?? 240_000) / 4));
    signal.addEventListener('abort', () => this.child?.kill('SIGTERM'), { once: true });
    while (!signal.aborted) {
      await sleepUnlessAborted(interval, signal);
      if (signal.aborted || Date.now() < this.notBefore) continue;
      try {
        const why = await this.due();
        if (why) await this.compact(why);
      } catch (err) {
        this.options.log.warn({ err: (err as Error).message }, 'could not check whether a new base is due');
      }
    }
  }

  /** Why a compaction is due now, or undefined. */
  private async due(): Promise<string | undefined> {
    const { store, everyMs, afterBytes } = this.options;
    const newest = await newestBaseFacts(store, this.times);
    if (!newest || newest.segmentsSince === 0) return undefined;
    if (afterBytes !== undefined && newest.bytesSince >= afterBytes)
      return `${formatBytes(newest.bytesSince)} of segments after the newest base`;
    const age = Date.now() - Date.parse(newest.snapshotTime);
    if (everyMs !== undefined && age >= everyMs) return `the newest base is ${Math.round(age / 1000)} s old`;
    return undefined;
  }

  private async compact(why: string): Promise<void> {
    const { log } = this.options;
    log.info({ why }, 'compacting a new base from the archive');
    const started = Date.now();
    const child = spawn(process.execPath, [process.argv[1]!, 'compact', ...this.options.storeArgs, ...(this.options.keyArgs ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    try {
      if (child.pid !== undefined) setPriority(child.pid, 10);
    } catch {
      // Not allowed here: it runs at the archiver's priority.
    }
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    this.child = undefined;
    if (this.options.signal.aborted) return;
    if (code === 0) {
      if (/nothing to compact/.test(stderr)) {
        // Only position markers since the base (an idle database): look again after the interval.
        this.notBefore = Date.now() + (this.options.everyMs ?? 600_000);
        log.debug({ base: stdout.trim() }, 'nothing committed since the newest base: no new base');
        return;
      }
      log.info({ base: stdout.trim(), ms: Date.now() - started }, 'stored a base compacted from the archive');
      return;
    }
    this.notBefore = Date.now() + (this.options.everyMs ?? 600_000);
    // The child's last words: its error message, or its last log line.
    const said = stderr.trim().split('\n').slice(-3).join(' | ');
    log.warn({ exitCode: code, said }, 'compacting a new base failed: trying again after the interval');
  }
}
