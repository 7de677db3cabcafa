import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { archiveArgs, logLines, pgtape, startPgtape } from '../support/cli.js';
import { until, useSource } from '../support/fixture.js';
import { ArchiveModel } from '../support/model.js';

const MB = 1024 * 1024;

describe('pgtape archive on an idle database of a busy cluster', () => {
  const source = useSource(`
    create table orders (id int primary key, item text);
    create table heartbeat (id int primary key, at timestamptz);
  `);

  it('keeps the slot from holding WAL that other databases write, and runs --heartbeat-sql', async () => {
    const cluster = source.db.cluster;
    if (!cluster) return; // needs a second database in the same cluster
    await source.admin.query('create database busy');
    const busy = new pg.Client({ connectionString: cluster.url('busy') });
    await busy.connect();
    await busy.query('create table churn (id serial, v text)');

    const args = archiveArgs(
      source.db.url(),
      source.store.dir,
      '--create-publication',
      '--segment-seconds',
      '0.5',
      '--max-idle-wal',
      '1MB',
    );
    const archiver = startPgtape(args);
    try {
      await until(() => archiver.output.stderr.includes('"msg":"archiving"'));
      await source.admin.query(`insert into orders values (1, 'walnuts')`);
      // Its segment sealed first: what follows is idle time for this database.
      await until(() => archiver.output.stderr.includes('"msg":"stored segment"'));
      // 40 MB of WAL in the other database, none in ours but the heartbeat.
      for (let i = 0; i < 8; i++) await busy.query(`insert into churn (v) select repeat(md5(g::text), 30) from generate_series(1, 5000) g`);
      await busy.query('checkpoint'); // logs the running transactions that let the slot's restart position move
      const position = async () =>
        (
          await source.admin.query<{ confirmed: string; retained: string }>(
            `select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text as confirmed, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text as retained
               from pg_replication_slots where slot_name = 'pgtape'`,
          )
        ).rows[0]!;
      await until(async () => Number((await position()).confirmed) < 2 * MB, 30_000);
      // The slot's restart position moves once a running-transactions record has been decoded
      // and a confirmation beyond it arrives: more WAL elsewhere brings the next idle position.
      await busy.query('checkpoint');
      await until(async () => {
        await busy.query(`insert into churn (v) select repeat(md5(g::text), 30) from generate_series(1, 2000) g`);
        return Number((await position()).retained) < 16 * MB;
      }, 60_000);
    } finally {
      archiver.kill('SIGTERM');
      expect((await archiver.done).code).toBe(0);
      await busy.end();
    }
    const beating = startPgtape([
      ...args,
      '--heartbeat-sql',
      `insert into heartbeat values (1, now()) on conflict (id) do update set at = excluded.at`,
      '--heartbeat-seconds',
      '0.3',
    ]);
    await until(async () => (await source.admin.query('select 1 from heartbeat')).rows.length === 1);
    await until(() => logLines(beating.output.stderr).some((l) => l.msg === 'stored segment' && Number(l.transactions) > 0));
    beating.kill('SIGTERM');
    expect((await beating.done).code).toBe(0);
    // The archive is whole: verify passes, and the heartbeat and the order are in the log.
    const verify = await pgtape(['verify', '--store', source.store.dir]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const model = await ArchiveModel.load(source.store.dir);
    expect([...model.tables.keys()].sort()).toEqual(['public.heartbeat', 'public.orders']);
    expect(model.tables.get('public.orders')!.rows).toEqual([{ id: '1', item: 'walnuts' }]);
  });
});
