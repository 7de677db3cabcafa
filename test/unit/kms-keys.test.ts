import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { identity, noteTable, tuple } from '../support/segment-fixture.js';
import { startKms, type TestKms } from '../support/kms-server.js';
import { UserError } from '../../src/core/errors.js';
import { KMS_ASKED, readsWith, type WrappingKey } from '../../src/core/key-wrap.js';
import { kmsKeyForWriting as kmsKeyFor, kmsKeysForReading, kmsTimeouts, missingKmsKey, storeWrappingKey } from '../../src/log/kms-keys.js';
import { SegmentReader } from '../../src/segment/reader.js';
import { SegmentWriter } from '../../src/segment/writer.js';
import { DirectoryStore } from '../../src/store/directory.js';
import { scratchDir } from '../support/scratch.js';

// Wrapping keys from KMS (docs/ARCHITECTURE.md, "Encryption at rest"): asked for once per
// process, stored under keys/kms/ before use, reused by a writer that may decrypt, never readable
// by one that may not; a reader refused by KMS, or missing the stored key, is told which and why.
// Against a KMS stand-in speaking the SDK's wire protocol (test/support/kms-server.ts).

const { dir: root, remove: removeScratch } = scratchDir('pgtape-kms-');
let kms: TestKms;
let arn: string;
const saved = { ...process.env };
beforeAll(async () => {
  kms = await startKms();
  arn = kms.createKey('pgtape-test');
  kms.createKey('other');
  Object.assign(process.env, kms.env);
  // An S3 endpoint for every service must not send KMS requests to the S3 server.
  process.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:9';
});
afterAll(async () => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
  Object.assign(process.env, saved);
  await kms.stop();
  removeScratch();
});
beforeEach(() => kms.deny.clear());

/** A writer's key, stored as a writer stores it once its checks pass. */
async function kmsKeyForWriting(store: DirectoryStore, kmsKey: string): Promise<WrappingKey> {
  const key = await kmsKeyFor(store, kmsKey);
  await storeWrappingKey(store, key);
  return key;
}

let n = 0;
const newStore = () => new DirectoryStore(mkdtempSync(join(root, `store-${n++}-`)));
const stored = (store: DirectoryStore) => readdirSync(join(store.root, 'keys', 'kms'));

const relation = noteTable('payroll', 'salaries');
async function segment(key: WrappingKey): Promise<Buffer> {
  const writer = new SegmentWriter(mkdtempSync(join(root, 'spool-')), 0x1000n, identity, 'br', () => relation, {
    key,
    markPrefix: 'pgtape',
  });
  writer.begin(700, 0x1100n, 1_795_000_000_123_456n);
  writer.change({ kind: 'insert', relation: 16384, new: tuple('tt', '1', 'alice earns 123456') });
  writer.commit(0x1100n, 0x1200n, 1_795_000_000_123_456n, 0);
  return readFileSync((await writer.seal()).path);
}
async function rows(bytes: Buffer, keys: WrappingKey[]): Promise<number> {
  const reader = new SegmentReader(Readable.from([bytes]), 'test segment', undefined, keys);
  let count = 0;
  for await (const e of reader.entries()) if (e.kind === 'insert') count++;
  return count;
}

describe('KMS wrapping keys', () => {
  it('a writer stores its wrapping key before use, and reuses it on its next start; a reader decrypts it', async () => {
    const store = newStore();
    const first = await kmsKeyForWriting(store, 'alias/pgtape-test');
    expect(first.kind).toBe('kms');
    expect(first.kms).toEqual({ keyArn: arn, unavailable: undefined });
    expect(stored(store)).toEqual([`${first.id}.json`]);
    const generated = kms.calls.get('GenerateDataKey');
    const again = await kmsKeyForWriting(store, arn);
    expect(again.id).toBe(first.id);
    expect(kms.calls.get('GenerateDataKey')).toBe(generated);
    expect(stored(store)).toHaveLength(1);

    const bytes = await segment(first);
    const [read] = await kmsKeysForReading(store);
    expect(read!.secret!.equals(first.secret!)).toBe(true);
    expect(await rows(bytes, [read!])).toBe(1);
    expect(await missingKmsKey(store, { mode: 'kms', keyId: first.id })).toBeUndefined();
  });

  it('another KMS key gets a wrapping key of its own', async () => {
    const store = newStore();
    const a = await kmsKeyForWriting(store, 'alias/pgtape-test');
    const b = await kmsKeyForWriting(store, 'alias/other');
    expect(b.id).not.toBe(a.id);
    expect(
      (await kmsKeysForReading(store))
        .filter(readsWith)
        .map((k) => k.id)
        .sort(),
    ).toEqual([a.id, b.id].sort());
  });

  it('a writer not allowed kms:Decrypt wraps a new key each start and cannot read what it wrote', async () => {
    const store = newStore();
    kms.deny.add('Decrypt');
    const first = await kmsKeyForWriting(store, 'alias/pgtape-test');
    expect(readsWith(first)).toBe(false);
    expect(first.kms?.unavailable).toMatch(/AccessDeniedException.*kms:Decrypt/);
    const second = await kmsKeyForWriting(store, 'alias/pgtape-test');
    expect(second.id).not.toBe(first.id);
    expect(stored(store)).toHaveLength(2);
    const bytes = await segment(first);
    // What it holds does not read: the file names the key and why.
    await expect(rows(bytes, [first])).rejects.toThrow(/wrapped by the KMS key .*KMS did not decrypt it \(AccessDeniedException/);
    const readers = await kmsKeysForReading(store);
    await expect(rows(bytes, readers)).rejects.toThrow(UserError);
    kms.deny.clear();
    expect(await rows(bytes, await kmsKeysForReading(store))).toBe(1);
  });

  it('KMS that refuses or a key not asked for: exit 2; a lost or damaged key object: exit 4; each named', async () => {
    const store = newStore();
    const key = await kmsKeyForWriting(store, 'alias/pgtape-test');
    const bytes = await segment(key);
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (err: UserError) => ({ message: err.message, hint: err.hint, exit: err.exitCode }),
      );
    expect(await refusal(rows(bytes, []))).toMatchObject({
      message: /wrapped by AWS KMS, and KMS was not asked/,
      hint: /--key-file kms:/,
      exit: 2,
    });
    // Asked, and the store holds no copy of the key: damage, not a missing option.
    expect(await refusal(rows(bytes, [KMS_ASKED]))).toMatchObject({ message: /copy of that key is missing \(keys\/kms\//, exit: 4 });
    kms.deny.add('Decrypt');
    expect(await refusal(rows(bytes, await kmsKeysForReading(store)))).toMatchObject({
      message: new RegExp(`wrapped by the KMS key ${arn}.*AccessDeniedException`),
      hint: /kms:Decrypt/,
      exit: 2,
    });
    kms.deny.clear();
    // The stored key rewritten: its name no longer matches its blob.
    writeFileSync(join(store.root, 'keys', 'kms', `${key.id}.json`), JSON.stringify({ keyArn: arn, blob: 'AAAA', created: '' }));
    expect(await refusal(rows(bytes, await kmsKeysForReading(store)))).toMatchObject({
      message: /copy of that key is damaged \(.*is damaged: its blob is not the one/,
      hint: /restore keys\/kms\//,
      exit: 4,
    });
    expect(await missingKmsKey(newStore(), { mode: 'kms', keyId: key.id })).toMatch(/does not hold that key's KMS-encrypted copy/);
  });

  it('a file where keys/kms/ would be holds no key (as on S3), and a file under a KMS key is then named unreadable', async () => {
    const store = newStore();
    mkdirSync(join(store.root, 'keys'));
    writeFileSync(join(store.root, 'keys', 'kms'), 'not a folder');
    expect(await kmsKeysForReading(store)).toEqual([]);
    expect(await missingKmsKey(store, { mode: 'kms', keyId: '0123456789abcdef' })).toMatch(/does not hold that key/);
  });

  it('a new wrapping key is stored only when the writer says (its checks passed), and wraps nothing before', async () => {
    const store = newStore();
    const key = await kmsKeyFor(store, 'alias/pgtape-test');
    expect(() => stored(store)).toThrow();
    await expect(segment(key)).rejects.toThrow(/used before it is stored/);
    await storeWrappingKey(store, key);
    expect(stored(store)).toEqual([`${key.id}.json`]);
    expect(await rows(await segment(key), await kmsKeysForReading(store))).toBe(1);
  });

  it('a KMS that accepts connections and never answers fails the command instead of hanging it', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const endpoint = process.env.AWS_ENDPOINT_URL_KMS;
    const timeout = kmsTimeouts.requestMs;
    process.env.AWS_ENDPOINT_URL_KMS = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    kmsTimeouts.requestMs = 300;
    try {
      await expect(kmsKeyFor(newStore(), 'alias/pgtape-test')).rejects.toThrow(
        /KMS gave no data key for alias\/pgtape-test: .*requestTimeout/,
      );
    } finally {
      process.env.AWS_ENDPOINT_URL_KMS = endpoint;
      kmsTimeouts.requestMs = timeout;
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('KMS unreachable, or a key it does not know: the writer is refused, nothing stored', async () => {
    const store = newStore();
    await expect(kmsKeyForWriting(store, 'alias/nobody')).rejects.toThrow(/KMS gave no data key for alias\/nobody: NotFoundException/);
    const endpoint = process.env.AWS_ENDPOINT_URL_KMS;
    process.env.AWS_ENDPOINT_URL_KMS = 'http://127.0.0.1:9';
    try {
      await expect(kmsKeyForWriting(store, 'alias/pgtape-test')).rejects.toThrow(/KMS gave no data key/);
    } finally {
      process.env.AWS_ENDPOINT_URL_KMS = endpoint;
    }
    expect(() => stored(store)).toThrow();
  });
});
