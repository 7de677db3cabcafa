import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/**
 * A pass-through stage that weighs and hashes what flows through it (SHA-256): a stored file's
 * size and checksum, known once the stream has ended, without a second read.
 */
export function digestTap(): { tap: Transform; bytes: () => number; sha256: () => Buffer } {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  return { tap, bytes: () => bytes, sha256: () => hash.digest() };
}
