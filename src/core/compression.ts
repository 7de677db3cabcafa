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

// Chosen by bench/archive (its codec table is in the README): brotli, at quality 2. On segment
// bodies (2026-12-04) it compresses at 94 MB/s on one thread against quality 4's 61, to 0.237 of
// the raw bytes against 0.223 (quality 1: 180 MB/s but 0.248, and 0.27 of pgoutput's bytes on
// small transactions, near the 0.3 the archive promises). Compression is not what bounds the
// archiver — its wall time and CPU per change moved within the runs' noise from 1 to 4 — so
// the cheaper quality that stores about as little was taken. Readers take any quality.
export const DEFAULT_COMPRESSION: Compression = 'br';
const BROTLI_QUALITY = 2;

/**
 * Bytes a compressor takes before its writer is asked to wait: with Node's default (16 KiB) every
 * 1 MiB batch of a segment made the archiver wait for its compression on the thread pool, so
 * parsing the stream and compressing it never overlapped.
 */
const COMPRESSOR_QUEUE_BYTES = 4 << 20;
// Stream options zlib passes on to its Transform (its option types leave them out).
const queue = { writableHighWaterMark: COMPRESSOR_QUEUE_BYTES };

export function createCompressor(compression: Compression): Transform {
  if (compression === 'gzip') return createGzip({ ...queue, level: 6 });
  return createBrotliCompress({
    ...queue,
    params: {
      [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
      [constants.BROTLI_PARAM_LGWIN]: 22,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_GENERIC,
    },
  });
}

/**
 * Decompression runs on libuv's thread pool. Large output chunks, and up to 8 MiB (`aheadBytes`) decompressed
 * ahead of the reader, keep it running while the reader works on what it has: the reader and
 * the decompressor then use a core each. Output that is known to be small (`expectedBytes`, a
 * segment's raw body size) gets chunks of its size: a 1 MiB chunk allocated for a 400-byte body,
 * thousands of times, is most of the cost of reading small segments. (zlib passes stream options
 * on to its Transform, though @types/node does not list them.)
 */
export function createDecompressor(compression: Compression, expectedBytes?: number, aheadBytes = 8 << 20): Transform {
  const chunkSize = expectedBytes === undefined ? 1 << 20 : Math.max(MIN_CHUNK, Math.min(1 << 20, expectedBytes));
  // Chunks are read one by one (object mode; the mark counts chunks): a byte stream's reader would
  // get all that is buffered joined into one new buffer, a copy of the body.
  const readableHighWaterMark = Math.max(1, Math.ceil(Math.min(aheadBytes, expectedBytes ?? aheadBytes) / chunkSize));
  const options = { chunkSize, readableObjectMode: true, readableHighWaterMark } as object;
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
