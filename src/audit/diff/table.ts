import type { RelationDef } from '../../segment/format.js';
import type { DiffHelper } from './diff-helper.js';
import {
  addCounts,
  anyNeeded,
  beforePath,
  CHANGES,
  comparePart,
  countRecord,
  diffRecords,
  firstClaim,
  nextPart,
  noCounts,
  rangePath,
  resultPath,
  type Change,
  type PartResult,
  type RowDiffCounts,
  type SpilledTable,
} from './compare-part.js';
import { RangeFold, StateAt } from './fold.js';
import { hashText, readDiffRecord, splitMove, writeOp, type ColumnLists, type DiffRecord, type Op } from './ops.js';
import { compareRows, countedRows, columnNames, keyNames, type RowDiff } from './rows.js';
import { SpillFile } from './spill-file.js';

export { CHANGES, type Change, type RowDiffCounts } from './compare-part.js';

/**
 * A key change that takes values from the old key's row (unchanged TOAST) while the two keys
 * fall in different parts of a spilled table: the table is diffed again whole, in memory.
 */
export class WholeTableNeeded extends Error {
  constructor(readonly oid: number) {
    super(`table ${oid} must be diffed whole`);
  }
}

/** Whether a key may be among those whose rows at --from are needed: no false negatives. */
class BloomFilter {
  private readonly bits: Uint32Array;
  private readonly mask: number;
  size = 0;

  constructor(expected: number) {
    // About ten bits per key: one key in a hundred passes falsely.
    let words = 1 << 11;
    while (words * 32 < expected * 10 && words < 1 << 24) words <<= 1;
    this.bits = new Uint32Array(words);
    this.mask = words * 32 - 1;
  }

  /** Sets, or tests, the four bits of a key whose hashText is `h1` (positions from two hashes: Kirsch and Mitzenmacher). */
  private probe(h1: number, set: boolean): boolean {
    const h2 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b) | 1;
    for (let i = 0; i < 4; i++) {
      const p = (h1 + Math.imul(i, h2)) & this.mask;
      const bit = 1 << (p & 31);
      if (set) this.bits[p >>> 5]! |= bit;
      else if (!(this.bits[p >>> 5]! & bit)) return false;
    }
    return true;
  }

  /** The key whose hashText is `hash`. */
  add(hash: number): void {
    this.probe(hash, true);
    this.size++;
  }

  has(hash: number): boolean {
    return this.probe(hash, false);
  }
}

/** One part of a table: folded as its operations arrive (a table in one part) or spilled to disk. */
interface Part {
  fold?: RangeFold;
  state?: StateAt;
  range?: SpillFile;
  before?: SpillFile;
}

/**
 * The difference of one table between two points. With more than one part, every operation goes
 * to the part its key hashes to, on disk, and the parts are compared one at a time: memory holds
 * one part, whatever the size of the difference. The rows that differ are then on disk too.
 */
export class TableDiffer {
  /** The table's definition at --to. */
  def: RelationDef;
  /** Matched on its key (else on the whole row), from the first definition the range carried. */
  readonly keyed: boolean;
  truncated = false;
  /** Emptied by a rewrite (its rows then came whole from captured images). */
  private replaced = false;
  private readonly parts: Part[];
  /** Spilled tables: keys whose rows at --from may be needed. */
  private readonly wanted: BloomFilter | undefined;
  /** Tables in one part: the keys whose rows at --from are needed, known once the range is folded. */
  private needed: Set<string> | 'all' | undefined;
  /** A spilled table's rows that differ, by kind, in the order of its parts. */
  private results: Map<Change, SpillFile[]> | undefined;
  counts: RowDiffCounts = noCounts();
  /** Parts the helper thread compared. */
  partsHelped = 0;

  constructor(
    first: RelationDef,
    partCount: number,
    expectedChanges: number,
    private readonly dir: string,
    private readonly lists: ColumnLists,
  ) {
    this.def = first;
    this.keyed = keyNames(first).length > 0;
    this.parts = Array.from({ length: partCount }, (_, i) =>
      partCount === 1
        ? { fold: new RangeFold() }
        : { range: new SpillFile(rangePath(dir, first.oid, i)), before: new SpillFile(beforePath(dir, first.oid, i)) },
    );
    this.wanted = partCount > 1 ? new BloomFilter(expectedChanges) : undefined;
  }

  get partCount(): number {
    return this.parts.length;
  }

  get spilled(): boolean {
    return this.parts.length > 1;
  }

  /** How the rows at --from are matched: as the table is at --to. */
  get matching(): { keyed: boolean; keys: string[] } {
    return { keyed: this.keyed, keys: keyNames(this.def) };
  }

  /** `hash`: the key's hashText, where it is known already. */
  private route(op: Op, to: 'range' | 'before', hash?: number): void {
    const n = this.parts.length;
    if (op.kind === 'truncate') return this.parts.forEach((p) => this.put(p, op, to));
    if (n === 1) return this.put(this.parts[0]!, op, to);
    const h = hash ?? hashText(op.key);
    if (op.kind === 'move' && h % n !== hashText(op.oldKey) % n) {
      const split = splitMove(op);
      if (!split) throw new WholeTableNeeded(op.oid);
      for (const o of split) this.route(o, to);
      return;
    }
    this.put(this.parts[h % n]!, op, to);
  }

  private put(part: Part, op: Op, to: 'range' | 'before'): void {
    if (part.fold && to === 'range') part.fold.apply(op);
    else if (part.fold) part.state!.apply(op);
    else writeOp(part[to]!, op, this.lists);
  }

  /** A rewrite's first captured image: the table emptied, its rows following as inserts (no TRUNCATE to report). */
  emptied(): void {
    this.replaced = true;
    this.route({ kind: 'truncate', oid: this.def.oid }, 'range');
  }

  /** A change of the range. */
  range(op: Op): void {
    if (op.kind === 'truncate') {
      this.truncated = true;
      return this.route(op, 'range');
    }
    if (!this.wanted) return this.route(op, 'range');
    const hash = hashText(op.key);
    if (op.kind === 'update' || op.kind === 'delete') this.wanted.add(hash);
    if (op.kind === 'move') this.wanted.add(hashText(op.oldKey));
    this.route(op, 'range', hash);
  }

  /** A table in one part: the keys whose rows at --from are needed, once the range is folded. */
  private neededKeys(): Set<string> | 'all' {
    return (this.needed ??= this.parts[0]!.fold!.needed());
  }

  /** The range is folded: whether rows at --from are needed at all. */
  needsBefore(): boolean {
    if (this.truncated || this.replaced) return true;
    if (this.wanted) return this.wanted.size > 0;
    return anyNeeded(this.neededKeys());
  }

  /**
   * Whether a row at --from with this key may be needed: rows that are not are not kept. `hash`:
   * the key's hashText, where the caller has it (a spilled table's keys are known by it).
   */
  mayNeed(key: string, hash?: number): boolean {
    if (this.truncated || this.replaced) return true;
    if (this.wanted) return this.wanted.has(hash ?? hashText(key));
    const needed = this.neededKeys();
    return needed === 'all' || needed.has(key);
  }

  /** A row at --from (from the base) or a change between the base and --from; `hash` as mayNeed's. */
  before(op: Op, hash?: number): void {
    const part = this.parts[0]!;
    if (part.fold) part.state ??= new StateAt(this.neededKeys());
    if (op.kind !== 'truncate' && !this.mayNeed(op.key, hash) && !(op.kind === 'move' && this.mayNeed(op.oldKey))) return;
    this.route(op, 'before', hash);
  }

  /**
   * Compares the parts and counts the rows that differ. A spilled table's rows are written to
   * disk as they are found, unless only the counts are wanted (`keepRows` false: rows() then has
   * nothing to give); `missingBase` is called when rows at --from are needed but no base gave them.
   * With a `helper`, a second thread compares parts beside this one.
   */
  async finish(haveBase: boolean, missingBase: () => never, keepRows: boolean, helper?: DiffHelper): Promise<void> {
    if (!this.spilled) {
      if (!haveBase && anyNeeded(this.neededKeys())) missingBase();
      const part = this.parts[0]!;
      for (const record of diffRecords(part.fold!, part.state, this.keyed)) countRecord(record, this.keyed, this.def, this.counts);
      return;
    }
    // On disk whole, for whichever thread compares each part.
    for (const p of this.parts) {
      p.range!.close();
      p.before!.close();
    }
    const table: SpilledTable = {
      def: this.def,
      keyed: this.keyed,
      dir: this.dir,
      parts: this.parts.map((p) => ({ range: p.range!.count, before: p.before!.count })),
      haveBase,
      keepRows,
    };
    const claims = new SharedArrayBuffer(4);
    const helped = helper?.compare(table, this.lists.all(), claims);
    // Awaited below, after this thread's share; no unhandled rejection meanwhile.
    helped?.catch(() => {});
    const results: PartResult[] = [];
    const counter = new Int32Array(claims);
    if (helped) {
      // The helper claims first: else, while its thread starts, this one could take every part
      // of a table of small parts, and the helper be started for nothing.
      await Promise.race([firstClaim(counter), helped]);
      // A waiter left by a helper that failed first is released.
      Atomics.notify(counter, 0);
    }
    for (let i = nextPart(counter, this.parts.length); i !== undefined; i = nextPart(counter, this.parts.length))
      results.push(comparePart(table, i, this.lists));
    if (helped) {
      const theirs = await helped;
      this.partsHelped = theirs.length;
      results.push(...theirs);
    }
    results.sort((a, b) => a.part - b.part);
    if (results.some((r) => r.baseMissing)) missingBase();
    this.results = new Map(CHANGES.map((c) => [c, []]));
    for (const r of results) {
      addCounts(this.counts, r.counts);
      for (const c of CHANGES) {
        const n = r.written[c];
        if (n) this.results.get(c)!.push(SpillFile.existing(resultPath(this.dir, this.def.oid, r.part, c), n));
      }
    }
  }

  private toDiff(d: DiffRecord): RowDiff | undefined {
    const columns = columnNames(this.def);
    return this.keyed ? compareRows(d.before, d.after, columns, keyNames(this.def)) : countedRows(d.before!, d.copies, columns);
  }

  /** The rows that differ, of one kind or all; each call makes or reads them anew. */
  *rows(change?: Change): Generator<RowDiff> {
    if (!this.results) {
      const part = this.parts[0]!;
      for (const record of diffRecords(part.fold!, part.state, this.keyed)) {
        const d = this.toDiff(record);
        if (d && (!change || d.change === change)) yield d;
      }
      return;
    }
    for (const c of change ? [change] : CHANGES)
      for (const file of this.results.get(c)!) for (const r of file.records()) yield this.toDiff(readDiffRecord(r, this.lists))!;
  }

  close(): void {
    for (const p of this.parts) {
      p.range?.close();
      p.before?.close();
    }
    for (const files of this.results?.values() ?? []) for (const f of files) f.close();
  }
}
