import { describe, expect, it } from 'vitest';
import type { Tuple } from '../../src/pgoutput/messages.js';
import { EntryScanner, TupleView } from '../../src/segment/entry-scanner.js';
import { DELETE, encodeEntry, INSERT, UPDATE, type RelationDef, type SegmentEntry } from '../../src/segment/format.js';
import { KeyTable, RetainedBuffers } from '../../replay/key-table.js';
import { HAS_ROW, TableEffect } from '../../replay/net-effect.js';

// The keys of a batch: decimal ids (hashed so neighbours share a cache line), the same digits
// with leading zeros, text keys, unicode and the empty key, far more than the initial room (1024).
const KEYS = [
  ...Array.from({ length: 20_000 }, (_, i) => String(i)),
  ...Array.from({ length: 1000 }, (_, i) => String(i).padStart(4, '0')),
  ...Array.from({ length: 5000 }, (_, i) => `key-${i * 7919}`),
  'ü',
  'ü\\tx',
  '',
];

/** The keys in one buffer, as keys lie in a segment chunk, added in order. */
function fill(table: KeyTable, buffers: RetainedBuffers): number[] {
  const text = Buffer.from(KEYS.join('|'));
  const id = buffers.id(text);
  let s = 0;
  return KEYS.map((k) => {
    const e = s + Buffer.byteLength(k);
    const entry = table.findOrAdd(id, text, s, e);
    s = e + 1;
    return entry;
  });
}
const find = (table: KeyTable, key: string) => {
  const other = Buffer.from(`#${key}#`); // the same bytes, elsewhere
  return table.find(other, 1, other.length - 1);
};

describe('key table', () => {
  it('adds each distinct key once and finds each by its bytes, when sized ahead as a segment header allows', () => {
    const buffers = new RetainedBuffers();
    const table = new KeyTable(buffers);
    table.reserve(KEYS.length);
    expect(fill(table, buffers)).toEqual(KEYS.map((_, i) => i));
    KEYS.forEach((k, i) => {
      expect(find(table, k), k).toBe(i);
      expect(table.keyBuffer(i).toString('utf8', table.keyStart(i), table.keyEnd(i))).toBe(k);
    });
    expect(fill(table, buffers)).toEqual(KEYS.map((_, i) => i));
    expect(table.size).toBe(KEYS.length);
    for (const absent of ['20000', '00000', 'key-1', 'ü\\t', '#']) expect(find(table, absent), absent).toBe(-1);
  });

  // findOrAdd() rehashes when the table passes half full; the entry it has just added must be placed
  // too, or that key is never found again and a later change of the same row makes a second entry
  // (the applier then runs both: its deletes and updates before its inserts). The smallest table
  // grows at its 1025th key.
  it('finds again the key whose addition grew the table', () => {
    const buffers = new RetainedBuffers();
    const table = new KeyTable(buffers, 1);
    expect(fill(table, buffers)).toEqual(KEYS.map((_, i) => i));
    expect(find(table, KEYS[1024]!)).toBe(1024);
  });

  it('retained buffers: one id for the same buffer twice in a row, allocations that do not overlap, the end of the last given back', () => {
    const buffers = new RetainedBuffers();
    const a = Buffer.from('a');
    expect([buffers.id(a), buffers.id(a), buffers.id(Buffer.from('b'))]).toEqual([0, 0, 1]);
    const first = { ...buffers.alloc(10) };
    const second = { ...buffers.alloc(5) };
    expect(second.buf).toBe(first.buf);
    expect(second.offset).toBe(first.offset + 10);
    buffers.shrinkLast(3);
    expect(buffers.alloc(1).offset).toBe(second.offset + 2);
    const big = buffers.alloc(1 << 20);
    expect([big.offset, big.buf.length]).toEqual([0, 1 << 20]);
  });
});

const text = (name: string, key: boolean) => ({ name, key, typeOid: 25, typmod: -1, typeName: 'text' });
const tuple = (...values: string[]): Tuple => ({
  kinds: Buffer.from('t'.repeat(values.length)),
  values: values.map((v) => Buffer.from(v)),
});

/** Folds encoded entries into `effect` as the planner does. */
function fold(effect: TableEffect, entries: SegmentEntry[]): void {
  const s = new EntryScanner();
  s.reset(Buffer.concat(entries.map(encodeEntry)));
  while (s.next()) {
    if (s.kind === INSERT) effect.insert(s.buf, s.newStart, s.newEnd);
    else if (s.kind === UPDATE) expect(effect.update(s.buf, s.keyStart, s.keyEnd, s.oldStart, s.oldEnd, s.newStart, s.newEnd)).toBe(true);
    else if (s.kind === DELETE) effect.delete(s.buf, s.keyStart, s.keyEnd, s.oldStart, s.oldEnd);
  }
}

describe('net effect of a large batch', () => {
  it('folds more rows than its initial room, each key to its last row, when sized by the segment header', () => {
    const relation: RelationDef = {
      oid: 1,
      schema: 'public',
      name: 't',
      replicaIdentity: 'd',
      columns: [text('id', true), text('v', false)],
    };
    const entries: SegmentEntry[] = [
      ...KEYS.map((k): SegmentEntry => ({ kind: 'insert', relation: 1, new: tuple(k, 'first') })),
      ...KEYS.flatMap((k, i): SegmentEntry[] => (i % 2 === 0 ? [{ kind: 'update', relation: 1, new: tuple(k, `v${i}`) }] : [])),
    ];
    const effect = new TableEffect(relation, new RetainedBuffers(), entries.length);
    fold(effect, entries);
    expect(effect.size).toBe(KEYS.length);
    const view = new TupleView();
    const rows = Array.from({ length: effect.size }, (_, e) => {
      const r = effect.rowOf(e, view);
      return [
        effect.state[e],
        r.buf.toString('utf8', r.valueStart[0]!, r.valueEnd[0]!),
        r.buf.toString('utf8', r.valueStart[1]!, r.valueEnd[1]!),
      ];
    });
    expect(rows).toEqual(KEYS.map((k, i) => [HAS_ROW, k, i % 2 === 0 ? `v${i}` : 'first']));
  });

  // The same, reached through replay's sizing: an update of a REPLICA IDENTITY FULL table
  // adds two rows (the old line and the new) for one change the header counts, so a batch of
  // updates outgrows the room reserved for it. Here the new line of the 1024th update was lost,
  // and the delete of that line made a second entry: the applier's DELETE runs before its INSERT.
  it("keeps each row line of a FULL table in one entry when its updates outgrow the header's count", () => {
    const relation: RelationDef = {
      oid: 2,
      schema: 'public',
      name: 'f',
      replicaIdentity: 'f',
      columns: [text('a', true), text('b', true)],
    };
    const n = 1500;
    const entries: SegmentEntry[] = [
      { kind: 'insert', relation: 2, new: tuple('x', 'x') },
      ...Array.from({ length: n }, (_, i): SegmentEntry => ({
        kind: 'update',
        relation: 2,
        old: tuple('old', String(i)),
        new: tuple('new', String(i)),
      })),
      { kind: 'delete', relation: 2, old: tuple('new', '1023') },
    ];
    const effect = new TableEffect(relation, new RetainedBuffers(), entries.length);
    fold(effect, entries);
    const lines = Array.from({ length: effect.size }, (_, e) =>
      effect.keys.keyBuffer(e).toString('utf8', effect.keys.keyStart(e), effect.keys.keyEnd(e)),
    );
    expect(new Set(lines).size).toBe(lines.length);
    expect(effect.delta[lines.indexOf('new\t1023')]).toBe(0);
  });
});

describe('RetainedBuffers', () => {
  it('keeps the bytes of a small view into a large allocation, not the allocation', () => {
    const buffers = new RetainedBuffers();
    // A small segment's body as zlib hands it out: the start of a 64 KiB chunk.
    const chunk = Buffer.alloc(64 << 10, 0x61);
    chunk.write('row 1', 0);
    const body = chunk.subarray(0, 300);
    const id = buffers.id(body);
    const kept = buffers.list[id]!;
    expect(kept.buffer.byteLength).toBeLessThan(16 << 10);
    expect(kept.equals(body)).toBe(true);
    expect(buffers.bytes).toBe(300);
    // The same buffer again: the same number, nothing more kept.
    expect(buffers.id(body)).toBe(id);
    expect(buffers.list).toHaveLength(1);
    // A view that is most of its allocation is kept as it is.
    const large = Buffer.alloc(1 << 20).subarray(0, (1 << 20) - 10);
    expect(buffers.list[buffers.id(large)]).toBe(large);
  });
});
