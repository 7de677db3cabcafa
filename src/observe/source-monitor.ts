import type pg from 'pg';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { parseLsn } from '../core/lsn.js';
import { connectQuietly } from '../source/connection.js';
import type { ArchiveMetrics } from './metrics.js';

/**
 * Asks the source every few seconds where it is and how much WAL the slot retains: the lag and
 * retained-WAL metrics, and a warning (once per crossing) when the slot holds more than
 * --max-retained-wal. Runs on an ordinary connection; a source that is away is simply skipped.
 */
export class SourceMonitor {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private over = false;

  constructor(
    private readonly source: string,
    private readonly slot: string,
    private readonly maxRetainedWal: number,
    private readonly metrics: ArchiveMetrics,
    private readonly archiveEnd: () => bigint,
    private readonly log: Logger,
    private readonly intervalMs = 5_000,
  ) {}

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      this.client ??= await connectQuietly(this.source);
      const { rows } = await this.client.query<{ current: string; retained: string | null }>(
        `select pg_current_wal_lsn()::text as current,
                (select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text from pg_replication_slots where slot_name = $1) as retained`,
        [this.slot],
      );
      const current = parseLsn(rows[0]!.current);
      const end = this.archiveEnd();
      this.metrics.lagBytes.set(current > end ? Number(current - end) : 0);
      const retained = rows[0]!.retained === null ? undefined : Number(rows[0]!.retained);
      if (retained !== undefined) {
        this.metrics.retainedWalBytes.set(retained);
        if (retained > this.maxRetainedWal && !this.over) {
          this.log.warn(
            { retainedWalBytes: retained, maxRetainedWal: this.maxRetainedWal },
            "the slot retains more WAL than --max-retained-wal: the archive is falling behind, and the source's disk fills",
          );
        }
        if (retained <= this.maxRetainedWal && this.over)
          this.log.info({ retainedWalBytes: retained }, 'retained WAL is below --max-retained-wal again');
        this.over = retained > this.maxRetainedWal;
      }
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, 'source monitor: source not reachable');
      await this.client?.end().catch(() => {});
      this.client = undefined;
    } finally {
      this.busy = false;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.client?.end().catch(() => {});
  }
}
