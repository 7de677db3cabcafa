import { closeSync, openSync, readSync, writeSync } from 'node:fs';

/** What a reader reads at once. */
const CHUNK = 1 << 20;

/**
 * Read buffers given back by readers that finished, for the next: a diff reads thousands of
 * these files one after another, and a new megabyte each time (memory outside the heap) made
 * the collector run a full collection every few files: 40 % of comparing the parts.
 */
const readBuffers: Buffer[] = [];
/** What a writer gathers before writing: diff has two files per part open at once. */
export const WRITE_BYTES = 32 << 10;

/**
 * Descriptors of files being written, kept open between writes, oldest first: an open and a
 * close per 32 KiB written was a twentieth of a large diff. At most `maxOpen` stay open (a diff
 * has up to a thousand part files), fewer once the process's limit is met (EMFILE): the oldest
 * are then closed, and opened again when next written.
 */
const writing = new Map<SpillFile, number>();
let maxOpen = 512;

function closeOldest(): void {
  const [file, fd] = writing.entries().next().value!;
  writing.delete(file);
  closeSync(fd);
}

function openToWrite(path: string, append: boolean): number {
  while (writing.size >= maxOpen) closeOldest();
  for (;;) {
    try {
      return openSync(path, append ? 'a' : 'w');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'EMFILE' && code !== 'ENFILE') || writing.size === 0) throw err;
      maxOpen = Math.max(1, writing.size >> 1);
      while (writing.size > maxOpen) closeOldest();
    }
  }
}

/**
 * An append-only file of length-prefixed records, written and read back synchronously (by the
 * thread that made it, or once closed by another: SpillFile.existing): what diff keeps on disk
 * when a difference is larger than its memory.
 * Its descriptor stays open between writes until close(), within a limit for all of them (`writing`).
 */
export class SpillFile {
  private buf = Buffer.alloc(0);
  private at = 0;
  private recordStart = -1;
  private written = false;
  /** Records appended. */
  count = 0;

  constructor(readonly path: string) {}

  /** A file another thread wrote and closed, holding `count` records: to be read. */
  static existing(path: string, count: number): SpillFile {
    const f = new SpillFile(path);
    f.count = count;
    f.written = count > 0;
    return f;
  }

  private write(bytes: number): void {
    let fd = writing.get(this);
    if (fd === undefined) writing.set(this, (fd = openToWrite(this.path, this.written)));
    this.written = true;
    writeSync(fd, this.buf, 0, bytes);
  }

  /** Its descriptor, if one is open, closed. */
  private release(): void {
    const fd = writing.get(this);
    if (fd === undefined) return;
    writing.delete(this);
    closeSync(fd);
  }

  private ensure(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    // The record being written moves to the front of the buffer; everything before it is written out.
    const keep = this.recordStart >= 0 ? this.recordStart : this.at;
    if (keep > 0) this.write(keep);
    const pending = this.buf.subarray(keep, this.at);
    const next =
      pending.length + bytes > this.buf.length
        ? Buffer.allocUnsafe(Math.max(WRITE_BYTES, this.buf.length * 2, pending.length + bytes))
        : this.buf;
    pending.copy(next, 0);
    this.buf = next;
    this.at = pending.length;
    if (this.recordStart >= 0) this.recordStart = 0;
  }

  begin(): void {
    this.ensure(4);
    this.recordStart = this.at;
    this.at += 4;
  }

  end(): void {
    this.buf.writeUInt32LE(this.at - this.recordStart - 4, this.recordStart);
    this.recordStart = -1;
    this.count++;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.at++] = v;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.at);
    this.at += 4;
  }

  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.at);
    this.at += 4;
  }

  /** Text, with its byte length first. */
  text(s: string): void {
    this.ensure(4 + s.length * 3);
    const n = this.buf.write(s, this.at + 4, 'utf8');
    this.buf.writeInt32LE(n, this.at);
    this.at += 4 + n;
  }

  /** Text of `bytes` UTF-8 bytes that `source` writes in place, with its byte length first (read back by text()). */
  textFrom(bytes: number, source: { encodeInto(buf: Buffer, at: number): void }): void {
    this.ensure(4 + bytes);
    this.buf.writeInt32LE(bytes, this.at);
    source.encodeInto(this.buf, this.at + 4);
    this.at += 4 + bytes;
  }

  /** Everything appended is on disk (reading calls it). */
  flush(): void {
    if (this.at > 0) this.write(this.at);
    this.at = 0;
  }

  /** Written out, its descriptor closed, and the buffer given back. */
  close(): void {
    try {
      this.flush();
    } finally {
      this.release();
      this.buf = Buffer.alloc(0);
    }
  }

  /** The records in the order they were appended, each read through the same reader. */
  *records(): Generator<RecordReader> {
    this.flush();
    if (!this.count) return;
    const fd = openSync(this.path, 'r');
    const reader = new RecordReader();
    let buf = readBuffers.pop() ?? Buffer.allocUnsafe(CHUNK);
    try {
      let have = 0;
      for (;;) {
        const n = readSync(fd, buf, have, buf.length - have, null);
        have += n;
        let at = 0;
        while (have - at >= 4) {
          const length = buf.readUInt32LE(at);
          if (have - at - 4 < length) break;
          reader.reset(buf, at + 4);
          yield reader;
          at += 4 + length;
        }
        if (n === 0) {
          if (at !== have) throw new Error(`${this.path}: the spill file ends inside a record`);
          return;
        }
        // The partial record moves to the front; a record larger than the buffer grows it.
        const rest = have - at;
        const needed = rest >= 4 ? 4 + buf.readUInt32LE(at) : 4;
        const next = needed > buf.length ? Buffer.allocUnsafe(needed * 2) : buf;
        buf.copy(next, 0, at, have);
        buf = next;
        have = rest;
      }
    } finally {
      closeSync(fd);
      // A buffer grown for a large record is left to the collector.
      if (buf.length === CHUNK && readBuffers.length < 4) readBuffers.push(buf);
    }
  }
}

/** Reads one record of a SpillFile, field by field in the order they were written. */
export class RecordReader {
  private buf: Buffer = Buffer.alloc(0);
  private at = 0;

  reset(buf: Buffer, at: number): void {
    this.buf = buf;
    this.at = at;
  }

  u8(): number {
    return this.buf[this.at++]!;
  }

  u32(): number {
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }

  i32(): number {
    const v = this.buf.readInt32LE(this.at);
    this.at += 4;
    return v;
  }

  /** Text written by SpillFile.text(). */
  text(): string {
    const bytes = this.i32();
    const s = this.buf.toString('utf8', this.at, this.at + bytes);
    this.at += bytes;
    return s;
  }
}
