import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCompressor } from '../core/compression.js';
import type { Compression } from '../core/compression.js';

const BATCH_BYTES = 1 << 20;

/**
 * A segment body being written: entries are batched, compressed on the thread pool and
 * streamed to a local file, so a transaction of any size costs bounded memory.
 */
export class BodySpool {
  private batch: Uint8Array[] = [];
  private batchBytes = 0;
  private readonly compressor;
  private readonly hash = createHash('sha256');
  private compressedBytes = 0;
  private readonly done: Promise<void>;
  private failure: Error | undefined;
  rawBytes = 0;

  constructor(
    readonly path: string,
    compression: Compression,
  ) {
    this.compressor = createCompressor(compression);
    const tap = new Transform({
      transform: (chunk: Buffer, _enc, callback) => {
        this.hash.update(chunk);
        this.compressedBytes += chunk.length;
        callback(null, chunk);
      },
    });
    this.done = pipeline(this.compressor, tap, createWriteStream(path));
    this.done.catch((err: Error) => {
      this.failure = err;
    });
  }

  /** Appends encoded bytes. Returns a promise when the caller should wait before writing more. */
  append(bytes: Uint8Array): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    this.batch.push(bytes);
    this.batchBytes += bytes.length;
    this.rawBytes += bytes.length;
    if (this.batchBytes < BATCH_BYTES) return undefined;
    return this.flushBatch();
  }

  private flushBatch(): Promise<void> | undefined {
    if (this.batchBytes === 0) return undefined;
    const chunk = Buffer.concat(this.batch, this.batchBytes);
    this.batch = [];
    this.batchBytes = 0;
    if (this.compressor.write(chunk)) return undefined;
    return Promise.race([once(this.compressor, 'drain').then(() => undefined), this.done]);
  }

  async finish(): Promise<{ bodyBytes: number; rawBodyBytes: number; bodySha256: Buffer }> {
    await this.flushBatch();
    this.compressor.end();
    await this.done;
    return { bodyBytes: this.compressedBytes, rawBodyBytes: this.rawBytes, bodySha256: this.hash.digest() };
  }

  destroy(): void {
    this.compressor.destroy();
  }
}
