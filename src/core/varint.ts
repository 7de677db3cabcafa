// Protobuf's base-128 varints, for the places that write protobuf bytes by hand (segment entries
// from pgoutput's bytes, replay's merged rows): 7 bits a byte, the low bits first.

/** Bytes a varint of an unsigned 32-bit value takes. */
export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Writes an unsigned 32-bit value at `o`; returns the offset after it. */
export function writeVarint(out: Buffer, o: number, v: number): number {
  while (v >= 0x80) {
    out[o++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[o++] = v;
  return o;
}

/** Bytes a varint of an unsigned 64-bit value takes, from its high half (BigInt shifts per byte allocate). */
export function varint64Size(v: bigint): number {
  const hi = Number(v >> 32n);
  if (hi === 0) return varintSize(Number(v));
  return hi < 0x8 ? 5 : hi < 0x400 ? 6 : hi < 0x20000 ? 7 : hi < 0x1000000 ? 8 : hi < 0x80000000 ? 9 : 10;
}

/** Writes an unsigned 64-bit value (a negative int64 as its two's complement, as protobuf does). */
export function writeVarint64(out: Buffer, o: number, v: bigint): number {
  // Two 32-bit halves: BigInt arithmetic per byte would cost more than the rest of an entry.
  let lo = Number(v & 0xffffffffn);
  let hi = Number(v >> 32n);
  while (hi > 0) {
    out[o++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | ((hi & 0x7f) << 25)) >>> 0;
    hi = Math.floor(hi / 128);
  }
  return writeVarint(out, o, lo);
}
