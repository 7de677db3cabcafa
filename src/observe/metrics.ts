import client from 'prom-client';

/**
 * The archiver's Prometheus metrics (prom-client), on a registry of its own so tests and the
 * process's default metrics (RSS, event loop lag) do not mix with other users of prom-client.
 */
export class ArchiveMetrics {
  readonly registry = new client.Registry();
  readonly lastStoredCommitLsn = this.gauge(
    'pgtape_last_stored_commit_lsn',
    'End LSN of the last commit the store confirmed (as a number of bytes)',
  );
  readonly lastStoredCommitTime = this.gauge(
    'pgtape_last_stored_commit_timestamp_seconds',
    'Commit time of the last transaction the store confirmed',
  );
  readonly lagBytes = this.gauge('pgtape_lag_bytes', "WAL between the source's current position and the end of the archive");
  readonly lagSeconds = this.gauge(
    'pgtape_lag_seconds',
    'How long received changes have been waiting to be stored (0 when everything received is stored)',
  );
  readonly retainedWalBytes = this.gauge('pgtape_retained_wal_bytes', 'WAL the slot makes the source keep (current LSN − restart_lsn)');
  readonly openTransactionChanges = this.gauge('pgtape_open_transaction_changes', 'Changes of the transaction being received');
  readonly streaming = this.gauge('pgtape_streaming', '1 while the replication connection streams');
  /** When the newest base's snapshot was taken (ms since the epoch); its age is reckoned when scraped. */
  newestBaseTime: number | undefined;
  readonly newestBaseAge = new client.Gauge({
    name: 'pgtape_newest_base_age_seconds',
    help: 'How old the newest base is (a replay of latest starts from it; --base-every keeps it fresh)',
    registers: [this.registry],
    collect: () => {
      if (this.newestBaseTime !== undefined) this.newestBaseAge.set(Math.max(0, (Date.now() - this.newestBaseTime) / 1000));
    },
  });
  readonly segmentsSinceNewestBase = this.gauge(
    'pgtape_segments_since_newest_base',
    'Segments after the newest base (what a replay of latest applies)',
  );
  readonly bytesSinceNewestBase = this.gauge(
    'pgtape_bytes_since_newest_base',
    'Bytes of segments after the newest base (what a replay of latest reads)',
  );
  readonly archiveBytes = this.gauge(
    'pgtape_archive_bytes',
    'What the store holds under the archive (bases, segments, index objects), counted hourly',
  );
  readonly archiveSegments = this.gauge('pgtape_archive_segments', 'Segments the store holds, counted hourly');
  readonly segments = this.counter('pgtape_segments_stored_total', 'Segments stored');
  readonly bytes = this.counter('pgtape_stored_bytes_total', 'Segment bytes stored');
  readonly transactions = this.counter('pgtape_transactions_stored_total', 'Transactions stored');
  readonly rows = this.counter('pgtape_rows_stored_total', 'Row changes stored');
  readonly storeRetries = this.counter('pgtape_store_retries_total', 'Failed store requests that were retried');
  readonly storeErrors = this.counter('pgtape_store_errors_total', 'Store failures that stopped the archiver');
  readonly reconnects = this.counter('pgtape_reconnects_total', 'Replication connections lost and made again');

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'pgtape_' });
  }

  private gauge(name: string, help: string): client.Gauge {
    return new client.Gauge({ name, help, registers: [this.registry] });
  }

  private counter(name: string, help: string): client.Counter {
    return new client.Counter({ name, help, registers: [this.registry] });
  }
}
