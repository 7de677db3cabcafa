import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isWithin } from '../../src/core/paths.js';

describe('isWithin: whether an output path lies in a directory (replay refuses outputs inside a directory store)', () => {
  const root = mkdtempSync(join(tmpdir(), 'pgtape-paths-'));
  const store = join(root, 'tape');
  mkdirSync(join(store, 'segments'), { recursive: true });
  symlinkSync(store, join(root, 'link'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it.each([
    ['the directory itself', store, true],
    ['a folder of it', join(store, 'segments'), true],
    ['a path not made yet under it', join(store, 'segments', 'new', 'deeper'), true],
    ['a path written with ..', join(root, 'elsewhere', '..', 'tape', 'out'), true],
    ['a path through a symbolic link to it', join(root, 'link', 'segments', 'out'), true],
    ['a sibling whose name starts alike', join(root, 'tape-out'), false],
    ['its parent', root, false],
    ['a path elsewhere', join(root, 'elsewhere', 'tape'), false],
  ])('%s', (_, path, within) => {
    expect(isWithin(path, store)).toBe(within);
    // The store named through the link: the same directory.
    expect(isWithin(path, join(root, 'link'))).toBe(within);
  });
});
