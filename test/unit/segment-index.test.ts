import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lsnKey } from '../../src/core/lsn.js';
import { coveringIndexObjects, listNeededIndexObjects, type IndexObjectRef } from '../../src/log/segment-index.js';
import { DirectoryStore } from '../../src/store/directory.js';
import type { ListOptions } from '../../src/store/store.js';

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

describe('listNeededIndexObjects', () => {
  it('lists a long index size by size from where the larger objects end: listings and keys that do not grow with it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgtape-index-'));
    try {
      const put = (folder: string, start: number, end: number) => {
        const file = join(root, 'index', folder, `${lsnKey(BigInt(start))}-${lsnKey(BigInt(end))}.json.br`);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, '');
      };
      // 1,010 small objects, 50 large ones made of the first 1,000, a stale partial and the newest one.
      for (let i = 0; i < 1010; i++) put('50', i * 100, i * 100 + 100);
      for (let j = 0; j < 50; j++) put('1000', j * 2000, j * 2000 + 2000);
      put('partial', 0, 40);
      put('partial', 101_000, 101_040);
      const store = new DirectoryStore(root);
      const listings: { prefix: string; listed: number }[] = [];
      const list = store.list.bind(store);
      store.list = async (prefix: string, options?: ListOptions) => {
        const listed = await list(prefix, options);
        listings.push({ prefix, listed: listed.length });
        return listed;
      };
      const needed = await listNeededIndexObjects(store);
      expect(needed.map((o) => [o.group, Number(o.startLsn), Number(o.endLsn)])).toEqual([
        ...Array.from({ length: 50 }, (_, j) => [1000, j * 2000, j * 2000 + 2000]),
        ...Array.from({ length: 10 }, (_, i) => [50, 100_000 + i * 100, 100_100 + i * 100]),
        [0, 101_000, 101_040],
      ]);
      // The first page, one key per folder and one past the last, then each folder from its start.
      expect(listings.map((l) => l.prefix)).toEqual([...Array(5).fill('index/'), 'index/1000/', 'index/50/', 'index/partial/']);
      expect(listings.slice(5).map((l) => l.listed)).toEqual([50, 10, 1]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
