import { lsnKey, parseLsnKey } from '../core/lsn.js';
import { SEGMENT_EXTENSION } from './format.js';

export const SEGMENTS_DIR = 'segments/';

const NAME = /^([0-9A-F]{16})-([0-9A-F]{16})\.pgtape$/;

/** A segment's key is a function of its LSN range only, so a re-upload after a crash writes the same key. */
export function segmentKey(startLsn: bigint, endLsn: bigint): string {
  return `${SEGMENTS_DIR}${lsnKey(startLsn)}-${lsnKey(endLsn)}${SEGMENT_EXTENSION}`;
}

export function parseSegmentKey(key: string): { startLsn: bigint; endLsn: bigint } | undefined {
  if (!key.startsWith(SEGMENTS_DIR)) return undefined;
  const m = NAME.exec(key.slice(SEGMENTS_DIR.length));
  if (!m) return undefined;
  return { startLsn: parseLsnKey(m[1]!)!, endLsn: parseLsnKey(m[2]!)! };
}
