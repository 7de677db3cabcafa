import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SpillFile } from '../../src/audit/diff/spill-file.js';
import { scratchDir } from '../support/scratch.js';

describe('spill file (diff keeps large differences on disk)', () => {
  const { dir, remove: removeScratch } = scratchDir('pgtape-spill-test-');
  afterAll(removeScratch);

  it('reads back every record as written, across buffer ends and larger than the buffers', () => {
    const f = new SpillFile(join(dir, 'records'));
    // Sizes around the writer's 32 KiB and the reader's 1 MiB, multi-byte text, and one of 3 MB.
    const texts: string[] = [];
    for (let i = 0; i < 20_000; i++) texts.push(i % 997 === 0 ? 'ü€'.repeat(20_000 + i) : `row ${i} `.repeat(i % 50));
    texts.push('x'.repeat(3_000_000));
    texts.forEach((t, i) => {
      f.begin();
      f.u32(i);
      f.i32(-i - 1);
      f.u8(i & 0xff);
      f.text(t);
      f.end();
    });
    f.close();
    for (let pass = 0; pass < 2; pass++) {
      let n = 0;
      for (const r of f.records()) {
        expect(r.u32()).toBe(n);
        expect(r.i32()).toBe(-n - 1);
        expect(r.u8()).toBe(n & 0xff);
        const t = r.text();
        expect(t === texts[n], `record ${n} (${t.length} characters)`).toBe(true);
        n++;
      }
      expect(n).toBe(texts.length);
    }
  });

  it('has no records, and no file, when nothing was appended', () => {
    const f = new SpillFile(join(dir, 'empty'));
    f.close();
    expect([...f.records()]).toEqual([]);
  });
});
