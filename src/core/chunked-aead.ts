import { createCipheriv, createDecipheriv, createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

// Authenticated encryption of a stream in chunks (issue 17's building block; not wired into any
// command yet): AES-256-GCM from node:crypto, one random data key per file, the body cut into
// chunks of `chunkBytes` so that a reader never holds more than a chunk and never hands on a byte
// it has not authenticated. Each chunk's nonce is its index and a final-chunk flag (the STREAM
// construction of Hoang, Reyhanitabar, Rogaway and Vizár): chunks cannot be reordered, dropped
// from the end or followed by more without the tag failing, and a key encrypts one file only, so
// no nonce repeats under it. The caller's associated data (what names the file: its clear header,
// its key) is bound to every chunk, so a body moved under another name does not authenticate.
//
//   4 bytes   chunkBytes, unsigned big-endian
//   chunks    ciphertext of chunkBytes bytes and its 16-byte tag; the final chunk holds 0 to
//             chunkBytes bytes (exactly chunkBytes when the body fills its chunks)

export const DATA_KEY_BYTES = 32;
export const DEFAULT_CHUNK_BYTES = 64 << 10;
const TAG_BYTES = 16;
const NONCE_BYTES = 12;
const PREFIX_BYTES = 4;
const MAX_CHUNK_BYTES = 16 << 20;

/** Ciphertext that does not decrypt: a wrong key, or a file changed, cut, reordered or moved. */
export class DecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecryptionError';
  }
}

function nonce(index: number, final: boolean): Buffer {
  const n = Buffer.alloc(NONCE_BYTES);
  n.writeUIntBE(index, NONCE_BYTES - 1 - 6, 6);
  n[NONCE_BYTES - 1] = final ? 1 : 0;
  return n;
}

/** The associated data as every chunk binds it: a digest, so that a long header costs one hash. */
function boundData(associatedData: Buffer): Buffer {
  return createHash('sha256').update('pgtape chunked-aead v1\0').update(associatedData).digest();
}

function checkKey(key: Buffer): void {
  if (key.length !== DATA_KEY_BYTES) throw new Error(`a data key is ${DATA_KEY_BYTES} bytes, not ${key.length}`);
}

function sealChunk(key: Buffer, aad: Buffer, index: number, final: boolean, plain: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, nonce(index, final), { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

function openChunk(key: Buffer, aad: Buffer, index: number, final: boolean, sealed: Buffer): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, nonce(index, final), { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new DecryptionError(
      `chunk ${index}${final ? ' (the last)' : ''} does not authenticate: a wrong key, or the file was changed, cut short, reordered or moved under another name`,
    );
  }
}

/** Encrypts a stream: plaintext in, the format above out. */
export function encryptingStream(key: Buffer, associatedData: Buffer, chunkBytes = DEFAULT_CHUNK_BYTES): Transform {
  checkKey(key);
  const aad = boundData(associatedData);
  const prefix = Buffer.alloc(PREFIX_BYTES);
  prefix.writeUInt32BE(chunkBytes);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let index = 0;
  let started = false;
  return new Transform({
    transform(data: Buffer, _encoding, done: TransformCallback) {
      if (!started) {
        this.push(prefix);
        started = true;
      }
      pending.push(data);
      pendingBytes += data.length;
      // A chunk is sealed as not final only once more follows it.
      if (pendingBytes > chunkBytes) {
        let all = Buffer.concat(pending);
        while (all.length > chunkBytes) {
          this.push(sealChunk(key, aad, index++, false, all.subarray(0, chunkBytes)));
          all = all.subarray(chunkBytes);
        }
        pending = [all];
        pendingBytes = all.length;
      }
      done();
    },
    flush(done: TransformCallback) {
      if (!started) this.push(prefix);
      this.push(sealChunk(key, aad, index, true, Buffer.concat(pending)));
      done();
    },
  });
}

/** Decrypts a stream of the format above; refuses it (DecryptionError) at the first chunk that does not authenticate, and a stream cut short. */
export function decryptingStream(key: Buffer, associatedData: Buffer): Transform {
  checkKey(key);
  const aad = boundData(associatedData);
  let chunkBytes = -1;
  let pending: Buffer = Buffer.alloc(0);
  let index = 0;
  return new Transform({
    transform(data: Buffer, _encoding, done: TransformCallback) {
      pending = pending.length ? Buffer.concat([pending, data]) : data;
      try {
        if (chunkBytes < 0) {
          if (pending.length < PREFIX_BYTES) return done();
          chunkBytes = pending.readUInt32BE(0);
          if (chunkBytes === 0 || chunkBytes > MAX_CHUNK_BYTES)
            throw new DecryptionError(`not an encrypted body (chunks of ${chunkBytes} bytes)`);
          pending = pending.subarray(PREFIX_BYTES);
        }
        // A whole chunk is known not to be the last once a byte follows it.
        const sealed = chunkBytes + TAG_BYTES;
        while (pending.length > sealed) {
          this.push(openChunk(key, aad, index++, false, pending.subarray(0, sealed)));
          pending = pending.subarray(sealed);
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      if (chunkBytes < 0 || pending.length < TAG_BYTES)
        return done(new DecryptionError('the encrypted body is cut short: its last chunk is missing'));
      try {
        this.push(openChunk(key, aad, index, true, pending));
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
}

/** A small object (a manifest, an index object) encrypted at once. */
export function encryptBuffer(key: Buffer, associatedData: Buffer, plain: Buffer, chunkBytes = DEFAULT_CHUNK_BYTES): Buffer {
  checkKey(key);
  const aad = boundData(associatedData);
  const prefix = Buffer.alloc(PREFIX_BYTES);
  prefix.writeUInt32BE(chunkBytes);
  const out: Buffer[] = [prefix];
  let index = 0;
  let at = 0;
  for (; plain.length - at > chunkBytes; at += chunkBytes)
    out.push(sealChunk(key, aad, index++, false, plain.subarray(at, at + chunkBytes)));
  out.push(sealChunk(key, aad, index, true, plain.subarray(at)));
  return Buffer.concat(out);
}

/** The plaintext of encryptBuffer's output (or of a whole encrypted stream). */
export function decryptBuffer(key: Buffer, associatedData: Buffer, sealed: Buffer): Buffer {
  checkKey(key);
  const aad = boundData(associatedData);
  if (sealed.length < PREFIX_BYTES + TAG_BYTES) throw new DecryptionError('the encrypted body is cut short: its last chunk is missing');
  const chunkBytes = sealed.readUInt32BE(0);
  if (chunkBytes === 0 || chunkBytes > MAX_CHUNK_BYTES) throw new DecryptionError(`not an encrypted body (chunks of ${chunkBytes} bytes)`);
  const out: Buffer[] = [];
  let index = 0;
  let at = PREFIX_BYTES;
  for (; sealed.length - at > chunkBytes + TAG_BYTES; at += chunkBytes + TAG_BYTES)
    out.push(openChunk(key, aad, index++, false, sealed.subarray(at, at + chunkBytes + TAG_BYTES)));
  out.push(openChunk(key, aad, index, true, sealed.subarray(at)));
  return Buffer.concat(out);
}
