import type { LogEntry } from '../../log/change-log.js';
import type { Tuple } from '../../pgoutput/messages.js';
import type { RelationDef } from '../../segment/format.js';
import type { TableImage, TableSnapshot } from '../../source/ddl-capture.js';
import type { TableDiffer } from './table.js';
import {
  columnNames,
  EncodedRow,
  hasUnchanged,
  image,
  keyNames,
  keyText,
  rowText,
  sharedColumns,
  LineRow,
  TupleRow,
  withCarry,
  type Row,
} from './rows.js';
import { tupleText, type TextValue } from '../row-text.js';
import type { RecordReader, SpillFile } from './spill-file.js';

/**
 * One row change as diff folds it, with the text it is matched on (the replica identity's key,
 * or for tables without one the whole row) worked out once: the same operations fold the range
 * and rebuild the rows at --from, whether they are folded as they are read or spilled to disk by
 * that text's hash first.
 */
export type Op =
  | { kind: 'insert' | 'update' | 'delete'; oid: number; row: Row; key: string }
  /** A key-changing update: `old` holds the old key's columns. */
  | { kind: 'move'; oid: number; row: Row; key: string; old: Row; oldKey: string }
  /** Tables matched on the whole row: one more, or one fewer, of this row. */
  | { kind: 'add' | 'remove'; oid: number; row: Row; key: string }
  | { kind: 'truncate'; oid: number };

/** How a table's changes are matched: on these key columns, or (none) on the whole row. */
export interface Matching {
  keyed: boolean;
  /** The key columns (the change's own relation's, unless given). */
  keys?: string[];
  /**
   * The operations are written to a spilled table's part file before the next change is read:
   * their rows may stay the tuple's bytes (TupleRow), only their keys decoded.
   */
  spilled?: boolean;
}

const row = (values: TextValue[], columns: string[]): Row => ({ values, columns });

/** A row change of the log: what opsOf turns into operations (a truncate is one by itself). */
export type RowChange = Extract<LogEntry, { kind: 'insert' | 'update' | 'delete' }>;

/** The operations of one row change; `m` says how its table's rows are matched. */
export function opsOf(e: RowChange, m: Matching): Op[] {
  const oid = e.relation.oid;
  const columns = columnNames(e.relation);
  const rowOf = (t: Tuple): Row => (m.spilled ? new TupleRow(columns, t) : row(tupleText(t), columns));
  switch (e.kind) {
    case 'insert': {
      const r = rowOf(e.new);
      return [
        m.keyed
          ? { kind: 'insert', oid, row: r, key: keyText(r, m.keys ?? keyNames(e.relation)) }
          : { kind: 'add', oid, row: r, key: image(r) },
      ];
    }
    case 'update': {
      const next = rowOf(e.new);
      if (!m.keyed) {
        if (!e.old)
          throw new Error(`an update of ${e.relation.schema}.${e.relation.name}, which has no replica identity key, carries no old row`);
        const old = rowOf(e.old);
        const carried = withCarry(next, old);
        return [
          { kind: 'remove', oid, row: old, key: image(old) },
          { kind: 'add', oid, row: carried, key: image(carried) },
        ];
      }
      const keys = m.keys ?? keyNames(e.relation);
      const key = keyText(next, keys);
      const identity = e.key ?? e.old;
      if (!identity) return [{ kind: 'update', oid, row: next, key }];
      const old = rowOf(identity);
      const oldKey = keyText(old, keys);
      return [oldKey === key ? { kind: 'update', oid, row: next, key } : { kind: 'move', oid, row: next, key, old, oldKey }];
    }
    case 'delete': {
      const r = rowOf((e.old ?? e.key)!);
      return [
        m.keyed
          ? { kind: 'delete', oid, row: r, key: keyText(r, m.keys ?? keyNames(e.relation)) }
          : { kind: 'remove', oid, row: r, key: image(r) },
      ];
    }
  }
}

/**
 * A key change split in two, a delete of the old key and an insert of the new one, so that each
 * goes with its own key; undefined when the new row takes values from the old one (unchanged
 * TOAST), which needs both keys together.
 */
export function splitMove(op: Extract<Op, { kind: 'move' }>): [Op, Op] | undefined {
  if (hasUnchanged(op.row)) return undefined;
  return [
    { kind: 'delete', oid: op.oid, row: op.old, key: op.oldKey },
    { kind: 'insert', oid: op.oid, row: op.row, key: op.key },
  ];
}

/** FNV-1a over the text's UTF-16 units: which part of a spilled table a key goes to. */
export function hashText(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const KINDS = ['insert', 'update', 'delete', 'move', 'add', 'remove', 'truncate'] as const;

/** Column lists by number, for operations written to disk and read back by the same process. */
export class ColumnLists {
  private readonly ids = new Map<string[], number>();
  private readonly lists: string[][] = [];

  /** Every list so far, by id: what another thread reading the same files needs (ColumnLists.of). */
  all(): string[][] {
    return [...this.lists];
  }

  /**
   * Lists by id as another thread's all() gave them, each made the one shared array of its names
   * here, as rows of those names are compared by identity (rows.ts). Two ids of one content
   * become one array: its rows decode the same under either.
   */
  static of(lists: string[][]): ColumnLists {
    const out = new ColumnLists();
    for (const l of lists) {
      const shared = sharedColumns(l);
      out.lists.push(shared);
      if (!out.ids.has(shared)) out.ids.set(shared, out.lists.length - 1);
    }
    return out;
  }

  id(columns: string[]): number {
    let id = this.ids.get(columns);
    if (id === undefined) {
      id = this.lists.push(columns) - 1;
      this.ids.set(columns, id);
    }
    return id;
  }

  get(id: number): string[] {
    return this.lists[id]!;
  }
}

// A row goes to disk as one text (one encoding and one decoding call per row, not per value),
// read back as an EncodedRow. (Keys hold NULs of their own: they are written apart.)
function writeRow(out: SpillFile, r: Row, lists: ColumnLists): void {
  out.u32(lists.id(r.columns));
  const raw = r instanceof TupleRow || r instanceof LineRow ? r : undefined;
  const bytes = raw?.encodedLength();
  if (bytes !== undefined) out.textFrom(bytes, raw!);
  else out.text(rowText(r));
}

function readRow(r: RecordReader, lists: ColumnLists): Row {
  const columns = lists.get(r.u32());
  return new EncodedRow(columns, r.text());
}

export function writeOp(out: SpillFile, op: Op, lists: ColumnLists): void {
  out.begin();
  out.u8(KINDS.indexOf(op.kind));
  out.u32(op.oid);
  if (op.kind !== 'truncate') {
    out.text(op.key);
    writeRow(out, op.row, lists);
  }
  if (op.kind === 'move') {
    out.text(op.oldKey);
    writeRow(out, op.old, lists);
  }
  out.end();
}

export function readOp(r: RecordReader, lists: ColumnLists): Op {
  const kind = KINDS[r.u8()]!;
  const oid = r.u32();
  if (kind === 'truncate') return { kind, oid };
  const key = r.text();
  const row = readRow(r, lists);
  if (kind !== 'move') return { kind, oid, row, key };
  const oldKey = r.text();
  return { kind, oid, row, key, old: readRow(r, lists), oldKey };
}

/** A row that differs, as diff keeps it on disk until it is printed: compared again when read. */
export interface DiffRecord {
  before: Row | undefined;
  after: Row | null | undefined;
  /** Whole-row tables: copies of `before` added (positive) or deleted (negative). */
  copies: number;
}

export function writeDiffRecord(out: SpillFile, d: DiffRecord, lists: ColumnLists): void {
  out.begin();
  out.i32(d.copies);
  out.u8((d.before ? 1 : 0) | (d.after ? 2 : 0));
  if (d.before) writeRow(out, d.before, lists);
  if (d.after) writeRow(out, d.after, lists);
  out.end();
}

export function readDiffRecord(r: RecordReader, lists: ColumnLists): DiffRecord {
  const copies = r.i32();
  const present = r.u8();
  const before = present & 1 ? readRow(r, lists) : undefined;
  const after = present & 2 ? readRow(r, lists) : null;
  return { before, after, copies };
}

/** A table first met in a rewrite's image: its definition from the command's captured shape (the key as its replica identity has it). */
export function imageDef(s: TableSnapshot | undefined): RelationDef | undefined {
  if (!s) return undefined;
  const keyed = s.replicaIdentity === 'd';
  return {
    oid: s.oid,
    schema: s.schema,
    name: s.name,
    replicaIdentity: s.replicaIdentity,
    columns: s.columns
      .filter((c) => !c.generated)
      .map((c) => ({ name: c.name, key: keyed && s.primaryKey.includes(c.name), typeOid: c.typeOid, typmod: c.typmod, typeName: c.type })),
  };
}

/** A rewritten table's rows as the command left them (each its columns' text, as pgoutput sends values): inserts after emptying it. */
export function imageOps(t: TableDiffer, img: TableImage): void {
  if (img.first) t.emptied();
  const columns = img.columns!;
  const keys = keyNames(t.def);
  for (const values of img.rows as (string | null)[][]) {
    const row = { values, columns };
    t.range(t.keyed ? { kind: 'insert', oid: img.oid, row, key: keyText(row, keys) } : { kind: 'add', oid: img.oid, row, key: image(row) });
  }
}
