import { describe, expect, it } from 'vitest';
import { parseCopyLine } from '../../src/audit/diff/base-rows.js';
import {
  changedColumns,
  changedCount,
  compareRows,
  copyLineRow,
  EncodedRow,
  hasUnchanged,
  joinParts,
  LineKeys,
  keyText,
  rowText,
  sharedColumns,
  TupleRow,
  withCarry,
  type Row,
} from '../../src/audit/diff/rows.js';
import { ColumnLists, readOp, writeOp, type Op } from '../../src/audit/diff/ops.js';
import { SpillFile } from '../../src/audit/diff/spill-file.js';
import { tupleText, type TextValue } from '../../src/audit/row-text.js';
import type { Tuple } from '../../src/pgoutput/messages.js';
import { BufferTuple, TUPLE_BINARY, TUPLE_NULL, TUPLE_TEXT, TUPLE_UNCHANGED, UNCHANGED } from '../../src/pgoutput/tuple.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const columns = sharedColumns(['id', 'a', 'b', 'c']);

// Values that differ by little: a prefix, a tag-like text, empty against NULL, unchanged TOAST.
const VALUES: TextValue[] = ['', 'n', 'u', 't', 'x', 'xy', 'yx', 'tn', '\\N', 'a\tb', 'é', '🙂', null, UNCHANGED];

/** Every row of a seeded sample, as plain values. */
function sample(n: number, seed = 7): TextValue[][] {
  let s = seed;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % VALUES.length;
  return Array.from({ length: n }, () => ['1', VALUES[next()]!, VALUES[next()]!, VALUES[next()]!]);
}

/** The same row as diff reads it back from disk. */
const encoded = (values: TextValue[]): EncodedRow => new EncodedRow(columns, rowText({ values, columns }));

describe("diff's rows kept as one text (EncodedRow)", () => {
  it('give back their values exactly, NULL and unchanged included', () => {
    for (const values of sample(500)) {
      const row = encoded(values);
      expect(row.values).toEqual(values);
      expect(hasUnchanged(row)).toBe(values.includes(UNCHANGED));
      expect(rowText(row)).toBe(row.text);
    }
  });

  it('count and name the changed columns as the rows split into values would', () => {
    const rows = sample(120);
    for (const b of rows)
      for (const a of rows) {
        const plain = changedColumns({ values: b, columns }, { values: a, columns }, columns);
        expect(changedColumns(encoded(b), encoded(a), columns)).toEqual(plain);
        expect(changedCount(encoded(b), encoded(a), columns)).toBe(plain.length);
        // Mixed kinds, and a table whose columns at --to differ (a column added): the values are aligned.
        expect(changedCount({ values: b, columns }, encoded(a), columns)).toBe(plain.length);
        const wider = sharedColumns(['id', 'a', 'b', 'c', 'd']);
        expect(changedCount(encoded(b), encoded(a), wider)).toBe(
          changedColumns({ values: b, columns }, { values: a, columns }, wider).length,
        );
      }
  });

  it('compare equal as a whole without being split', () => {
    const a = encoded(['1', 'x', null, 'y']);
    const b = encoded(['1', 'x', null, 'y']);
    expect(compareRows(a, b, columns, ['id'])).toBeUndefined();
    expect(changedCount(a, b, columns)).toBe(0);
  });

  it('take unchanged values from the row before, as rows of values do', () => {
    const next = encoded(['1', UNCHANGED, 'new', UNCHANGED]);
    const previous: Row = { values: ['1', 'kept', 'old', 'also kept'], columns };
    expect(withCarry(next, previous).values).toEqual(['1', 'kept', 'new', 'also kept']);
    expect(withCarry(next, encoded(previous.values)).values).toEqual(['1', 'kept', 'new', 'also kept']);
    expect(withCarry(encoded(['1', 'a', 'b', 'c']), previous).values).toEqual(['1', 'a', 'b', 'c']);
  });
});

describe("a base's COPY line as a row", () => {
  it('is the parsed line, whether it is kept as its text (no escapes) or parsed (escapes, NULL)', () => {
    for (const line of ['1\tx\ty\tz', '2\t\t\t', '3\ta\\tb\tc\td', '4\t\\N\tb\tc', '5\tback\\\\slash\tb\tc', '6\té\t🙂\tz']) {
      const row = copyLineRow(line, columns);
      expect(row.values).toEqual(parseCopyLine(line));
      expect(row instanceof EncodedRow).toBe(!line.includes('\\'));
    }
  });
});

describe("a base line's key, read from its bytes (LineKeys)", () => {
  it("is the key of the line's parsed values, whatever the fields hold", () => {
    const lines = [
      '1\tplain\t\\N',
      '22\twith\\ttab and \\\\ backslash\tx',
      '3\tünïcödé ✓\t\\N',
      '\\N\tnull key\tlast',
      '5\t\t',
      '6\tlast field is the key\t€uro',
    ];
    const text = Buffer.from(lines.join('\n'));
    for (const positions of [[0], [1], [2], [2, 0], [0, 1, 2]]) {
      const keys = new LineKeys(positions, 3);
      const seen: string[] = [];
      let start = 0;
      for (;;) {
        const nl = text.indexOf(10, start);
        seen.push(keys.of(text, start, nl < 0 ? text.length : nl));
        if (nl < 0) break;
        start = nl + 1;
      }
      const expected = lines.map((l) => joinParts(positions.map((p) => parseCopyLine(l)[p]!)));
      expect(seen, positions.join()).toEqual(expected);
    }
  });

  it("of a one-column table's lines is each line's value", () => {
    const lines = ['1', 'two', '\\N', '\N', ''];
    const text = Buffer.from(lines.join('\n'));
    const keys = new LineKeys([0], 1);
    let start = 0;
    for (const l of lines) {
      const nl = text.indexOf(10, start);
      const end = nl < 0 ? text.length : nl;
      expect(keys.of(text, start, end)).toBe(joinParts([parseCopyLine(l)[0]!]));
      start = end + 1;
    }
  });
});

describe("a log change's row kept as its tuple's bytes (TupleRow)", () => {
  /** The tuple pgoutput would send for these values (text, unless given as bytes: binary). */
  function tuple(values: (TextValue | Buffer)[]): Tuple {
    const kinds = values.map((v) =>
      v === null ? TUPLE_NULL : v === UNCHANGED ? TUPLE_UNCHANGED : Buffer.isBuffer(v) ? TUPLE_BINARY : TUPLE_TEXT,
    );
    const carried = values.flatMap((v) => (Buffer.isBuffer(v) ? [v] : typeof v === 'string' ? [Buffer.from(v)] : []));
    return { kinds: Buffer.from(kinds), values: carried };
  }

  /** The same tuple as readLog hands it over: ranges of one buffer, behind other bytes. */
  function inBuffer(t: Tuple): BufferTuple {
    const head = Buffer.from('other bytes');
    const buf = Buffer.concat([head, t.kinds, ...t.values]);
    const bounds: number[] = [];
    let at = head.length + t.kinds.length;
    for (const v of t.values) bounds.push(at, (at += v.length));
    return new BufferTuple(buf, head.length, t.kinds.length, bounds);
  }

  it('goes to a part file and comes back as the same values and key as decoded rows', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgtape-unit-tuple-row-'));
    try {
      const rows = sample(300, 11).map((values, i) => {
        const v: (TextValue | Buffer)[] = [String(i), ...values.slice(1)];
        // A binary value now and then: written as its hex text.
        if (i % 7 === 0) v[2] = Buffer.from([0, 255, i & 255]);
        return tuple(v);
      });
      const lists = new ColumnLists();
      const file = new SpillFile(join(dir, 'part'));
      const keys = sharedColumns(['c', 'id']);
      for (const [i, plainTuple] of rows.entries()) {
        // Most as readLog's, some as any tuple.
        const t = i % 3 ? inBuffer(plainTuple) : plainTuple;
        expect(tupleText(t)).toEqual(tupleText(plainTuple));
        const row = new TupleRow(columns, t);
        const plain: Row = { values: tupleText(t), columns };
        expect(keyText(row, keys)).toBe(keyText(plain, keys));
        expect(hasUnchanged(row)).toBe(hasUnchanged(plain));
        const op: Op = { kind: 'update', oid: 1, row, key: keyText(row, keys) };
        writeOp(file, op, lists);
      }
      const back: TextValue[][] = [];
      for (const r of file.records()) {
        const op = readOp(r, lists);
        if (op.kind !== 'truncate') back.push([...op.row.values]);
      }
      expect(back).toEqual(rows.map((t) => tupleText(t)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
