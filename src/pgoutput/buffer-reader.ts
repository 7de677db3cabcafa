/** Big-endian reads over one message, in the manner of pg-protocol's BufferReader. */
export class BufferReader {
  private offset = 0;

  constructor(private readonly buffer: Buffer) {}

  get remaining(): number {
    return this.buffer.length - this.offset;
  }

  uint8(): number {
    this.need(1);
    return this.buffer[this.offset++]!;
  }

  int16(): number {
    this.need(2);
    const v = this.buffer.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  int32(): number {
    this.need(4);
    const v = this.buffer.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  uint32(): number {
    this.need(4);
    const v = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  /** An unsigned 64-bit value (LSNs). */
  uint64(): bigint {
    this.need(8);
    const v = this.buffer.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }

  /** A signed 64-bit value (timestamps). */
  int64(): bigint {
    this.need(8);
    const v = this.buffer.readBigInt64BE(this.offset);
    this.offset += 8;
    return v;
  }

  /** A NUL-terminated string, decoded as UTF-8 (the server encoding of a replication stream is UTF-8). */
  cstring(): string {
    const end = this.buffer.indexOf(0, this.offset);
    if (end < 0) throw new Error('pgoutput: unterminated string');
    const s = this.buffer.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return s;
  }

  /** A view of the next `n` bytes: no copy, valid only while the message buffer is. */
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buffer.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }

  private need(n: number): void {
    if (this.offset + n > this.buffer.length) {
      throw new Error(`pgoutput: message truncated (need ${n} bytes at offset ${this.offset} of ${this.buffer.length})`);
    }
  }
}
