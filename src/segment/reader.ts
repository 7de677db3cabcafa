import { createHash, type Hash } from 'node:crypto';
import type { Readable, Transform } from 'node:stream';
import { createDecompressor, decompressSync } from '../core/compression.js';
import { DecryptionError, decryptBuffer, decryptingStream } from '../core/chunked-aead.js';
import { opensKey, type WrappingKey } from '../core/key-wrap.js';
import { openBodyKey, openHeaderNames } from './encryption.js';
import { EntryScanner, MalformedEntryError } from './entry-scanner.js';
import { decodeHead, HEAD_PREFIX_BYTES, headLength, NotASegmentError, type SegmentEntry, type SegmentHeader } from './format.js';

export class CorruptSegmentError extends Error {}

/** A segment that cannot be read as one: the archive's damage, not pgtape's bug (exit 4). */
export function isSegmentDamage(err: unknown): err is Error {
  return err instanceof CorruptSegmentError || err instanceof NotASegmentError || err instanceof MalformedEntryError;
}

/** An encrypted header's table names, opened when a key given opens them; names that do not open under it are damage. */
function openNames(header: SegmentHeader, keys: WrappingKey[] | undefined, what: string): SegmentHeader {
  try {
    return openHeaderNames(header, keys, what);
  } catch (err) {
    if (err instanceof DecryptionError) throw new CorruptSegmentError(`${what}: its table names cannot be opened (${err.message})`);
    throw err;
  }
}

/** Decompressed bodies up to this size, when the whole file is at hand, are decompressed synchronously. */
const SYNC_BODY_BYTES = 1 << 20;

/** How far a body decompressed ahead (SegmentReader.decompressAhead) may run before it is read. */
const DECOMPRESS_AHEAD_BYTES = 32 << 20;

/** A body being decompressed, with what its end is checked against. */
interface BodyStream {
  decompressor: Transform;
  /** Its stored bytes' hash, unless the whole file was checked before. */
  hash: Hash | undefined;
  /** Stored bytes fed so far. */
  compressed: number;
  /** Resolves once every stored byte was fed. */
  fed: Promise<void>;
  /** Stops decompressing and releases the streams. */
  stop(): void;
}

/** Bytes read for a header at first: enough for most; a longer head takes one more read. */
const HEAD_GUESS_BYTES = 8 << 10;

/**
 * A segment's header alone, through `readRange` (at most two small reads), without touching the
 * body: what listing an archive needs of each segment.
 */
export async function readHeader(readRange: (offset: number, length: number) => Promise<Buffer>, what: string): Promise<SegmentHeader> {
  let head = await readRange(0, HEAD_GUESS_BYTES);
  if (head.length < HEAD_PREFIX_BYTES) {
    throw new NotASegmentError(`${what} is not a pgtape segment (${head.length} bytes, shorter than a header)`);
  }
  const total = headLength(head, what);
  if (total > head.length) head = Buffer.concat([head, await readRange(head.length, total - head.length)]);
  if (total > head.length) throw new CorruptSegmentError(`${what} is truncated inside its header`);
  return decodeHead(head, what).header;
}

/** readHeader, with an encrypted header's table names opened when `keys` can. */
export async function readOpenHeader(
  readRange: (offset: number, length: number) => Promise<Buffer>,
  what: string,
  keys: WrappingKey[] | undefined,
): Promise<SegmentHeader> {
  return openNames(await readHeader(readRange, what), keys, what);
}

/**
 * Reads one segment file from a stream: its header first, then its entries one by one, with
 * memory bounded by the largest entry. The body checksum is verified as the body passes; a
 * mismatch is thrown at the end, after the last entry (callers that apply changes must not
 * commit before the iterator has finished).
 */
export class SegmentReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);

  private headBytes = 0;

  constructor(
    private readonly source: Readable,
    private readonly what: string,
    /** The whole file, when it was downloaded already: checked before anything is decoded. */
    private readonly whole?: Buffer,
    /** Keys to open an encrypted segment with (segment/encryption.ts). */
    private readonly keys?: WrappingKey[],
  ) {
    // A file at hand is read from memory: its stream is never iterated (an iterator on a stream
    // destroyed unread makes Node build a premature-close error, once per segment of a log).
    if (whole) this.pending = whole;
    this.iterator = whole ? (async function* () {})() : source[Symbol.asyncIterator]();
  }

  /** Releases the stored object (its descriptor or connection); reading stops. Reading to the end closes it too. */
  close(): void {
    this.source.destroy();
    this.bodyTaken = true;
    this.started?.stop();
    this.started = undefined;
  }

  /**
   * The header, read once: callers at the same time (a reader decompressing ahead and the one
   * that reads it) share one read; each of them cutting the head off `pending` would cut the body.
   */
  header(): Promise<SegmentHeader> {
    this.headerRead ??= this.readHeader();
    return this.headerRead;
  }

  private headerRead: Promise<SegmentHeader> | undefined;

  private async readHeader(): Promise<SegmentHeader> {
    await this.fill(HEAD_PREFIX_BYTES);
    const total = headLength(this.pending, this.what);
    await this.fill(total);
    const { header, bodyOffset } = decodeHead(this.pending, this.what);
    this.headBytes = bodyOffset;
    this.pending = this.pending.subarray(bodyOffset);
    return openNames(header, this.keys, this.what);
  }

  /**
   * The decompressed body, in chunks that end at entry boundaries (an entry split between two
   * decompressed chunks is carried into the next), for an EntryScanner. The checksum and length
   * are checked after the last chunk; when the whole file was handed over, before the first.
   * A body that stops decompressing is still read to its end: when its checksum fails too,
   * that is the damage reported (a flipped byte makes both happen).
   */
  async *wholeEntryChunks(): AsyncGenerator<Buffer> {
    const header = await this.header();
    // An encrypted body's key first: a key not given is said before any byte is read.
    const sealed = this.bodyKey(header);
    if (this.whole) {
      try {
        this.checkWhole(header, this.whole);
      } catch (err) {
        this.close();
        throw err;
      }
    }
    if (this.whole && header.rawBodyBytes <= SYNC_BODY_BYTES) {
      yield* this.smallBody(header, this.whole.subarray(this.headBytes), sealed);
      return;
    }
    this.bodyTaken = true;
    const body = this.started ?? this.startBody(header, sealed);
    this.started = undefined;
    const { decompressor } = body;
    let rest: Buffer = Buffer.alloc(0);
    let broken: Error | undefined;
    let ended = false;
    try {
      for await (const decompressed of decompressor) {
        let data = decompressed as Buffer;
        if (rest.length) {
          // An entry cut by the chunk boundary: joined on its own, not by copying the whole chunk.
          const extent = EntryScanner.extent(rest.length >= 5 ? rest : Buffer.concat([rest, data.subarray(0, 5)]));
          if (extent < 0 || extent > rest.length + data.length) {
            rest = Buffer.concat([rest, data]);
            continue;
          }
          yield Buffer.concat([rest, data.subarray(0, extent - rest.length)]);
          data = data.subarray(extent - rest.length);
        }
        const whole = EntryScanner.wholeEntries(data);
        rest = data.subarray(whole);
        if (whole > 0) yield data.subarray(0, whole);
      }
      ended = true;
    } catch (err) {
      if (err instanceof NotASegmentError || err instanceof CorruptSegmentError) throw err;
      broken = err as Error;
      body.stop();
      ended = true;
    } finally {
      // The caller stopped before the end (found what it looked for, or failed): what was opened
      // for this segment is released, not left to hold a descriptor or a connection.
      if (!ended) {
        body.stop();
        this.close();
      }
    }
    await body.fed;
    if (body.compressed !== header.bodyBytes) {
      throw new CorruptSegmentError(
        `${this.what}: body is ${body.compressed} bytes, header says ${header.bodyBytes} (truncated or padded)`,
      );
    }
    if (body.hash && !body.hash.digest().equals(header.bodySha256))
      throw new CorruptSegmentError(`${this.what}: body checksum does not match its header`);
    if (broken) throw new CorruptSegmentError(`${this.what}: body cannot be decoded (${broken.message})`);
    if (rest.length) throw new CorruptSegmentError(`${this.what}: body ends inside an entry`);
  }

  /**
   * Starts decompressing a body at hand now, on the thread pool, up to `DECOMPRESS_AHEAD_BYTES`
   * before it is read: a replay folds one segment while the next is decompressed (brotli, not
   * the fold, sets the pace there). A small body is decompressed when read, as without this; so
   * is one whose header or key fails: the failure is met by wholeEntryChunks().
   */
  decompressAhead(): void {
    if (!this.whole || this.started || this.bodyTaken) return;
    this.header()
      .then((header) => {
        // Read (or closed) meanwhile: the reader started its own, or wants none.
        if (this.started || this.bodyTaken || header.rawBodyBytes <= SYNC_BODY_BYTES) return;
        this.started = this.startBody(header, this.bodyKey(header), DECOMPRESS_AHEAD_BYTES);
        // Met by wholeEntryChunks(), which iterates the errored stream; none is unhandled meanwhile.
        this.started.decompressor.on('error', () => {});
      })
      .catch(() => {});
  }

  /** An encrypted body's key, opened with the keys given (thrown when none opens it). */
  private bodyKey(header: SegmentHeader): { dataKey: Buffer; bodyContext: Buffer } | undefined {
    return header.encryption ? openBodyKey(header, this.keys ?? [], this.what) : undefined;
  }

  /** A body decompressed ahead and not read yet. */
  private started: BodyStream | undefined;
  /** wholeEntryChunks() took the body, or the reader was closed: nothing is to be started ahead any more. */
  private bodyTaken = false;

  /** The body fed to its decompressor (opened first when encrypted), with its stored bytes counted and, unless checked whole, hashed. */
  private startBody(header: SegmentHeader, sealed: { dataKey: Buffer; bodyContext: Buffer } | undefined, ahead?: number): BodyStream {
    // A file at hand was checked whole: its body is not hashed a second time as it passes.
    const hash = this.whole ? undefined : createHash('sha256');
    const decompressor = createDecompressor(header.compression, header.rawBodyBytes, ahead);
    // The stored bytes are checksummed as they are; an encrypted body is opened before it is decompressed.
    const input = sealed ? decryptingStream(sealed.dataKey, sealed.bodyContext) : decompressor;
    if (sealed) {
      input.on('error', (err) => decompressor.destroy(err));
      input.pipe(decompressor);
    }
    let decompressing = true;
    const self = this;
    async function* stored(): AsyncGenerator<Buffer> {
      if (self.pending.length) yield self.pending;
      for (;;) {
        const next = await self.iterator.next();
        if (next.done) return;
        yield next.value as Buffer;
      }
    }
    const body: BodyStream = {
      decompressor,
      hash,
      compressed: 0,
      fed: Promise.resolve(),
      stop: () => {
        decompressing = false;
        input.destroy();
        decompressor.destroy();
      },
    };
    body.fed = (async () => {
      try {
        for await (const chunk of stored()) {
          hash?.update(chunk);
          body.compressed += chunk.length;
          // A destroyed input has sent its 'close' already: waiting for it would never end.
          if (decompressing && !input.write(chunk) && !input.destroyed) {
            await new Promise((r) => {
              input.once('drain', r);
              input.once('close', r);
            });
          }
        }
        if (decompressing) input.end();
      } catch (err) {
        // Reading the store failed: the reader sees it as the decompressor's error.
        decompressor.destroy(err as Error);
        throw err;
      }
    })();
    body.fed.catch(() => {}); // awaited by wholeEntryChunks()
    return body;
  }

  /** Whether the keys given open this segment's body (a plaintext one always opens). */
  async opens(): Promise<boolean> {
    const e = (await this.header()).encryption;
    return !e || opensKey(this.keys, e.dataKey.keyId);
  }

  /**
   * Reads the stored body to its end checking only its size and checksum: what can be checked
   * of an encrypted body without its key (CorruptSegmentError when they do not match).
   */
  async checkStoredBody(): Promise<void> {
    const header = await this.header();
    if (this.whole) return this.checkWhole(header, this.whole);
    const hash = createHash('sha256').update(this.pending);
    let bytes = this.pending.length;
    for (let next = await this.iterator.next(); !next.done; next = await this.iterator.next()) {
      hash.update(next.value as Buffer);
      bytes += (next.value as Buffer).length;
    }
    if (bytes !== header.bodyBytes)
      throw new CorruptSegmentError(`${this.what}: body is ${bytes} bytes, header says ${header.bodyBytes} (truncated or padded)`);
    if (!hash.digest().equals(header.bodySha256)) throw new CorruptSegmentError(`${this.what}: body checksum does not match its header`);
  }

  /** Every entry as an object, streamed. */
  async *entries(): AsyncGenerator<SegmentEntry> {
    const scanner = new EntryScanner();
    const chunks = this.wholeEntryChunks();
    try {
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
        scanner.reset(next.value);
        for (;;) {
          let entry: SegmentEntry;
          try {
            if (!scanner.next()) break;
            entry = scanner.entry();
          } catch (err) {
            // The rest is read first: a checksum that fails at the end is the damage to report.
            while (!(await chunks.next()).done);
            throw new CorruptSegmentError(`${this.what}: body cannot be decoded (${(err as Error).message})`);
          }
          yield entry;
        }
      }
    } finally {
      await chunks.return(undefined);
    }
  }

  /**
   * A small body already at hand (checked whole), decompressed at once on this thread: a stream
   * through the thread pool costs more than decompressing a few kilobytes, thousands of times
   * over an archive of small segments.
   */
  private *smallBody(header: SegmentHeader, body: Buffer, sealed: { dataKey: Buffer; bodyContext: Buffer } | undefined): Generator<Buffer> {
    this.close();
    let data: Buffer;
    try {
      data = decompressSync(header.compression, sealed ? decryptBuffer(sealed.dataKey, sealed.bodyContext, body) : body);
    } catch (err) {
      throw new CorruptSegmentError(`${this.what}: body cannot be decoded (${(err as Error).message})`);
    }
    const whole = EntryScanner.wholeEntries(data);
    if (whole !== data.length) throw new CorruptSegmentError(`${this.what}: body ends inside an entry`);
    if (whole > 0) yield data;
  }

  /** A damaged file is refused before any of it is used, when all of it is at hand. */
  private checkWhole(header: SegmentHeader, file: Buffer): void {
    const body = file.subarray(this.headBytes);
    if (body.length !== header.bodyBytes) {
      throw new CorruptSegmentError(`${this.what}: body is ${body.length} bytes, header says ${header.bodyBytes} (truncated or padded)`);
    }
    if (!createHash('sha256').update(body).digest().equals(header.bodySha256))
      throw new CorruptSegmentError(`${this.what}: body checksum does not match its header`);
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
