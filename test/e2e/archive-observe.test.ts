import { describe, expect, it } from 'vitest';
import { archiveArgs, logLines, startPgtape } from '../support/cli.js';
import { until, useSource } from '../support/fixture.js';

/** One sample of a metric in Prometheus' text format. */
function sample(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('pgtape archive --metrics-port', () => {
  const source = useSource(`create table orders (id int primary key, item text)`);

  it('serves /metrics, /healthz and /readyz with the figures of a running workload', async () => {
    const archiver = startPgtape(
      archiveArgs(
        source.db.url(),
        source.store.dir,
        '--create-publication',
        '--segment-seconds',
        '0.2',
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
        '--max-retained-wal',
        '1kB',
      ),
    );
    try {
      await until(() => logLines(archiver.output.stderr).some((l) => l.msg === 'serving /metrics, /healthz and /readyz'));
      const port = logLines(archiver.output.stderr).find((l) => l.msg === 'serving /metrics, /healthz and /readyz')!.port as number;
      const get = async (path: string) => {
        const r = await fetch(`http://127.0.0.1:${port}${path}`);
        return { status: r.status, body: await r.text() };
      };
      expect((await get('/healthz')).status).toBe(200);
      await until(async () => (await get('/readyz')).status === 200);

      for (let i = 0; i < 50; i++)
        await source.admin.query(`insert into orders select g, 'nut' from generate_series($1::int * 10, $1::int * 10 + 9) g`, [i]);
      await until(async () => sample((await get('/metrics')).body, 'pgtape_transactions_stored_total') === 50, 20_000);
      const metrics = (await get('/metrics')).body;
      expect(sample(metrics, 'pgtape_rows_stored_total')).toBe(500);
      expect(sample(metrics, 'pgtape_segments_stored_total')).toBeGreaterThan(0);
      expect(sample(metrics, 'pgtape_stored_bytes_total')).toBeGreaterThan(0);
      expect(sample(metrics, 'pgtape_last_stored_commit_lsn')).toBeGreaterThan(0);
      expect(Math.abs(sample(metrics, 'pgtape_last_stored_commit_timestamp_seconds')! - Date.now() / 1000)).toBeLessThan(60);
      expect(sample(metrics, 'pgtape_streaming')).toBe(1);
      expect(sample(metrics, 'pgtape_store_retries_total')).toBe(0);
      expect(sample(metrics, 'pgtape_process_resident_memory_bytes')).toBeGreaterThan(0);
      // The archive as stored: the newest base (the archiver's first, taken seconds ago) and what follows it.
      await until(async () => (sample((await get('/metrics')).body, 'pgtape_newest_base_age_seconds') ?? 0) > 0);
      const stored = (await get('/metrics')).body;
      expect(sample(stored, 'pgtape_archive_bytes')).toBeGreaterThan(0);
      expect(sample(stored, 'pgtape_newest_base_age_seconds')).toBeLessThan(120);
      expect(sample(stored, 'pgtape_segments_since_newest_base')).toBeGreaterThan(0);
      expect(sample(stored, 'pgtape_bytes_since_newest_base')).toBeGreaterThan(0);
      expect(sample(stored, 'pgtape_archive_segments')).toBeGreaterThanOrEqual(sample(stored, 'pgtape_segments_since_newest_base')!);
      await until(async () => sample((await get('/metrics')).body, 'pgtape_retained_wal_bytes') !== undefined);
      await until(async () => (sample((await get('/metrics')).body, 'pgtape_lag_bytes') ?? Infinity) < 1 << 20);
      expect(sample((await get('/metrics')).body, 'pgtape_lag_seconds')).toBeLessThan(5);
      expect((await get('/nope')).status).toBe(404);
      // A slot always holds some WAL: with a 1 kB limit the warning comes, once.
      const warnings = () =>
        logLines(archiver.output.stderr).filter((l) => String(l.msg).startsWith('the slot retains more WAL than --max-retained-wal'));
      await until(() => warnings().length > 0);
      expect(warnings()).toHaveLength(1);
      expect(warnings()[0]!.retainedWalBytes).toBeGreaterThan(1000);

      // The source goes away: not ready (still alive), and ready again once it is back.
      const cluster = source.db.cluster;
      if (cluster) {
        await cluster.stop('fast');
        await until(async () => (await get('/readyz')).status === 503);
        expect(JSON.parse((await get('/readyz')).body)).toEqual({ ready: false, reasons: ['not streaming from the source'] });
        expect((await get('/healthz')).status).toBe(200);
        await cluster.start();
        await until(async () => (await get('/readyz')).status === 200, 30_000);
        expect(sample((await get('/metrics')).body, 'pgtape_reconnects_total')).toBe(1);
      }
    } finally {
      archiver.kill('SIGTERM');
      expect((await archiver.done).code).toBe(0);
    }
  });
});
