import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveUntilNow, logLines, pgtape, type CliResult } from '../support/cli.js';
import { useSource } from '../support/fixture.js';

// diff on two threads (docs/ARCHITECTURE.md, "diff on two cores"): a table split into parts has
// its parts compared on the main thread and a helper thread. Whatever runs where, the answer is
// the one a diff held in memory on one thread gives, in every format; a damaged base is said as
// such either way, and nothing is left behind.
describe('diff with its parts compared on two threads', () => {
  const source = useSource(`
    create table big (id int primary key, v text, n int);
    insert into big select i, md5(i::text), i from generate_series(1, 20000) i;
    -- Values a base writes escaped (and NULL), beside the plain lines it hands over as bytes.
    update big set v = E'tab\there, back\\\\slash\nline, é🙂' where id % 13 = 0;
    update big set v = null where id % 17 = 0;
    create table keyless (v text, n int);
    alter table keyless replica identity full;
    insert into keyless select md5((i % 300)::text), i % 7 from generate_series(1, 3000) i;`);
  let spool = '';
  let env: NodeJS.ProcessEnv = {};
  beforeAll(() => {
    spool = mkdtempSync(join(tmpdir(), 'pgtape-diff-threads-'));
    env = { PGTAPE_SPOOL_DIR: spool, PGTAPE_LOG_LEVEL: 'debug' };
  });
  afterAll(() => rmSync(spool, { recursive: true, force: true }));
  let from = '';

  const diff = (memory: string, ...format: string[]) =>
    pgtape(['diff', '--store', source.store.dir, '--from', `lsn:${from}`, '--memory', memory, ...format], env);
  const sorted = (r: CliResult) => r.stdout.split('\n').filter(Boolean).sort();

  it('says what one thread in memory says, in every format', async () => {
    const first = await archiveUntilNow(source);
    expect(first.code, first.stderr).toBe(0);
    from = (await source.admin.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!.lsn;
    await source.admin.query(`
      update big set n = n + 1 where id % 3 = 0;
      delete from big where id % 7 = 0;
      insert into big select i, md5(i::text), 0 from generate_series(20001, 25000) i;
      update big set id = id + 100000 where id % 11 = 1;
      update big set v = 'again' where id % 5 = 0;
      update big set v = repeat(md5(id::text), 40) where id % 2 = 0;
      insert into big values (7, 'deleted, then back', 7);
      delete from keyless where n = 3;
      update keyless set n = 100 where n = 4;
      insert into keyless select 'new', 1 from generate_series(1, 20);`);
    const rest = await archiveUntilNow(source);
    expect(rest.code, rest.stderr).toBe(0);

    for (const format of [['--summary'], ['--format', 'jsonl'], ['--format', 'csv'], ['--format', 'sql']]) {
      const [whole, parted] = [await diff('1GiB', ...format), await diff('1MB', ...format)];
      expect(whole.code, whole.stderr).toBe(0);
      expect(parted.code, parted.stderr).toBe(0);
      expect(sorted(parted), format.join(' ')).toEqual(sorted(whole));
      const logs = logLines(parted.stderr);
      // The helper compared some of the large table's parts.
      expect(
        logs.find((l) => typeof l.onHelper === 'number' && l.onHelper > 0),
        parted.stderr,
      ).toBeTruthy();
      expect(logLines(whole.stderr).some((l) => 'onHelper' in l)).toBe(false);
    }
    const summary = await diff('1MB', '--summary');
    expect(summary.stdout).toMatch(/public\.big: \d+ added, \d+ deleted, \d+ modified/);
    expect(readdirSync(spool)).toEqual([]);
  });

  it("keeps within the process's open-file limit, whatever its number of parts", async () => {
    const whole = await diff('1GiB', '--format', 'jsonl');
    // Part files are kept open while they are written: more of them than this limit allows.
    const limited = await pgtape(['diff', '--store', source.store.dir, '--from', `lsn:${from}`, '--memory', '256kB', '--format', 'jsonl'], {
      ...env,
      PGTAPE_TEST_FD_LIMIT: '64',
    });
    expect(limited.code, limited.stderr).toBe(0);
    const parts = logLines(limited.stderr).find((l) => typeof l.parts === 'number')?.parts;
    expect(parts, limited.stderr).toBeGreaterThan(64);
    expect(sorted(limited)).toEqual(sorted(whole));
    expect(readdirSync(spool)).toEqual([]);
  });

  it('says a damaged base table is damaged (exit 4), in parts or not, and leaves nothing', async () => {
    const base = join(source.store.dir, 'base', readdirSync(join(source.store.dir, 'base'))[0]!, 'tables');
    // The larger file is the big table's.
    const file = readdirSync(base)
      .map((f) => join(base, f))
      .sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    const intact = readFileSync(file);
    const damaged = Buffer.from(intact);
    damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
    writeFileSync(file, damaged);
    try {
      for (const memory of ['1MB', '1GiB']) {
        const r = await diff(memory, '--summary');
        expect(r.code, `${memory}: ${r.stderr}`).toBe(4);
        expect(r.stderr).toMatch(/pgtape: the archive is damaged: .*(does not match the checksum|cannot be decompressed)/);
        expect(r.stderr).not.toMatch(/\n\s+at /);
      }
      expect(readdirSync(spool)).toEqual([]);
    } finally {
      writeFileSync(file, intact);
    }
  });
});
