import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveArgs, logLines, pgtape, startPgtape, type CliResult } from '../support/cli.js';
import { until, useSource } from '../support/fixture.js';
import { checksums } from '../support/oracle.js';
import { replayIntoFresh } from '../support/replay-into.js';
import { startS3, type TestS3 } from '../support/s3rver.js';

// One archiver writes to a store at a time (its lease): a second one — another slot, a rebase,
// the same slot — is refused (exit 3) while the first runs, and takes over once the first has
// stopped or is gone. Started together, exactly one of two archivers writes.

describe('one writer per store', () => {
  const source = useSource('create table t (id int primary key, v text)');
  let s3: TestS3;
  beforeAll(async () => {
    s3 = await startS3();
    await s3.createBucket('writers');
    Object.assign(process.env, s3.env);
  });
  afterAll(async () => {
    await s3?.close();
  });

  const expectHeld = (r: CliResult) => {
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/is being written by another archiver: pid \d+/);
  };

  it('refuses a second archiver while one runs, and lets the next one go on once it stopped or died', async () => {
    const store = source.store.dir;
    const first = startPgtape(archiveArgs(source.db.url(), store, '--create-publication', '--segment-seconds', '0.2'));
    await until(() => first.output.stderr.includes('"msg":"archiving"'));
    await source.admin.query(`insert into t select g, 'a' from generate_series(1, 100) g`);
    expectHeld(await pgtape(archiveArgs(source.db.url(), store, '--slot', 'intruder', '--rebase', '--until', 'now')));
    expectHeld(await pgtape(archiveArgs(source.db.url(), store, '--until', 'now')));
    expect((await source.admin.query(`select 1 from pg_replication_slots where slot_name = 'intruder'`)).rowCount).toBe(0);
    first.kill('SIGTERM');
    expect((await first.done).code).toBe(0);

    // Stopped: the lease was given back.
    await source.admin.query(`insert into t select g, 'b' from generate_series(101, 200) g`);
    const next = startPgtape(archiveArgs(source.db.url(), store, '--segment-seconds', '0.2'));
    await until(() => next.output.stderr.includes('"msg":"archiving"'));
    // Killed: its process is gone, so its lease is taken over at once.
    next.kill('SIGKILL');
    await next.done;
    await source.admin.query(`insert into t select g, 'c' from generate_series(201, 300) g`);
    const last = await pgtape(archiveArgs(source.db.url(), store, '--until', 'now'));
    expect(last.code, last.stderr).toBe(0);
    expect(logLines(last.stderr).some((l) => l.msg === 'taking over the lease of an archiver that is gone')).toBe(true);

    const expected = await checksums(source.admin);
    const { r, seen } = await replayIntoFresh(source, ['--store', store], (c) => checksums(c));
    expect(r.code, r.stderr).toBe(0);
    expect(seen).toEqual(expected);
  });

  it('lets exactly one of two archivers started together write to an S3 store', async () => {
    const store = 's3://writers/race';
    const [a, b] = await Promise.all([
      pgtape(archiveArgs(source.db.url(), store, '--slot', 'race_a', '--until', 'now')),
      pgtape(archiveArgs(source.db.url(), store, '--slot', 'race_b', '--until', 'now')),
    ]);
    const codes = [a.code, b.code].sort();
    expect(codes, `${a.stderr}\n${b.stderr}`).toEqual([0, 3]);
    const loser = a.code === 3 ? a : b;
    expect(loser.stderr).toMatch(/being written by another archiver/);
    // The loser made no slot; the winner's archive replays to the source.
    const slots = (
      await source.admin.query<{ slot_name: string }>(`select slot_name from pg_replication_slots where slot_name like 'race_%'`)
    ).rows;
    expect(slots).toHaveLength(1);
    const expected = await checksums(source.admin);
    const { r, seen } = await replayIntoFresh(source, ['--store', store], (c) => checksums(c));
    expect(r.code, r.stderr).toBe(0);
    expect(seen).toEqual(expected);
  });
});
