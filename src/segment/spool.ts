import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { createCompressor } from '../core/compression.js';
import { digestTap } from '../core/digest-tap.js';
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
  private readonly digest = digestTap();
  private readonly done: Promise<void>;
  private failure: Error | undefined;
  rawBytes = 0;

  constructor(
    readonly path: string,
    compression: Compression,
  ) {
    this.compressor = createCompressor(compression);
    this.done = pipeline(this.compressor, this.digest.tap, createWriteStream(path));
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
    return { bodyBytes: this.digest.bytes(), rawBodyBytes: this.rawBytes, bodySha256: this.digest.sha256() };
  }

  destroy(): void {
    this.compressor.destroy();
  }
}
