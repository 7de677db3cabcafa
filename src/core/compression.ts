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

// Chosen by bench/archive (its codec table is in the README): brotli, at quality 1. Quality 4
// stored segment bodies about a tenth smaller (0.223 of the raw bytes against 0.248) but
// compressed at a third of the speed (61 against 180 MB/s on one thread, 2026-12-04): on a
// two-core host the archiver shares the CPU with the walsender it drains, and quality 1 cut its
// CPU per million changes by a fifth to a third (7.2 against 10.9 s on one bulk transaction).
// Still smaller than gzip, and zstd is not in Node 20. Readers take any quality.
export const DEFAULT_COMPRESSION: Compression = 'br';
const BROTLI_QUALITY = 1;

export function createCompressor(compression: Compression): Transform {
  if (compression === 'gzip') return createGzip({ level: 6 });
  return createBrotliCompress({
    params: {
      [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
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
