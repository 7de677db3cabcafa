import { varintSize, writeVarint } from '../src/core/varint.js';
import { CorruptSegmentError } from '../src/segment/reader.js';
import { TupleView } from '../src/segment/entry-scanner.js';
import type { RelationDef } from '../src/segment/format.js';
import { TUPLE_NULL, TUPLE_TEXT, TUPLE_UNCHANGED } from '../src/pgoutput/tuple.js';
import { CopyText, LineFields, needsEscape } from './copy-text.js';
import { grown } from '../src/core/typed-arrays.js';
import { KeyTable, type RetainedBuffers } from './key-table.js';

/** Entry states. EXISTED: the row was there before the batch. HAS_ROW: it is there after it. */
export const EXISTED = 1;
export const HAS_ROW = 2;
/** Applied already, with the base's rows (see base-merge.ts). */
export const DONE = 4;

/**
 * The net effect of a batch of changes on one table, relative to its state before the batch:
 * every change of a row folded into at most one delete, update or insert. Keyed tables (a replica
 * identity with key columns) are keyed by those columns; the others (REPLICA IDENTITY FULL, or
 * no identity: inserts only) are multisets of whole rows with a count each. An append-only
 * effect (see the constructor) is neither: a list of the rows inserted, keyed or not.
 *
 * Rows are not copied out of the segments: an entry points at its tuple in the decompressed
 * body (kept alive by RetainedBuffers). Keys are COPY text: the key columns' fields joined by
 * tabs, for keyed tables; the whole row's line, for multisets.
 */
export class TableEffect {
  readonly keyColumns: number[];
  readonly keys: KeyTable;
  state = new Uint8Array(1024);
  /** Keyed and append-only effects (`rowEntries`): where the row after the batch lies (a tuple), when HAS_ROW. */
  rowBuf = new Int32Array(1024);
  rowStart = new Int32Array(1024);
  rowEnd = new Int32Array(1024);
  /** Multisets: copies of the row (the key) to add, or to remove when negative. */
  delta = new Int32Array(1024);
  /** Changes folded into this effect. */
  changes = 0;
  private readonly view = new TupleView();
  private readonly other = new TupleView();
  private readonly text = new CopyText(4096);
  private readonly fields = new LineFields();
  // Where locateKey() found the key's bytes.
  private keyId = 0;
  private keyBytes: Buffer = Buffer.alloc(0);
  private keyS = 0;
  private keyE = 0;
  private keyMade = false;

  /** Rows an append-only effect holds. */
  private appended = 0;

  constructor(
    public relation: RelationDef,
    readonly buffers: RetainedBuffers,
    expected = 0,
    /**
     * The whole replay only inserts into this table (the segments' headers say so): each insert is
     * a row of its own, in the order given, kept as it is — its tuple is neither read nor looked up
     * by key (an insert cannot meet a row the batch has, as the source refused a key twice).
     */
    readonly appendOnly = false,
  ) {
    // With REPLICA IDENTITY FULL every column is flagged as key: such tables are multisets.
    this.keyColumns = relation.replicaIdentity === 'f' ? [] : relation.columns.flatMap((c, i) => (c.key ? [i] : []));
    this.keys = new KeyTable(buffers);
    this.reserve(expected);
  }

  /** Makes room for `n` rows in all (a segment header says how many changes are coming). */
  reserve(n: number): void {
    if (this.appendOnly) {
      if (n > this.state.length) this.grow(n);
      return;
    }
    this.keys.reserve(n);
    if (this.keys.capacity > this.state.length) this.grow(this.keys.capacity);
  }

  get keyed(): boolean {
    return this.keyColumns.length > 0;
  }

  /** Entries are rows with a state (keyed, or append-only); else counted copies of a whole row. */
  get rowEntries(): boolean {
    return this.appendOnly || this.keyColumns.length > 0;
  }

  get size(): number {
    return this.appendOnly ? this.appended : this.keys.size;
  }

  /** Memory the effect takes beyond the retained buffers. */
  get bytes(): number {
    return this.keys.bytes + this.state.length * 17;
  }

  insert(buf: Buffer, start: number, end: number): void {
    this.changes++;
    const id = this.buffers.id(buf);
    if (this.appendOnly) {
      const e = this.appended++;
      if (e >= this.state.length) this.grow(Math.max(1024, 2 * this.state.length));
      this.state[e] = HAS_ROW;
      this.setRow(e, id, start, end);
      return;
    }
    const row = this.view.read(buf, start, end);
    if (!this.keyed) {
      this.count(row, undefined, 1);
      return;
    }
    const e = this.entry(row);
    this.state[e] = (this.fresh ? 0 : this.state[e]! & EXISTED) | HAS_ROW;
    this.setRow(e, id, start, end);
  }

  /**
   * Returns false, having folded nothing, for the one change it cannot fold: a key changed while
   * a column was left unchanged (TOAST) whose value the batch does not know. The caller applies
   * what is pending, then that update in place.
   */
  update(buf: Buffer, keyStart: number, keyEnd: number, oldStart: number, oldEnd: number, newStart: number, newEnd: number): boolean {
    this.notAppendOnly('an update');
    const id = this.buffers.id(buf);
    const row = this.view.read(buf, newStart, newEnd);
    if (!this.keyed) {
      if (oldStart < 0)
        throw new Error(
          `an update of ${this.relation.schema}.${this.relation.name}, which has no replica identity key, carries no old row`,
        );
      this.changes++;
      const old = this.other.read(buf, oldStart, oldEnd);
      this.count(old, undefined, -1);
      this.count(row, old, 1);
      return true;
    }
    if (keyStart >= 0) {
      // pgoutput sends the old key when it changed: a move from one key to another.
      this.locateKey(this.other.read(buf, keyStart, keyEnd), false);
      const oldKey = Buffer.from(this.keyBytes.subarray(this.keyS, this.keyE));
      this.locateKey(row, false);
      if (!oldKey.equals(this.keyBytes.subarray(this.keyS, this.keyE))) return this.moveKey(id, row, newStart, newEnd);
    }
    this.changes++;
    const e = this.entry(row);
    const fresh = this.fresh;
    this.state[e] = fresh ? EXISTED | HAS_ROW : this.state[e]! | HAS_ROW;
    if (!row.hasUnchanged()) this.setRow(e, id, newStart, newEnd);
    else if (!fresh && this.rowBuf[e]! >= 0) this.carry(e, row, this.rowOf(e, this.other));
    else if (oldStart >= 0) this.carry(e, row, this.other.read(buf, oldStart, oldEnd));
    else this.setRow(e, id, newStart, newEnd);
    return true;
  }

  delete(buf: Buffer, keyStart: number, keyEnd: number, oldStart: number, oldEnd: number): void {
    this.notAppendOnly('a delete');
    this.changes++;
    const [s, t] = keyStart >= 0 ? [keyStart, keyEnd] : [oldStart, oldEnd];
    if (s === undefined || s < 0) throw new Error(`a delete from ${this.relation.schema}.${this.relation.name} carries no identity`);
    const identity = this.view.read(buf, s, t!);
    if (!this.keyed) {
      this.count(identity, undefined, -1);
      return;
    }
    const e = this.entry(identity);
    this.remove(e, this.fresh);
  }

  /** The segments' headers said the table only had rows inserted: anything else means they lied. */
  private notAppendOnly(what: string): void {
    if (this.appendOnly)
      throw new CorruptSegmentError(
        `${what} of ${this.relation.schema}.${this.relation.name}, which the segments' headers count only inserts into`,
      );
  }

  /** Entries with something left to apply (not DONE by the base's load). */
  pending(): number {
    let n = 0;
    for (let e = 0; e < this.size; e++) {
      if (this.rowEntries ? this.state[e] !== 0 && !(this.state[e]! & DONE) : this.delta[e] !== 0) n++;
    }
    return n;
  }

  /** The tuple of an entry's row (`rowEntries`, HAS_ROW), read into `view`. */
  rowOf(e: number, view: TupleView): TupleView {
    return view.read(this.buffers.list[this.rowBuf[e]!]!, this.rowStart[e]!, this.rowEnd[e]!);
  }

  /** A key change: a delete of the old key (in `other`) and an insert of the new one. */
  private moveKey(id: number, row: TupleView, newStart: number, newEnd: number): boolean {
    this.locateKey(this.other, false);
    const oldEntry = this.keys.find(this.keyBytes, this.keyS, this.keyE);
    const known = oldEntry >= 0 && (this.state[oldEntry]! & HAS_ROW) !== 0;
    const previous = known && row.hasUnchanged() ? this.rowOf(oldEntry, new TupleView()) : undefined;
    // The moved row must be whole: a value left unchanged that the batch does not know either
    // (no image of the old key, or one that left it unchanged too) is not in the batch at all.
    if (row.hasUnchanged() && (!previous || stillUnchanged(row, previous))) return false;
    this.changes++;
    const from = this.entry(this.other);
    this.remove(from, this.fresh);
    const to = this.entry(row);
    this.state[to] = (this.fresh ? 0 : this.state[to]! & EXISTED) | HAS_ROW;
    if (previous) this.carry(to, row, previous);
    else this.setRow(to, id, newStart, newEnd);
    return true;
  }

  private remove(e: number, fresh: boolean): void {
    this.state[e] = fresh || this.state[e]! & EXISTED ? EXISTED : 0;
    this.rowBuf[e] = -1;
  }

  /** Whether the last keyEntry() call added its entry. */
  private fresh = false;

  /** The entry of a row's key, added when missing. */
  private entry(row: TupleView): number {
    this.locateKey(row);
    return this.keyEntry();
  }

  /**
   * The entry of the key locateKey() or place() found, added (with no row, no copies) when
   * missing; bytes made for a key already known are given back.
   */
  private keyEntry(): number {
    const before = this.keys.size;
    const e = this.keys.findOrAdd(this.keyId, this.keyBytes, this.keyS, this.keyE);
    this.fresh = this.keys.size > before;
    if (this.fresh) {
      if (e >= this.state.length) this.grow(this.keys.capacity);
      this.state[e] = 0;
      this.rowBuf[e] = -1;
      this.delta[e] = 0;
    } else if (this.keyMade) this.buffers.shrinkLast(this.keyE - this.keyS);
    return e;
  }

  /**
   * Finds a row's key as COPY text: in place when it is one column that needs no escaping (the
   * common case), else written into the retained buffers (kept only when `keep`).
   */
  private locateKey(row: TupleView, keep = true): void {
    const columns = this.keyColumns;
    if (columns.length === 1 && row.kind(columns[0]!) === TUPLE_TEXT) {
      const v = row.valueIndex(columns[0]!);
      const s = row.valueStart[v]!;
      const e = row.valueEnd[v]!;
      if (!needsEscape(row.buf, s, e)) {
        this.keyId = keep ? this.buffers.id(row.buf) : -1;
        this.keyBytes = row.buf;
        this.keyS = s;
        this.keyE = e;
        this.keyMade = false;
        return;
      }
    }
    const text = this.text;
    text.pos = 0;
    columns.forEach((c, i) => {
      if (i > 0) text.tab();
      const kind = row.kind(c);
      if (kind === TUPLE_TEXT) {
        const v = row.valueIndex(c);
        text.escaped(row.buf, row.valueStart[v]!, row.valueEnd[v]!);
      } else if (kind === TUPLE_NULL) text.null();
      else if (kind === TUPLE_UNCHANGED) {
        // Only a key value stored out of line (over about 2 kB) can come as unchanged TOAST.
        throw new Error(
          `${this.relation.schema}.${this.relation.name}: an update left key column ${this.relation.columns[c]!.name} as an unchanged TOAST value, which replay cannot match (keys this large are not supported)`,
        );
      } else
        throw new Error(`${this.relation.schema}.${this.relation.name}: key column ${this.relation.columns[c]!.name} is not sent as text`);
    });
    this.place(text, keep);
  }

  /** Copies what `text` holds into the retained buffers (or leaves it there, when not kept) as the key. */
  private place(text: CopyText, keep: boolean): void {
    if (!keep) {
      this.keyId = -1;
      this.keyBytes = text.buf;
      this.keyS = 0;
      this.keyE = text.pos;
      this.keyMade = false;
      return;
    }
    const at = this.buffers.alloc(text.pos);
    text.buf.copy(at.buf, at.offset, 0, text.pos);
    this.keyId = at.id;
    this.keyBytes = at.buf;
    this.keyS = at.offset;
    this.keyE = at.offset + text.pos;
    this.keyMade = true;
  }

  /** Multisets: the row's line is its key; `previous` gives unchanged values. */
  private count(row: TupleView, previous: TupleView | undefined, delta: number): void {
    const text = this.text;
    text.pos = 0;
    if (previous && row.hasUnchanged()) {
      const prior = new CopyText(256);
      prior.tuple(previous);
      text.tuple(row, this.fields.split(prior.buf, 0, prior.pos));
    } else text.tuple(row);
    this.place(text, true);
    const e = this.keyEntry();
    this.delta[e] = this.delta[e]! + delta;
  }

  private setRow(e: number, id: number, start: number, end: number): void {
    this.rowBuf[e] = id;
    this.rowStart[e] = start;
    this.rowEnd[e] = end;
  }

  /** The row is `row` with its unchanged values taken from `previous` (which may itself leave some unchanged). */
  private carry(e: number, row: TupleView, previous: TupleView): void {
    const kinds: number[] = [];
    const values: [Buffer, number, number][] = [];
    let v = 0;
    let p = 0;
    for (let i = 0; i < row.columns; i++) {
      let kind = row.kind(i);
      const prevKind = i < previous.columns ? previous.kind(i) : TUPLE_NULL;
      const prevHasValue = prevKind !== TUPLE_NULL && prevKind !== TUPLE_UNCHANGED;
      if (kind === TUPLE_UNCHANGED) {
        kind = prevKind;
        if (prevHasValue) values.push([previous.buf, previous.valueStart[p]!, previous.valueEnd[p]!]);
      } else if (kind !== TUPLE_NULL) values.push([row.buf, row.valueStart[v]!, row.valueEnd[v]!]);
      if (row.kind(i) !== TUPLE_NULL && row.kind(i) !== TUPLE_UNCHANGED) v++;
      if (prevHasValue) p++;
      kinds.push(kind);
    }
    // A Tuple message: kinds (field 1), then each value (field 2).
    let size = 1 + varintSize(kinds.length) + kinds.length;
    for (const [, s, t] of values) size += 1 + varintSize(t - s) + (t - s);
    const at = this.buffers.alloc(size);
    let o = at.offset;
    const out = at.buf;
    out[o++] = 0x0a;
    o = writeVarint(out, o, kinds.length);
    for (const k of kinds) out[o++] = k;
    for (const [b, s, t] of values) {
      out[o++] = 0x12;
      o = writeVarint(out, o, t - s);
      o += b.copy(out, o, s, t);
    }
    this.setRow(e, at.id, at.offset, o);
  }

  private grow(n: number): void {
    this.state = grown(this.state, n);
    this.rowBuf = grown(this.rowBuf, n);
    this.rowStart = grown(this.rowStart, n);
    this.rowEnd = grown(this.rowEnd, n);
    this.delta = grown(this.delta, n);
  }
}

/** Whether a column left unchanged in `row` was left unchanged in `previous` too (its value unknown). */
function stillUnchanged(row: TupleView, previous: TupleView): boolean {
  for (let i = 0; i < row.columns && i < previous.columns; i++) {
    if (row.kind(i) === TUPLE_UNCHANGED && previous.kind(i) === TUPLE_UNCHANGED) return true;
  }
  return false;
}
