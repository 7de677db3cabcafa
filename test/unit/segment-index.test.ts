import { describe, expect, it } from 'vitest';
import { coveringIndexObjects, type IndexObjectRef } from '../../src/log/segment-index.js';

const object = (group: number, start: number, end: number): IndexObjectRef => ({
  key: `index/${group}/${start}-${end}`,
  size: 1,
  group,
  startLsn: BigInt(start),
  endLsn: BigInt(end),
});

describe('coveringIndexObjects', () => {
  it('takes the large objects, the small ones after them, and leaves out the small ones inside', () => {
    // Contiguous, as segments are: each starts where the one before ends.
    const large = [object(100, 0, 1000), object(100, 1000, 2000)];
    const small = Array.from({ length: 25 }, (_, i) => object(5, i * 100, i * 100 + 100));
    const taken = coveringIndexObjects([...small, ...large]);
    expect(taken.map((o) => o.key)).toEqual([...large.map((o) => o.key), ...small.slice(20).map((o) => o.key)]);
  });

  it('skips an object that starts inside one already taken (its segments come from the next, or from headers)', () => {
    const taken = coveringIndexObjects([object(10, 0, 500), object(5, 250, 750), object(5, 750, 1000)]);
    expect(taken.map((o) => o.key)).toEqual(['index/10/0-500', 'index/5/750-1000']);
  });

  it('takes nothing from nothing', () => {
    expect(coveringIndexObjects([])).toEqual([]);
  });
});
