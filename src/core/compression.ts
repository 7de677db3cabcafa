import {
  brotliDecompressSync,
  constants,
  createBrotliCompress,
  createBrotliDecompress,
  createGunzip,
  createGzip,
  gunzipSync,
} from 'node:zlib';
import type { Transform } from 'node:stream';

/** How segment bodies and base table files are compressed. */
export type Compression = 'gzip' | 'br';

// Chosen by bench/archive (its codec table is in the README): on segment bodies, brotli at
// quality 4 is both smaller and faster than quality 5-6, smaller than gzip and zstd (which
// Node 20 lacks), and at ~60 MB/s on one thread it keeps well ahead of the walsender.
export const DEFAULT_COMPRESSION: Compression = 'br';

export function createCompressor(compression: Compression): Transform {
  if (compression === 'gzip') return createGzip({ level: 6 });
  return createBrotliCompress({
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 4,
      [constants.BROTLI_PARAM_LGWIN]: 22,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_GENERIC,
    },
  });
}

/**
 * Decompression runs on libuv's thread pool. Large output chunks, and up to 8 MiB decompressed
 * ahead of the reader, keep it running while the reader works on what it has: the reader and
 * the decompressor then use a core each. Output that is known to be small (`expectedBytes`, a
 * segment's raw body size) gets chunks of its size: a 1 MiB chunk allocated for a 400-byte body,
 * thousands of times, is most of the cost of reading small segments. (zlib passes stream options
 * on to its Transform, though @types/node does not list them.)
 */
export function createDecompressor(compression: Compression, expectedBytes?: number): Transform {
  const chunkSize = expectedBytes === undefined ? 1 << 20 : Math.max(MIN_CHUNK, Math.min(1 << 20, expectedBytes));
  const options = { chunkSize, readableHighWaterMark: Math.max(chunkSize, Math.min(8 << 20, expectedBytes ?? 8 << 20)) } as object;
  if (compression === 'gzip') return createGunzip(options);
  if (compression === 'br') return createBrotliDecompress(options);
  throw new Error(`unknown compression ${JSON.stringify(compression)}`);
}

/** zlib's smallest output chunk. */
const MIN_CHUNK = 64;

/** A small body decompressed at once, on the calling thread. */
export function decompressSync(compression: Compression, body: Buffer): Buffer {
  if (compression === 'gzip') return gunzipSync(body);
  if (compression === 'br') return brotliDecompressSync(body);
  throw new Error(`unknown compression ${JSON.stringify(compression)}`);
}
