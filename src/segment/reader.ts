import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createDecompressor } from './compression.js';
import { decodeHead, EntryType, fromProto, HEAD_PREFIX_BYTES, headLength, NotASegmentError, type SegmentEntry, type SegmentHeader } from './format.js';

export class CorruptSegmentError extends Error {}

/**
 * Reads one segment file from a stream: its header first, then its entries one by one, with
 * memory bounded by the largest entry. The body checksum is verified as the body passes; a
 * mismatch is thrown at the end, after the last entry (callers that apply changes must not
 * commit before the iterator has finished).
 */
export class SegmentReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private headerValue: SegmentHeader | undefined;

  constructor(
    source: Readable,
    private readonly what: string,
  ) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  async header(): Promise<SegmentHeader> {
    if (this.headerValue) return this.headerValue;
    await this.fill(HEAD_PREFIX_BYTES);
    const total = headLength(this.pending, this.what);
    await this.fill(total);
    const { header, bodyOffset } = decodeHead(this.pending, this.what);
    this.pending = this.pending.subarray(bodyOffset);
    this.headerValue = header;
    return header;
  }

  async *entries(): AsyncGenerator<SegmentEntry> {
    const header = await this.header();
    const hash = createHash('sha256');
    let compressed = 0;
    const decompressor = createDecompressor(header.compression);
    const self = this;
    async function* body(): AsyncGenerator<Buffer> {
      if (self.pending.length) yield self.pending;
      for (;;) {
        const next = await self.iterator.next();
        if (next.done) return;
        yield next.value as Buffer;
      }
    }
    const feed = (async () => {
      try {
        for await (const chunk of body()) {
          hash.update(chunk);
          compressed += chunk.length;
          if (!decompressor.write(chunk)) await new Promise((r) => decompressor.once('drain', r));
        }
        decompressor.end();
      } catch (err) {
        decompressor.destroy(err as Error);
      }
    })();
    let rest: Buffer = Buffer.alloc(0);
    try {
      for await (const chunk of decompressor) {
        rest = rest.length ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
        let pos = 0;
        for (;;) {
          const len = readVarint(rest, pos);
          if (!len || len.end + len.value > rest.length) break;
          const message = EntryType.decode(rest.subarray(len.end, len.end + len.value));
          pos = len.end + len.value;
          yield fromProto(message as unknown as Record<string, unknown>);
        }
        rest = rest.subarray(pos);
      }
    } catch (err) {
      if (err instanceof NotASegmentError || err instanceof CorruptSegmentError) throw err;
      throw new CorruptSegmentError(`${this.what}: body cannot be decoded (${(err as Error).message})`);
    }
    await feed;
    if (rest.length) throw new CorruptSegmentError(`${this.what}: body ends inside an entry`);
    if (compressed !== header.bodyBytes) {
      throw new CorruptSegmentError(`${this.what}: body is ${compressed} bytes, header says ${header.bodyBytes} (truncated or padded)`);
    }
    if (!hash.digest().equals(header.bodySha256)) throw new CorruptSegmentError(`${this.what}: body checksum does not match its header`);
  }

  private async fill(n: number): Promise<void> {
    while (this.pending.length < n) {
      const next = await this.iterator.next();
      if (next.done) {
        if (this.pending.length < HEAD_PREFIX_BYTES) {
          throw new NotASegmentError(`${this.what} is not a pgtape segment (${this.pending.length} bytes, shorter than a header)`);
        }
        throw new CorruptSegmentError(`${this.what} is truncated inside its header`);
      }
      this.pending = Buffer.concat([this.pending, next.value as Buffer]);
    }
  }
}

function readVarint(buf: Buffer, pos: number): { value: number; end: number } | undefined {
  let value = 0;
  let shift = 0;
  for (let i = pos; i < buf.length && i < pos + 5; i++) {
    const b = buf[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return { value, end: i + 1 };
    shift += 7;
  }
  return undefined;
}
