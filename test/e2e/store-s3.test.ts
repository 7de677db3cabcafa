import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgtape, type CliResult } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { startS3, type TestS3 } from '../support/s3rver.js';
import { lsnKey } from '../../src/core/lsn.js';
import { openStore } from '../../src/store/open.js';
import { listSegments } from '../../src/log/segments.js';
import { readAll } from '../../src/store/read.js';
import { ObjectMissingError } from '../../src/store/store.js';
import { checksums } from '../support/oracle.js';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import pg from 'pg';

function expectClearError(r: CliResult, message: RegExp, secret?: string) {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  if (secret) expect(r.stderr).not.toContain(secret);
}

describe('S3 and Pachyderm stores', () => {
  const source = useSource(`create table t (id int primary key, v text); insert into t values (1, 'one')`);
  let s3: TestS3;
  beforeAll(async () => {
    s3 = await startS3();
    await s3.createBucket('tape');
    await s3.createBucket('main.shop');
    await s3.createBucket('main.shop.nuts');
    Object.assign(process.env, s3.env);
  });
  afterAll(async () => {
    await s3?.close();
  });

  it('lists more than a thousand segments across pages, in order (ListObjects V1 with markers)', async () => {
    const store = openStore('s3://tape/many');
    const keys: string[] = [];
    for (let i = 0; i < 1205; i++) keys.push(`segments/${lsnKey(BigInt(i * 100))}-${lsnKey(BigInt(i * 100 + 100))}.pgtape`);
    for (let i = 0; i < keys.length; i += 50) await Promise.all(keys.slice(i, i + 50).map((k) => store.putBytes(k, Buffer.from('x'))));
    const listed = await listSegments(store);
    expect(listed.map((s) => s.key)).toEqual(keys);
    // A page at a time, as verify and expire read a long archive.
    const pages: string[][] = [];
    for await (const page of store.listPages('segments/')) pages.push(page.map((o) => o.key));
    expect(pages.map((p) => p.length)).toEqual([1000, 205]);
    expect(pages.flat()).toEqual(keys);
  });

  it('says a key it does not hold is missing, on S3 and on a directory (read and ranged read)', async () => {
    for (const store of [openStore('s3://tape/missing'), openStore(join(source.store.dir, '..', 'missing-dir'))]) {
      await store.putBytes('segments/here', Buffer.from('x'));
      await expect(readAll(store, 'segments/gone'), store.description).rejects.toBeInstanceOf(ObjectMissingError);
      await expect(store.readRange('segments/gone', 0, 10), store.description).rejects.toBeInstanceOf(ObjectMissingError);
      expect((await readAll(store, 'segments/here')).toString()).toBe('x');
    }
  });

  it('uploads a large file in parts, and reads it back whole', async () => {
    const file = join(source.store.dir, '..', 'big-segment');
    const bytes = Buffer.alloc(12 << 20);
    for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32BE(i, i);
    mkdirSync(join(source.store.dir, '..'), { recursive: true });
    writeFileSync(file, bytes);
    process.env.PGTAPE_S3_MULTIPART_BYTES = String(6 << 20);
    process.env.PGTAPE_S3_PART_BYTES = String(5 << 20);
    try {
      const store = openStore('s3://tape/multipart');
      await store.putFile('segments/big', file);
      expect((await readAll(store, 'segments/big')).equals(bytes)).toBe(true);
    } finally {
      delete process.env.PGTAPE_S3_MULTIPART_BYTES;
      delete process.env.PGTAPE_S3_PART_BYTES;
    }
  });

  it('maps pfs://[project/]repo@branch/prefix to the gateway bucket <branch>.<repo>[.<project>], the token as both keys', async () => {
    const env = { PACH_TOKEN: 'S3RVER', PACHD_S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: 'wrong', AWS_SECRET_ACCESS_KEY: 'wrong' };
    for (const [url, slot] of [
      ['pfs://shop@main/changelog', 'pfs_two'],
      ['pfs://nuts/shop@main', 'pfs_three'],
    ] as const) {
      const r = await pgtape(
        ['archive', '--source', source.db.url(), '--store', url, '--create-publication', '--slot', slot, '--until', 'now'],
        env,
      );
      expect(r.code, r.stderr).toBe(0);
      const log = await pgtape(['log', '--store', url], env);
      expect(log.code, log.stderr).toBe(0);
    }
    expect((await openStore('s3://main.shop/changelog').list('base/')).length).toBeGreaterThan(0);
    expect((await openStore('s3://main.shop.nuts').list('base/')).length).toBeGreaterThan(0);
  });

  it('replays --to commit:<id> from the gateway bucket <commit>.<branch>.<repo>', async () => {
    const env = { PACH_TOKEN: 'S3RVER', PACHD_S3_ENDPOINT: s3.endpoint };
    const store = 'pfs://shop@main/commits';
    const archive = () =>
      pgtape(
        ['archive', '--source', source.db.url(), '--store', store, '--create-publication', '--slot', 'commits', '--until', 'now'],
        env,
      );
    expect((await archive()).code).toBe(0);
    await source.admin.query(`insert into t select g, 'at commit ' || g from generate_series(100, 120) g`);
    expect((await archive()).code).toBe(0);
    const atCommit = await checksums(source.admin);
    // What Pachyderm's gateway shows for a commit: the branch's objects as that commit holds them.
    await s3.createBucket('c0ffee01.main.shop');
    const from = openStore('s3://main.shop/commits');
    const to = openStore('s3://c0ffee01.main.shop/commits');
    for (const o of await from.list('')) await to.putBytes(o.key, await readAll(from, o.key));
    await source.admin.query(`update t set v = 'after the commit'; delete from t where id > 110`);
    expect((await archive()).code).toBe(0);
    const latest = await checksums(source.admin);

    const replayed = async (target: string, at = store) => {
      const db = `commit_${target.replace(/\W/g, '_')}`;
      await source.admin.query(`create database ${db}`);
      const url = new URL(source.db.url());
      url.pathname = `/${db}`;
      const r = await pgtape(['replay', '--store', at, '--to', target, '--into', url.toString()], env);
      expect(r.code, r.stderr).toBe(0);
      const client = new pg.Client({ connectionString: url.toString() });
      await client.connect();
      const sums = await checksums(client);
      await client.end();
      return { sums, report: JSON.parse(r.stdout) as { target: string } };
    };
    expect((await replayed('commit:c0ffee01')).sums).toEqual(atCommit);
    expect((await replayed('latest')).sums).toEqual(latest);
    const s3Url = await pgtape([
      'replay',
      '--store',
      's3://main.shop/commits',
      '--to',
      'commit:c0ffee01',
      '--csv',
      join(source.store.dir, '..', 'x'),
    ]);
    expect(s3Url.code).toBe(2);
    expect(s3Url.stderr).toMatch(/needs a pfs:\/\/ store or a mounted PFS directory/);
  });

  it('says clearly what is wrong with a store, never showing secrets', async () => {
    const archive = (store: string, env: NodeJS.ProcessEnv = {}, ...extra: string[]) =>
      pgtape(
        ['archive', '--source', source.db.url(), '--store', store, '--create-publication', '--until', 'now', '--slot', 'bad', ...extra],
        env,
      );
    expectClearError(await archive('s3://no-such-bucket/x'), /store s3:\/\/no-such-bucket\/x: bucket "no-such-bucket" does not exist/);
    expectClearError(
      await archive('s3://tape/x', { AWS_ACCESS_KEY_ID: 'nobody', AWS_SECRET_ACCESS_KEY: 'not-the-secret-123' }),
      /store s3:\/\/tape\/x: access denied/,
      'not-the-secret-123',
    );
    expectClearError(
      await archive('s3://tape/x', {}, '--s3-endpoint', 'http://127.0.0.1:1'),
      /store s3:\/\/tape\/x: cannot reach http:\/\/127\.0\.0\.1:1/,
    );
    expectClearError(await archive('gs://tape/x'), /unsupported store URL scheme "gs"/);
    expectClearError(await archive('pfs://shop'), /is not a pfs:\/\/ URL/);
    expectClearError(await archive('pfs://my.repo@main'), /the repo name "my\.repo" is not a valid Pachyderm name/);
    expectClearError(await archive('s3://tape/a/../b'), /breaks Pachyderm's key rules/);
    expectClearError(await archive('s3://tape/what?'), /breaks Pachyderm's key rules/);
    // Nothing was created on the source by the refused runs.
    expect((await source.admin.query(`select 1 from pg_replication_slots where slot_name = 'bad'`)).rowCount).toBe(0);
  });
});
