import { grown } from '../src/core/typed-arrays.js';

/**
 * The buffers a batch of folded changes points into (decompressed segment chunks, and bytes made
 * while folding), kept alive until the batch is applied, and what they weigh: the planner's
 * memory bound.
 */
export class RetainedBuffers {
  readonly list: Buffer[] = [];
  bytes = 0;
  private last: Buffer | undefined;
  private lastId = -1;
  private arena: Buffer | undefined;
  private arenaId = -1;
  private arenaPos = 0;
  /** What alloc() returns: one object, reused (an allocation per key would be garbage per change). */
  private readonly allocated: { id: number; buf: Buffer; offset: number } = { id: -1, buf: Buffer.alloc(0), offset: 0 };

  /**
   * The number a buffer is known by (the same buffer twice in a row costs nothing). A view into
   * a much larger allocation — a small segment's body inside zlib's output chunk — would keep all
   * of it alive, weighing more than it counts (150,000 one-row segments held a gigabyte): its
   * bytes are kept instead, at the same offsets.
   */
  id(buf: Buffer): number {
    if (buf === this.last) return this.lastId;
    this.list.push(buf.buffer.byteLength > 2 * buf.length + 4096 ? Buffer.from(buf) : buf);
    this.bytes += buf.length;
    this.last = buf;
    this.lastId = this.list.length - 1;
    return this.lastId;
  }

  /** Room for n bytes made while folding: where they go, valid until the next call. */
  alloc(n: number): { id: number; buf: Buffer; offset: number } {
    if (!this.arena || this.arenaPos + n > this.arena.length) {
      this.arena = Buffer.allocUnsafe(Math.max(64 << 10, n));
      this.arenaPos = 0;
      this.list.push(this.arena);
      this.bytes += this.arena.length;
      this.arenaId = this.list.length - 1;
    }
    this.allocated.id = this.arenaId;
    this.allocated.buf = this.arena;
    this.allocated.offset = this.arenaPos;
    this.arenaPos += n;
    return this.allocated;
  }

  /** Gives back the end of the last allocation, unused. */
  shrinkLast(unused: number): void {
    this.arenaPos -= unused;
  }
}

/** murmur3's finalizer: every input bit moves every output bit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * A key's hash. Keys written as small decimal numbers (serial ids, the most common key) keep
 * their order eight at a time: neighbouring ids share a cache line of the table, and a table
 * far larger than the caches is walked a line at a time while ids come in order (the base's
 * rows, a bulk insert). Groups of eight are scattered, so probe runs stay short.
 */
export function hashBytes(buf: Buffer, start: number, end: number): number {
  const length = end - start;
  if (length > 0 && length <= 9) {
    let v = 0;
    let i = start;
    for (; i < end; i++) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
    }
    if (i === end) return (mix(v >>> 3) & ~7) | (v & 7);
  }
  let h = 0x811c9dc5 | 0;
  for (let i = start; i < end; i++) {
    h ^= buf[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return mix(h);
}

/**
 * A hash table from byte strings (ranges of retained buffers, never copied) to entry numbers
 * 0, 1, 2…: a row's identity as COPY text. A million Map keys made from strings cost twice as
 * much, and each string an allocation. With a million keys the table is far larger than the
 * caches, so what one probe reads lies together: a slot holds the hash and the entry, an entry
 * its key's buffer, start and end.
 */
export class KeyTable {
  size = 0;
  /** Pairs: hash, entry + 1 (0: empty). */
  private slots: Int32Array;
  private mask: number;
  /** Triples: buffer number, start, end. */
  private keys: Int32Array;

  constructor(
    private readonly buffers: RetainedBuffers,
    expected = 1024,
  ) {
    let slots = 2048;
    while (slots < expected * 2) slots *= 2;
    this.slots = new Int32Array(slots * 2);
    this.mask = slots - 1;
    this.keys = new Int32Array(Math.max(1024, expected) * 3);
  }

  get capacity(): number {
    return this.keys.length / 3;
  }

  /** Makes room for `n` keys in all, so that none of them has to rehash the table. */
  reserve(n: number): void {
    // Geometrically: reserved a segment at a time, exact growth would copy the table once per segment.
    if (n > this.capacity) this.keys = grown(this.keys, Math.max(n, this.capacity * 2) * 3);
    let slots = this.mask + 1;
    while (slots < n * 2) slots *= 2;
    if (slots > this.mask + 1) this.rehash(slots);
  }

  /** The entry of a key, or -1. */
  find(buf: Buffer, start: number, end: number): number {
    return this.lookup(buf, start, end, hashBytes(buf, start, end));
  }

  /** The entry of a key, added when missing (the key's bytes stay where they are: `id` is their buffer). */
  findOrAdd(id: number, buf: Buffer, start: number, end: number): number {
    const hash = hashBytes(buf, start, end);
    const found = this.lookup(buf, start, end, hash);
    if (found >= 0) return found;
    const entry = this.size++;
    if (entry * 3 === this.keys.length) this.keys = grown(this.keys, this.keys.length * 2);
    this.keys[entry * 3] = id;
    this.keys[entry * 3 + 1] = start;
    this.keys[entry * 3 + 2] = end;
    // Rehashing moves the slots already placed: the new key is placed after it, in either case.
    if (this.size * 2 > this.mask + 1) this.rehash((this.mask + 1) * 2);
    this.place(entry, hash);
    return entry;
  }

  keyBuffer(entry: number): Buffer {
    return this.buffers.list[this.keys[entry * 3]!]!;
  }

  keyStart(entry: number): number {
    return this.keys[entry * 3 + 1]!;
  }

  keyEnd(entry: number): number {
    return this.keys[entry * 3 + 2]!;
  }

  private lookup(buf: Buffer, start: number, end: number, hash: number): number {
    const length = end - start;
    const slots = this.slots;
    const keys = this.keys;
    for (let i = hash & this.mask; ; i = (i + 1) & this.mask) {
      const slot = slots[i * 2 + 1]!;
      if (slot === 0) return -1;
      if (slots[i * 2] !== hash) continue;
      const entry = slot - 1;
      const ks = keys[entry * 3 + 1]!;
      if (keys[entry * 3 + 2]! - ks !== length) continue;
      const kb = this.buffers.list[keys[entry * 3]!]!;
      let same = true;
      for (let k = 0; k < length; k++) {
        if (kb[ks + k] !== buf[start + k]) {
          same = false;
          break;
        }
      }
      if (same) return entry;
    }
  }

  private place(entry: number, hash: number): void {
    let i = hash & this.mask;
    while (this.slots[i * 2 + 1] !== 0) i = (i + 1) & this.mask;
    this.slots[i * 2] = hash;
    this.slots[i * 2 + 1] = entry + 1;
  }

  private rehash(slots: number): void {
    const old = this.slots;
    this.slots = new Int32Array(slots * 2);
    this.mask = slots - 1;
    for (let i = 0; i < old.length; i += 2) {
      if (old[i + 1] === 0) continue;
      let j = old[i]! & this.mask;
      while (this.slots[j * 2 + 1] !== 0) j = (j + 1) & this.mask;
      this.slots[j * 2] = old[i]!;
      this.slots[j * 2 + 1] = old[i + 1]!;
    }
  }

  /** Bytes the table itself takes (its keys' bytes are counted with the retained buffers). */
  get bytes(): number {
    return this.slots.byteLength + this.keys.byteLength;
  }
}
