import { describe, expect, it } from 'vitest';
import { pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { checksums } from '../support/oracle.js';
import { replayIntoFresh } from '../support/replay-into.js';

describe('a lost slot, and pgtape archive --rebase', () => {
  const source = useSource(`create table orders (id int primary key, item text, qty int)`);

  it('stops with the error, goes on with --rebase, and replays on either side of the discontinuity but not across', async () => {
    const store = source.store.dir;
    const archive = (...extra: string[]) =>
      pgtape(['archive', '--source', source.db.url(), '--store', store, '--until', 'now', '--create-publication', ...extra]);
    const mark = async (name: string) => {
      const r = await pgtape(['mark', '--source', source.db.url(), name]);
      expect(r.code, r.stderr).toBe(0);
    };
    expect((await archive()).code).toBe(0);
    await source.admin.query(`insert into orders select g, 'before ' || g, g from generate_series(1, 50) g`);
    await mark('before');
    const before = await checksums(source.admin);
    expect((await archive()).code).toBe(0);

    // The slot is lost; what happens meanwhile cannot be archived.
    await source.admin.query(`select pg_drop_replication_slot('pgtape')`);
    await source.admin.query(`update orders set qty = qty * 10 where id <= 10; insert into orders values (100, 'lost', 1)`);
    const refused = await archive();
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/replication slot "pgtape" does not exist, but the store holds an archive up to \S+/);
    expect(refused.stderr).toMatch(/what to do: pgtape archive --rebase/);

    const rebased = await archive('--rebase');
    expect(rebased.code, rebased.stderr).toBe(0);
    expect(rebased.stderr).toMatch(/rebased: a new slot and base/);
    await source.admin.query(`delete from orders where id > 40; insert into orders values (200, 'after', 2)`);
    await mark('after');
    const after = await checksums(source.admin);
    expect((await archive()).code).toBe(0);

    const replay = async (to: string) => {
      const { r, seen } = await replayIntoFresh(source, ['--store', store, '--to', to], checksums);
      return { r, sums: seen };
    };
    expect((await replay('name:before')).sums).toEqual(before);
    expect((await replay('name:after')).sums).toEqual(after);
    expect((await replay('latest')).sums).toEqual(after);

    // A point inside the discontinuity, and a diff across it, are refused with the reason.
    const d = /"from":"(\S+?)","to":"(\S+?)"/.exec(rebased.stderr)!;
    const inside = await replay(`lsn:${d[1]}`);
    expect(inside.r.code).toBe(2);
    expect(inside.r.stderr).toMatch(/falls in a discontinuity of the archive: nothing was recorded from \S+ to \S+ \(the slot was lost/);
    const across = await pgtape(['diff', '--store', store, '--from', 'name:before', '--to', 'name:after']);
    expect(across.code).toBe(2);
    expect(across.stderr).toMatch(/the range crosses a discontinuity of the archive/);

    // verify names it and still passes; log shows it where it lies.
    const verify = await pgtape(['verify', '--store', store]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^DISCONTINUITY +discontinuities\/\S+ +recorded: the slot was lost/m);
    expect(verify.stdout).toMatch(/replayable: \S+ \(base\) to \S+; \S+ \(base\) to \S+/);
    const log = await pgtape(['log', '--store', store]);
    expect(log.code, log.stderr).toBe(0);
    const lines = log.stdout.trim().split('\n');
    const at = lines.findIndex((l) => l.startsWith('-- discontinuity'));
    expect(lines.slice(0, at).some((l) => l.includes('mark "before"'))).toBe(true);
    expect(lines.slice(at).some((l) => l.includes('mark "after"'))).toBe(true);
  });
});
