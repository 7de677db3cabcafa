import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { identity, noteTable, tuple } from '../support/segment-fixture.js';
import type { Compression } from '../../src/core/compression.js';
import type { SegmentEntry } from '../../src/segment/format.js';
import { CorruptSegmentError, SegmentReader } from '../../src/segment/reader.js';
import { SegmentWriter } from '../../src/segment/writer.js';
import { scratchDir } from '../support/scratch.js';

const { dir, remove: removeScratch } = scratchDir('pgtape-segment-');
afterAll(removeScratch);

const relation = noteTable('shop', 'Order "Lines"');

async function writeSegment(compression: Compression) {
  const writer = new SegmentWriter(dir, 0x1000n, identity, compression, () => relation);
  writer.begin(700, 0x1100n, 1_795_000_000_123_456n);
  writer.change({ kind: 'insert', relation: 16384, new: tuple('tt', '1', 'ünïcode ✓') });
  writer.change({ kind: 'update', relation: 16384, new: tuple('tu', '1') });
  writer.change({ kind: 'message', prefix: 'pgtape', content: Buffer.from('day-1'), lsn: 0x1180n, transactional: true });
  writer.commit(0x1100n, 0x1200n, 1_795_000_000_123_456n, 0);
  writer.begin(699, 0x1300n, 1_795_000_001_000_000n);
  writer.change({ kind: 'delete', relation: 16384, key: tuple('tn', '1') });
  writer.change({ kind: 'truncate', relations: [16384], flags: 2 });
  writer.commit(0x1300n, 0x0000_0001_0000_0000n, 1_795_000_001_000_000n, 0);
  return writer.seal();
}

async function readAll(bytes: Buffer) {
  const reader = new SegmentReader(Readable.from([bytes.subarray(0, 5), bytes.subarray(5, 100), bytes.subarray(100)]), 'test segment');
  const entries: SegmentEntry[] = [];
  for await (const e of reader.entries()) entries.push(e);
  return { header: await reader.header(), entries };
}

describe('segment format', () => {
  it.each(['br', 'gzip'] as const)('round-trips entries, 64-bit LSNs and header facts (%s)', async (compression) => {
    const sealed = await writeSegment(compression);
    expect(sealed.key).toBe('segments/0000000000001000-0000000100000000.pgtape');
    const { header, entries } = await readAll(readFileSync(sealed.path));
    expect(header).toMatchObject({
      startLsn: 0x1000n,
      endLsn: 0x1_0000_0000n,
      firstCommitLsn: 0x1100n,
      lastCommitLsn: 0x1300n,
      firstCommitTime: 1_795_000_000_123_456n,
      minXid: 699,
      maxXid: 700,
      transactions: 2,
      changes: 4,
      messages: 1,
      compression,
      ...identity,
    });
    expect(header.tables).toEqual([
      { oid: 16384, schema: 'shop', name: 'Order "Lines"', inserts: 1, updates: 1, deletes: 1, truncates: 1 },
    ]);
    expect(entries.map((e) => e.kind)).toEqual([
      'begin',
      'relation',
      'insert',
      'update',
      'message',
      'commit',
      'begin',
      'delete',
      'truncate',
      'commit',
    ]);
    const insert = entries[2] as Extract<SegmentEntry, { kind: 'insert' }>;
    expect(insert.new.kinds.toString()).toBe('tt');
    expect(insert.new.values[1]!.toString()).toBe('ünïcode ✓');
    const update = entries[3] as Extract<SegmentEntry, { kind: 'update' }>;
    expect(update.new.kinds.toString()).toBe('tu');
    expect((entries[1] as Extract<SegmentEntry, { kind: 'relation' }>).relation).toEqual(relation);
  });

  it.each(['br', 'gzip'] as const)(
    'reads a file already at hand the same, its small body decompressed at once (%s)',
    async (compression) => {
      const bytes = readFileSync((await writeSegment(compression)).path);
      const whole = new SegmentReader(Readable.from([bytes]), 'test segment', bytes);
      const entries: SegmentEntry[] = [];
      for await (const e of whole.entries()) entries.push(e);
      expect(entries).toEqual((await readAll(bytes)).entries);
      // A flipped byte is refused before anything is decoded.
      const flipped = Buffer.from(bytes);
      flipped[flipped.length - 3]! ^= 0x40;
      const damaged = new SegmentReader(Readable.from([flipped]), 'test segment', flipped);
      await expect(async () => {
        for await (const e of damaged.entries()) void e;
      }).rejects.toThrow(CorruptSegmentError);
    },
  );

  it('sealing the same transactions twice gives the same bytes (idempotent re-upload)', async () => {
    const a = readFileSync((await writeSegment('br')).path);
    const b = readFileSync((await writeSegment('br')).path);
    expect(a.equals(b)).toBe(true);
  });

  it('detects a flipped byte, a truncated body and a file that is no segment', async () => {
    const bytes = readFileSync((await writeSegment('br')).path);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 3]! ^= 0x40;
    await expect(readAll(flipped)).rejects.toThrow(CorruptSegmentError);
    await expect(readAll(bytes.subarray(0, bytes.length - 10))).rejects.toThrow(CorruptSegmentError);
    await expect(readAll(Buffer.from('id,name\n1,pete\n'))).rejects.toThrow(/not a pgtape segment/);
    const path = join(dir, 'junk');
    writeFileSync(path, Buffer.concat([bytes.subarray(0, 8), Buffer.from([0xff, 0xff, 0xff, 0xff])]));
    await expect(readAll(readFileSync(path))).rejects.toThrow(/truncated inside its header/);
  });

  it('names a flipped byte anywhere in the body by the checksum, even where the damaged body still decompresses', async () => {
    const bytes = readFileSync((await writeSegment('br')).path);
    const body = 12 + bytes.readUInt32BE(8);
    for (let i = body; i < bytes.length; i++) {
      for (const bit of [0x01, 0x40]) {
        const flipped = Buffer.from(bytes);
        flipped[i]! ^= bit;
        await expect(readAll(flipped), `byte ${i - body} of the body, bit ${bit}`).rejects.toThrow(
          /body checksum does not match its header/,
        );
      }
    }
  });
});
