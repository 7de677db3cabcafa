import type { EntryScanner } from '../src/segment/entry-scanner.js';
import { DELETE, INSERT, sameColumnTypes, UPDATE, type RelationDef, type SegmentEntry, type TableCount } from '../src/segment/format.js';
import type { CapturedDdl } from '../src/source/ddl-capture.js';
import { valuesAfterRenames } from '../src/source/ddl-statements.js';
import type { Logger } from '../src/core/log.js';
import { RetainedBuffers } from './key-table.js';
import { TableEffect } from './net-effect.js';
import { toReplayValues, type ReplayValue } from './values.js';

/** What the planner hands its batches to: the applier. */
export interface EffectSink {
  /** A batch's net effects. The first batch comes with the base: it is merged into the base's load. */
  apply(effects: TableEffect[]): Promise<void>;
  truncate(relations: RelationDef[]): Promise<void>;
  /** The relation's definition changed (columns added, dropped or retyped, renamed). */
  redefine(previous: RelationDef, next: RelationDef): Promise<void>;
  /** DDL captured at the source (archive --capture-ddl), applied at its point. */
  ddl(captured: CapturedDdl): Promise<void>;
  /** The sequences' values recorded at a point (the newest up to the target wins). */
  sequences(values: Record<string, string>): void;
  /** An update that moves a row to another key while leaving a value unknown to the batch unchanged: applied in place. */
  updateKey(relation: RelationDef, oldKey: ReplayValue[], row: ReplayValue[]): Promise<void>;
}

/** The same table with the same columns and key: its changes fold together. */
function sameRelation(a: RelationDef, b: RelationDef): boolean {
  return (
    a.schema === b.schema &&
    a.name === b.name &&
    a.replicaIdentity === b.replicaIdentity &&
    sameColumnTypes(a.columns, b.columns) &&
    a.columns.every((c, i) => c.key === b.columns[i]!.key)
  );
}

/** Bytes an entry of a TableEffect takes (its tables and arrays): what sizing ahead may spend. */
const ENTRY_BYTES = 48;

/** How often (in changes) the memory the batch takes is measured. */
const MEASURE_EVERY = 4096;

/**
 * Folds the changes of committed transactions into their net effect per row (TableEffect) and
 * hands them to the sink in batches. TRUNCATE, schema changes and captured DDL are barriers:
 * what is pending is applied first. A batch is bounded by `maxBytes` of memory (the segment
 * bytes its rows point into, and its tables); one batch is applied while the next is folded.
 * Methods return a promise only when the caller must wait (a barrier, or a full batch while the
 * previous one is still being applied).
 */
export class Planner {
  private readonly batches = new Map<number, TableEffect>();
  private readonly defs = new Map<number, RelationDef>();
  /** Changes per table the segment being read holds (from its header). */
  private readonly expected = new Map<number, number>();
  /** Changes per table in the whole replay, where the segments' headers were known before reading them. */
  private readonly totals = new Map<number, number>();
  private buffers = new RetainedBuffers();
  private inFlight: Promise<void> | undefined;
  private sinceMeasured = 0;
  private applied = false;
  /** Changes folded so far. */
  changes = 0;
  /** Batches handed to the sink. */
  batchCount = 0;

  constructor(
    private readonly sink: EffectSink,
    private readonly maxBytes = 512 << 20,
    private readonly log?: Logger,
    /**
     * Tables something other than an insert changes in the replay's segments (their headers'
     * counts), when known: every other table's effect is append-only (TableEffect).
     */
    private readonly changedInPlace?: Set<number>,
  ) {}

  /** Starts `work` once the previous application has finished; order is kept, folding goes on. */
  private async submit(work: () => Promise<void>): Promise<void> {
    if (this.inFlight) await this.inFlight;
    const running = work();
    // Observed by the next submit() or by finish(); no unhandled rejection meanwhile.
    running.catch(() => {});
    this.inFlight = running;
  }

  /** A relation whose definition changed is a barrier: returns the promise to wait for, if any. */
  private redefined(relation: RelationDef): Promise<void> | undefined {
    const known = this.defs.get(relation.oid);
    if (known === relation) return undefined;
    this.defs.set(relation.oid, relation);
    if (known && !sameRelation(known, relation)) {
      return this.flush().then(() => this.submit(() => this.sink.redefine(known, relation)));
    }
    // Same shape, new object (each segment defines its relations anew): the batch goes on.
    const effect = this.batches.get(relation.oid);
    if (effect) effect.relation = relation;
    return undefined;
  }

  /** Folds the insert, update or delete the scanner is on. */
  change(scanner: EntryScanner, relation: RelationDef): Promise<void> | undefined {
    const barrier = this.redefined(relation);
    if (barrier) return barrier.then(() => this.change(scanner, relation));
    let effect = this.batches.get(relation.oid);
    if (!effect) {
      const expected = Math.max(this.expected.get(relation.oid) ?? 0, this.totals.get(relation.oid) ?? 0);
      const appendOnly = this.changedInPlace !== undefined && !this.changedInPlace.has(relation.oid);
      effect = new TableEffect(relation, this.buffers, Math.min(expected, this.maxReserved), appendOnly);
      this.batches.set(relation.oid, effect);
    }
    const s = scanner;
    if (s.kind === INSERT) effect.insert(s.buf, s.newStart, s.newEnd);
    else if (s.kind === DELETE) effect.delete(s.buf, s.keyStart, s.keyEnd, s.oldStart, s.oldEnd);
    else if (s.kind === UPDATE && !effect.update(s.buf, s.keyStart, s.keyEnd, s.oldStart, s.oldEnd, s.newStart, s.newEnd)) {
      return this.updateInPlace(relation, scanner.entry());
    }
    this.changes++;
    // The retained buffers are most of it, and cheap to weigh; the tables are weighed now and then.
    let full = this.buffers.bytes >= this.maxBytes;
    if (!full && ++this.sinceMeasured >= MEASURE_EVERY) {
      this.sinceMeasured = 0;
      full = this.bytes() >= this.maxBytes;
    }
    return full ? this.flush() : undefined;
  }

  private async updateInPlace(relation: RelationDef, entry: SegmentEntry): Promise<void> {
    if (entry.kind !== 'update' || !entry.key) throw new Error('an update in place needs the old key');
    this.changes++;
    const { key, new: row } = entry;
    await this.flush();
    await this.submit(() => this.sink.updateKey(relation, toReplayValues(key), toReplayValues(row)));
  }

  /**
   * The changes per table of every segment of the replay, where their headers are known before
   * reading (an indexed archive): a table's effect is sized once, not grown a segment at a time.
   */
  expectInAll(changes: Map<number, number>): void {
    for (const [oid, n] of changes) this.totals.set(oid, (this.totals.get(oid) ?? 0) + n);
  }

  /**
   * A segment is about to be read: its header's counts size the tables of the rows it changes,
   * so that a million-row batch is not rehashed twenty times.
   */
  expect(tables: TableCount[]): void {
    this.expected.clear();
    for (const t of tables) {
      const n = t.inserts + t.updates + t.deletes;
      const effect = this.batches.get(t.oid);
      if (effect) effect.reserve(Math.min(effect.size + n, this.maxReserved));
      else this.expected.set(t.oid, n);
    }
  }

  /** Sized ahead, a table takes at most a quarter of the batch's memory (more rows grow it as they come). */
  private get maxReserved(): number {
    return Math.floor(this.maxBytes / 4 / ENTRY_BYTES);
  }

  /** Memory the batch being folded takes. */
  private bytes(): number {
    let n = this.buffers.bytes;
    for (const e of this.batches.values()) n += e.bytes;
    return n;
  }

  /** The newest sequences' values read, under the names the sequences have since. */
  private values: Record<string, string> | undefined;

  /** Not a barrier: only the newest values up to the target matter, and they are set at the end. */
  sequences(values: Record<string, string>): void {
    this.values = values;
    this.sink.sequences(values);
  }

  /** Captured DDL is a barrier: what is pending is applied first. */
  async ddl(captured: CapturedDdl): Promise<void> {
    // A sequence renamed since the values were recorded: its value goes with it.
    const renamed = this.values && valuesAfterRenames(this.values, captured);
    if (renamed && renamed !== this.values) this.sequences(renamed);
    await this.flush();
    await this.submit(() => this.sink.ddl(captured));
  }

  async truncate(relations: RelationDef[]): Promise<void> {
    for (const r of relations) await this.redefined(r);
    await this.flush();
    await this.submit(() => this.sink.truncate(relations));
  }

  /** Hands everything pending to the sink (applied in the background, in order). The first call always does: it loads the base. */
  async flush(): Promise<void> {
    if (this.applied && this.batches.size === 0) return;
    const effects = [...this.batches.values()].filter((e) => e.size > 0);
    this.batches.clear();
    this.buffers = new RetainedBuffers();
    this.applied = true;
    this.batchCount++;
    this.log?.debug(
      { batch: this.batchCount, changes: this.changes, tables: effects.length, rows: effects.reduce((n, e) => n + e.size, 0) },
      'batch folded',
    );
    await this.submit(() => this.sink.apply(effects));
  }

  /** Flushes and waits until everything has been applied. */
  async finish(): Promise<void> {
    await this.flush();
    await this.inFlight;
  }
}
