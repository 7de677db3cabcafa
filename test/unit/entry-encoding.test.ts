import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { PgoutputMessage } from '../../src/pgoutput/messages.js';
import { PgoutputParser } from '../../src/pgoutput/parser.js';
import { encodeEntry, type SegmentEntry } from '../../src/segment/format.js';
import { encodeBegin, encodeCommit, encodeRowChange } from '../../src/segment/entry-encoding.js';

// The archiver writes row changes with encodeRowChange, straight from pgoutput's bytes; readers
// decode them with protobufjs. The oracle: protobufjs' own encoding of the parsed message.

interface Fixture {
  groups: { name: string; protoVersion: number; messages: { label: string; hex: string }[] }[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/pgoutput/pg17-messages.json', import.meta.url), 'utf8')) as Fixture;

/** What the archiver stored for a parsed row change before encodeRowChange. */
function entryOf(m: PgoutputMessage): SegmentEntry {
  if (m.tag === 'insert') return { kind: 'insert', relation: m.relation, new: m.new };
  if (m.tag === 'update') return { kind: 'update', relation: m.relation, key: m.key, old: m.old, new: m.new };
  if (m.tag === 'delete') return { kind: 'delete', relation: m.relation, key: m.key, old: m.old };
  throw new Error(`not a row change: ${m.tag}`);
}

const hex = (h: string) => Buffer.from(h.replace(/ /g, ''), 'hex');
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const u16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};
/** A TupleData from columns: null, unchanged TOAST, or a text value. */
function tupleData(columns: (string | Buffer | null | 'unchanged')[]): Buffer {
  const parts: Buffer[] = [u16(columns.length)];
  for (const c of columns) {
    if (c === null) parts.push(hex('6e'));
    else if (c === 'unchanged') parts.push(hex('75'));
    else {
      const value = typeof c === 'string' ? Buffer.from(c) : c;
      parts.push(hex('74'), u32(value.length), value);
    }
  }
  return Buffer.concat(parts);
}

/** encodeRowChange against protobufjs on one message, outside and inside a stream block. */
function expectSameAsProtobufjs(raw: Buffer): void {
  const parsed = new PgoutputParser().parse(raw);
  const row = encodeRowChange(raw, 1);
  expect(row.encoded.equals(Buffer.from(encodeEntry(entryOf(parsed)))), raw.subarray(0, 40).toString('hex')).toBe(true);
  expect(row).toMatchObject({ kind: parsed.tag, relation: (parsed as { relation: number }).relation });
  const streamed = Buffer.concat([raw.subarray(0, 1), u32(0x1234), raw.subarray(1)]);
  expect(encodeRowChange(streamed, 5).encoded.equals(row.encoded)).toBe(true);
}

describe('begin and commit entries written by hand', () => {
  it('match protobufjs byte for byte, zeros, largest values and negative times included', () => {
    // Each side of every varint length (7 bits a byte) and of the 32-bit halves.
    const lsns = [0n, 1n, 127n, 128n, 0xffffffffn, 0x100000000n, 0x1_0000_0000_0000n, 2n ** 63n, 2n ** 64n - 1n];
    for (const bits of [28n, 35n, 42n, 49n, 56n, 63n]) lsns.push(2n ** bits - 1n, 2n ** bits);
    const times = [0n, 1n, 851_000_000_000_000n, 1_796_358_210_428_000_000n, -1n, -946_684_800_000_000n, 2n ** 63n - 1n, -(2n ** 63n)];
    for (const xid of [0, 1, 128, 2 ** 31, 2 ** 32 - 1])
      for (const lsn of lsns)
        for (const time of times) {
          const what = `${xid} ${lsn} ${time}`;
          expect(
            encodeBegin(xid, lsn, time).equals(Buffer.from(encodeEntry({ kind: 'begin', xid, commitLsn: lsn, commitTime: time }))),
            what,
          ).toBe(true);
          for (const flags of [0, 1]) {
            const commit = { kind: 'commit' as const, commitLsn: lsn, endLsn: lsn + 48n, commitTime: time, flags };
            expect(encodeCommit(lsn, lsn + 48n, time, flags).equals(Buffer.from(encodeEntry(commit))), what).toBe(true);
          }
        }
  });
});

describe('row changes written straight from pgoutput bytes', () => {
  it('match protobufjs byte for byte on every row change captured from PostgreSQL', () => {
    let seen = 0;
    for (const g of fixture.groups) {
      const parser = new PgoutputParser();
      for (const m of g.messages) {
        const raw = hex(m.hex);
        const message = parser.parse(raw);
        const inner = message.tag === 'streamed' ? parser.parseStreamed(message.raw) : message;
        if (inner.tag !== 'insert' && inner.tag !== 'update' && inner.tag !== 'delete') continue;
        const at = message.tag === 'streamed' ? (raw[0] === 0x4f ? 1 : 5) : 1;
        expect(encodeRowChange(raw, at).encoded.equals(Buffer.from(encodeEntry(entryOf(inner)))), `${g.name}: ${m.label}`).toBe(true);
        seen++;
      }
    }
    expect(seen).toBeGreaterThan(40);
  });

  it('match protobufjs on sizes that take longer varints: large values, many columns, large OIDs', () => {
    const big = Buffer.alloc(20_000, 0x61);
    const mid = Buffer.alloc(200, 0x62);
    const many = Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? null : i % 3 === 1 ? `v${i}` : 'unchanged'));
    for (const oid of [1, 127, 128, 16_384, 2 ** 28 + 5, 2 ** 31 + 7, 2 ** 32 - 1]) {
      expectSameAsProtobufjs(Buffer.concat([hex('49'), u32(oid), hex('4e'), tupleData(['a', '', null, big, mid])]));
      expectSameAsProtobufjs(Buffer.concat([hex('49'), u32(oid), hex('4e'), tupleData(many)]));
      expectSameAsProtobufjs(Buffer.concat([hex('55'), u32(oid), hex('4e'), tupleData(['x', 'unchanged'])]));
      expectSameAsProtobufjs(Buffer.concat([hex('55'), u32(oid), hex('4b'), tupleData(['k']), hex('4e'), tupleData(['k2', big])]));
      expectSameAsProtobufjs(Buffer.concat([hex('55'), u32(oid), hex('4f'), tupleData(many), hex('4e'), tupleData(many)]));
      expectSameAsProtobufjs(Buffer.concat([hex('44'), u32(oid), hex('4b'), tupleData(['k', null])]));
      expectSameAsProtobufjs(Buffer.concat([hex('44'), u32(oid), hex('4f'), tupleData([mid, big])]));
      expectSameAsProtobufjs(Buffer.concat([hex('49'), u32(oid), hex('4e'), tupleData([])]));
    }
  });

  it('refuses malformed messages with the parser’s own errors', () => {
    const good = Buffer.concat([hex('49'), u32(16_400), hex('4e'), tupleData(['abc', null, 'de'])]);
    const cases = [
      hex('49 00004010 4b 0000'),
      hex('55 00004010 4b 0001 6e 4b 0001 6e'),
      hex('44 00004010 4e 0001 6e'),
      Buffer.concat([good.subarray(0, 8), hex('78'), good.subarray(9)]),
      ...[1, 5, 6, 8, 12, good.length - 1].map((cut) => good.subarray(0, cut)),
    ];
    for (const bad of cases) {
      let expected = '';
      try {
        new PgoutputParser().parse(bad);
      } catch (err) {
        expected = (err as Error).message;
      }
      expect(expected, bad.toString('hex')).not.toBe('');
      expect(() => encodeRowChange(bad, 1), bad.toString('hex')).toThrow(expected);
    }
    expect(() => encodeRowChange(hex('42 00000001'), 1)).toThrow('pgoutput: not a row change');
  });
});
