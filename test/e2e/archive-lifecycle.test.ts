import { describe, expect, it } from 'vitest';
import { archiveArgs, logLines, pgtape, startPgtape } from '../support/cli.js';
import { sleep, until, useSource } from '../support/fixture.js';
import { confirmedFlush, tempStore, transaction } from '../support/tape.js';
import { DirectoryStore } from '../../src/store/directory.js';
import { listSegments, readSegmentHeader } from '../../src/log/segments.js';

interface Logged {
  xid: number;
  tables: Record<string, { inserts: number }>;
}
const readLog = async (dir: string): Promise<Logged[]> => {
  const r = await pgtape(['log', '--store', dir, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Logged);
};

describe('pgtape archive lifecycle', () => {
  const source = useSource(`
    create table big (id int primary key, v text, n numeric);
    create table small (id serial primary key, v text);
  `);

  it.each(['SIGTERM', 'SIGINT'] as const)('%s seals and stores the open segment, acknowledges it, and exits 0', async (signal) => {
    const store = tempStore();
    try {
      const args = archiveArgs(
        source.db.url(),
        store.dir,
        '--create-publication',
        '--slot',
        `stop_${signal.toLowerCase()}`,
        '--segment-seconds',
        '3600',
      );
      const setup = await pgtape([...args, '--until', 'now']);
      expect(setup.code, setup.stderr).toBe(0);
      const child = startPgtape(args);
      await until(() => child.output.stderr.includes('"msg":"archiving"'));
      const session = await source.db.client();
      const committed: number[] = [];
      for (let i = 0; i < 40; i++) {
        committed.push(
          (await transaction(session, async (q) => void (await q.query(`insert into small (v) values ($1)`, [`${signal}-${i}`]))))!,
        );
      }
      // Let the walsender send it all, so that the open segment holds the workload when the signal comes.
      const { rows } = await source.admin.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
      await until(
        async () =>
          (
            await source.admin.query(`select 1 from pg_stat_replication where application_name = 'pgtape' and sent_lsn >= $1`, [
              rows[0]!.lsn,
            ])
          ).rowCount === 1,
      );
      await sleep(300);
      child.kill(signal);
      const r = await child.done;
      expect(r.code, r.stderr).toBe(0);
      expect(logLines(r.stderr).some((l) => l.msg === 'stored segment')).toBe(true);
      const segments = await listSegments(new DirectoryStore(store.dir));
      expect(await confirmedFlush(source.admin, `stop_${signal.toLowerCase()}`)).toBe(segments.at(-1)!.endLsn);
      const logged = (await readLog(store.dir)).map((t) => t.xid);
      expect(logged).toEqual(committed.slice(0, logged.length));
      // Whatever was not stored is still in the slot: the next run stores it, once.
      const rest = await pgtape([...args, '--until', 'now']);
      expect(rest.code, rest.stderr).toBe(0);
      expect((await readLog(store.dir)).map((t) => t.xid)).toEqual(committed);
    } finally {
      store.cleanup();
    }
  });

  it('archives a 2-million-row transaction whole, in bounded memory', async () => {
    const store = tempStore();
    try {
      const args = archiveArgs(source.db.url(), store.dir, '--create-publication', '--slot', 'big', '--segment-bytes', '1MiB');
      const setup = await pgtape([...args, '--until', 'now']);
      expect(setup.code, setup.stderr).toBe(0);
      await source.admin.query(`insert into big select g, md5(g::text), g * 1.5 from generate_series(1, 2000000) g`);
      const r = await pgtape([...args, '--until', 'now']);
      expect(r.code, r.stderr).toBe(0);
      const done = logLines(r.stderr).find((l) => typeof l.peakRssMiB === 'number')!;
      expect(done.peakRssMiB).toBeLessThan(300);
      // Segments roll only at commit boundaries: the whole transaction is in one segment (others,
      // without transactions, only mark positions the walsender passed while it decoded).
      const dir = new DirectoryStore(store.dir);
      const headers = await Promise.all((await listSegments(dir)).map((ref) => readSegmentHeader(dir, ref.key)));
      expect(headers.filter((h) => h.transactions > 0)).toHaveLength(1);
      const logged = await readLog(store.dir);
      expect(logged).toHaveLength(1);
      expect(logged[0]!.tables['public.big']!.inserts).toBe(2_000_000);
    } finally {
      store.cleanup();
    }
  });
});
