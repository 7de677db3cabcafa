import { describe, expect, it } from 'vitest';
import { ExitCode, UserError } from '../../src/core/errors.js';
import { describeTarget, parseTarget, parseTimeMicros, type Target } from '../../src/log/target.js';

const HINT = 'use latest, lsn:0/16B3748, xid:12345, time:2026-11-24T17:00:00Z, name:<mark> or commit:<pfs commit id>';

/** Microseconds of a UTC wall time, computed independently of the code under test. */
const utcMicros = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0): bigint => BigInt(Date.UTC(y, mo - 1, d, h, mi, s)) * 1000n;
const T17 = utcMicros(2026, 11, 24, 17); // 2026-11-24T17:00:00Z

function refusal(text: string): UserError {
  try {
    parseTarget(text, '--to', true);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return err as UserError;
  }
  throw new Error(`parseTarget(${JSON.stringify(text)}) did not throw`);
}

describe('parseTarget', () => {
  it('reads undefined and "latest" as the latest state', () => {
    expect(parseTarget(undefined)).toEqual({ kind: 'latest' });
    expect(parseTarget('latest')).toEqual({ kind: 'latest' });
  });

  it.each([
    ['0/16B3748', 0x16b3748n],
    ['lsn:0/16B3748', 0x16b3748n],
    ['lsn:0/16b3748', 0x16b3748n],
    ['16/B374D848', 0x16_b374d848n],
    ['lsn:FFFFFFFF/FFFFFFFF', 0xffff_ffff_ffff_ffffn],
    [' 0/1 ', 1n],
    ['lsn: 0/1', 1n],
  ])('reads %j as an LSN target', (text, lsn) => {
    expect(parseTarget(text)).toEqual({ kind: 'lsn', lsn });
  });

  it.each([
    ['xid:0', 0],
    ['xid:12345', 12345],
    ['xid:007', 7],
    ['xid:4294967295', 4294967295],
  ])('reads %j as a transaction id target', (text, xid) => {
    expect(parseTarget(text)).toEqual({ kind: 'xid', xid });
  });

  it.each(['xid:4294967296', 'xid:99999999999999999999', 'xid:-1', 'xid:', 'xid:1e3', 'xid:12a', 'xid: 1'])(
    'refuses %j as not a transaction id',
    (text) => {
      const err = refusal(text);
      expect(err.message).toBe(`--to ${JSON.stringify(text)}: not a transaction id`);
      expect(err.hint).toBe(HINT);
      expect(err.exitCode).toBe(ExitCode.BAD_INPUT);
    },
  );

  it.each([
    ['lsn:0/', 'not an LSN'],
    ['lsn:123', 'not an LSN'],
    ['lsn:100000000/0', 'not an LSN'],
    ['lsn:', 'not an LSN'],
  ])('refuses %j: %s', (text, why) => {
    expect(refusal(text).message).toBe(`--to ${JSON.stringify(text)}: ${why}`);
  });

  it.each([
    ['time:2026-11-24T17:00:00Z', T17],
    ['time:2026-11-24T19:00:00+02:00', T17],
    ['time:2026-11-24T19:00:00+0200', T17],
    ['time:2026-11-24T12:00:00-05:00', T17],
    ['time:2026-11-24 17:00:00Z', T17],
    ['time:2026-11-24T17:00Z', T17],
    ['time:2026-11-24t17:00:00z', T17],
  ])('reads %j as a time target, keeping the text as given', (text, micros) => {
    expect(parseTarget(text)).toEqual({ kind: 'time', micros, text: text.slice('time:'.length) });
  });

  it.each([
    ['.1', 100_000n],
    ['.12', 120_000n],
    ['.123', 123_000n],
    ['.1234', 123_400n],
    ['.12345', 123_450n],
    ['.123456', 123_456n],
    ['.000001', 1n],
  ])('keeps fractional seconds %s to the exact microsecond', (fraction, extra) => {
    expect(parseTarget(`time:2026-11-24T17:00:00${fraction}Z`)).toMatchObject({ kind: 'time', micros: T17 + extra });
  });

  it.each([
    ['time:2026-11-24T17:00:00', 'no zone'],
    ['time:2026-11-24', 'a date alone'],
    ['time:2026-11-24T17:00:00.1234567Z', 'seven fractional digits'],
    ['time:2026-13-01T00:00:00Z', 'month 13'],
    ['time:2026-02-32T00:00:00Z', 'day 32'],
    ['time:2026-11-24T17:00:60Z', 'second 60'],
    ['time:2026-11-24T17:00:00+99:99', 'an impossible zone'],
    ['time:yesterday', 'words'],
    ['time:', 'nothing'],
  ])('refuses %j (%s) as not an ISO 8601 time with a zone', (text) => {
    const err = refusal(text);
    expect(err.message).toBe(`--to ${JSON.stringify(text)}: not an ISO 8601 time with a zone (2026-11-24T17:00:00Z)`);
    expect(err.exitCode).toBe(ExitCode.BAD_INPUT);
  });

  // Date.parse rolls 2026-02-30 over to 2026-03-02: the calendar must refuse it.
  it('refuses an impossible calendar date such as 2026-02-30 (Date.parse would read it as 2026-03-02)', () => {
    expect(() => parseTarget('time:2026-02-30T00:00:00Z')).toThrow(UserError);
    expect(() => parseTarget('time:2026-11-24T24:00:00Z')).toThrow(UserError);
    expect(parseTarget('time:2024-02-29T23:59:59Z').kind).toBe('time');
  });

  it.each([
    ['name:before-migration', 'before-migration'],
    ['name:a:b:c', 'a:b:c'],
    ['name:day 1 close', 'day 1 close'],
    ['name:lsn:0/1', 'lsn:0/1'],
    ['name:line\nbreak', 'line\nbreak'],
  ])('reads %j as a mark name target', (text, name) => {
    expect(parseTarget(text)).toEqual({ kind: 'name', name });
  });

  it('refuses a mark without a name', () => {
    const err = refusal('name:');
    expect(err.message).toBe('--to "name:": a mark needs a name');
    expect(err.hint).toBe(HINT);
  });

  it.each(['commit:44ec4cbd0a2a4c3e8d2f2f1f0f3a9c11', 'commit:ABCdef123', 'commit:1'])('reads %j as a PFS commit target', (text) => {
    expect(parseTarget(text, '--to', true)).toEqual({ kind: 'commit', id: text.slice('commit:'.length) });
  });

  it.each(['commit:', 'commit:ab-cd', 'commit:ab cd', 'commit:ab.cd'])('refuses %j as not a PFS commit id', (text) => {
    expect(refusal(text).message).toBe(`--to ${JSON.stringify(text)}: not a PFS commit id`);
  });

  it.each(['foo:bar', 'LSN:0/1', 'Name:x', 'before-migration', 'latest ', 'LATEST', '', 'mark:x'])('refuses %j as not a target', (text) => {
    const err = refusal(text);
    expect(err.message).toBe(`--to ${JSON.stringify(text)}: not a target`);
    expect(err.hint).toBe(HINT);
    expect(err.exitCode).toBe(ExitCode.BAD_INPUT);
  });
});

describe('describeTarget', () => {
  it.each<[string, Target]>([
    ['latest', { kind: 'latest' }],
    ['lsn:0/16B3748', { kind: 'lsn', lsn: 0x16b3748n }],
    ['lsn:FFFFFFFF/FFFFFFFF', { kind: 'lsn', lsn: 0xffff_ffff_ffff_ffffn }],
    ['xid:0', { kind: 'xid', xid: 0 }],
    ['time:2026-11-24T19:00:00+02:00', { kind: 'time', micros: T17, text: '2026-11-24T19:00:00+02:00' }],
    ['name:a:b c', { kind: 'name', name: 'a:b c' }],
    ['commit:abc123', { kind: 'commit', id: 'abc123' }],
  ])('writes %j for its target', (text, target) => {
    expect(describeTarget(target)).toBe(text);
  });

  it.each([
    undefined,
    'latest',
    '0/16B3748',
    'lsn:16/b374d848',
    'lsn:FFFFFFFF/FFFFFFFF',
    'xid:0',
    'xid:007',
    'xid:4294967295',
    'time:2026-11-24T17:00:00Z',
    'time:2026-11-24 19:00:00.123456+0200',
    'time: 2026-11-24T17:00:00.5-03:30',
    'name:a:b c',
    'name:0/1',
    'name:latest',
    'commit:44ec4cbd0a2a4c3e',
  ])('describe(parse(%j)) parses back to the same target', (text) => {
    const target = parseTarget(text, '--to', true);
    expect(parseTarget(describeTarget(target), '--to', true)).toEqual(target);
  });
});

describe('commit: targets outside replay', () => {
  it('are refused by log, diff and verify (never read as the end of the store as it is now)', () => {
    expect(() => parseTarget('commit:abc123', '--from')).toThrow(/--from "commit:abc123": only replay takes commit: targets/);
  });
});

describe('parseTimeMicros', () => {
  it('reads the epoch, times before it and the microsecond before it', () => {
    expect(parseTimeMicros('1970-01-01T00:00:00Z')).toBe(0n);
    expect(parseTimeMicros('1970-01-01T00:00:00.000001Z')).toBe(1n);
    expect(parseTimeMicros('1969-12-31T23:59:59.999999Z')).toBe(-1n);
    expect(parseTimeMicros('1969-12-31T23:00:00Z')).toBe(-3_600_000_000n);
  });

  it('applies the zone offset, with or without a colon, and -00:00 as UTC', () => {
    expect(parseTimeMicros('2026-11-24T17:00:00+00:00')).toBe(T17);
    expect(parseTimeMicros('2026-11-24T17:00:00-00:00')).toBe(T17);
    expect(parseTimeMicros('2026-11-24T22:30:00+0530')).toBe(T17);
    expect(parseTimeMicros('2026-11-24T08:00:00-09:00')).toBe(T17);
  });

  it('keeps microsecond precision beyond what a Date holds', () => {
    const micros = parseTimeMicros('2026-11-24T17:00:00.999999Z');
    expect(micros).toBe(T17 + 999_999n);
    expect(typeof micros).toBe('bigint');
  });

  it('ignores surrounding whitespace', () => {
    expect(parseTimeMicros('  2026-11-24T17:00:00Z\n')).toBe(T17);
  });

  it.each(['2026-11-24T17:00:00', '2026-11-24T17:00:00+02', '2026-11-24T17Z', '2026-11-24T17:00:00.Z', '17:00:00Z', 'not a time', ''])(
    'returns undefined for %j',
    (text) => {
      expect(parseTimeMicros(text)).toBeUndefined();
    },
  );
});
