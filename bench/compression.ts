// Compares segment body codecs on real raw bodies: size and single-thread throughput.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gunzipSync, brotliDecompressSync, gzipSync } from 'node:zlib';
import { decodeHead } from '../src/segment/format.js';

/** The uncompressed bodies of the segments in these folders, up to `limit` bytes. */
export async function readRawBodies(dirs: string[], limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for (const dir of dirs) {
    for (const f of readdirSync(dir).sort()) {
      const file = readFileSync(join(dir, f));
      const { header, bodyOffset } = decodeHead(file, f);
      const body = file.subarray(bodyOffset);
      const raw = header.compression === 'gzip' ? gunzipSync(body) : brotliDecompressSync(body);
      parts.push(raw);
      total += raw.length;
      if (total >= limit) return Buffer.concat(parts).subarray(0, limit);
    }
  }
  return Buffer.concat(parts);
}

const CHUNK = 1 << 20;

export async function compressionTable(raw: Buffer): Promise<string> {
  const zstd = await import('@mongodb-js/zstd').catch(() => undefined);
  const codecs: [string, (b: Buffer) => Promise<Buffer> | Buffer][] = [
    ['gzip -1', (b) => gzipSync(b, { level: 1 })],
    ['gzip -6', (b) => gzipSync(b, { level: 6 })],
    ...[1, 2, 3, 4].map((q): [string, (b: Buffer) => Buffer] => [
      q === 2 ? 'brotli q2 (pgtape)' : `brotli q${q}`,
      (b) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: q, [constants.BROTLI_PARAM_LGWIN]: 22 } }),
    ]),
    ['brotli q5', (b) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } })],
    ['brotli q6', (b) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 6 } })],
  ];
  if (zstd) {
    codecs.push(['zstd -3', (b) => zstd.compress(b, 3)], ['zstd -9', (b) => zstd.compress(b, 9)]);
  }
  const lines = ['| codec | ratio (compressed / raw) | compress MB/s (1 thread) |', '|---|---:|---:|'];
  for (const [name, fn] of codecs) {
    const started = process.hrtime.bigint();
    let out = 0;
    for (let i = 0; i < raw.length; i += CHUNK) out += (await fn(raw.subarray(i, i + CHUNK))).length;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    lines.push(`| ${name} | ${(out / raw.length).toFixed(3)} | ${(raw.length / 1e6 / seconds).toFixed(0)} |`);
  }
  if (!zstd) lines.push('| zstd | (install the dev dependency @mongodb-js/zstd to measure) | |');
  return lines.join('\n');
}
