import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { decryptBuffer, decryptingStream, DecryptionError, encryptBuffer, encryptingStream } from '../../src/core/chunked-aead.js';

const CHUNK = 1024;
const key = randomBytes(32);
const name = Buffer.from('segments/0000000000001000-0000000000002000.pgtape');

/** Pieces of `bytes` cut at the given sizes, in turn, as a stream hands them over. */
function pieces(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length]!);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function through(stream: NodeJS.ReadWriteStream, input: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of Readable.from(input).pipe(stream)) out.push(chunk as Buffer);
  return Buffer.concat(out);
}

const encrypt = (plain: Buffer, sizes = [plain.length || 1], aad = name) =>
  through(encryptingStream(key, aad, CHUNK), pieces(plain, sizes));
const decrypt = (sealed: Buffer, sizes = [sealed.length || 1], k = key, aad = name) =>
  through(decryptingStream(k, aad), pieces(sealed, sizes));

describe('chunked AEAD', () => {
  it.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5])(
    'round-trips %i bytes, streamed in any pieces and at once, to the same ciphertext layout',
    async (size) => {
      const plain = randomBytes(size);
      for (const sizes of [[size || 1], [1], [7, 300, 1500], [CHUNK + 16]]) {
        const sealed = await encrypt(plain, sizes);
        // The prefix, then full chunks and a last one of 0 to CHUNK bytes, each with its tag.
        const chunks = Math.max(1, Math.ceil(size / CHUNK));
        expect(sealed.length).toBe(4 + size + 16 * chunks);
        expect(await decrypt(sealed, sizes)).toEqual(plain);
        expect(decryptBuffer(key, name, sealed)).toEqual(plain);
      }
      expect(await decrypt(encryptBuffer(key, name, plain, CHUNK))).toEqual(plain);
    },
  );

  it('refuses a flipped bit in any chunk, naming the chunk, and hands on nothing of it', async () => {
    const plain = randomBytes(3 * CHUNK + 100);
    const sealed = await encrypt(plain);
    for (const [at, chunk] of [
      [4 + 10, 0],
      [4 + (CHUNK + 16) + 500, 1],
      [4 + 3 * (CHUNK + 16) + 3, 3],
      [sealed.length - 1, 3],
    ] as const) {
      const damaged = Buffer.from(sealed);
      damaged[at]! ^= 0x01;
      const out: Buffer[] = [];
      await expect(async () => {
        for await (const c of Readable.from([damaged]).pipe(decryptingStream(key, name))) out.push(c as Buffer);
      }).rejects.toThrow(new RegExp(`^chunk ${chunk}\\b`));
      // What came out (if anything) is the plaintext before the damaged chunk, never altered bytes.
      const got = Buffer.concat(out);
      expect(got.length).toBeLessThanOrEqual(chunk * CHUNK);
      expect(got).toEqual(plain.subarray(0, got.length));
      expect(() => decryptBuffer(key, name, damaged)).toThrow(DecryptionError);
    }
  });

  it('refuses a body cut short (at a chunk boundary or inside one), two chunks swapped, and bytes after the last chunk', async () => {
    const sealed = await encrypt(randomBytes(3 * CHUNK + 100));
    const chunk = (i: number) => sealed.subarray(4 + i * (CHUNK + 16), 4 + (i + 1) * (CHUNK + 16));
    const cases: [string, Buffer][] = [
      ['cut at a chunk boundary', sealed.subarray(0, 4 + 3 * (CHUNK + 16))],
      ['cut inside a chunk', sealed.subarray(0, sealed.length - 40)],
      ['cut to its prefix', sealed.subarray(0, 4)],
      ['empty', Buffer.alloc(0)],
      ['two chunks swapped', Buffer.concat([sealed.subarray(0, 4), chunk(1), chunk(0), sealed.subarray(4 + 2 * (CHUNK + 16))])],
      ['bytes after the last chunk', Buffer.concat([sealed, Buffer.from('more')])],
    ];
    for (const [what, bytes] of cases) {
      await expect(decrypt(bytes), what).rejects.toThrow(DecryptionError);
      expect(() => decryptBuffer(key, name, bytes), what).toThrow(DecryptionError);
    }
  });

  it('refuses the body under another name, and under another key', async () => {
    const sealed = await encrypt(randomBytes(2 * CHUNK));
    await expect(decrypt(sealed, undefined, key, Buffer.from('segments/0000000000002000-0000000000003000.pgtape'))).rejects.toThrow(
      /^chunk 0 does not authenticate/,
    );
    await expect(decrypt(sealed, undefined, randomBytes(32))).rejects.toThrow(DecryptionError);
  });

  it('gives two files of the same plaintext unrelated ciphertexts under their own keys', async () => {
    const plain = Buffer.alloc(2 * CHUNK, 7);
    const other = randomBytes(32);
    const a = await encrypt(plain);
    const b = await through(encryptingStream(other, name, CHUNK), [plain]);
    expect(a.subarray(4, 64).equals(b.subarray(4, 64))).toBe(false);
    expect(await decrypt(b, undefined, other)).toEqual(plain);
  });
});
