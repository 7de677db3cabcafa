import { UserError } from '../src/core/errors.js';
import { displayQualified } from '../src/core/sql.js';
import {
  describeDiscontinuity,
  indexArchive,
  loadHeaders,
  rangeSegments,
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
  /** The segments since the base up to the target, walked anew at each call (none is held: a year of them would not fit). */
  segments(): AsyncGenerator<IndexedSegment>;
  /** What their headers say, gathered by one walk when the plan is made. */
  span: SegmentSpan;
  /** The archive's last commit: where a replay to `latest` ends. */
  lastCommitLsn: bigint | undefined;
}

/** The replay's segments as a whole: per table, not per segment. */
export interface SegmentSpan {
  count: number;
  first?: string;
  last?: string;
  /** Changes per table oid, from the headers known. */
  changes: Map<number, number>;
  /**
   * Tables the segments update, delete from or truncate; undefined when a header is not known:
   * the base rows of every other table are final as they are, so they can be loaded while the
   * log is folded.
   */
  changedInPlace: Set<number> | undefined;
  /** Every table a known header names: `schema.table` to its name as a user writes it (quoted where needed). */
  names: Map<string, string>;
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
  const segments = () => rangeSegments(index, base.lsn - 1n, upTo);
  // The segments no index object holds (the tail, listed with the archive): their headers are
  // read where few, since the index objects give every other one's. An unreadable one stays
  // without: the replay names its damage when it reads it (exit 4).
  const tail = index.nodes.flatMap((n) =>
    n.segment && !n.segment.header && n.segment.endLsn >= base.lsn && (upTo === undefined || n.segment.startLsn <= upTo) ? [n.segment] : [],
  );
  if (tail.length <= HEADERS_WORTH_READING) await loadHeaders(index.store, tail, true);
  // One walk: a gap in the range is refused before any database is touched.
  return { base, manifest, schema, upTo, segments, span: await spanOf(segments()), lastCommitLsn: index.lastCommit?.lsn };
}

async function spanOf(segments: AsyncIterable<IndexedSegment>): Promise<SegmentSpan> {
  const span: SegmentSpan = { count: 0, changes: new Map(), changedInPlace: new Set(), names: new Map() };
  for await (const s of segments) {
    span.count++;
    span.first ??= s.key;
    span.last = s.key;
    if (!s.header) {
      span.changedInPlace = undefined;
      continue;
    }
    for (const t of s.header.tables) {
      span.changes.set(t.oid, (span.changes.get(t.oid) ?? 0) + t.inserts + t.updates + t.deletes);
      if (t.updates || t.deletes || t.truncates) span.changedInPlace?.add(t.oid);
      span.names.set(`${t.schema}.${t.name}`, displayQualified(t.schema, t.name));
    }
  }
  return span;
}

/** Segment headers a replay reads ahead (a small read each) when no index object holds them. */
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
  const index = await indexArchive(options.store, { lostTail: true });
  const plan = await planReplay(index, options.target, options.exclusive);
  // A table neither the base nor the log up to the target holds would replay as nothing, silently.
  const known = new Map(plan.schema.tables.map((t) => [`${t.schema}.${t.name}`, displayQualified(t.schema, t.name)]));
  for (const [key, shown] of plan.span.names) known.set(key, shown);
  let unknown = [...(options.tables ?? [])].filter((t) => !known.has(t));
  if (unknown.length && plan.span.changedInPlace === undefined) {
    // Some headers were not read: the segments replay reads name the tables they change.
    for await (const s of walkHeaders(index, plan))
      for (const t of s.header?.tables ?? []) known.set(`${t.schema}.${t.name}`, displayQualified(t.schema, t.name));
    unknown = unknown.filter((t) => !known.has(t));
  }
  if (unknown.length) {
    throw new UserError(
      `--tables: neither the base at ${plan.schema.lsn} nor the log up to the target has a table ${unknown.join(', ')}`,
      `its tables: ${[...known.values()].sort().slice(0, 20).join(', ')}${known.size > 20 ? ', …' : ''}`,
    );
  }
  return plan;
}

/** The plan's segments with every header read. */
function walkHeaders(index: ArchiveIndex, plan: ReplayPlan): AsyncGenerator<IndexedSegment> {
  return rangeSegments(index, plan.base.lsn - 1n, plan.upTo, { headers: true });
}
