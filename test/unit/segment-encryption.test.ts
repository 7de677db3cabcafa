import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { identity, noteTable, tuple } from '../support/segment-fixture.js';
import { UserError } from '../../src/core/errors.js';
import { newKeyPairFiles, newSecretKeyFile, parseKeyFile, type WrappingKey } from '../../src/core/key-wrap.js';
import { openMarkName, type SegmentSealing } from '../../src/segment/encryption.js';
import { decodeHead, encodeHead, type SegmentEntry } from '../../src/segment/format.js';
import { CorruptSegmentError, SegmentReader } from '../../src/segment/reader.js';
import { SegmentWriter } from '../../src/segment/writer.js';
import { putSegment } from '../../src/log/segments.js';
import { DirectoryStore } from '../../src/store/directory.js';
import { scratchDir } from '../support/scratch.js';

// Segments encrypted at seal time (docs/ARCHITECTURE.md, "Encryption at rest"): read back with the
// key, refused without it, and every tampering refused as damage, never decoded into garbage.

const { dir, remove: removeScratch } = scratchDir('pgtape-segment-enc-');
afterAll(removeScratch);

const relation = noteTable('payroll', 'salaries');
const secret = parseKeyFile(newSecretKeyFile(), 'secret');
const pair = newKeyPairFiles();
const publicKey = parseKeyFile(pair.publicFile, 'public');
const privateKey = parseKeyFile(pair.privateFile, 'private');

/** A segment from `start`, encrypted for `key` when given; `rows` random rows make its body large (streamed, many chunks). */
async function writeSegment(start: bigint, key: WrappingKey | undefined, rows = 0): Promise<Buffer> {
  const sealing: SegmentSealing | undefined = key && { key, markPrefix: 'pgtape' };
  const writer = new SegmentWriter(dir, start, identity, 'br', () => relation, sealing);
  writer.begin(700, start + 0x100n, 1_795_000_000_123_456n);
  writer.change({ kind: 'insert', relation: 16384, new: tuple('tt', '1', 'alice earns 123456') });
  writer.change({ kind: 'message', prefix: 'pgtape', content: Buffer.from('before-raise'), lsn: start + 0x180n, transactional: true });
  for (let i = 0; i < rows; i++)
    writer.change({ kind: 'insert', relation: 16384, new: tuple('tt', String(i + 2), randomBytes(600).toString('hex')) });
  writer.commit(start + 0x100n, start + 0x200n, 1_795_000_000_123_456n, 0);
  return readFileSync((await writer.seal()).path);
}

async function read(bytes: Buffer, keys: WrappingKey[] | undefined, whole = false) {
  const reader = new SegmentReader(
    Readable.from([bytes.subarray(0, 50), bytes.subarray(50)]),
    'test segment',
    whole ? bytes : undefined,
    keys,
  );
  const entries: SegmentEntry[] = [];
  for await (const e of reader.entries()) entries.push(e);
  return { header: await reader.header(), entries };
}

/** The file with its body replaced, and its header's size and checksum made to match (what a careful forger does). */
function withBody(file: Buffer, body: Buffer, header = decodeHead(file, 'x').header): Buffer {
  return Buffer.concat([encodeHead({ ...header, bodyBytes: body.length, bodySha256: createHash('sha256').update(body).digest() }), body]);
}
const bodyOf = (file: Buffer) => file.subarray(decodeHead(file, 'x').bodyOffset);

describe('segment encryption', () => {
  it.each([
    ['a secret key', secret, [secret]],
    ['a public key, opened with its private half', publicKey, [privateKey]],
  ] as const)('with %s: the body, table names and mark names are sealed, and read back the same', async (_what, key, keys) => {
    const plain = await read(await writeSegment(0x1000n, undefined), undefined);
    const file = await writeSegment(0x1000n, key);
    for (const secretText of ['alice', 'salaries', 'payroll', 'before-raise']) expect(file.includes(secretText)).toBe(false);
    const raw = decodeHead(file, 'x').header;
    expect(raw.tables).toEqual([{ oid: 16384, schema: '', name: '', inserts: 1, updates: 0, deletes: 0, truncates: 0 }]);
    expect(raw.encryption!.dataKey.keyId).toBe(key.id);
    // What planning needs stays in the clear.
    expect(raw).toMatchObject({ startLsn: 0x1000n, endLsn: 0x1200n, transactions: 1, changes: 1, messages: 1, minXid: 700 });
    for (const whole of [false, true]) {
      const opened = await read(file, [...keys], whole);
      expect(opened.entries).toEqual(plain.entries);
      expect(opened.header.tables).toEqual(plain.header.tables);
    }
    const [mark] = raw.encryption!.marks;
    expect(mark!.commitLsn).toBe(0x1100n);
    expect(openMarkName(mark!, [...keys], 'mark')).toBe('before-raise');
  });

  it('is refused without its key, naming the key id (exit 2); the archiver holding the public key cannot read what it wrote', async () => {
    const file = await writeSegment(0x1000n, publicKey);
    for (const keys of [undefined, [secret], [publicKey]]) {
      const err = await read(file, keys).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).exitCode).toBe(2);
      expect((err as Error).message).toContain(publicKey.id);
    }
    const err = await read(file, [publicKey]).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/only its public half was given/);
    // The header alone reads without a key (ranges and counts), its names stay sealed.
    const header = await new SegmentReader(Readable.from([file]), 'test segment', undefined, [publicKey]).header();
    expect(header.tables[0]!.name).toBe('');
  });

  it('refuses a changed byte, a cut body, swapped chunks and a body moved under another name, even with a matching checksum', async () => {
    const file = await writeSegment(0x1000n, secret, 200); // ~240 kB of random hex: several 64 KiB chunks
    expect((await read(file, [secret])).entries.length).toBe(205);
    const body = bodyOf(file);
    const refusals: Buffer[] = [];
    for (const at of [10, body.length >> 1, body.length - 3]) {
      const changed = Buffer.from(body);
      changed[at]! ^= 0x01;
      refusals.push(withBody(file, changed));
    }
    refusals.push(withBody(file, body.subarray(0, 4 + 65536 + 16))); // the first chunk alone
    const chunk = 65536 + 16;
    refusals.push(
      withBody(
        file,
        Buffer.concat([
          body.subarray(0, 4),
          body.subarray(4 + chunk, 4 + 2 * chunk),
          body.subarray(4, 4 + chunk),
          body.subarray(4 + 2 * chunk),
        ]),
      ),
    );
    // Another segment's body (same key, same shape) under this one's header.
    const other = await writeSegment(0x2000n, secret, 200);
    refusals.push(withBody(file, bodyOf(other)));
    for (const bytes of refusals) {
      for (const whole of [false, true]) {
        const err = await read(bytes, [secret], whole).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(CorruptSegmentError);
        expect((err as Error).message).toMatch(/does not authenticate|cannot be decoded|cut short/);
      }
    }
    // The untouched file still reads: nothing above was a false alarm of the reader itself.
    expect((await read(withBody(file, body), [secret])).entries.length).toBe(205);
  });

  it('a segment sealed again after a crash is stored once (recognised by its facts); another body under its name is refused (exit 3)', async () => {
    const store = new DirectoryStore(join(dir, 'store'));
    const seal = async (rows: number, key: WrappingKey) => {
      const writer = new SegmentWriter(dir, 0x1000n, identity, 'br', () => relation, { key, markPrefix: 'pgtape' });
      writer.begin(700, 0x1100n, 1_795_000_000_123_456n);
      for (let i = 0; i < rows; i++) writer.change({ kind: 'insert', relation: 16384, new: tuple('tt', String(i), 'x') });
      writer.commit(0x1100n, 0x1200n, 1_795_000_000_123_456n, 0);
      return writer.seal();
    };
    expect(await putSegment(store, await seal(3, publicKey))).toMatchObject({ existed: false });
    // The archiver holding only the public key cannot open what it stored: the facts decide.
    expect(await putSegment(store, await seal(3, publicKey))).toMatchObject({ existed: true });
    const err = await putSegment(store, await seal(4, publicKey)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).exitCode).toBe(3);
  });

  it('two seals of the same transactions differ in bytes (a new data key each) and agree in every fact', async () => {
    const a = decodeHead(await writeSegment(0x1000n, secret), 'a').header;
    const b = decodeHead(await writeSegment(0x1000n, secret), 'b').header;
    expect(a.bodySha256.equals(b.bodySha256)).toBe(false);
    expect({ ...a, bodySha256: 0, encryption: 0 }).toEqual({ ...b, bodySha256: 0, encryption: 0 });
  });
});
