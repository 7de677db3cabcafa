import { describeDiscontinuity, indexArchive, segmentsBetween, type ArchiveIndex, type IndexedSegment } from '../src/log/archive-index.js';
import { readBase, type BaseManifest, type BaseRef, type BaseSchema } from '../src/log/bases.js';
import { outside, resolvePoint } from '../src/log/resolve.js';
import { parseTimeMicros, type Target } from '../src/log/target.js';
import type { Store } from '../src/store/store.js';

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
  const upTo = await resolvePoint(index, target, exclusive);
  if (target.kind === 'time') {
    const first = await readBase(index.store, index.bases[0]!);
    if (target.micros < parseTimeMicros(first.schema.snapshotTime)!) throw outside(index, target, 'is before the first base');
  }
  const cut = upTo !== undefined && index.discontinuities.find((d) => upTo >= d.from && upTo + 1n < d.to);
  if (cut) throw outside(index, target, `falls in a discontinuity of the archive: ${describeDiscontinuity(cut)}`);
  const candidates = index.bases.filter((b) => upTo === undefined || b.lsn <= upTo + 1n);
  const base = candidates.at(-1);
  if (!base) throw outside(index, target, 'is before the first base');
  const { manifest, schema } = await readBase(index.store, base);
  return { base, manifest, schema, upTo, segments: segmentsBetween(index, base.lsn - 1n, upTo) };
}

/**
 * Which base and segments a replay uses, and where it stops: resolved before any database is
 * touched, so that a target the archive cannot reach fails at once (and alongside connecting).
 */
export async function prepareReplay(options: { store: Store; target: Target; exclusive: boolean }): Promise<ReplayPlan> {
  const index = await indexArchive(options.store, { headers: 'tail' });
  return planReplay(index, options.target, options.exclusive);
}
