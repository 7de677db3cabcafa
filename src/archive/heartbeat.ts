import type pg from 'pg';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { connectQuietly } from '../source/connection.js';

/**
 * Runs `--heartbeat-sql` every `--heartbeat-seconds` on an ordinary connection: for a database
 * whose published tables are idle, a small write there (an upsert into a heartbeat table, or
 * pg_logical_emit_message) gives the stream something to acknowledge. Failures are logged once
 * per outage and never stop the archiver.
 */
export class Heartbeat {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly source: string,
    /** A statement, or what to do on the connection at each beat. */
    private readonly work: string | ((client: pg.Client) => Promise<unknown>),
    private readonly seconds: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.beat().finally(() => (this.running = undefined));
    }, this.seconds * 1000);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    try {
      this.client ??= await connectQuietly(this.source);
      await (typeof this.work === 'string' ? this.client.query(this.work) : this.work(this.client));
      if (this.failing) this.log.info('heartbeat works again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn({ err: errorMessage(err) }, 'heartbeat statement failed; retrying at each interval');
      this.failing = true;
      await this.client?.end().catch(() => {});
      this.client = undefined;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.client?.end().catch(() => {});
  }
}
