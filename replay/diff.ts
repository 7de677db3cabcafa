import { readBase, type BaseRef, type BaseSchema } from '../src/base/format.js';
import { UserError } from '../src/core/errors.js';
import type { RowValues } from '../src/audit/row-text.js';
import type { Logger } from '../src/core/log.js';
import { formatLsn } from '../src/core/lsn.js';
import type { RelationDef } from '../src/segment/format.js';
import { readLog, type LogEntry } from '../src/store/change-log.js';
import type { Store } from '../src/store/store.js';
import { copyFieldValue, readBaseRows } from './base-rows.js';
import { headerOf, indexArchive, inRange, resolveRange, type ArchiveIndex, type IndexedSegment } from './resolve.js';
import { describeTarget, type Target } from './target.js';
import type { Tuple } from '../src/pgoutput/messages.js';
import { decodeTuple, UNCHANGED } from './values.js';

/**
 * A value as diff keeps it: text (decoded once; a Buffer view would keep the whole decompressed
 * chunk it points into alive), NULL, or an unchanged TOAST value.
 */
type Value = string | null | typeof UNCHANGED;

const toValues = (t: Tuple): Value[] => decodeTuple(t, (b) => b.toString('utf8'), (b) => `\\x${b.toString('hex')}`);

function carry(next: Value[], previous: Value[]): Value[] {
  return next.map((v, i) => (v === UNCHANGED ? (previous[i] ?? UNCHANGED) : v));
}

// Text never holds NUL: it separates the parts of a key, and marks NULL and unchanged apart from any text.
const part = (v: Value) => (v === null ? '\u0000n' : v === UNCHANGED ? '\u0000u' : v);
const rowImage = (values: Value[]) => values.map(part).join('\u0000|');

export type { RowValues } from '../src/audit/row-text.js';

export interface RowDiff {
  change: 'added' | 'deleted' | 'modified';
  /** The replica identity's key; absent for tables matched on the whole row. */
  key?: RowValues;
  before?: RowValues;
  after?: RowValues;
  /** Modified rows: the columns whose value changed. */
  cells?: string[];
  /** Tables matched on the whole row: how many equal rows were added or deleted. */
  copies?: number;
}

export interface ColumnShape {
  name: string;
  /** SQL type, with modifiers. */
  type: string;
  typeOid: number;
  typmod: number;
}

export interface TableShape {
  schema: string;
  name: string;
  columns: ColumnShape[];
  key: string[];
  replicaIdentity: string;
}

export interface TableDiff {
  oid: number;
  /** The table as it is at --to; `before` as it was at --from (null: it did not exist then). */
  after: TableShape;
  before: TableShape | null;
  truncated: boolean;
  /**
   * The rows that differ, made as they are read (a million RowDiff objects at once would be most
   * of diff's memory); each call iterates them anew.
   */
  rows: () => Iterable<RowDiff>;
}

export interface DiffResult {
  from: string;
  to: string;
  /** Transactions committed in (fromLsn, toLsn]. */
  fromLsn: string | null;
  toLsn: string | null;
  /** Where the rows as they were at --from came from: the change log alone, or a base too. */
  sources: string[];
  tables: TableDiff[];
}

interface Row {
  values: Value[];
  columns: string[];
}

interface KeyState {
  existedBefore: boolean;
  row: Row | null;
  /** A key-changing update whose unchanged TOAST values come from the old key's row at --from. */
  carryFrom?: string;
}

/** The net effect of a range on one table. */
interface TableFold {
  def: RelationDef;
  keyed: boolean;
  truncated: boolean;
  keys: Map<string, KeyState>;
  counts: Map<string, { row: Row; delta: number }>;
}

// Column lists are made once per relation definition and compared by identity: a million rows
// must not mean a million small arrays and maps.
const namesCache = new WeakMap<RelationDef, { columns: string[]; keys: string[] }>();
function names(def: RelationDef): { columns: string[]; keys: string[] } {
  let n = namesCache.get(def);
  if (!n) {
    n = { columns: def.columns.map((c) => c.name), keys: def.replicaIdentity === 'f' ? [] : def.columns.filter((c) => c.key).map((c) => c.name) };
    namesCache.set(def, n);
  }
  return n;
}
const columnNames = (def: RelationDef) => names(def).columns;
const keyNames = (def: RelationDef) => names(def).keys;

const mappings = new WeakMap<string[], Map<string[], number[]>>();
/** Where each of `to`'s columns is in `from` (-1: not there). */
function mapping(from: string[], to: string[]): number[] {
  let byTarget = mappings.get(from);
  if (!byTarget) mappings.set(from, (byTarget = new Map()));
  let m = byTarget.get(to);
  if (!m) byTarget.set(to, (m = to.map((c) => from.indexOf(c))));
  return m;
}

/** A row's values in another column order (by name; missing columns are NULL). */
function align(row: Row, columns: string[]): Value[] {
  if (row.columns === columns) return row.values;
  return mapping(row.columns, columns).map((i) => (i < 0 ? null : row.values[i]!));
}

const sortedCache = new WeakMap<string[], string[]>();
/** The row's values by column name order: equal rows of differently ordered shapes compare equal. */
function image(row: Row): string {
  let sorted = sortedCache.get(row.columns);
  if (!sorted) sortedCache.set(row.columns, (sorted = [...row.columns].sort()));
  return rowImage(align(row, sorted));
}

function keyText(row: Row, keys: string[]): string {
  const values = align(row, keys);
  return values.length === 1 ? part(values[0]!) : values.map(part).join('\u0000|');
}

const withCarry = (next: Row, previous: Row | null | undefined): Row =>
  previous && next.values.includes(UNCHANGED) ? { values: carry(next.values, align(previous, next.columns)), columns: next.columns } : next;

/** Rows of the needed tables and keys as they were at a point: the base's, then the log's changes. */
class StateAt {
  readonly keyed = new Map<number, Map<string, Row>>();
  readonly counts = new Map<number, Map<string, { row: Row; count: number }>>();

  constructor(
    private readonly needed: Map<number, Set<string> | 'all'>,
    private readonly keyOf: (oid: number) => string[],
  ) {}

  private wants(oid: number, key: string): boolean {
    const n = this.needed.get(oid);
    return n === 'all' || (n !== undefined && n.has(key));
  }

  add(oid: number, row: Row): void {
    const keys = this.keyOf(oid);
    if (keys.length) {
      const k = keyText(row, keys);
      if (this.wants(oid, k)) (this.keyed.get(oid) ?? this.keyed.set(oid, new Map()).get(oid)!).set(k, row);
      return;
    }
    if (this.needed.get(oid) !== 'all') return;
    const m = this.counts.get(oid) ?? this.counts.set(oid, new Map()).get(oid)!;
    const im = image(row);
    const c = m.get(im);
    if (c) c.count++;
    else m.set(im, { row, count: 1 });
  }

  remove(oid: number, row: Row): void {
    const keys = this.keyOf(oid);
    if (keys.length) return void this.keyed.get(oid)?.delete(keyText(row, keys));
    const m = this.counts.get(oid);
    const im = image(row);
    const c = m?.get(im);
    if (c && --c.count === 0) m!.delete(im);
  }

  /**
   * Whether a base row is wanted, from its COPY line's key fields alone: the other rows of a
   * large base are not parsed.
   */
  lineFilter(oid: number, columns: string[]): ((line: string) => boolean) | undefined {
    const needed = this.needed.get(oid);
    const keys = this.keyOf(oid);
    if (!(needed instanceof Set) || !keys.length) return undefined;
    const positions = keys.map((k) => columns.indexOf(k));
    if (positions.some((p) => p < 0)) return undefined;
    return (line) => {
      const values = positions.map((p) => copyFieldValue(field(line, p)));
      return needed.has(values.length === 1 ? part(values[0]!) : values.map(part).join('\u0000|'));
    };
  }

  get(oid: number, row: Row): Row | undefined {
    return this.keyed.get(oid)?.get(keyText(row, this.keyOf(oid)));
  }

  apply(e: LogEntry): void {
    switch (e.kind) {
      case 'insert':
        if (this.needed.has(e.relation.oid)) this.add(e.relation.oid, { values: toValues(e.new), columns: columnNames(e.relation) });
        break;
      case 'update': {
        const oid = e.relation.oid;
        if (!this.needed.has(oid)) break;
        const columns = columnNames(e.relation);
        const next: Row = { values: toValues(e.new), columns };
        const identity: Row = e.old || e.key ? { values: toValues((e.old ?? e.key)!), columns } : next;
        const previous = this.keyOf(oid).length ? this.get(oid, identity) : e.old ? identity : undefined;
        this.remove(oid, previous ?? identity);
        this.add(oid, withCarry(next, previous));
        break;
      }
      case 'delete':
        if (this.needed.has(e.relation.oid)) this.remove(e.relation.oid, { values: toValues((e.old ?? e.key)!), columns: columnNames(e.relation) });
        break;
      case 'truncate':
        for (const r of e.relations) {
          this.keyed.delete(r.oid);
          this.counts.delete(r.oid);
        }
        break;
      default:
        break;
    }
  }
}

/**
 * The net difference between two points, row by row (issue 5). The range's changes are folded
 * per key; the rows as they were at --from are needed only for keys the range updated or deleted
 * (and whole tables it truncated): they come from the log since the base and, for rows untouched
 * since, straight from the base's COPY files. No database is involved.
 */
export async function diffPoints(options: { store: Store; from: Target; to: Target; tables?: Set<string>; log: Logger }): Promise<DiffResult> {
  const { store, log } = options;
  const index = await indexArchive(store, { requireBase: false });
  const range = await resolveRange(index, options.from, options.to);
  const wanted = (def: RelationDef) => !options.tables || options.tables.has(`${def.schema}.${def.name}`);

  // 1. Fold the range.
  const folds = new Map<number, TableFold>();
  for await (const e of entriesIn(store, range.segments, (lsn) => inRange(range, lsn))) foldEntry(folds, e);
  for (const [oid, f] of folds) if (!wanted(f.def)) folds.delete(oid);

  // 2. What must be known of the state at --from.
  const needed = new Map<number, Set<string> | 'all'>();
  for (const [oid, f] of folds) {
    if (f.truncated) needed.set(oid, 'all');
    else if (f.keyed) {
      const keys = new Set<string>();
      for (const [k, s] of f.keys) {
        if (s.existedBefore) keys.add(k);
        if (s.carryFrom) keys.add(s.carryFrom);
      }
      if (keys.size) needed.set(oid, keys);
    }
  }
  const base = range.after === undefined ? undefined : index.bases.filter((b) => b.lsn <= range.after! + 1n).at(-1);
  const baseSchema = base ? (await readBase(store, base)).schema : undefined;
  const sources = ['change log'];
  const before = new StateAt(needed, (oid) => keyNames(folds.get(oid)!.def));
  if (needed.size) {
    if (!base || !baseSchema) {
      throw new UserError(
        `the rows as they were at --from ${describeTarget(options.from)} are needed (the range updates or deletes them) but no base is at or before it`,
        'choose a --from at or after the first base (pgtape log shows the range)',
      );
    }
    sources.push(`base ${formatLsn(base.lsn)}`);
    await loadState(store, index, base, baseSchema, range.after!, before, needed);
    log.info({ base: formatLsn(base.lsn), tables: needed.size }, 'diff read the rows at --from from the base and the log since');
  } else log.info('diff from the change log alone');

  // 3. Compare.
  const tables: TableDiff[] = [];
  for (const [oid, f] of folds) {
    const after = shapeOf(f.def);
    const beforeShape = await shapeAt(store, index, base, baseSchema, range.after, oid);
    const rows = () => (f.keyed ? compareKeyed(f, before, oid) : compareCounts(f, before, oid));
    const any = !rows()[Symbol.iterator]().next().done;
    if (any || f.truncated || !sameShape(beforeShape, after)) tables.push({ oid, after, before: beforeShape, truncated: f.truncated, rows });
  }
  return {
    from: describeTarget(options.from),
    to: describeTarget(options.to),
    fromLsn: range.after === undefined ? null : formatLsn(range.after),
    toLsn: range.upTo === undefined ? null : formatLsn(range.upTo),
    sources,
    tables,
  };
}

/** Change entries of the given segments whose transaction's commit LSN passes `include`. */
async function* entriesIn(store: Store, segments: IndexedSegment[], include: (commitLsn: bigint) => boolean): AsyncGenerator<LogEntry> {
  let on = false;
  for await (const e of readLog(store, segments)) {
    if (e.kind === 'begin') on = include(e.commitLsn);
    else if (on) yield e;
  }
}

function foldEntry(folds: Map<number, TableFold>, e: LogEntry): void {
  const fold = (def: RelationDef): TableFold => {
    let f = folds.get(def.oid);
    if (!f) folds.set(def.oid, (f = { def, keyed: keyNames(def).length > 0, truncated: false, keys: new Map(), counts: new Map() }));
    f.def = def;
    return f;
  };
  const count = (f: TableFold, row: Row, delta: number) => {
    const im = image(row);
    const c = f.counts.get(im);
    if (c) c.delta += delta;
    else f.counts.set(im, { row, delta });
  };
  switch (e.kind) {
    case 'insert': {
      const f = fold(e.relation);
      const row: Row = { values: toValues(e.new), columns: columnNames(e.relation) };
      if (!f.keyed) return count(f, row, 1);
      const k = keyText(row, keyNames(f.def));
      const s = f.keys.get(k);
      if (s) s.row = row;
      else f.keys.set(k, { existedBefore: false, row });
      return;
    }
    case 'update': {
      const f = fold(e.relation);
      const columns = columnNames(e.relation);
      const next: Row = { values: toValues(e.new), columns };
      if (!f.keyed) {
        if (!e.old) throw new Error(`an update of ${e.relation.schema}.${e.relation.name}, which has no replica identity key, carries no old row`);
        const old: Row = { values: toValues(e.old), columns };
        count(f, old, -1);
        count(f, withCarry(next, old), 1);
        return;
      }
      const keys = keyNames(f.def);
      const k = keyText(next, keys);
      const oldKey = e.key ? keyText({ values: toValues(e.key), columns }, keys) : k;
      if (oldKey === k) {
        const s = f.keys.get(k);
        if (s) s.row = withCarry(next, s.row);
        else f.keys.set(k, { existedBefore: true, row: next });
        return;
      }
      // The key changed: the old key's row is gone, the new key holds the row.
      const was = f.keys.get(oldKey);
      const previous = was?.row ?? null;
      if (was && !was.existedBefore) f.keys.delete(oldKey);
      else if (was) was.row = null;
      else f.keys.set(oldKey, { existedBefore: true, row: null });
      const s = f.keys.get(k) ?? { existedBefore: false, row: null };
      s.row = withCarry(next, previous);
      if (!previous && next.values.includes(UNCHANGED)) s.carryFrom = oldKey;
      f.keys.set(k, s);
      return;
    }
    case 'delete': {
      const f = fold(e.relation);
      const row: Row = { values: toValues((e.old ?? e.key)!), columns: columnNames(e.relation) };
      if (!f.keyed) return count(f, row, -1);
      const k = keyText(row, keyNames(f.def));
      const s = f.keys.get(k);
      if (s && !s.existedBefore && !f.truncated) f.keys.delete(k);
      else if (s) s.row = null;
      else f.keys.set(k, { existedBefore: true, row: null });
      return;
    }
    case 'truncate':
      for (const r of e.relations) {
        const f = fold(r);
        f.truncated = true;
        f.keys.clear();
        f.counts.clear();
      }
      return;
    default:
      return;
  }
}

/** Field `n` (from 0) of a COPY text line, as it is written. */
function field(line: string, n: number): string {
  let start = 0;
  for (let i = 0; i < n; i++) start = line.indexOf('\t', start) + 1;
  const end = line.indexOf('\t', start);
  return end < 0 ? line.slice(start) : line.slice(start, end);
}

/** The rows at --from of the needed tables: the base's, then the changes between the base and --from. */
async function loadState(store: Store, index: ArchiveIndex, base: BaseRef, schema: BaseSchema, at: bigint, state: StateAt, needed: Map<number, unknown>): Promise<void> {
  for (const t of schema.tables) {
    if (!needed.has(t.oid)) continue;
    const columns = t.columns.map((c) => c.name);
    for await (const values of readBaseRows(store, base, t, state.lineFilter(t.oid, columns))) state.add(t.oid, { values, columns });
  }
  // Only segments that touched a needed table are read.
  const segments = index.segments.filter((s) => s.endLsn > base.lsn && headerOf(s).firstCommitLsn <= at && headerOf(s).tables.some((t) => needed.has(t.oid)));
  for await (const e of entriesIn(store, segments, (lsn) => lsn >= base.lsn && lsn <= at)) state.apply(e);
}

function toText(values: Value[], columns: string[]): RowValues {
  const out: RowValues = {};
  columns.forEach((c, i) => {
    const v = values[i];
    out[c] = v === null || v === undefined || v === UNCHANGED ? null : v;
  });
  return out;
}

function compareRows(before: Row | undefined, after: Row | null | undefined, columns: string[], keys: string[]): RowDiff | undefined {
  const key = (r: Row) => (keys.length ? { key: toText(align(r, keys), keys) } : {});
  if (!before && !after) return undefined;
  if (!before) return { change: 'added', ...key(after!), after: toText(align(after!, columns), columns) };
  if (!after) return { change: 'deleted', ...key(before), before: toText(before.values, before.columns) };
  const b = align(before, columns);
  const a = align(after, columns);
  const cells = columns.filter((_, i) => !same(b[i]!, a[i]!));
  if (!cells.length) return undefined;
  return { change: 'modified', ...key(after), before: toText(b, columns), after: toText(a, columns), cells };
}

const same = (x: Value, y: Value) => x === y;

function* compareKeyed(f: TableFold, before: StateAt, oid: number): Generator<RowDiff> {
  const columns = columnNames(f.def);
  const keys = keyNames(f.def);
  const atFrom = before.keyed.get(oid) ?? new Map<string, Row>();
  for (const [k, s] of f.keys) {
    const was = f.truncated || s.existedBefore ? atFrom.get(k) : undefined;
    const source = s.carryFrom ? atFrom.get(s.carryFrom) : was;
    const d = compareRows(was, s.row && withCarry(s.row, source), columns, keys);
    if (d) yield d;
  }
  // Truncated: every row of --from that the range did not bring back is gone.
  if (f.truncated) for (const [k, row] of atFrom) if (!f.keys.has(k)) yield compareRows(row, null, columns, keys)!;
}

function compareCounts(f: TableFold, before: StateAt, oid: number): RowDiff[] {
  const columns = columnNames(f.def);
  const delta = new Map<string, { row: Row; n: number }>();
  for (const [image, c] of f.counts) delta.set(image, { row: c.row, n: c.delta });
  if (f.truncated) {
    for (const [image, c] of before.counts.get(oid) ?? []) {
      const d = delta.get(image);
      if (d) d.n -= c.count;
      else delta.set(image, { row: c.row, n: -c.count });
    }
  }
  const out: RowDiff[] = [];
  for (const { row, n } of delta.values()) {
    if (n > 0) out.push({ change: 'added', after: toText(align(row, columns), columns), copies: n });
    if (n < 0) out.push({ change: 'deleted', before: toText(row.values, row.columns), copies: -n });
  }
  return out;
}

function shapeOf(def: RelationDef): TableShape {
  return {
    schema: def.schema,
    name: def.name,
    columns: def.columns.map((c) => ({ name: c.name, type: sqlType(c.typeName, c.typmod), typeOid: c.typeOid, typmod: c.typmod })),
    key: keyNames(def),
    replicaIdentity: def.replicaIdentity,
  };
}

function sameShape(a: TableShape | null, b: TableShape): boolean {
  return !!a && a.schema === b.schema && a.name === b.name && a.columns.length === b.columns.length && a.columns.every((c, i) => c.name === b.columns[i]!.name && c.typeOid === b.columns[i]!.typeOid && c.typmod === b.columns[i]!.typmod);
}

/**
 * The table as it was at --from: the last definition the log carried for it before that point
 * (segment headers say which segments touched it), else the base's, else null (created later).
 */
async function shapeAt(store: Store, index: ArchiveIndex, base: BaseRef | undefined, schema: BaseSchema | undefined, at: bigint | undefined, oid: number): Promise<TableShape | null> {
  if (at === undefined) return null;
  const candidates = index.segments.filter((s) => (!base || s.endLsn > base.lsn) && headerOf(s).firstCommitLsn <= at && headerOf(s).tables.some((t) => t.oid === oid));
  for (const s of candidates.reverse()) {
    let def: RelationDef | undefined;
    for await (const e of entriesIn(store, [s], (lsn) => lsn <= at)) {
      if ((e.kind === 'insert' || e.kind === 'update' || e.kind === 'delete') && e.relation.oid === oid) def = e.relation;
      if (e.kind === 'truncate') def = e.relations.find((r) => r.oid === oid) ?? def;
    }
    if (def) return shapeOf(def);
  }
  const t = schema?.tables.find((t) => t.oid === oid);
  if (!t) return null;
  return { schema: t.schema, name: t.name, columns: t.columns.map((c) => ({ name: c.name, type: c.type, typeOid: c.typeOid, typmod: c.typmod })), key: t.primaryKey, replicaIdentity: t.replicaIdentity };
}

/**
 * A column's SQL type with its modifiers, from what a Relation message gives (format_type()
 * without the typmod, which is added here for the types that have one).
 */
export function sqlType(typeName: string, typmod: number): string {
  if (typmod < 0) return typeName;
  const array = typeName.endsWith('[]');
  const element = array ? typeName.slice(0, -2) : typeName;
  let out = element;
  switch (element) {
    case 'character varying':
    case 'bpchar':
    case 'character':
      out = `${element === 'character varying' ? 'character varying' : 'character'}(${typmod - 4})`;
      break;
    case 'numeric': {
      const m = typmod - 4;
      out = `numeric(${(m >> 16) & 0xffff},${((m & 0x7ff) ^ 1024) - 1024})`;
      break;
    }
    case 'bit':
    case 'bit varying':
      out = `${element}(${typmod})`;
      break;
    case 'time without time zone':
    case 'time with time zone':
    case 'timestamp without time zone':
    case 'timestamp with time zone': {
      const [head, ...rest] = element.split(' ');
      out = `${head}(${typmod}) ${rest.join(' ')}`;
      break;
    }
  }
  return array ? `${out}[]` : out;
}
