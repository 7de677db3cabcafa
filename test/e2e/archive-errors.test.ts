import { mkdirSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pgtape, type CliResult } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { dropSlotWhenFree } from '../support/tape.js';

/** A clear error: non-zero exit, a message that says what is wrong, no stack trace, no password. */
function expectClearError(r: CliResult, message: RegExp, password?: string) {
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  if (password) expect(r.stderr).not.toContain(password);
}

describe('pgtape archive refuses bad input clearly', () => {
  const source = useSource('create table keyed (id int primary key, v text)');
  const { store } = source;
  const password = () => new URL(source.db.url()).password;

  const archive = (source: string, dir = store.dir, ...extra: string[]) =>
    pgtape(['archive', '--source', source, '--store', dir, '--until', 'now', ...extra]);

  it('an unreachable source', async () => {
    const r = await archive('postgres://someone:hunter2-secret@127.0.0.1:1/shop');
    expectClearError(
      r,
      /cannot connect to --source postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/shop: connection refused/,
      'hunter2-secret',
    );
  });

  it('bad credentials', async () => {
    const r = await archive(source.db.url('postgres', 'wrong-password-123'));
    expectClearError(r, /authentication failed/, 'wrong-password-123');
    expect(r.stderr).toMatch(/check the user and password/);
  });

  it('a malformed source URL', async () => {
    const r = await archive('postgres://[not-a-host');
    expectClearError(r, /--source .* is not a valid URL/);
  });

  it('a missing publication, unless asked to create it', async () => {
    const r = await archive(source.db.url());
    expectClearError(r, /publication "pgtape" does not exist/, password());
    expect(r.stderr).toMatch(/--create-publication/);
  });

  it('a user without the replication privilege', async () => {
    await source.admin.query(`create role plain login password 'plain-pw-42'`);
    await source.admin.query('grant select on all tables in schema public to plain');
    const r = await archive(source.db.url('plain', 'plain-pw-42'));
    expectClearError(r, /no REPLICATION privilege/, 'plain-pw-42');
    expect(r.stderr).toMatch(/ALTER ROLE <user> REPLICATION/);
  });

  it('a table the archiving role cannot read: clear, and the slot made for the base is dropped', async () => {
    await source.admin.query(`create role copier login replication password 'copier-pw-42'`);
    await source.admin.query('create table locked (id int primary key, v text)');
    await source.admin.query('create publication lockedpub for table locked');
    const dir = join(store.dir, '..', 'locked');
    const r = await archive(source.db.url('copier', 'copier-pw-42'), dir, '--publication', 'lockedpub', '--slot', 'locked');
    expectClearError(r, /cannot read public\.locked/, 'copier-pw-42');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/GRANT SELECT/);
    expect((await source.admin.query(`select 1 from pg_replication_slots where slot_name = 'locked'`)).rowCount).toBe(0);
    // The stream's record and the released lease stay (a next attempt may start anew: they hold no history); no segment.
    expect(readdirSync(dir).filter((f) => !['base', 'stream.json', 'lease.json'].includes(f))).toEqual([]);
  });

  it('refuses to publish tables whose UPDATE and DELETE would then fail, unless forced', async () => {
    await source.admin.query('create table "no key ""here""" (v text)');
    const r = await archive(source.db.url(), store.dir, '--create-publication', '--publication', 'risky');
    expectClearError(r, /1 table\(s\) have no usable replica identity/);
    expect(r.stderr).toContain('ALTER TABLE "public"."no key ""here""" REPLICA IDENTITY FULL');
    expect((await source.admin.query(`select 1 from pg_publication where pubname = 'risky'`)).rowCount).toBe(0);
    // Still refused, and still nothing changed on the source.
    await source.admin.query('update "no key ""here""" set v = v');

    const forced = await archive(
      source.db.url(),
      store.dir,
      '--create-publication',
      '--publication',
      'risky',
      '--force',
      '--slot',
      'risky',
    );
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toMatch(/published tables without a usable replica identity/);
    await source.admin.query('drop publication risky');
    // The walsender of the finished archiver may hold the slot a moment longer.
    await dropSlotWhenFree(source.admin, 'risky');
    await source.admin.query('drop table "no key ""here"""');
  });

  it('a store that cannot be written', async () => {
    const file = join(store.dir, '..', 'a-file');
    writeFileSync(file, 'not a directory');
    const r = await archive(source.db.url(), join(file, 'tape'), '--create-publication');
    expectClearError(r, /store .*a-file is a file, so .*a-file\/tape cannot be a directory/);
  });

  it('a store whose segments/ holds something that is not a pgtape segment, which it leaves alone', async () => {
    const dir = join(store.dir, '..', 'foreign');
    mkdirSync(join(dir, 'segments'), { recursive: true });
    const fake = join(dir, 'segments', '0000000001000000-0000000002000000.pgtape');
    writeFileSync(fake, 'hello, I am a CSV file\n1,2,3\n');
    const r = await archive(source.db.url(), dir, '--create-publication');
    expectClearError(r, /is not a pgtape segment/);
    expect(readFileSync(fake, 'utf8')).toBe('hello, I am a CSV file\n1,2,3\n');

    writeFileSync(join(dir, 'segments', 'notes.txt'), 'x');
    const r2 = await archive(source.db.url(), dir, '--create-publication');
    expectClearError(r2, /notes\.txt is not a pgtape segment name/);
    expect(readdirSync(join(dir, 'segments')).sort()).toEqual(['0000000001000000-0000000002000000.pgtape', 'notes.txt']);
  });

  it('a mark that no archive would record, or whose name cannot be typed back', async () => {
    const mark = (...args: string[]) => pgtape(['mark', '--source', source.db.url(), ...args]);
    const r = await mark('--slot', 'nosuch', 'end-of-day');
    expectClearError(r, /no pgtape slot "nosuch" decodes database "[^"]+": no archive would record the mark/);
    expect(r.code).toBe(2);
    expectClearError(await mark('two\nlines'), /no control characters/);
    expectClearError(await mark('x'.repeat(300)), /at most 200 characters \(this one has 300\)/);
    expectClearError(await mark('   '), /a mark needs a name/);
  });

  it('a publication that publishes no table: said at start', async () => {
    await source.admin.query('create publication emptypub');
    const r = await archive(source.db.url(), join(store.dir, '..', 'empty-pub'), '--publication', 'emptypub', '--slot', 'emptypub');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/the publication publishes no table: nothing but marks will be archived/);
    await dropSlotWhenFree(source.admin, 'emptypub');
  });

  it('options that make no sense', async () => {
    expectClearError(await archive(source.db.url(), store.dir, '--segment-bytes', 'lots'), /--segment-bytes: "lots" is not a size/);
    expectClearError(
      await pgtape(['archive', '--source', source.db.url(), '--store', store.dir, '--until', 'tomorrow']),
      /--until: "tomorrow" is neither/,
    );
    expectClearError(await archive(source.db.url(), 'ftp://example/tape'), /unsupported store URL scheme "ftp"/);
    expectClearError(await pgtape(['archive', '--store', store.dir]), /no source given/);
  });
});

describe('pgtape archive on a source without logical decoding', () => {
  const source = useSource(undefined, { settings: { wal_level: 'replica' } });
  const { store } = source;

  it("says wal_level must be 'logical' and how to set it", async () => {
    const r = await pgtape(['archive', '--source', source.db.url(), '--store', store.dir, '--until', 'now', '--create-publication']);
    expectClearError(r, /wal_level = 'replica'; logical replication needs wal_level = 'logical'/, new URL(source.db.url()).password);
    expect(r.stderr).toMatch(/ALTER SYSTEM SET wal_level = 'logical' and restart Postgres/);
    // A mark would never be archived either.
    expectClearError(await pgtape(['mark', '--source', source.db.url(), 'm']), /wal_level is replica, not logical/);
  });
});
