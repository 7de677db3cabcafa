import { decodeWrappedKey, encodeWrappedKey, type StoredWrappedKey, type WrappedKey } from '../core/key-wrap.js';
import type { SegmentHeader } from '../segment/format.js';

// What an index object larger than the smallest holds of each object it is made of
// (docs/ARCHITECTURE.md, "Index objects"): enough to decide whether a reader looking for a time,
// a transaction or a mark must open it, and what the archive's sizes and end are, without
// holding a fact per segment — so that an object of 400,000 segments is 20 of these, not 400,000
// headers, and a reader's memory does not grow with the archive.

export interface Mark {
  /** Empty while sealed: markName() opens it. */
  name: string;
  commitLsn: bigint;
  /** An encrypted segment's mark: its name sealed under a data key of its own (segment/encryption.ts). */
  sealed?: { key: WrappedKey; sealedName: Buffer };
}

export interface IndexSummary {
  segments: number;
  /** Stored bytes of those segments. */
  bytes: number;
  transactions: number;
  changes: number;
  /** Of the segments holding transactions; 0 where none does (as a segment header says it). */
  firstCommitLsn: bigint;
  lastCommitLsn: bigint;
  /** The last commit's time, and the latest of any (commit times need not rise with LSNs). */
  lastCommitTime: bigint;
  maxCommitTime: bigint;
  minXid: number;
  maxXid: number;
  /** Every mark, in order: marks are set by people and pipelines, a handful a day. */
  marks: Mark[];
}

const EMPTY: IndexSummary = {
  segments: 0,
  bytes: 0,
  transactions: 0,
  changes: 0,
  firstCommitLsn: 0n,
  lastCommitLsn: 0n,
  lastCommitTime: 0n,
  maxCommitTime: 0n,
  minXid: 0,
  maxXid: 0,
  marks: [],
};

/** One segment as a summary. */
export function segmentSummary(size: number, h: SegmentHeader, marks: Mark[]): IndexSummary {
  if (h.transactions === 0) return { ...EMPTY, segments: 1, bytes: size, marks };
  return {
    segments: 1,
    bytes: size,
    transactions: h.transactions,
    changes: h.changes,
    firstCommitLsn: h.firstCommitLsn,
    lastCommitLsn: h.lastCommitLsn,
    lastCommitTime: h.lastCommitTime,
    maxCommitTime: h.lastCommitTime > h.firstCommitTime ? h.lastCommitTime : h.firstCommitTime,
    minXid: h.minXid,
    maxXid: h.maxXid,
    marks,
  };
}

/** Summaries of consecutive stretches, in LSN order, as one. */
export function mergeSummaries(parts: IndexSummary[]): IndexSummary {
  let out = { ...EMPTY, marks: [] as Mark[] };
  for (const p of parts) {
    const first = out.transactions === 0;
    out = {
      segments: out.segments + p.segments,
      bytes: out.bytes + p.bytes,
      transactions: out.transactions + p.transactions,
      changes: out.changes + p.changes,
      firstCommitLsn: first ? p.firstCommitLsn : out.firstCommitLsn,
      lastCommitLsn: p.transactions > 0 ? p.lastCommitLsn : out.lastCommitLsn,
      lastCommitTime: p.transactions > 0 ? p.lastCommitTime : out.lastCommitTime,
      maxCommitTime: p.maxCommitTime > out.maxCommitTime ? p.maxCommitTime : out.maxCommitTime,
      minXid: p.transactions === 0 ? out.minXid : first ? p.minXid : Math.min(out.minXid, p.minXid),
      maxXid: p.transactions === 0 ? out.maxXid : first ? p.maxXid : Math.max(out.maxXid, p.maxXid),
      marks: p.marks.length ? [...out.marks, ...p.marks] : out.marks,
    };
  }
  return out;
}

// JSON has no bigint: LSNs and times as text.

export type StoredSummary = Record<keyof IndexSummary, unknown>;

const BIGINTS = ['firstCommitLsn', 'lastCommitLsn', 'lastCommitTime', 'maxCommitTime'] as const;

export function encodeSummary(s: IndexSummary): StoredSummary {
  const out: StoredSummary = { ...s, marks: s.marks.map(encodeMark) };
  for (const f of BIGINTS) out[f] = s[f].toString();
  return out;
}

export function decodeSummary(s: StoredSummary): IndexSummary {
  const out = { ...s, marks: (s.marks as StoredMark[]).map(decodeMark) } as Record<string, unknown>;
  for (const f of BIGINTS) out[f] = BigInt(s[f] as string);
  return out as unknown as IndexSummary;
}

export type StoredMark = { name: string; commitLsn: string; sealed?: { key: StoredWrappedKey; sealedName: string } };
export const encodeMark = (m: Mark): StoredMark => ({
  name: m.name,
  commitLsn: m.commitLsn.toString(),
  // An opened mark is stored sealed, as its segment holds it.
  ...(m.sealed ? { name: '', sealed: { key: encodeWrappedKey(m.sealed.key), sealedName: m.sealed.sealedName.toString('base64') } } : {}),
});
export const decodeMark = (m: StoredMark): Mark => ({
  name: m.name,
  commitLsn: BigInt(m.commitLsn),
  ...(m.sealed ? { sealed: { key: decodeWrappedKey(m.sealed.key), sealedName: Buffer.from(m.sealed.sealedName, 'base64') } } : {}),
});

/** How two summaries of the same stretch differ (verify), or undefined. */
export function summaryDisagreement(said: IndexSummary, found: IndexSummary): string | undefined {
  const [a, b] = [encodeSummary(said), encodeSummary(found)];
  const fields = (Object.keys(EMPTY) as (keyof IndexSummary)[]).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  return fields.length ? `a different ${fields.join(', ')}` : undefined;
}
