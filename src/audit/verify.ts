import { BASES_DIR, basePrefix } from '../log/bases.js';
import { checkBase, downgrade } from './verify-base.js';
import { batches, mapLimit } from '../core/concurrency.js';
import { errorMessage } from '../core/errors.js';
import { formatLsn, parseLsnKey, tryParseLsn } from '../core/lsn.js';
import { formatMicros } from '../core/units.js';
import type { SegmentEntry, SegmentHeader } from '../segment/format.js';
import { listDiscontinuities } from '../log/discontinuities.js';
import { missingKmsKey } from '../log/kms-keys.js';
import { kmsRefusal } from '../log/keys.js';
import { openSegment, streamSegments, type SegmentRef } from '../log/segments.js';
import { INDEX_DIR, markName, sealedMarks, type Mark } from '../log/segment-index.js';
import { checkIndexObjects, IndexFactsCheck, type SeenFacts } from './verify-index.js';
import { MARK_PREFIX } from '../source/logical-messages.js';
import type { SegmentReader } from '../segment/reader.js';
import { ObjectMissingError, throwIfUnreadable, type Store } from '../store/store.js';
import { lostNewestSegment } from '../log/archive-index.js';
import { LEASE_KEY, recordedLastSegment } from '../log/lease.js';
import { parseSegmentKey, SEGMENTS_DIR } from '../segment/name.js';

/** DISCONTINUITY: a gap the archive recorded itself (a rebase): not damage, but replay cannot cross it. */
/** DOWNGRADE: a file stored in the clear after the archive was encrypted (docs/ARCHITECTURE.md, "Encryption at rest"). */
/** STRAY: a file in segments/ that is no segment: every other command refuses the store until it is moved out. */
export type Status = 'OK' | 'CORRUPT' | 'MISSING' | 'GAP' | 'OVERLAP' | 'DISCONTINUITY' | 'DOWNGRADE' | 'STRAY';

/** The verdict on one object of the store (a base, a segment) or on a stretch of LSNs between them. */
export interface Finding {
  status: Status;
  object: string;
  /** The LSNs it covers: a segment's range, a gap's, a base's LSN (start = end). */
  start: string;
  end: string;
  detail: string;
  /** An encrypted file whose content was not checked: its key (this id) was not given. */
  keyNotGiven?: string;
}

export interface VerifySummary {
  sound: boolean;
  bases: number;
  segments: number;
  counts: Partial<Record<Status, number>>;
  /** The first and last LSN checked. */
  from: string | null;
  to: string | null;
  /** Stretches that replay can still reach: from a sound base to the first break after it (`to` is `from` - 1 for the base alone, before a break at its LSN). */
  replayable: { from: string; to: string }[];
}

/** At most this many objects are read at once (a remote store's latency overlaps). */
const CONCURRENCY = 4;

interface Break {
  start: bigint;
  end: bigint;
}

/**
 * Checks every base and every segment of a store (or those a range needs): bases complete with
 * matching checksums; segments readable, their body checksum and decoding, whole transactions
 * in commit order inside the segment's range, a definition for every relation a change uses,
 * header counts equal to the body's; and the segments contiguous, without gap or overlap.
 */
export async function* verifyArchive(store: Store, range: { from?: bigint; to?: bigint } = {}): AsyncGenerator<Finding, VerifySummary> {
  const counts: Partial<Record<Status, number>> = {};
  const breaks: Break[] = [];
  const soundBases: bigint[] = [];
  const emit = (f: Finding): Finding => {
    counts[f.status] = (counts[f.status] ?? 0) + 1;
    // A damaged segment, a gap or an overlap breaks the chain: replay cannot cross it.
    if (
      f.status !== 'OK' &&
      f.status !== 'DOWNGRADE' &&
      f.status !== 'STRAY' &&
      !f.object.startsWith(BASES_DIR) &&
      !f.object.startsWith(INDEX_DIR)
    )
      breaks.push({ start: tryParseLsn(f.start)!, end: tryParseLsn(f.end)! });
    return f;
  };

  const inRange = (s: SegmentRef) =>
    (range.to === undefined || s.startLsn <= range.to) && (range.from === undefined || s.endLsn > range.from);
  // Read before the listing: a segment the archiver stores meanwhile is then listed too.
  const recorded = range.to === undefined ? recordedLastSegment(store) : Promise.resolve(undefined);
  // The segments are streamed from the listing, a page at a time: a year of them is not held.
  const strays: string[] = [];
  const listing = streamSegments(store, undefined, (key) => strays.push(key));
  let firstListed = await listing.next();
  while (!firstListed.done && !inRange(firstListed.value)) {
    if (range.to !== undefined && firstListed.value.startLsn > range.to) break;
    firstListed = await listing.next();
  }
  const first = firstListed.done || !inRange(firstListed.value) ? undefined : firstListed.value;
  const bases = await baseDirectories(store);
  const discontinuities = await listDiscontinuities(store);
  const checkedBases = bases.filter((b) => range.to === undefined || b.lsn <= range.to);

  // Where the archive was first seen encrypted: anything stored in the clear after it is a downgrade.
  let encryptedFrom: { lsn: bigint; key: string } | undefined;
  const plainBases: bigint[] = [];
  for (const b of checkedBases) {
    const { finding: f, encrypted } = await checkBase(store, b.lsn, b.keys);
    emit(f);
    if (f.status === 'OK') soundBases.push(b.lsn);
    if (encrypted && (!encryptedFrom || b.lsn < encryptedFrom.lsn)) encryptedFrom ??= { lsn: b.lsn, key: basePrefix(b.lsn) };
    else if (f.status === 'OK' && !encrypted) plainBases.push(b.lsn);
    yield f;
  }

  const objects = checkIndexObjects(store, range, first);
  let o = await objects.next();
  for (; !o.done; o = await objects.next()) yield emit(o.value);
  const facts = new IndexFactsCheck(store, o.value, range);

  async function* inRangeSegments(): AsyncGenerator<SegmentRef> {
    if (!first) return;
    yield first;
    for await (const s of { [Symbol.asyncIterator]: () => listing }) {
      if (range.to !== undefined && s.startLsn > range.to) return;
      if (inRange(s)) yield s;
    }
  }
  let previous: SegmentRef | undefined;
  let count = 0;
  let end = 0n;
  for await (const batch of batches(inRangeSegments(), CONCURRENCY)) {
    const seen = batch.map((): SeenFacts => ({ marks: [] }));
    const results = await mapLimit(batch, CONCURRENCY, (s, k) => checkSegment(store, s, seen[k]!));
    for (const [k, s] of batch.entries()) {
      for await (const f of facts.advance(s.startLsn, first!)) yield emit(f);
      const rebased = previous && discontinuities.find((d) => d.from <= previous!.endLsn && d.to >= s.startLsn);
      if (previous && s.startLsn > previous.endLsn && rebased) {
        yield emit({
          status: 'DISCONTINUITY',
          object: `discontinuities/${formatLsn(rebased.from)}-${formatLsn(rebased.to)}`,
          start: formatLsn(previous.endLsn),
          end: formatLsn(s.startLsn),
          detail: `recorded: ${rebased.reason}, rebased ${rebased.at}; nothing was archived between, replay works on either side`,
        });
      } else if (previous && s.startLsn > previous.endLsn) {
        yield emit({
          status: 'GAP',
          object: `${formatLsn(previous.endLsn)}-${formatLsn(s.startLsn)}`,
          start: formatLsn(previous.endLsn),
          end: formatLsn(s.startLsn),
          detail: `no segment covers ${formatLsn(previous.endLsn)} to ${formatLsn(s.startLsn)} (between ${previous.key} and ${s.key})`,
        });
      } else if (previous && s.startLsn < previous.endLsn) {
        yield emit({
          status: 'OVERLAP',
          object: s.key,
          start: formatLsn(s.startLsn),
          end: formatLsn(previous.endLsn),
          detail: `starts at ${formatLsn(s.startLsn)}, before ${previous.key} ends (${formatLsn(previous.endLsn)}): the same transactions may be stored twice`,
        });
      }
      yield emit(results[k]!);
      const header = seen[k]!.header;
      if (header?.encryption && (!encryptedFrom || s.startLsn < encryptedFrom.lsn)) encryptedFrom = { lsn: s.startLsn, key: s.key };
      else if (header && !header.encryption && encryptedFrom && s.startLsn >= encryptedFrom.lsn)
        yield emit(downgrade(s.key, s.startLsn, s.endLsn, encryptedFrom.key));
      const disagreement = facts.compare(s, results[k]!.status === 'OK', seen[k]!);
      if (disagreement) yield emit(disagreement);
      if (!previous || s.endLsn > previous.endLsn) previous = s;
      count++;
      if (s.endLsn > end) end = s.endLsn;
    }
  }
  // The store lost its newest segments: nothing else would tell (the listing just ends sooner).
  const lost = await lostNewestSegment(store, await recorded, count ? end : undefined, bases.at(-1)?.lsn);
  if (lost) {
    const span = parseSegmentKey(lost)!;
    yield emit({
      status: 'MISSING',
      object: lost,
      start: formatLsn(span.startLsn),
      end: formatLsn(span.endLsn),
      detail: `the archiver recorded storing it (${LEASE_KEY}) and no later segment is listed: the archive's newest changes are gone from the store`,
    });
  }
  for (const key of strays)
    yield emit({
      status: 'STRAY',
      object: key,
      start: '-',
      end: '-',
      detail: `not a pgtape segment name (segments/<startLSN16>-<endLSN16>.pgtape): replay, log and diff refuse the store until it is moved out of ${SEGMENTS_DIR}`,
    });
  for await (const f of facts.finish(first)) yield emit(f);
  for (const lsn of plainBases)
    if (encryptedFrom && lsn > encryptedFrom.lsn) yield emit(downgrade(basePrefix(lsn), lsn, lsn, encryptedFrom.key));
  // The change log must begin at or before the first base: what lies between is lost.
  const firstBase = soundBases[0];
  if (firstBase !== undefined && first && range.from === undefined && first.startLsn > firstBase) {
    yield emit({
      status: 'GAP',
      object: `${formatLsn(firstBase)}-${formatLsn(first.startLsn)}`,
      start: formatLsn(firstBase),
      end: formatLsn(first.startLsn),
      detail: `no segment covers the first base (${formatLsn(firstBase)}) to the first segment (${first.key})`,
    });
  }

  const replayable: VerifySummary['replayable'] = [];
  for (const b of soundBases) {
    const first = breaks.filter((x) => x.end > b).sort((x, y) => (x.start < y.start ? -1 : 1))[0];
    if (first && first.start < b) continue;
    // A transaction may commit right where a damaged or missing stretch starts (another one's
    // commit ended the previous segment there): targets work up to just before it. One that
    // starts at the base leaves the base alone: its point, just before its LSN (to < from).
    const to = first ? first.start - 1n : end > b ? end : b;
    const last = replayable.at(-1);
    if (last && last.to === formatLsn(to)) continue;
    replayable.push({ from: formatLsn(b), to: formatLsn(to) });
  }
  const sound = Object.keys(counts).every((s) => s === 'OK' || s === 'DISCONTINUITY') && (checkedBases.length > 0 || count > 0);
  return {
    sound,
    bases: checkedBases.length,
    segments: count,
    counts,
    from: first ? formatLsn(first.startLsn) : checkedBases[0] ? formatLsn(checkedBases[0].lsn) : null,
    to: count ? formatLsn(end) : null,
    replayable,
  };
}

/** Every `base/<LSN16>/` folder with what it holds, manifest or not. */
async function baseDirectories(store: Store): Promise<{ lsn: bigint; keys: Map<string, number> }[]> {
  const byLsn = new Map<bigint, Map<string, number>>();
  for (const o of await store.list(BASES_DIR)) {
    const m = /^base\/([0-9A-F]{16})\/(.+)$/.exec(o.key);
    const lsn = m ? parseLsnKey(m[1]!) : undefined;
    if (lsn === undefined) continue;
    (byLsn.get(lsn) ?? byLsn.set(lsn, new Map()).get(lsn)!).set(m![2]!, o.size);
  }
  return [...byLsn.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([lsn, keys]) => ({ lsn, keys }));
}

/** Reads a whole segment and checks it against its header and name. */
async function checkSegment(store: Store, ref: SegmentRef, seen: SeenFacts): Promise<Finding> {
  const reader = openSegment(store, ref);
  try {
    return await checkOpenSegment(store, reader, ref, `${store.description}/${ref.key}`, seen);
  } finally {
    // Left early (a header that disagrees with the name, say): the stored object is released.
    reader.close();
  }
}

async function checkOpenSegment(store: Store, reader: SegmentReader, ref: SegmentRef, what: string, seen: SeenFacts): Promise<Finding> {
  const finding = (status: Status, detail: string): Finding => ({
    status,
    object: ref.key,
    start: formatLsn(ref.startLsn),
    end: formatLsn(ref.endLsn),
    detail,
  });
  let header: SegmentHeader;
  try {
    header = seen.header = await reader.header();
  } catch (err) {
    throwIfUnreadable(err);
    return finding(err instanceof ObjectMissingError ? 'MISSING' : 'CORRUPT', errorMessage(err));
  }
  const problem = (detail: string) => finding('CORRUPT', detail);
  if (header.startLsn !== ref.startLsn || header.endLsn !== ref.endLsn) {
    return problem(
      `its name says ${formatLsn(ref.startLsn)}–${formatLsn(ref.endLsn)}, its header ${formatLsn(header.startLsn)}–${formatLsn(header.endLsn)}`,
    );
  }
  if (header.encryption) seen.marks = sealedMarks(header);
  const lostKey = await missingKmsKey(store, header.encryption?.dataKey);
  if (lostKey) return finding('MISSING', lostKey);
  if (!(await reader.opens())) {
    // Without its key: what the clear header says, and the stored bytes against its checksum.
    try {
      await reader.checkStoredBody();
    } catch (err) {
      throwIfUnreadable(err);
      return problem(errorMessage(err).replace(`${what}: `, ''));
    }
    const id = header.encryption!.dataKey.keyId;
    const refused = kmsRefusal(store, header.encryption!.dataKey, what);
    if (refused) throw refused;
    return {
      ...finding(
        'OK',
        `${header.transactions} transactions, ${header.changes} changes; encrypted for key ${id}, not given: its size and checksum checked, not its content (--key-file to check it)`,
      ),
      keyNotGiven: id,
    };
  }
  // An encrypted segment's marks as its body holds them, against its header's sealed ones.
  const bodyMarks: string[] = [];
  const relations = new Set<number>();
  let open: { commitLsn: bigint; xid: number } | undefined;
  let transactions = 0;
  let last: bigint | undefined;
  let first: bigint | undefined;
  let minXid = Infinity;
  let maxXid = -Infinity;
  let changes = 0;
  // Commit times as the body's commits say them (what the writer put in the header): time: targets are found by the header's.
  const times: { first?: bigint; last?: bigint } = {};
  // The first inconsistency in the body; reading goes on to the end, because a body whose
  // checksum fails is damaged storage, and that is what to report (a flipped byte can still
  // decompress into entries that disagree with each other).
  let inconsistent: string | undefined;
  const check = (e: SegmentEntry): string | undefined => {
    if (e.kind === 'relation') {
      relations.add(e.relation.oid);
      return undefined;
    }
    // An encrypted segment's marks are its header's, sealed: what an index object copies.
    if (e.kind === 'message' && e.prefix === MARK_PREFIX && open) {
      if (header.encryption) bodyMarks.push(`${e.content.toString('utf8')}@${formatLsn(open.commitLsn)}`);
      else seen.marks.push({ name: e.content.toString('utf8'), commitLsn: open.commitLsn });
    }
    if (e.kind === 'begin') {
      if (open) return `transaction ${open.xid} has no commit before the next begins`;
      if (last !== undefined && e.commitLsn <= last)
        return `transaction ${e.xid} (commit ${formatLsn(e.commitLsn)}) is out of commit order`;
      if (e.commitLsn < ref.startLsn || e.commitLsn >= ref.endLsn)
        return `transaction ${e.xid} commits at ${formatLsn(e.commitLsn)}, outside the segment's range`;
      open = { commitLsn: e.commitLsn, xid: e.xid };
      first ??= e.commitLsn;
      minXid = Math.min(minXid, e.xid);
      maxXid = Math.max(maxXid, e.xid);
      return undefined;
    }
    if (!open) return `a ${e.kind} entry lies outside any transaction`;
    if (e.kind === 'commit') {
      if (e.commitLsn !== open.commitLsn)
        return `transaction ${open.xid} begins with commit LSN ${formatLsn(open.commitLsn)} and commits at ${formatLsn(e.commitLsn)}`;
      last = e.commitLsn;
      times.first ??= e.commitTime;
      times.last = e.commitTime;
      transactions++;
      open = undefined;
      return undefined;
    }
    const used =
      e.kind === 'truncate' ? e.relations : e.kind === 'insert' || e.kind === 'update' || e.kind === 'delete' ? [e.relation] : [];
    for (const oid of used)
      if (!relations.has(oid)) return `transaction ${open.xid} changes relation ${oid}, which the segment never defines`;
    if (used.length) changes++;
    return undefined;
  };
  try {
    for await (const e of reader.entries()) if (inconsistent === undefined) inconsistent = check(e);
  } catch (err) {
    throwIfUnreadable(err);
    return problem(errorMessage(err).replace(`${what}: `, '').replace(`${what} `, ''));
  }
  if (inconsistent !== undefined) return problem(inconsistent);
  if (open) return problem(`transaction ${open.xid} has no commit: the segment ends inside it`);
  const mismatch = [
    header.transactions !== transactions && `${header.transactions} transactions (the body holds ${transactions})`,
    transactions && header.firstCommitLsn !== first && `first commit ${formatLsn(header.firstCommitLsn)} (the body: ${formatLsn(first!)})`,
    transactions && header.lastCommitLsn !== last && `last commit ${formatLsn(header.lastCommitLsn)} (the body: ${formatLsn(last!)})`,
    transactions &&
      (header.minXid !== minXid || header.maxXid !== maxXid) &&
      `xids ${header.minXid}–${header.maxXid} (the body: ${minXid}–${maxXid})`,
    transactions &&
      (header.firstCommitTime !== times.first || header.lastCommitTime !== times.last) &&
      `commit times ${formatMicros(header.firstCommitTime)}–${formatMicros(header.lastCommitTime)} (the body: ${formatMicros(times.first!)}–${formatMicros(times.last!)})`,
    header.changes !== changes && `${header.changes} changes (the body holds ${changes})`,
  ].filter(Boolean);
  if (header.encryption) {
    const name = (m: Mark) => {
      try {
        return markName(store, m);
      } catch (err) {
        return `(${errorMessage(err)})`;
      }
    };
    const sealed = seen.marks.map((m) => `${name(m)}@${formatLsn(m.commitLsn)}`);
    if (sealed.join('\n') !== bodyMarks.join('\n'))
      mismatch.push(`marks ${JSON.stringify(sealed)} (the body: ${JSON.stringify(bodyMarks)})`);
  }
  if (mismatch.length) return problem(`its header disagrees with its body: ${mismatch.join('; ')}`);
  return finding('OK', `${transactions} transactions, ${changes} changes`);
}
