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
  rowText,
  sharedColumns,
  withCarry,
  type Row,
} from '../../src/audit/diff/rows.js';
import type { TextValue } from '../../src/audit/row-text.js';
import { UNCHANGED } from '../../src/pgoutput/tuple.js';

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
