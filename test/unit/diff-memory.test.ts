import { describe, expect, it } from 'vitest';
import { sizeParts } from '../../src/audit/diff/parts.js';
import type { SegmentHeader } from '../../src/segment/format.js';

/** One segment changing each table `changes[i]` times (inserts), 100 bytes of log per change. */
function headers(changes: number[]): SegmentHeader[] {
  const total = changes.reduce((a, b) => a + b, 0);
  const header = {
    changes: total,
    rawBodyBytes: total * 100,
    tables: changes.map((n, i) => ({ oid: 1000 + i, schema: 'public', name: `t${i}`, inserts: n, updates: 0, deletes: 0, truncates: 0 })),
  } as unknown as SegmentHeader;
  return [header];
}
// What sizeParts counts per change: 600 bytes folded and three times its 100 bytes of log.
const BYTES = 900;
const MiB = 2 ** 20;

describe("diff's memory: --memory is shared by every table, not given to each", () => {
  it('folds everything in memory when all of it fits in its share', async () => {
    const parts = await sizeParts(headers([1000, 2000, 3000]), 512 * MiB, new Map());
    expect([...parts.values()].map((p) => p.parts)).toEqual([1, 1, 1]);
  });

  it('keeps the smallest tables in memory within half the share and splits the others', async () => {
    const memory = 128 * MiB;
    const share = memory / 6;
    // Fifty tables, each fitting the share alone; together eight times it.
    const changes = Array.from({ length: 50 }, (_, i) => Math.floor((((8 * share) / BYTES) * (1 / (i + 1))) / 4.5));
    const parts = await sizeParts(headers(changes), memory, new Map());
    const whole = [...parts].filter(([, p]) => p.parts === 1).map(([oid]) => changes[oid - 1000]! * BYTES);
    expect(whole.length).toBeGreaterThan(0);
    expect(whole.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(share / 2);
    const inMemory = whole.reduce((a, b) => a + b, 0);
    for (const [oid, p] of parts) {
      if (p.parts === 1) continue;
      // A part of a split table and the tables in memory stay within the share.
      expect((changes[oid - 1000]! * BYTES) / p.parts + inMemory).toBeLessThanOrEqual(share);
    }
    // The largest tables are the ones split.
    expect(parts.get(1000)!.parts).toBeGreaterThan(1);
    expect(parts.get(1049)!.parts).toBe(1);
  });

  it('splits one large table into parts of at most 8192 changes, more than its memory needs', async () => {
    const memory = 128 * MiB;
    // Ten shares' worth: ten parts would do for memory; parts of 8192 changes are faster.
    const changes = Math.floor((10 * memory) / 6 / BYTES);
    expect((await sizeParts(headers([changes]), memory, new Map())).get(1000)!.parts).toBe(Math.ceil(changes / 8192));
  });

  it('never takes more parts than a quarter of the share can buffer, nor fewer than memory needs', async () => {
    const memory = 512 * MiB;
    const share = memory / 6;
    // Twenty tables of 300,000 changes: 37 parts each by size, 740 in all, 64 KiB of buffers each;
    // 4 each by memory.
    const parts = await sizeParts(headers(Array.from({ length: 20 }, () => 300_000)), memory, new Map());
    const all = [...parts.values()].reduce((n, p) => n + p.parts, 0);
    expect(all * 64 * 1024).toBeLessThanOrEqual(share / 4);
    expect(all).toBeGreaterThan(20 * 4);
    for (const p of parts.values()) expect(p.parts).toBeGreaterThanOrEqual(Math.ceil((300_000 * BYTES) / share));
  });

  it('sizes parts compared two at a time (two threads) to half the share each', async () => {
    const memory = 16 * MiB;
    const share = memory / 6;
    // Few, large changes (parts of 8192 changes would be smaller than memory needs): memory decides.
    const one = await sizeParts(headers([100_000]), memory, new Map(), 1);
    const two = await sizeParts(headers([100_000]), memory, new Map(), 2);
    expect(one.get(1000)!.parts).toBe(Math.ceil((100_000 * BYTES) / share));
    expect(two.get(1000)!.parts).toBe(Math.ceil((100_000 * BYTES) / (share / 2)));
    // Two parts at once stay within the share.
    expect((2 * 100_000 * BYTES) / two.get(1000)!.parts).toBeLessThanOrEqual(share);
  });
});
