import type { SegmentHeader } from '../../segment/format.js';
import { WRITE_BYTES } from './spill-file.js';

/**
 * What a table's fold takes in memory, from its segments' headers: per change (a key, a row of
 * strings, its row at --from) and per byte of the changes as the log holds them.
 */
const BYTES_PER_CHANGE = 600;
const BYTES_PER_LOG_BYTE = 3;
/**
 * Parts a table is split into at most: each has two files being written, with a small buffer
 * each. A difference larger than this many times the memory takes more than its share.
 */
const MAX_PARTS = 512;
/**
 * Changes a part of a split table holds at most, where the parts' write buffers fit: a part's
 * fold is maps of its keys, and maps of a hundred thousand keys made diff a fifth slower than
 * parts of a few thousand (per change: the maps' own cost, and the collector's).
 */
const CHANGES_PER_PART = 8192;
/** What a part's two spill files buffer while they are written. */
const PART_BUFFER_BYTES = 2 * WRITE_BYTES;

/** Changes per table in the range (from its segments' headers) and how many parts its fold is split into. */
export async function sizeParts(
  headers: AsyncIterable<SegmentHeader> | Iterable<SegmentHeader>,
  memoryBytes: number,
  baseRows: Map<number, number>,
  /** Parts compared at once (on as many threads): they share what one part may take. */
  concurrent = 1,
): Promise<Map<number, { changes: number; parts: number }>> {
  const bytes = new Map<number, { changes: number; rows: number; bytes: number; truncated: boolean }>();
  for await (const h of headers) {
    for (const t of h.tables) {
      const changes = t.inserts + t.updates + t.deletes;
      const e = bytes.get(t.oid) ?? { changes: 0, rows: 0, bytes: 0, truncated: false };
      e.changes += changes;
      e.rows += changes;
      e.bytes += changes * BYTES_PER_CHANGE + (h.changes ? (h.rawBodyBytes * changes) / h.changes : 0) * BYTES_PER_LOG_BYTE;
      if (t.truncates && !e.truncated) {
        e.truncated = true;
        e.rows += baseRows.get(t.oid) ?? 0;
        e.bytes += (baseRows.get(t.oid) ?? 0) * BYTES_PER_CHANGE;
      }
      bytes.set(t.oid, e);
    }
  }
  // A sixth of the memory for what is folded at once: the heap grows to about twice what it
  // holds before it collects, and the rest is the process, the segment being read, the rows
  // being printed and buffers (measured: peak RSS stays under --memory on the bench's diff).
  // Every table in one part is folded in memory for the whole pass, beside the part of a split
  // table being compared: the smallest tables share at most half of it, and the parts of the
  // others are sized to what is left — fifty tables must not take fifty shares.
  const share = Math.max(1, memoryBytes / 6);
  const whole = new Set<number>();
  let inMemory = 0;
  // All of it in memory when all of it fits.
  const fits = [...bytes.values()].reduce((sum, e) => sum + e.bytes, 0) <= share;
  for (const [oid, e] of [...bytes].sort(([, a], [, b]) => a.bytes - b.bytes)) {
    if (!fits && inMemory + e.bytes > share / 2) break;
    inMemory += e.bytes;
    whole.add(oid);
  }
  // What the parts may take: while the range is spilled, their write buffers; while they are
  // compared, each of `concurrent` parts at once.
  const spillShare = share - inMemory;
  const partShare = spillShare / concurrent;
  // Parts as memory needs them; more (smaller, faster) where a quarter of the share buffers them.
  const split = [...bytes].filter(([oid]) => !whole.has(oid));
  const needed = new Map(split.map(([oid, e]) => [oid, Math.max(2, Math.ceil(e.bytes / partShare))]));
  const small = new Map(split.map(([oid, e]) => [oid, Math.max(needed.get(oid)!, Math.ceil(e.rows / CHANGES_PER_PART))]));
  const affordable = spillShare / 4 / PART_BUFFER_BYTES;
  const wanted = [...small.values()].reduce((a, b) => a + b, 0);
  const scale = wanted > affordable ? affordable / wanted : 1;
  const parts = (oid: number) => Math.min(MAX_PARTS, Math.max(needed.get(oid)!, Math.floor(small.get(oid)! * scale)));
  return new Map([...bytes].map(([oid, e]) => [oid, { changes: e.changes, parts: whole.has(oid) ? 1 : parts(oid) }]));
}
