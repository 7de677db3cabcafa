import { errorMessage } from '../core/errors.js';
import { formatLsn } from '../core/lsn.js';
import type { SegmentHeader } from '../segment/format.js';
import { parseSegmentKey } from '../segment/name.js';
import { summaryDisagreement, type IndexSummary } from '../log/index-summary.js';
import {
  listIndexObjects,
  readIndexObject,
  summaryOf,
  type IndexContent,
  type IndexObjectRef,
  type IndexedFacts,
  type Mark,
} from '../log/segment-index.js';
import type { SegmentRef } from '../log/segments.js';
import { throwIfUnreadable, type Store } from '../store/store.js';
import type { Finding, Status } from './verify.js';

// verify's checks of the index objects (docs/ARCHITECTURE.md, "Index objects"), in two parts so
// that memory does not follow the archive's length: each object on its own (readable, and a
// larger one summarizing each smaller one as that one's content does), then, as the walk over
// the segments passes them, the facts the objects of segments hold compared with the segments.

/** The LSNs verify checks (undefined: from the start, to the end). */
export interface VerifyRange {
  from?: bigint;
  to?: bigint;
}

/** What a segment's own header and body say, for the check of the index object that holds it. */
export interface SeenFacts {
  header?: SegmentHeader;
  marks: Mark[];
}

export function indexFinding(status: Status, o: { key: string; startLsn: bigint; endLsn: bigint }, detail: string): Finding {
  return { status, object: o.key, start: formatLsn(o.startLsn), end: formatLsn(o.endLsn), detail };
}

function overlaps(range: VerifyRange, o: { startLsn: bigint; endLsn: bigint }): boolean {
  return !((range.to !== undefined && o.startLsn > range.to) || (range.from !== undefined && o.endLsn <= range.from));
}

/**
 * Each index object in the range, smallest first (theirs are known when a larger one is checked).
 * Returns the objects that hold segments' facts, in LSN order, for the walk (IndexFactsCheck).
 * Only summaries of objects a larger one is made of are kept: one per 50 segments at most.
 */
export async function* checkIndexObjects(
  store: Store,
  range: VerifyRange,
  firstSegment: SegmentRef | undefined,
): AsyncGenerator<Finding, IndexObjectRef[]> {
  const all = await listIndexObjects(store);
  const stored = new Set(all.map((o) => o.key));
  const summaries = new Map<string, IndexSummary>();
  const withFacts: IndexObjectRef[] = [];
  for (const o of all.filter((o) => overlaps(range, o)).sort((a, b) => a.group - b.group)) {
    let content: IndexContent;
    try {
      content = await readIndexObject(store, o);
    } catch (err) {
      throwIfUnreadable(err);
      yield indexFinding('CORRUPT', o, `cannot be read: ${errorMessage(err)} (readers list its segments instead)`);
      continue;
    }
    if (content.facts) withFacts.push(o);
    if (o.group > 0) summaries.set(o.key, summaryOf(content));
    let sound = true;
    for (const c of content.children ?? []) {
      const found = summaries.get(c.key);
      const wrong = found && summaryDisagreement(c.summary, found);
      if (wrong) {
        sound = false;
        yield indexFinding(
          'CORRUPT',
          o,
          `says of ${c.key} ${wrong} than it holds: targets found through it would be wrong (remove it; pgtape index writes it again)`,
        );
      } else if (!stored.has(c.key) && firstSegment && c.endLsn > firstSegment.startLsn) {
        sound = false;
        yield indexFinding(
          'MISSING',
          c,
          `${o.key} names it, the store does not hold it: readers list the segments of that stretch instead (pgtape index writes it again)`,
        );
      }
    }
    if (sound) yield indexFinding('OK', o, 'readable');
  }
  // Where two hold a segment, the larger one's facts are compared (readers take the largest).
  return withFacts.sort((a, b) => (a.startLsn !== b.startLsn ? (a.startLsn < b.startLsn ? -1 : 1) : a.group - b.group));
}

interface OpenObject {
  ref: IndexObjectRef;
  facts: Map<string, IndexedFacts>;
  /** Its segments the walk has met. */
  met: Set<string>;
}

/**
 * The index objects of segments' facts that the walk over the segments is inside: each read when
 * the walk reaches its start (again: the first part kept none of them) and let go once the walk
 * is past its end, when the segments it names that the walk did not meet are reported missing.
 */
export class IndexFactsCheck {
  private next = 0;
  private readonly open: OpenObject[] = [];

  constructor(
    private readonly store: Store,
    private readonly objects: IndexObjectRef[],
    private readonly range: VerifyRange,
  ) {}

  /** Findings of the objects the walk leaves before `at` (a segment's start), then opens those it enters. */
  async *advance(at: bigint, firstSegment: SegmentRef): AsyncGenerator<Finding> {
    for (const o of this.open.filter((o) => o.ref.endLsn <= at)) yield* this.close(o, firstSegment);
    while (this.next < this.objects.length && this.objects[this.next]!.startLsn <= at) {
      const ref = this.objects[this.next++]!;
      try {
        const content = await readIndexObject(this.store, ref);
        if (content.facts) this.open.push({ ref, facts: content.facts, met: new Set() });
      } catch {
        // Readable a moment ago; its damage is reported with the objects.
      }
    }
  }

  /** How the index says otherwise of a segment than the segment does, as a finding (or none). */
  compare(s: SegmentRef, sound: boolean, seen: SeenFacts): Finding | undefined {
    let holder: OpenObject | undefined;
    for (const o of this.open) {
      if (!o.facts.has(s.key)) continue;
      o.met.add(s.key);
      if (!holder || o.ref.group > holder.ref.group) holder = o;
    }
    const disagreement = holder && sound ? disagreementOf(holder.facts.get(s.key)!, s, seen) : undefined;
    if (!disagreement) return undefined;
    return {
      status: 'CORRUPT',
      object: holder!.ref.key,
      start: formatLsn(s.startLsn),
      end: formatLsn(s.endLsn),
      detail: `says of ${s.key} ${disagreement}: targets found through it would be wrong (remove it; pgtape index writes it again)`,
    };
  }

  /** At the end of the walk: every object left. */
  async *finish(firstSegment: SegmentRef | undefined): AsyncGenerator<Finding> {
    if (!firstSegment) return;
    yield* this.advance(BigInt('0xFFFFFFFFFFFFFFFF'), firstSegment);
    for (const o of [...this.open]) yield* this.close(o, firstSegment);
  }

  /**
   * Readers list the segments through the index objects: an entry whose segment is not stored
   * (and was not expired: it lies after the first one stored) would send them to a missing object.
   */
  private async *close(o: OpenObject, firstSegment: SegmentRef): AsyncGenerator<Finding> {
    this.open.splice(this.open.indexOf(o), 1);
    for (const key of o.facts.keys()) {
      if (o.met.has(key)) continue;
      const r = parseSegmentKey(key);
      if (!r || r.startLsn < firstSegment.startLsn || !overlaps(this.range, r)) continue;
      // Named by an object whose range does not hold it, the walk met it elsewhere: stored.
      if (await this.store.stat(key)) continue;
      yield {
        status: 'MISSING',
        object: key,
        start: formatLsn(r.startLsn),
        end: formatLsn(r.endLsn),
        detail: `${o.ref.key} lists it, the store does not hold it: replays and logs through that stretch fail (restore the segment, or remove the index object and run pgtape index)`,
      };
    }
  }
}

/** How an index object's facts about a segment differ from the segment's own, or undefined. */
function disagreementOf(facts: IndexedFacts, ref: SegmentRef, seen: SeenFacts): string | undefined {
  if (facts.size !== ref.size) return `a size of ${facts.size} bytes (it has ${ref.size}; such an entry is not used)`;
  const h = seen.header!;
  const fields = [
    'startLsn',
    'endLsn',
    'firstCommitLsn',
    'lastCommitLsn',
    'firstCommitTime',
    'lastCommitTime',
    'minXid',
    'maxXid',
    'transactions',
    'changes',
    'messages',
  ] as const;
  const differing = fields.filter((f) => facts.header[f] !== h[f]);
  if (!facts.header.bodySha256.equals(h.bodySha256)) differing.push('bodySha256' as never);
  // An index object copies an encrypted segment's wrapped key and sealed names as they are.
  const sealedAs = (e: SegmentHeader['encryption']) =>
    e ? `${e.dataKey.mode}:${e.dataKey.keyId}:${e.dataKey.wrapped.toString('base64')}:${e.sealedTables.toString('base64')}` : '';
  if (sealedAs(facts.header.encryption) !== sealedAs(h.encryption)) differing.push('encryption' as never);
  if (differing.length) return `other header values (${differing.join(', ')})`;
  const marks = (m: Mark[]) =>
    JSON.stringify(m.map((x) => [x.sealed ? x.sealed.sealedName.toString('base64') : x.name, x.commitLsn.toString()]));
  if (marks(facts.marks) !== marks(seen.marks)) return `other marks (${marks(facts.marks)}; the segment holds ${marks(seen.marks)})`;
  return undefined;
}
