import { constants, createBrotliCompress, createBrotliDecompress, createGunzip, createGzip } from 'node:zlib';
import type { Transform } from 'node:stream';
import type { Compression } from './format.js';

// Chosen by bench/compression.ts: see the README's table. Brotli at quality 5 gives the
// smallest bodies at a speed that keeps up with the walsender; gzip stays readable for old segments.
export const DEFAULT_COMPRESSION: Compression = 'br';

export function createCompressor(compression: Compression): Transform {
  if (compression === 'gzip') return createGzip({ level: 6 });
  return createBrotliCompress({
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 5,
      [constants.BROTLI_PARAM_LGWIN]: 22,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_GENERIC,
    },
  });
}

export function createDecompressor(compression: Compression): Transform {
  if (compression === 'gzip') return createGunzip();
  if (compression === 'br') return createBrotliDecompress();
  throw new Error(`unknown segment compression ${JSON.stringify(compression)}`);
}
