import { join } from 'node:path';
import type { RelationDef } from '../../segment/format.js';
import { countedDeltas, keyedPairs, RangeFold, StateAt } from './fold.js';
import { readOp, writeDiffRecord, type ColumnLists, type DiffRecord } from './ops.js';
import { changedCount, columnNames, type RowDiff } from './rows.js';
import { SpillFile } from './spill-file.js';

export type Change = RowDiff['change'];
export const CHANGES: Change[] = ['deleted', 'modified', 'added'];

export interface RowDiffCounts {
  added: number;
  deleted: number;
  modified: number;
  cellsModified: number;
}

export const noCounts = (): RowDiffCounts => ({ added: 0, deleted: 0, modified: 0, cellsModified: 0 });

export function addCounts(to: RowDiffCounts, c: RowDiffCounts): void {
  to.added += c.added;
  to.deleted += c.deleted;
  to.modified += c.modified;
  to.cellsModified += c.cellsModified;
}

export const anyNeeded = (needed: Set<string> | 'all') => needed === 'all' || needed.size > 0;

/** The rows that differ between the range's net effect and the rows at --from, as records. */
export function* diffRecords(fold: RangeFold, state: StateAt | undefined, keyed: boolean): Generator<DiffRecord> {
  if (keyed) for (const { before, after } of keyedPairs(fold, state)) yield { before, after, copies: 0 };
  else for (const { row, copies } of countedDeltas(fold, state)) yield { before: row, after: undefined, copies };
}

/** Counts a row that differs (without making its RowDiff: --summary wants only counts); returns how it differs. */
export function countRecord(d: DiffRecord, keyed: boolean, def: RelationDef, c: RowDiffCounts): Change | undefined {
  if (!keyed) {
    if (d.copies > 0) c.added += d.copies;
    else if (d.copies < 0) c.deleted -= d.copies;
    return d.copies > 0 ? 'added' : d.copies < 0 ? 'deleted' : undefined;
  }
  if (!d.before && !d.after) return undefined;
  if (!d.before) return (c.added++, 'added');
  if (!d.after) return (c.deleted++, 'deleted');
  const cells = changedCount(d.before, d.after, columnNames(def));
  if (!cells) return undefined;
  c.modified++;
  c.cellsModified += cells;
  return 'modified';
}

/** A spilled table as its parts are compared: on the main thread and on a helper alike. */
export interface SpilledTable {
  def: RelationDef;
  keyed: boolean;
  dir: string;
  /** Records in each part's two files, by part: the range's, and the rows at --from's. */
  parts: { range: number; before: number }[];
  haveBase: boolean;
  keepRows: boolean;
}

export const rangePath = (dir: string, oid: number, part: number) => join(dir, `${oid}.${part}.range`);
export const beforePath = (dir: string, oid: number, part: number) => join(dir, `${oid}.${part}.before`);
export const resultPath = (dir: string, oid: number, part: number, change: Change) => join(dir, `${oid}.${part}.${change}`);

/** What comparing one part gave: its counts, and how many rows of each kind its result files hold. */
export interface PartResult {
  part: number;
  counts: RowDiffCounts;
  /** Rows at --from were needed but no base gave them (the caller says so). */
  baseMissing: boolean;
  written: Partial<Record<Change, number>>;
}

/**
 * Compares part `i` of a spilled table: its range folded, its rows at --from gathered, the
 * rows that differ counted and (keepRows) written to the part's result files, by kind.
 */
export function comparePart(t: SpilledTable, i: number, lists: ColumnLists): PartResult {
  const oid = t.def.oid;
  const counts = noCounts();
  const fold = new RangeFold();
  for (const r of SpillFile.existing(rangePath(t.dir, oid, i), t.parts[i]!.range).records()) fold.apply(readOp(r, lists));
  const needed = fold.needed();
  if (!t.haveBase && anyNeeded(needed)) return { part: i, counts, baseMissing: true, written: {} };
  const state = new StateAt(needed);
  for (const r of SpillFile.existing(beforePath(t.dir, oid, i), t.parts[i]!.before).records()) state.apply(readOp(r, lists));
  const results = new Map<Change, SpillFile>();
  for (const record of diffRecords(fold, state, t.keyed)) {
    const change = countRecord(record, t.keyed, t.def, counts);
    if (!change || !t.keepRows) continue;
    let out = results.get(change);
    if (!out) results.set(change, (out = new SpillFile(resultPath(t.dir, oid, i, change))));
    writeDiffRecord(out, record, lists);
  }
  const written: PartResult['written'] = {};
  for (const [change, out] of results) {
    out.close();
    written[change] = out.count;
  }
  return { part: i, counts, baseMissing: false, written };
}

/** Claims the next part of a table's from a counter shared by every thread that compares them. */
export function nextPart(claims: Int32Array, parts: number): number | undefined {
  const i = Atomics.add(claims, 0, 1);
  // The first claim wakes the thread waiting for it (firstClaim).
  if (i === 0) Atomics.notify(claims, 0);
  return i < parts ? i : undefined;
}

/** Resolves once a part is claimed from `claims` (at once if one is already). */
export async function firstClaim(claims: Int32Array): Promise<void> {
  const waiting = Atomics.waitAsync(claims, 0, 0);
  if (waiting.async) await waiting.value;
}
