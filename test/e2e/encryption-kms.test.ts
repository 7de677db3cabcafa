// An archive encrypted through KMS, by the CLI (docs/ARCHITECTURE.md, "Encryption at rest", KMS):
// restarts reuse one wrapping key; readers without `kms:` or refused by KMS are told what to do;
// an archiver that may not decrypt refuses to make bases from the archive; `rekey` moves the
// archive from KMS to a key file and back; a lost keys/kms/ object is reported by verify.
// Against the KMS stand-in (test/support/kms-server.ts).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveArgs, pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { startKms, type TestKms } from '../support/kms-server.js';
import { checksums } from '../support/oracle.js';
import { scratchDir } from '../support/scratch.js';

const SCHEMA = `
  create table salaries (id int primary key, who text not null, amount numeric);
  insert into salaries select g, 'employee ' || g, 1000 + g from generate_series(1, 200) g;
`;

describe('an archive encrypted through KMS', () => {
  const source = useSource(SCHEMA);
  const { dir, remove: removeScratch } = scratchDir('pgtape-kms-e2e-');
  let kms: TestKms;
  let env: NodeJS.ProcessEnv;
  let sums: Record<string, string>;
  let db = 0;
  beforeAll(async () => {
    kms = await startKms();
    kms.createKey('shop');
    env = kms.env;
  });
  afterAll(async () => {
    await kms?.stop();
    removeScratch();
  });
  const store = () => source.store.dir;
  const kmsObjects = () => readdirSync(join(store(), 'keys', 'kms'));
  const archiveNow = (...more: string[]) =>
    pgtape([...archiveArgs(source.db.url(), store(), '--create-publication', '--until', 'now'), ...more], env);
  const replay = async (...args: string[]) => {
    const name = `replayed_${db++}`;
    await source.admin.query(`create database ${name}`);
    const url = new URL(source.db.url());
    url.pathname = `/${name}`;
    const r = await pgtape(['replay', '--store', store(), '--to', 'latest', '--into', url.toString(), ...args], env);
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      return { ...r, sums: r.code === 0 ? await checksums(client) : undefined };
    } finally {
      await client.end();
      await source.admin.query(`drop database ${name}`);
    }
  };

  it('archives under one wrapping key across restarts, and replays with --key-file kms:', async () => {
    const printed = await pgtape([...archiveArgs(source.db.url(), store()), '--encrypt', 'kms:alias/shop', '--print-config'], env);
    expect(printed.code, printed.stderr).toBe(0);
    // A configuration --print-config prints is one the archiver would take.
    const bad = await pgtape([...archiveArgs(source.db.url(), store()), '--encrypt', 'kms: x', '--print-config'], env);
    expect(bad.code).toBe(2);
    expect(kms.calls.size).toBe(0); // --print-config asks KMS nothing
    // Refused after KMS gave a new wrapping key (a wrong password): nothing is stored.
    const url = new URL(source.db.url());
    url.password = 'wrong';
    const refused = await pgtape(
      [...archiveArgs(url.toString(), store(), '--create-publication', '--until', 'now'), '--encrypt', 'kms:alias/shop'],
      env,
    );
    expect(refused.code).toBe(2);
    expect(kms.calls.get('GenerateDataKey')).toBe(1);
    expect(existsSync(join(store(), 'keys'))).toBe(false);
    kms.calls.clear();
    const first = await archiveNow('--encrypt', 'kms:alias/shop');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/"kmsKey":"arn:aws:kms:us-east-1:111122223333:key\//);
    await source.admin.query(`update salaries set amount = amount * 2 where id % 3 = 0`);
    const second = await archiveNow('--encrypt', 'kms:alias/shop');
    expect(second.code, second.stderr).toBe(0);
    expect(kmsObjects()).toHaveLength(1);
    expect(kms.calls.get('GenerateDataKey')).toBe(1);
    sums = await checksums(source.admin);
    const r = await replay('--key-file', 'kms:');
    expect(r.code, r.stderr).toBe(0);
    expect(r.sums).toEqual(sums);
  });

  it('a reader without kms:, or refused by KMS, is told what to do (exit 2); an archive without a key is refused', async () => {
    const none = await replay();
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/wrapped by AWS KMS, and KMS was not asked for it/);
    expect(none.stderr).toMatch(/--key-file kms:/);
    kms.deny.add('Decrypt');
    try {
      const refused = await replay('--key-file', 'kms:');
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/KMS did not decrypt it \(AccessDeniedException/);
      // verify asked to check with KMS does not pass what it could not check.
      const unchecked = await pgtape(['verify', '--store', store(), '--key-file', 'kms:'], env);
      expect(unchecked.code, unchecked.stdout).toBe(2);
      const log = await pgtape(['log', '--store', store(), '--key-file', 'kms:'], env);
      expect(log.code).toBe(2);
      // The write-only archiver cannot make bases from what it cannot read.
      const keeper = await archiveNow('--encrypt', 'kms:alias/shop', '--base-every', '1h');
      expect(keeper.code).toBe(2);
      expect(keeper.stderr).toMatch(/--base-every and --base-after read the archive, and KMS does not decrypt/);
      expect(kmsObjects()).toHaveLength(1); // refused before anything was stored
    } finally {
      kms.deny.clear();
    }
    const named = await pgtape(['log', '--store', store(), '--key-file', 'kms:alias/shop'], env);
    expect(named.code).toBe(2);
    expect(named.stderr).toMatch(/--key-file kms:alias\/shop: give kms: alone/);
    const empty = await archiveNow('--encrypt', 'kms:');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/--encrypt kms: needs the KMS key after it/);
    const clear = await archiveNow();
    expect(clear.code).toBe(2);
    expect(clear.stderr).toMatch(/--encrypt kms:<the KMS key> \(or --key-file kms: to go on under/);
    const goOn = await archiveNow('--key-file', 'kms:');
    expect(goOn.code, goOn.stderr).toBe(0);
  });

  it('rekey moves the archive from KMS to a key file and back; verify names a lost KMS key object', async () => {
    const secret = join(dir, 'archive.key');
    expect((await pgtape(['keygen', '--secret', secret])).code).toBe(0);
    const toFile = await pgtape(['rekey', '--store', store(), '--key-file', 'kms:', '--encrypt', secret], env);
    expect(toFile.code, toFile.stderr).toBe(0);
    // KMS refusing everything no longer matters.
    kms.deny.add('Decrypt');
    try {
      const r = await replay('--key-file', secret);
      expect(r.code, r.stderr).toBe(0);
      expect(r.sums).toEqual(sums);
    } finally {
      kms.deny.clear();
    }
    const back = await pgtape(['rekey', '--store', store(), '--key-file', secret, '--encrypt', 'kms:alias/shop'], env);
    expect(back.code, back.stderr).toBe(0);
    const viaKms = await replay('--key-file', 'kms:');
    expect(viaKms.code, viaKms.stderr).toBe(0);
    expect(viaKms.sums).toEqual(sums);
    const sound = await pgtape(['verify', '--store', store(), '--key-file', 'kms:', '--require-keys'], env);
    expect(sound.code, sound.stdout + sound.stderr).toBe(0);
    // Without a key, verify passes on checksums, unless every file must be opened.
    expect((await pgtape(['verify', '--store', store()], env)).code).toBe(0);
    const unopened = await pgtape(['verify', '--store', store(), '--require-keys'], env);
    expect(unopened.code).toBe(2);
    expect(unopened.stderr).toMatch(
      /--require-keys: encrypted files under keys not given were checked only against their checksums \(keys [0-9a-f]{16}/,
    );

    for (const f of kmsObjects()) rmSync(join(store(), 'keys', 'kms', f));
    const lost = await pgtape(['verify', '--store', store()], env);
    expect(lost.code).toBe(4);
    expect(lost.stdout).toMatch(/MISSING.*does not hold that key's KMS-encrypted copy \(keys\/kms\/[0-9a-f]{16}\.json/);
    const unreadable = await pgtape(['log', '--store', store(), '--key-file', 'kms:'], env);
    expect(unreadable.code).toBe(4);
    expect(unreadable.stderr).toMatch(/copy of that key is missing \(keys\/kms\/[0-9a-f]{16}\.json\)/);
  });
});
