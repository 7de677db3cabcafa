import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { archiveArgs, pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';

// One archive, one stream: a base, an archive or a rebase of another database, publication or
// slot is refused (exit 2) before anything is written, instead of mixing another stream in that
// verify would pass and replay would serve.

/** Every file of the store with its size: what must not change. */
function contents(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      // The writers' lease is coordination, not history: a refused archiver takes and gives it back.
      else if (e.name !== 'lease.json') out[relative(dir, path)] = statSync(path).size;
    }
  };
  walk(dir);
  return out;
}

describe('an archive holds one stream', () => {
  const source = useSource('create table t (id int primary key)');
  const store = () => source.store.dir;
  const other = () => Object.assign(new URL(source.db.url()), { pathname: '/other' }).toString();

  it('refuses a base, an archive and a slot of another stream, leaving the store as it was', async () => {
    const first = await pgtape(archiveArgs(source.db.url(), store(), '--create-publication', '--until', 'now'));
    expect(first.code, first.stderr).toBe(0);
    await source.admin.query('insert into t values (1)');
    const again = await pgtape(archiveArgs(source.db.url(), store(), '--until', 'now'));
    expect(again.code, again.stderr).toBe(0);
    await source.admin.query('create database other');
    await source.admin.query('create publication elsewhere for all tables');
    const before = contents(store());
    expect(before['stream.json']).toBeGreaterThan(0);

    const refusals: [string[], RegExp][] = [
      [['base', '--source', other(), '--store', store()], /database "other", the archive's is/],
      [
        ['base', '--source', source.db.url(), '--store', store(), '--publication', 'elsewhere'],
        /publication is "elsewhere", the archive's is "pgtape"/,
      ],
      [archiveArgs(other(), store(), '--create-publication', '--until', 'now'), /database "other"/],
      [archiveArgs(source.db.url(), store(), '--slot', 'second', '--until', 'now'), /slot is "second", the archive's is "pgtape"/],
      [archiveArgs(source.db.url(), store(), '--publication', 'elsewhere', '--until', 'now'), /publication is "elsewhere"/],
    ];
    for (const [args, message] of refusals) {
      const r = await pgtape(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/archives another stream/);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/a --store of its own/);
    }
    expect(contents(store())).toEqual(before);
    // No slot was left behind on either database.
    const slots = await source.admin.query(`select slot_name from pg_replication_slots order by 1`);
    expect(slots.rows).toEqual([{ slot_name: 'pgtape' }]);
    const verify = await pgtape(['verify', '--store', store()]);
    expect(verify.code, verify.stderr).toBe(0);
    // status says when --source, --slot or --store do not go together.
    const status = (source: string, dir: string, ...more: string[]) => pgtape(['status', '--source', source, '--store', dir, ...more]);
    const elsewhere = await status(other(), store());
    expect(elsewhere.code, elsewhere.stderr).toBe(4);
    expect(elsewhere.stdout + elsewhere.stderr).toMatch(/archives database \S+, not other: check --source and --store/);
    const empty = await status(source.db.url(), join(store(), '..', 'typo'));
    expect(empty.code).toBe(4);
    expect(empty.stdout + empty.stderr).toMatch(/holds no archive \(no base, no segment\): check --store/);
    const otherClient = new pg.Client({ connectionString: other() });
    await otherClient.connect();
    await otherClient.query(`select pg_create_logical_replication_slot('mine', 'pgoutput')`);
    await otherClient.end();
    const foreign = await status(source.db.url(), store(), '--slot', 'mine');
    expect(foreign.code).toBe(4);
    expect(foreign.stdout + foreign.stderr).toMatch(/slot mine decodes database other, not \S+: it records nothing of this database/);
    // The stream itself goes on.
    const same = await pgtape(['base', '--source', source.db.url(), '--store', store()]);
    expect(same.code, same.stderr).toBe(0);
  });

  it('never reads a base of another stream copied into the store: replay and verify say so (exit 4), nothing replayed', async () => {
    // A base of database other, in a store of its own, copied by hand beside this archive's bases.
    const elsewhere = mkdtempSync(join(tmpdir(), 'pgtape-other-stream-'));
    try {
      const otherClient = new pg.Client({ connectionString: other() });
      await otherClient.connect();
      await otherClient.query(
        'create table items (id int primary key); insert into items values (7); create publication pgtape for all tables',
      );
      await otherClient.end();
      const taken = await pgtape(['base', '--source', other(), '--store', elsewhere]);
      expect(taken.code, taken.stderr).toBe(0);
      const [foreign] = readdirSync(join(elsewhere, 'base'));
      cpSync(join(elsewhere, 'base', foreign!), join(store(), 'base', foreign!), { recursive: true });
      const out = join(elsewhere, 'out');
      // The foreign base is the newest: replay to latest would start from it.
      for (const args of [
        ['replay', '--store', store(), '--csv', out],
        ['verify', '--store', store()],
      ]) {
        const r = await pgtape(args);
        expect(r.code, `${args[0]}: ${r.stderr}`).toBe(4);
        expect(r.stdout + r.stderr).toMatch(/a base of another stream \(the source is database "other", the archive's is/);
      }
      expect(existsSync(out)).toBe(false);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
