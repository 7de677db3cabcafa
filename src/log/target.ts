import { UserError } from '../core/errors.js';
import { formatLsn, tryParseLsn } from '../core/lsn.js';

/** A point in the history, as asked for (docs/ARCHITECTURE.md, Targets). */
export type Target =
  | { kind: 'latest' }
  | { kind: 'lsn'; lsn: bigint }
  | { kind: 'xid'; xid: number }
  | { kind: 'time'; micros: bigint; text: string }
  | { kind: 'name'; name: string }
  /** The state a PFS commit holds: the store is read as of that commit, to its end. */
  | { kind: 'commit'; id: string };

/**
 * `option` names where the text came from (`--to`, `--from`), so the message blames the right one.
 * Only replay reads a store as of a PFS commit; elsewhere a commit: target is refused, never
 * taken for the end of the store as it is now.
 */
export function parseTarget(text: string | undefined, option = '--to', commits = false): Target {
  if (text === undefined || text === 'latest') return { kind: 'latest' };
  const bare = tryParseLsn(text);
  if (bare !== undefined) return { kind: 'lsn', lsn: bare };
  const m = /^(lsn|xid|time|name|commit):(.*)$/s.exec(text);
  const fail = (why: string): never => {
    throw new UserError(
      `${option} ${JSON.stringify(text)}: ${why}`,
      'use latest, lsn:0/16B3748, xid:12345, time:2026-11-24T17:00:00Z, name:<mark> or commit:<pfs commit id>',
    );
  };
  if (!m) return fail('not a target');
  const value = m[2]!;
  switch (m[1]) {
    case 'lsn': {
      const lsn = tryParseLsn(value);
      return lsn === undefined ? fail('not an LSN') : { kind: 'lsn', lsn };
    }
    case 'xid':
      return /^\d+$/.test(value) && Number(value) < 2 ** 32 ? { kind: 'xid', xid: Number(value) } : fail('not a transaction id');
    case 'time': {
      const micros = parseTimeMicros(value);
      return micros === undefined ? fail('not an ISO 8601 time with a zone (2026-11-24T17:00:00Z)') : { kind: 'time', micros, text: value };
    }
    case 'commit':
      if (!commits)
        throw new UserError(
          `${option} ${JSON.stringify(text)}: only replay takes commit: targets`,
          'give an lsn:, xid:, time: or name: target (pgtape replay --to commit:<id> rebuilds the state a PFS commit holds)',
        );
      return /^[0-9a-zA-Z]+$/.test(value) ? { kind: 'commit', id: value } : fail('not a PFS commit id');
    default:
      return value ? { kind: 'name', name: value } : fail('a mark needs a name');
  }
}

/** ISO 8601 with a zone, to the microsecond (Date parsing alone stops at milliseconds). */
export function parseTimeMicros(text: string): bigint | undefined {
  const m = /^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,6}))?(Z|[+-]\d{2}(?::?\d{2})?)$/i.exec(text.trim());
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]!.replace(' ', 'T')}${m[3]!.toUpperCase()}`);
  if (Number.isNaN(ms) || !realDate(m[1]!)) return undefined;
  return BigInt(ms) * 1000n + BigInt((m[2] ?? '').padEnd(6, '0'));
}

/** Date.parse rolls 2026-02-30 over into March and 24:00 into the next day: the calendar says no. */
function realDate(text: string): boolean {
  const [, y, mo, d, h] = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2})/i.exec(text)!.map(Number) as number[];
  const day = new Date(Date.UTC(y!, mo! - 1, d!));
  return day.getUTCFullYear() === y && day.getUTCMonth() === mo! - 1 && day.getUTCDate() === d && h! < 24;
}

export function describeTarget(t: Target): string {
  switch (t.kind) {
    case 'latest':
      return 'latest';
    case 'lsn':
      return `lsn:${formatLsn(t.lsn)}`;
    case 'xid':
      return `xid:${t.xid}`;
    case 'time':
      return `time:${t.text}`;
    case 'name':
      return `name:${t.name}`;
    case 'commit':
      return `commit:${t.id}`;
  }
}
