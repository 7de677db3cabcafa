import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/core/backoff.js';
import { ExitCode, UserError } from '../../src/core/errors.js';
import { formatLsn, lsnKey, parseLsn, parseLsnKey, tryParseLsn } from '../../src/core/lsn.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../src/core/sql.js';
import { formatMicros, parseBytes, parsePort, parsePositive } from '../../src/core/units.js';
import { parseTimeMicros } from '../../src/log/target.js';
import { parseSegmentKey, segmentKey } from '../../src/segment/name.js';

const KiB = 1024;
const MAX_LSN = 0xffff_ffff_ffff_ffffn;

describe('parseBytes', () => {
  it.each([
    ['1048576', 1048576],
    ['0', 0],
    ['7b', 7],
    ['7B', 7],
    ['1k', 1e3],
    ['1K', 1e3],
    ['1kb', 1e3],
    ['1kB', 1e3],
    ['1KB', 1e3],
    ['1kib', KiB],
    ['1KiB', KiB],
    ['1KIB', KiB],
    ['1m', 1e6],
    ['1M', 1e6],
    ['1mb', 1e6],
    ['1MB', 1e6],
    ['1mib', KiB ** 2],
    ['64MiB', 64 * KiB ** 2],
    ['64MIB', 64 * KiB ** 2],
    ['1g', 1e9],
    ['1G', 1e9],
    ['1gb', 1e9],
    ['1GB', 1e9],
    ['1gib', KiB ** 3],
    ['1GiB', KiB ** 3],
    ['1.5k', 1500],
    ['1.5KiB', 1536],
    ['0.5GiB', 512 * KiB ** 2],
    ['0.5b', 1],
    ['2.5KiB', 2560],
    ['0.0001', 0],
    [' 64 MiB ', 64 * KiB ** 2],
    ['500\tkB', 500e3],
  ])('reads %j as %d bytes', (text, bytes) => {
    expect(parseBytes(text, '--segment-bytes')).toBe(bytes);
  });

  it.each(['', ' ', 'MiB', '-1', '+1', '1e3', '1P', '1.', '.5k', '1,5k', '1 k b', '0x10', 'Infinity', '64 M iB', '1kibs'])(
    'refuses %j, naming the option',
    (text) => {
      let err: unknown;
      try {
        parseBytes(text, '--memory');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).message).toBe(`--memory: ${JSON.stringify(text)} is not a size`);
      expect((err as UserError).hint).toBe('use a number of bytes or a unit: 64MiB, 500kB, 1GiB, 2TiB');
      expect((err as UserError).exitCode).toBe(ExitCode.BAD_INPUT);
    },
  );
});

describe('parsePositive', () => {
  it.each([
    ['1', 1],
    ['0.5', 0.5],
    ['2.5', 2.5],
    ['1e3', 1000],
    [' 5 ', 5],
  ])('reads %j as %d', (text, n) => {
    expect(parsePositive(text, '--upload-queue')).toBe(n);
  });

  it.each(['0', '-0', '-1', '', ' ', 'abc', 'Infinity', 'NaN', '1s'])('refuses %j as not a positive number', (text) => {
    expect(() => parsePositive(text, '--segment-seconds')).toThrow(
      expect.objectContaining({
        name: 'UserError',
        message: `--segment-seconds: ${JSON.stringify(text)} is not a positive number`,
        exitCode: ExitCode.BAD_INPUT,
      }),
    );
  });
});

describe('parsePort', () => {
  it.each([
    ['0', 0],
    ['1', 1],
    ['9187', 9187],
    ['65535', 65535],
  ])('reads %j as port %d', (text, port) => {
    expect(parsePort(text)).toBe(port);
  });

  it.each(['65536', '-1', '1.5', 'abc', '80a', '99999999'])('refuses %j as not a port number', (text) => {
    expect(() => parsePort(text)).toThrow(
      expect.objectContaining({
        message: `--metrics-port: ${JSON.stringify(text)} is not a port number`,
        hint: 'use a number from 1 to 65535 (0: any free port)',
        exitCode: ExitCode.BAD_INPUT,
      }),
    );
  });

  // Number('') is 0: an empty value must not quietly ask for "any free port".
  it('refuses an empty port (it would read as 0, any free port)', () => {
    expect(() => parsePort('')).toThrow(UserError);
  });
});

describe('formatMicros', () => {
  it.each([
    [0n, '1970-01-01T00:00:00.000000Z'],
    [1n, '1970-01-01T00:00:00.000001Z'],
    [999_999n, '1970-01-01T00:00:00.999999Z'],
    [1_795_000_000_123_456n, '2026-11-18T11:06:40.123456Z'],
    [-1000n, '1969-12-31T23:59:59.999000Z'],
    [-1001n, '1969-12-31T23:59:59.998999Z'],
    [-1_000_000n, '1969-12-31T23:59:59.000000Z'],
    [-1_500_000n, '1969-12-31T23:59:58.500000Z'],
    [-2_208_988_799_876_544n, '1900-01-01T00:00:00.123456Z'],
  ])('formats %d µs as %s, with six fractional digits', (micros, text) => {
    expect(formatMicros(micros)).toBe(text);
  });

  it.each(['2026-11-24T17:00:00.000001Z', '2000-02-29T23:59:59.999999Z', '1969-07-20T20:17:40.5Z', '1900-01-01T00:00:00.123456Z'])(
    'round-trips %s through parseTimeMicros',
    (text) => {
      const micros = parseTimeMicros(text)!;
      expect(parseTimeMicros(formatMicros(micros))).toBe(micros);
    },
  );

  // Division by 1000n truncates toward zero: a pre-1970 time must still land in the second below.
  it('formats -1 µs as the last microsecond of 1969', () => {
    expect(formatMicros(-1n)).toBe('1969-12-31T23:59:59.999999Z');
  });

  it('formats -1 000 001 µs as 23:59:58.999999', () => {
    expect(formatMicros(-1_000_001n)).toBe('1969-12-31T23:59:58.999999Z');
  });
});

describe('LSNs', () => {
  it.each([
    ['0/0', 0n],
    ['0/16B3748', 0x16b3748n],
    ['0/16b3748', 0x16b3748n],
    ['16/B374D848', 0x16_b374d848n],
    ['1/0', 1n << 32n],
    ['200000/1', 2n ** 53n + 1n],
    ['FFFFFFFF/FFFFFFFE', MAX_LSN - 1n],
    ['FFFFFFFF/FFFFFFFF', MAX_LSN],
    [' 0/1\n', 1n],
  ])('parses %j exactly as %d', (text, lsn) => {
    expect(tryParseLsn(text)).toBe(lsn);
    expect(parseLsn(text)).toBe(lsn);
  });

  it.each(['', '0', '0/', '/0', '0/0/0', '100000000/0', '0/100000000', 'G/0', '-1/0', '0x1/0', '0 /1'])('does not parse %j', (text) => {
    expect(tryParseLsn(text)).toBeUndefined();
    expect(() => parseLsn(text)).toThrow(`not an LSN: ${JSON.stringify(text)} (expected the form 0/16B3748)`);
  });

  it.each([
    [0n, '0/0', '0000000000000000'],
    [0x16b3748n, '0/16B3748', '00000000016B3748'],
    [2n ** 53n + 1n, '200000/1', '0020000000000001'],
    [MAX_LSN, 'FFFFFFFF/FFFFFFFF', 'FFFFFFFFFFFFFFFF'],
  ])('formats %d as %s and keys it as %s, both parsing back exactly', (lsn, text, key) => {
    expect(formatLsn(lsn)).toBe(text);
    expect(lsnKey(lsn)).toBe(key);
    expect(parseLsn(formatLsn(lsn))).toBe(lsn);
    expect(parseLsnKey(lsnKey(lsn))).toBe(lsn);
  });

  it('keys sort as text in LSN order', () => {
    const lsns = [MAX_LSN, 0n, 0xffffn, 1n << 32n, 0x1_0000_0000_0001n, 2n ** 53n, 2n ** 53n + 1n, 0xfffffn];
    const byKey = [...lsns].sort((a, b) => (lsnKey(a) < lsnKey(b) ? -1 : 1));
    expect(byKey).toEqual([...lsns].sort((a, b) => (a < b ? -1 : 1)));
  });

  it.each(['', '00000000016b3748', '16B3748', '000000000016B3748', '0/16B3748', ' 00000000016B3748', 'G000000000000000'])(
    'does not parse %j as an LSN key',
    (key) => {
      expect(parseLsnKey(key)).toBeUndefined();
    },
  );
});

describe('backoffDelay', () => {
  const ALMOST_ONE = 1 - Number.EPSILON;
  it.each([
    [0, 100, 10_000, 100],
    [1, 100, 10_000, 200],
    [3, 100, 10_000, 800],
    [6, 100, 10_000, 6_400],
    [7, 100, 10_000, 10_000],
    [10, 1_000, 60_000, 60_000],
    [2, 500, 300, 300],
  ])('attempt %d (first %d ms, cap %d ms) waits within [d/2, d) for d = %d', (attempt, first, cap, d) => {
    expect(backoffDelay(attempt, first, cap, () => 0)).toBe(d / 2);
    const high = backoffDelay(attempt, first, cap, () => ALMOST_ONE);
    expect(high).toBeLessThan(d);
    expect(high).toBeGreaterThan(d * 0.999);
  });

  it.each([30, 31, 64, 1024, 10_000, Number.MAX_SAFE_INTEGER])('stays finite and at most the cap for attempt %d', (attempt) => {
    for (const r of [0, 0.5, ALMOST_ONE]) {
      const delay = backoffDelay(attempt, 250, 30_000, () => r);
      expect(Number.isFinite(delay)).toBe(true);
      expect(delay).toBeGreaterThanOrEqual(15_000);
      expect(delay).toBeLessThan(30_000);
    }
  });

  it('treats a negative attempt as the first', () => {
    expect(backoffDelay(-5, 100, 10_000, () => 0)).toBe(50);
  });

  it('with Math.random stays within [d/2, d)', () => {
    for (let i = 0; i < 500; i++) {
      const delay = backoffDelay(i % 12, 100, 10_000);
      const d = Math.min(10_000, 100 * 2 ** (i % 12));
      expect(delay).toBeGreaterThanOrEqual(d / 2);
      expect(delay).toBeLessThan(d);
    }
  });
});

describe('SQL quoting', () => {
  it.each([
    ['t', '"t"'],
    ['', '""'],
    ['Order "Lines"', '"Order ""Lines"""'],
    ['"', '""""'],
    ['a.b', '"a.b"'],
    ["it's", '"it\'s"'],
  ])('quoteIdent(%j) is %s', (name, quoted) => {
    expect(quoteIdent(name)).toBe(quoted);
  });

  it('quoteQualified quotes both parts', () => {
    expect(quoteQualified('my schema', 'Ta"ble')).toBe('"my schema"."Ta""ble"');
    expect(quoteQualified('a.b', 'c')).toBe('"a.b"."c"');
  });

  it.each([
    ['plain', "'plain'"],
    ['', "''"],
    ["it's", "'it''s'"],
    ["''", "''''''"],
    ['a"b', `'a"b'`],
    ['line\nbreak', "'line\nbreak'"],
    ['C:\\dir', "E'C:\\\\dir'"],
    ["it's C:\\dir\\", "E'it''s C:\\\\dir\\\\'"],
    ['\\', "E'\\\\'"],
    ["\\'", "E'\\\\'''"],
  ])('quoteLiteral(%j) is %s', (value, literal) => {
    expect(quoteLiteral(value)).toBe(literal);
  });
});

describe('segment keys', () => {
  it.each([
    [0n, 0n, 'segments/0000000000000000-0000000000000000.pgtape'],
    [0x1000n, 0x1_0000_0000n, 'segments/0000000000001000-0000000100000000.pgtape'],
    [0x16b3748n, MAX_LSN, 'segments/00000000016B3748-FFFFFFFFFFFFFFFF.pgtape'],
  ])('names the range %d..%d %s and parses it back exactly', (startLsn, endLsn, key) => {
    expect(segmentKey(startLsn, endLsn)).toBe(key);
    expect(parseSegmentKey(key)).toEqual({ startLsn, endLsn });
  });

  it.each([
    'segments/00000000016b3748-0000000100000000.pgtape',
    'segments/00000000016B3748-00000001000000ab.pgtape',
    'segments/0000000016B3748-0000000100000000.pgtape',
    'segments/00000000016B3748-00000000100000000.pgtape',
    'segments/00000000016B3748-0000000100000000.pgtape.tmp',
    'segments/00000000016B3748-0000000100000000.zst',
    'segments/00000000016B3748-0000000100000000',
    'segments/00000000016B3748_0000000100000000.pgtape',
    '00000000016B3748-0000000100000000.pgtape',
    'bases/00000000016B3748-0000000100000000.pgtape',
    '/segments/00000000016B3748-0000000100000000.pgtape',
    'segments/x/00000000016B3748-0000000100000000.pgtape',
    'segments/',
  ])('does not parse %j as a segment key', (key) => {
    expect(parseSegmentKey(key)).toBeUndefined();
  });
});

describe('parseBytes at the edges', () => {
  it('takes terabytes, and refuses what no number of bytes can be', () => {
    expect(parseBytes('2TiB', '--memory')).toBe(2 * 1024 ** 4);
    expect(parseBytes('10TB', '--memory')).toBe(10e12);
    expect(() => parseBytes('99999999999999999999999GiB', '--memory')).toThrow(/too large/);
  });
});
