import { UserError } from '../src/core/errors.js';
import {
  describeDiscontinuity,
  indexArchive,
  loadHeaders,
  segmentsBetween,
  type ArchiveIndex,
  type IndexedSegment,
} from '../src/log/archive-index.js';
import { readBase, type BaseManifest, type BaseRef, type BaseSchema } from '../src/log/bases.js';
import { beforeFirstBase, outside, resolvePoint } from '../src/log/resolve.js';
import type { Target } from '../src/log/target.js';
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
  if (await beforeFirstBase(index, target)) throw outside(index, target, 'is before the first base');
  const cut = upTo !== undefined && index.discontinuities.find((d) => upTo >= d.from && upTo + 1n < d.to);
  if (cut) throw outside(index, target, `falls in a discontinuity of the archive: ${describeDiscontinuity(cut)}`);
  const candidates = index.bases.filter((b) => upTo === undefined || b.lsn <= upTo + 1n);
  const base = candidates.at(-1);
  if (!base) throw outside(index, target, 'is before the first base');
  const { manifest, schema } = await readBase(index.store, base);
  return { base, manifest, schema, upTo, segments: await segmentsBetween(index, base.lsn - 1n, upTo) };
}

/** Segment headers prepareReplay reads ahead (a small read each) when no index object holds them. */
const HEADERS_WORTH_READING = 256;

/**
 * Which base and segments a replay uses, and where it stops: resolved before any database is
 * touched, so that a target the archive cannot reach fails at once (and alongside connecting).
 */
export async function prepareReplay(options: {
  store: Store;
  target: Target;
  exclusive: boolean;
  tables?: Set<string>;
}): Promise<ReplayPlan> {
  const index = await indexArchive(options.store);
  const plan = await planReplay(index, options.target, options.exclusive);
  // Every header of the replay's segments, where few are not known yet (those after the index
  // objects): the planner sizes its tables from them, and the tables the log does not change in
  // place are loaded while it is folded (Planner.changedInPlace). Many unknown: not worth a request each.
  // An unreadable one stays without: the replay names its damage when it reads it (exit 4).
  if (plan.segments.filter((s) => !s.header).length <= HEADERS_WORTH_READING) await loadHeaders(index.store, plan.segments, true);
  // A table neither the base nor the log up to the target holds would replay as nothing, silently.
  const known = new Set(plan.schema.tables.map((t) => `${t.schema}.${t.name}`));
  let unknown = [...(options.tables ?? [])].filter((t) => !known.has(t));
  if (unknown.length) {
    // Made after the base: the headers of the segments replay reads name the tables they change.
    await loadHeaders(index.store, plan.segments);
    for (const s of plan.segments) for (const t of s.header?.tables ?? []) known.add(`${t.schema}.${t.name}`);
    unknown = unknown.filter((t) => !known.has(t));
  }
  if (unknown.length) {
    throw new UserError(
      `--tables: neither the base at ${plan.schema.lsn} nor the log up to the target has a table ${unknown.join(', ')}`,
      `its tables: ${[...known].sort().slice(0, 20).join(', ')}${known.size > 20 ? ', …' : ''}`,
    );
  }
  return plan;
}
