import { constants, createBrotliCompress, createBrotliDecompress, createGunzip, createGzip } from 'node:zlib';
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
 * the decompressor then use a core each. (zlib passes stream options on to its Transform,
 * though @types/node does not list them.)
 */
const DECOMPRESSOR_OPTIONS = { chunkSize: 1 << 20, readableHighWaterMark: 8 << 20 } as object;

export function createDecompressor(compression: Compression): Transform {
  if (compression === 'gzip') return createGunzip(DECOMPRESSOR_OPTIONS);
  if (compression === 'br') return createBrotliDecompress(DECOMPRESSOR_OPTIONS);
  throw new Error(`unknown compression ${JSON.stringify(compression)}`);
}
