import { listBases, readBase, type BaseManifest, type BaseRef, type BaseSchema } from '../src/base/format.js';
import { UserError } from '../src/core/errors.js';
import { formatLsn } from '../src/core/lsn.js';
import { formatMicros } from '../src/core/units.js';
import { MARK_PREFIX } from '../src/commands/mark.js';
import type { SegmentHeader } from '../src/segment/format.js';
import { listSegments, openSegment, type SegmentRef } from '../src/store/segments.js';
import type { Store } from '../src/store/store.js';
import { describeTarget, parseTimeMicros, type Target } from './target.js';

export interface IndexedSegment extends SegmentRef {
  header: SegmentHeader;
}

/** What the store holds: bases with a manifest, and segments with their headers. */
export interface ArchiveIndex {
  store: Store;
  bases: BaseRef[];
  segments: IndexedSegment[];
}

export async function indexArchive(store: Store): Promise<ArchiveIndex> {
  const bases = await listBases(store);
  const segments: IndexedSegment[] = [];
  for (const ref of await listSegments(store)) segments.push({ ...ref, header: await openSegment(store, ref.key).header() });
  if (bases.length === 0) {
    throw new UserError(
      segments.length === 0 ? `${store.description} holds no archive (no base, no segments)` : `${store.description} holds segments but no base to replay them onto`,
      segments.length === 0 ? 'check --store; pgtape archive writes there' : 'take one with pgtape base; replays start from it',
    );
  }
  return { store, bases, segments };
}

export interface ReplayPlan {
  base: BaseRef;
  manifest: BaseManifest;
  schema: BaseSchema;
  /** Replay transactions whose commit LSN is at least base.lsn and at most this (all when undefined). */
  upTo: bigint | undefined;
  segments: IndexedSegment[];
}

/** Resolves a target against the archive: which base, which segments, where to stop. */
export async function planReplay(index: ArchiveIndex, target: Target, exclusive: boolean): Promise<ReplayPlan> {
  const upTo = await resolveUpTo(index, target, exclusive);
  const candidates = index.bases.filter((b) => upTo === undefined || b.lsn <= upTo + 1n);
  const base = candidates.at(-1);
  if (!base) throw outside(index, target, 'is before the first base');
  const { manifest, schema } = await readBase(index.store, base);
  const segments = index.segments.filter((s) => s.endLsn > base.lsn && (upTo === undefined || s.header.firstCommitLsn <= upTo));
  let expected = base.lsn;
  for (const s of segments) {
    if (s.startLsn > expected) {
      throw new UserError(
        `the archive has a gap: nothing covers ${formatLsn(expected)} to ${formatLsn(s.startLsn)} (before ${index.store.description}/${s.key})`,
        `a segment is missing; replay targets before ${formatLsn(expected)} still work, and pgtape verify lists what is damaged`,
      );
    }
    expected = s.endLsn;
  }
  return { base, manifest, schema, upTo, segments };
}

async function resolveUpTo(index: ArchiveIndex, target: Target, exclusive: boolean): Promise<bigint | undefined> {
  const last = index.segments.at(-1);
  const end = last?.endLsn ?? index.bases.at(-1)!.lsn;
  switch (target.kind) {
    case 'latest':
    case 'commit':
      // A commit target has opened the store as of that commit: its end is the target.
      return undefined;
    case 'lsn':
      if (target.lsn > end) throw outside(index, target, 'is after the end of the archive');
      return exclusive ? target.lsn - 1n : target.lsn;
    case 'xid': {
      for (const s of index.segments) {
        if (target.xid < s.header.minXid || target.xid > s.header.maxXid) continue;
        for await (const e of openSegment(index.store, s.key).entries()) {
          if (e.kind === 'begin' && e.xid === target.xid) return exclusive ? e.commitLsn - 1n : e.commitLsn;
        }
      }
      throw outside(index, target, 'is not a transaction in the archive (never committed, or outside it)');
    }
    case 'time': {
      const firstBase = await readBase(index.store, index.bases[0]!);
      if (target.micros < parseTimeMicros(firstBase.schema.snapshotTime)!) throw outside(index, target, 'is before the first base');
      // The cut falls before the first commit stamped after the time (at or after it with --exclusive).
      const beyond = (t: bigint) => (exclusive ? t >= target.micros : t > target.micros);
      for (const s of index.segments) {
        if (!beyond(s.header.lastCommitTime)) continue;
        for await (const e of openSegment(index.store, s.key).entries()) {
          if (e.kind === 'begin' && beyond(e.commitTime)) return e.commitLsn - 1n;
        }
      }
      if (last && target.micros > last.header.lastCommitTime) throw outside(index, target, 'is after the last commit');
      return undefined;
    }
    case 'name': {
      const known: string[] = [];
      for (const s of index.segments) {
        if (s.header.messages === 0) continue;
        let commitLsn = 0n;
        for await (const e of openSegment(index.store, s.key).entries()) {
          if (e.kind === 'begin') commitLsn = e.commitLsn;
          if (e.kind === 'message' && e.prefix === MARK_PREFIX) {
            const name = e.content.toString('utf8');
            if (name === target.name) return exclusive ? commitLsn - 1n : commitLsn;
            if (known.length < 20) known.push(name);
          }
        }
      }
      const list = known.length ? ` (marks in the archive: ${known.join(', ')})` : ' (the archive holds no marks)';
      throw outside(index, target, `names no mark in the archive${list}`);
    }
  }
}

function outside(index: ArchiveIndex, target: Target, why: string): UserError {
  const first = index.bases[0]!;
  const last = index.segments.at(-1);
  const end = last
    ? `${formatLsn(last.endLsn)} (last commit ${formatLsn(last.header.lastCommitLsn)} at ${formatMicros(last.header.lastCommitTime)})`
    : `${formatLsn(index.bases.at(-1)!.lsn)} (bases only, no segments yet)`;
  return new UserError(`target ${describeTarget(target)} ${why}`, `the archive covers ${formatLsn(first.lsn)} (first base) to ${end}`);
}
