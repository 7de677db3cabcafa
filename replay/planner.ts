import type { Tuple } from '../src/pgoutput/messages.js';
import type { RelationDef } from '../src/segment/format.js';
import type { CapturedDdl } from '../src/source/ddl-capture.js';
import { carry, keyOf, rowImage, toValues, type Value } from './values.js';

export { UNCHANGED, type Value } from './values.js';

/**
 * The net effect of a batch of changes on one table, relative to the table's state before the
 * batch. Keyed tables (a replica identity with key columns) fold every change of a key into at
 * most one delete, update or insert; the others are multisets of whole rows.
 */
export interface TableEffect {
  relation: RelationDef;
  keyed: boolean;
  deletes: Value[][];
  /** Rows that existed before the batch; UNCHANGED columns keep the value they have there. */
  updates: Value[][];
  inserts: Value[][];
  /** Multiset tables: whole rows and how many copies to add (positive) or remove (negative). */
  counts: { row: Value[]; delta: number }[];
}

/** What the planner hands its rows to: the applier. */
export interface EffectSink {
  apply(effects: TableEffect[]): Promise<void>;
  truncate(relations: RelationDef[]): Promise<void>;
  /** The relation's definition changed (columns added, dropped or retyped, renamed). */
  redefine(previous: RelationDef, next: RelationDef): Promise<void>;
  /** DDL captured at the source (archive --capture-ddl), applied at its point. */
  ddl(captured: CapturedDdl): Promise<void>;
  /** An update that changes the key, applied on its own: rare, and ordering matters. */
  updateKey(relation: RelationDef, oldKey: Value[], row: Value[]): Promise<void>;
}

interface KeyedState {
  existedBefore: boolean;
  row: Value[] | null;
  /** The identity a deleted row was found by (key columns set, others null), for the delete. */
  keyRow?: Value[];
}

class TableBatch {
  readonly keyColumns: number[];
  readonly keyed: Map<string, KeyedState> = new Map();
  readonly multiset: Map<string, { row: Value[]; delta: number }> = new Map();

  constructor(public relation: RelationDef) {
    // With REPLICA IDENTITY FULL every column is flagged as key: such tables are multisets.
    this.keyColumns = relation.replicaIdentity === 'f' ? [] : relation.columns.flatMap((c, i) => (c.key ? [i] : []));
  }

  get isKeyed(): boolean {
    return this.keyColumns.length > 0;
  }

  keyOf(row: Value[]): string {
    return keyOf(row, this.keyColumns);
  }

  effect(): TableEffect {
    const e: TableEffect = { relation: this.relation, keyed: this.isKeyed, deletes: [], updates: [], inserts: [], counts: [] };
    for (const s of this.keyed.values()) {
      if (s.existedBefore && s.row === null) e.deletes.push(s.keyRow ?? []);
      else if (s.existedBefore && s.row) e.updates.push(s.row);
      else if (s.row) e.inserts.push(s.row);
    }
    for (const c of this.multiset.values()) if (c.delta !== 0) e.counts.push(c);
    return e;
  }
}

function sameShape(a: RelationDef, b: RelationDef): boolean {
  return (
    a.schema === b.schema &&
    a.name === b.name &&
    a.replicaIdentity === b.replicaIdentity &&
    a.columns.length === b.columns.length &&
    a.columns.every((c, i) => {
      const d = b.columns[i]!;
      return c.name === d.name && c.typeOid === d.typeOid && c.typmod === d.typmod && c.key === d.key;
    })
  );
}

/**
 * Folds the changes of committed transactions into their net effect per row and hands them to
 * the sink in bulk. TRUNCATE, schema changes and key changes are barriers: what is pending is
 * applied first. Memory is bounded by `maxPendingRows`; one batch is applied while the next is
 * folded. Methods return a promise only when the caller must wait (a barrier, or a full batch
 * while the previous one is still being applied).
 */
export class Planner {
  private readonly batches = new Map<number, TableBatch>();
  private readonly defs = new Map<number, RelationDef>();
  private pending = 0;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly sink: EffectSink,
    private readonly maxPendingRows = 200_000,
  ) {}

  /** Starts `work` once the previous application has finished; order is kept, folding goes on. */
  async submit(work: () => Promise<void>): Promise<void> {
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
    const batch = this.batches.get(relation.oid);
    if (known && !sameShape(known, relation)) {
      return this.flush().then(() => this.submit(() => this.sink.redefine(known, relation)));
    }
    // Same shape, new object (each segment defines its relations anew): the batch goes on.
    if (batch) batch.relation = relation;
    return undefined;
  }

  private batch(relation: RelationDef): TableBatch {
    let batch = this.batches.get(relation.oid);
    if (!batch) this.batches.set(relation.oid, (batch = new TableBatch(relation)));
    return batch;
  }

  insert(relation: RelationDef, tuple: Tuple): Promise<void> | undefined {
    const barrier = this.redefined(relation);
    if (barrier) return barrier.then(() => this.insert(relation, tuple));
    const b = this.batch(relation);
    const row = toValues(tuple);
    if (b.isKeyed) {
      const k = b.keyOf(row);
      const s = b.keyed.get(k);
      if (s) s.row = row;
      else b.keyed.set(k, { existedBefore: false, row });
    } else this.count(b, row, 1);
    return this.grew();
  }

  update(relation: RelationDef, key: Tuple | undefined, old: Tuple | undefined, tuple: Tuple): Promise<void> | undefined {
    const barrier = this.redefined(relation);
    if (barrier) return barrier.then(() => this.update(relation, key, old, tuple));
    const b = this.batch(relation);
    let row = toValues(tuple);
    if (!b.isKeyed) {
      if (!old) throw new Error(`an update of ${relation.schema}.${relation.name}, which has no replica identity key, carries no old row`);
      const before = toValues(old);
      this.count(b, before, -1);
      this.count(b, carry(row, before), 1);
      return this.grew();
    }
    const oldRow = key ? toValues(key) : old ? toValues(old) : undefined;
    const k = b.keyOf(row);
    if (oldRow && b.keyOf(oldRow) !== k) {
      const moved = old ? carry(row, toValues(old)) : row;
      return this.flush().then(() => this.submit(() => this.sink.updateKey(relation, oldRow, moved)));
    }
    const s = b.keyed.get(k);
    if (s) {
      if (s.row) row = carry(row, s.row);
      s.row = row;
    } else b.keyed.set(k, { existedBefore: true, row: old ? carry(row, toValues(old)) : row });
    return this.grew();
  }

  delete(relation: RelationDef, key: Tuple | undefined, old: Tuple | undefined): Promise<void> | undefined {
    const barrier = this.redefined(relation);
    if (barrier) return barrier.then(() => this.delete(relation, key, old));
    const b = this.batch(relation);
    const identity = toValues((key ?? old)!);
    if (!b.isKeyed) {
      this.count(b, identity, -1);
      return this.grew();
    }
    const k = b.keyOf(identity);
    const s = b.keyed.get(k);
    if (!s) b.keyed.set(k, { existedBefore: true, row: null, keyRow: identity });
    else if (!s.existedBefore) b.keyed.delete(k);
    else {
      s.row = null;
      s.keyRow = identity;
    }
    return this.grew();
  }

  /** Captured DDL is a barrier: what is pending is applied first. */
  async ddl(captured: CapturedDdl): Promise<void> {
    await this.flush();
    await this.submit(() => this.sink.ddl(captured));
  }

  async truncate(relations: RelationDef[]): Promise<void> {
    for (const r of relations) await this.redefined(r);
    await this.flush();
    await this.submit(() => this.sink.truncate(relations));
  }

  private count(b: TableBatch, row: Value[], delta: number): void {
    const k = rowImage(row);
    const c = b.multiset.get(k);
    if (c) c.delta += delta;
    else b.multiset.set(k, { row, delta });
  }

  private grew(): Promise<void> | undefined {
    return ++this.pending >= this.maxPendingRows ? this.flush() : undefined;
  }

  /** Hands everything pending to the sink (applied in the background, in order). */
  async flush(): Promise<void> {
    if (this.pending === 0) return;
    const effects = [...this.batches.values()].map((b) => b.effect()).filter((e) => e.deletes.length + e.updates.length + e.inserts.length + e.counts.length > 0);
    this.batches.clear();
    this.pending = 0;
    if (effects.length) await this.submit(() => this.sink.apply(effects));
  }

  /** Flushes and waits until everything has been applied. */
  async finish(): Promise<void> {
    await this.flush();
    await this.inFlight;
  }
}
