import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DirectoryStore } from '../../src/store/directory.js';
import { scratchDir } from '../support/scratch.js';

// A directory store lists in key order whatever the directory's own order, picking the first
// few in one pass or sorting the whole listing: both against the plain definition (every key
// under the prefix, after startAfter, sorted, the first `limit`).

const { dir: root, remove: removeScratch } = scratchDir('pgtape-test-listing-');
afterAll(removeScratch);

function seeded(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('DirectoryStore.list', () => {
  const random = seeded(7);
  const names = Array.from({ length: 400 }, () => random().toString(16).slice(2, 10).padEnd(8, '0'));
  const keys = [...new Set(names)].map((n) => `segments/${n}.pgtape`);
  mkdirSync(join(root, 'segments'));
  mkdirSync(join(root, 'base', 'b1'), { recursive: true });
  for (const k of keys) writeFileSync(join(root, k), 'x');
  writeFileSync(join(root, 'segments', '.pgtape-tmp-half-written'), 'x');
  writeFileSync(join(root, 'base', 'b1', 'manifest.json'), 'x');
  writeFileSync(join(root, 'base', 'b1', 'a.copy'), 'x');
  writeFileSync(join(root, 'lease.json'), 'x');
  const sorted = [...keys].sort();
  const expected = (prefix: string, startAfter = '', limit = Infinity) =>
    [...sorted, 'base/b1/a.copy', 'base/b1/manifest.json', 'lease.json']
      .filter((k) => k.startsWith(prefix) && k > startAfter)
      .sort()
      .slice(0, limit);

  it('lists the first few, a tail and everything in key order, a fresh store each time and one that reuses its listing', async () => {
    const bounds = [
      undefined,
      '',
      'segments/',
      sorted[0]!,
      sorted[17]!,
      sorted[200]!,
      `${sorted[399 - 3]!}`,
      sorted.at(-1)!,
      'segments/8',
      'segmentz',
      'a',
    ];
    const limits = [undefined, 0, 1, 2, 64, 65, 1000];
    const reused = new DirectoryStore(root);
    for (const prefix of ['segments/', 'segments/a', 'segments/0', 'base/', 'base/b1/m', '', 'lease']) {
      for (const startAfter of bounds) {
        for (const limit of limits) {
          const want = expected(prefix, startAfter, limit);
          for (const store of [new DirectoryStore(root), reused]) {
            const got = (await store.list(prefix, { startAfter, limit })).map((o) => o.key);
            expect(got, `${prefix} after ${startAfter} limit ${limit}`).toEqual(want);
          }
        }
      }
      const paged: string[] = [];
      for await (const page of reused.listPages(prefix, { startAfter: sorted[100] })) paged.push(...page.map((o) => o.key));
      expect(paged).toEqual(expected(prefix, sorted[100]));
    }
  });
});
