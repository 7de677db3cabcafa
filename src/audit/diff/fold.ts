import type { Op } from './ops.js';
import { hasUnchanged, withCarry, type Row } from './rows.js';

interface KeyState {
  existedBefore: boolean;
  row: Row | null;
  /** A key-changing update whose unchanged TOAST values come from the old key's row at --from. */
  carryFrom?: string;
}

/** The net effect of the range on one table, or on the part of it whose keys hash alike. */
export class RangeFold {
  truncated = false;
  readonly keys = new Map<string, KeyState>();
  readonly counts = new Map<string, { row: Row; delta: number }>();

  apply(op: Op): void {
    switch (op.kind) {
      case 'insert': {
        const s = this.keys.get(op.key);
        if (s) s.row = op.row;
        else this.keys.set(op.key, { existedBefore: false, row: op.row });
        return;
      }
      case 'update': {
        const s = this.keys.get(op.key);
        if (s) s.row = withCarry(op.row, s.row);
        else this.keys.set(op.key, { existedBefore: true, row: op.row });
        return;
      }
      case 'delete':
        return void this.gone(op.key);
      case 'move': {
        // The old key's row is gone, the new key holds the row.
        const previous = this.gone(op.oldKey);
        const s = this.keys.get(op.key) ?? { existedBefore: false, row: null };
        s.row = withCarry(op.row, previous);
        if (!previous && hasUnchanged(op.row)) s.carryFrom = op.oldKey;
        this.keys.set(op.key, s);
        return;
      }
      case 'add':
      case 'remove': {
        const delta = op.kind === 'add' ? 1 : -1;
        const c = this.counts.get(op.key);
        if (c) c.delta += delta;
        else this.counts.set(op.key, { row: op.row, delta });
        return;
      }
      case 'truncate':
        this.truncated = true;
        this.keys.clear();
        this.counts.clear();
        return;
    }
  }

  /** The key's row is deleted; returns the row the range had given it, if any. */
  private gone(key: string): Row | null {
    const s = this.keys.get(key);
    const previous = s?.row ?? null;
    // After a truncate every key is compared with --from, so the entry stays.
    if (s && !s.existedBefore && !this.truncated) this.keys.delete(key);
    else if (s) s.row = null;
    else this.keys.set(key, { existedBefore: true, row: null });
    return previous;
  }

  /** The keys whose rows at --from the comparison needs ('all' after a truncate); empty: none. */
  needed(): Set<string> | 'all' {
    if (this.truncated) return 'all';
    const keys = new Set<string>();
    for (const [k, s] of this.keys) {
      if (s.existedBefore) keys.add(k);
      if (s.carryFrom) keys.add(s.carryFrom);
    }
    return keys;
  }
}

/** The rows at --from of one table (or part of it): only the keys a RangeFold needs. */
export class StateAt {
  readonly rows = new Map<string, Row>();
  readonly counts = new Map<string, { row: Row; count: number }>();

  constructor(private readonly needed: Set<string> | 'all') {}

  private add(key: string, row: Row): void {
    if (this.needed === 'all' || this.needed.has(key)) this.rows.set(key, row);
  }

  private count(op: Extract<Op, { kind: 'add' | 'remove' }>): void {
    const c = this.counts.get(op.key);
    if (op.kind === 'add') {
      if (c) c.count++;
      else this.counts.set(op.key, { row: op.row, count: 1 });
    } else if (c && --c.count === 0) this.counts.delete(op.key);
  }

  apply(op: Op): void {
    switch (op.kind) {
      case 'insert':
        return this.add(op.key, op.row);
      case 'update':
        return this.add(op.key, withCarry(op.row, this.rows.get(op.key)));
      case 'delete':
        return void this.rows.delete(op.key);
      case 'move': {
        const previous = this.rows.get(op.oldKey);
        this.rows.delete(op.oldKey);
        return this.add(op.key, withCarry(op.row, previous));
      }
      case 'add':
      case 'remove':
        // Whole-row tables need their rows at --from only after a truncate.
        if (this.needed === 'all') this.count(op);
        return;
      case 'truncate':
        this.rows.clear();
        this.counts.clear();
        return;
    }
  }
}

/** A row as it was at --from and as it is at --to (absent or null: no such row). */
export interface RowPair {
  before: Row | undefined;
  after: Row | null | undefined;
}

/** The rows of a keyed table the range touched, at --from and at --to (`fold` over `before`). */
export function* keyedPairs(fold: RangeFold, before: StateAt | undefined): Generator<RowPair> {
  const atFrom = before?.rows ?? new Map<string, Row>();
  for (const [k, s] of fold.keys) {
    const was = fold.truncated || s.existedBefore ? atFrom.get(k) : undefined;
    const source = s.carryFrom ? atFrom.get(s.carryFrom) : was;
    yield { before: was, after: s.row && withCarry(s.row, source) };
  }
  // Truncated: every row of --from that the range did not bring back is gone.
  if (fold.truncated) for (const [k, row] of atFrom) if (!fold.keys.has(k)) yield { before: row, after: null };
}

/** A whole-row table's rows that differ and by how many copies (negative: fewer at --to). */
export function* countedDeltas(fold: RangeFold, before: StateAt | undefined): Generator<{ row: Row; copies: number }> {
  const delta = new Map<string, { row: Row; copies: number }>();
  for (const [image, c] of fold.counts) delta.set(image, { row: c.row, copies: c.delta });
  if (fold.truncated) {
    for (const [image, c] of before?.counts ?? []) {
      const d = delta.get(image);
      if (d) d.copies -= c.count;
      else delta.set(image, { row: c.row, copies: -c.count });
    }
  }
  for (const d of delta.values()) if (d.copies !== 0) yield d;
}
