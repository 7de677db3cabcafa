import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { identity, noteTable, tuple } from '../support/segment-fixture.js';
import { newSecretKeyFile, parseKeyFile, type WrappingKey } from '../../src/core/key-wrap.js';
import { segmentReaders } from '../../src/log/change-log.js';
import { putSegment } from '../../src/log/segments.js';
import type { SegmentEntry } from '../../src/segment/format.js';
import { CorruptSegmentError, SegmentReader } from '../../src/segment/reader.js';
import { SegmentWriter } from '../../src/segment/writer.js';
import { DirectoryStore } from '../../src/store/directory.js';
import { scratchDir } from '../support/scratch.js';

// A replay decompresses the next segment while it reads one (SegmentReader.decompressAhead):
// bodies of more than a MiB (smaller ones are decompressed when read), read ahead or not, give
// the same entries; damage in a body decompressed ahead is met where it is read; a reader that
// stops early releases what was started for the next.

const { dir, remove: removeScratch } = scratchDir('pgtape-segment-readers-');
afterAll(removeScratch);
const relation = noteTable('shop', 'notes');

/** A segment from `start` whose body is about 2 MB of random hex (many decompressed chunks). */
async function writeSegment(start: bigint, key?: WrappingKey) {
  const writer = new SegmentWriter(dir, start, identity, 'br', () => relation, key && { key, markPrefix: 'pgtape' });
  writer.begin(700, start + 0x100n, 1_795_000_000_123_456n);
  for (let i = 0; i < 1700; i++)
    writer.change({ kind: 'insert', relation: 16384, new: tuple('tt', String(i), randomBytes(600).toString('hex')) });
  writer.commit(start + 0x100n, start + 0x200n, 1_795_000_000_123_456n, 0);
  return writer.seal();
}

const summary = (e: SegmentEntry) => (e.kind === 'insert' ? `insert ${e.new.values.map((v) => v.toString()).join(',')}` : e.kind);

async function entriesOf(reader: SegmentReader): Promise<string[]> {
  const out: string[] = [];
  for await (const e of reader.entries()) out.push(summary(e));
  return out;
}

describe('segments decompressed ahead', () => {
  it('read the same entries as segments decompressed when read, in the clear and encrypted', async () => {
    const key = parseKeyFile(newSecretKeyFile(), 'secret');
    for (const k of [undefined, key]) {
      const file = readFileSync((await writeSegment(0x1000n, k)).path);
      const plain = new SegmentReader(Readable.from([file]), 'test segment', file, k && [k]);
      const ahead = new SegmentReader(Readable.from([file]), 'test segment', file, k && [k]);
      ahead.decompressAhead();
      // Let the decompression run ahead before anything is read.
      await new Promise((r) => setTimeout(r, 50));
      const want = await entriesOf(plain);
      expect(want).toHaveLength(1703);
      expect(await entriesOf(ahead)).toEqual(want);
      // Read at once, before the decompression ahead has begun: the header is read once for
      // both (each cutting the head off the file would cut the body), and one body is decompressed.
      const atOnce = new SegmentReader(Readable.from([file]), 'test segment', file, k && [k]);
      atOnce.decompressAhead();
      expect(await entriesOf(atOnce)).toEqual(want);
    }
  });

  it('meets damage in a body decompressed ahead where that segment is read, after the segments before it', async () => {
    const store = new DirectoryStore(join(dir, 'damaged'));
    for (const start of [0x1000n, 0x2000n, 0x3000n]) await putSegment(store, await writeSegment(start));
    const stored = (await store.list('segments/')).map((o) => o.key);
    expect(stored).toHaveLength(3);
    const second = join(dir, 'damaged', stored[1]!);
    const bytes = readFileSync(second);
    bytes[bytes.length - 1000]! ^= 0xff;
    writeFileSync(second, bytes);
    const read: string[] = [];
    const err = await (async () => {
      for await (const { ref, reader } of segmentReaders(store, undefined, { decompressAhead: true })) {
        await entriesOf(reader);
        read.push(ref.key);
      }
    })().catch((e: unknown) => e);
    expect(read).toEqual([stored[0]]);
    expect(err).toBeInstanceOf(CorruptSegmentError);
    expect((err as Error).message).toContain(`${stored[1]}: body checksum does not match its header`);
  });

  it('releases the segment decompressed ahead when the reader stops early', async () => {
    const store = new DirectoryStore(join(dir, 'early'));
    for (const start of [0x1000n, 0x2000n]) await putSegment(store, await writeSegment(start));
    let seen = 0;
    for await (const { reader } of segmentReaders(store, undefined, { decompressAhead: true })) {
      expect(await entriesOf(reader)).toHaveLength(1703);
      seen++;
      // The next segment's decompression has started meanwhile.
      await new Promise((r) => setTimeout(r, 20));
      break;
    }
    expect(seen).toBe(1);
    // Read again whole, after the stop: nothing was left in a state that breaks the next reader.
    let all = 0;
    for await (const { reader } of segmentReaders(store, undefined, { decompressAhead: true })) all += (await entriesOf(reader)).length;
    expect(all).toBe(2 * 1703);
  });
});
