// Over 400 lines: the folding's cases are tables of change sequences and their net effects, one
// row per case; the harness that feeds them through the real scanner and planner is shared.
import { describe, expect, it } from 'vitest';
import type { Tuple } from '../../src/pgoutput/messages.js';
import { EntryScanner, TupleView } from '../../src/segment/entry-scanner.js';
import {
  DELETE,
  encodeEntry,
  INSERT,
  RELATION,
  TRUNCATE,
  UPDATE,
  type RelationDef,
  type SegmentEntry,
  type TableCount,
} from '../../src/segment/format.js';
import { UNCHANGED } from '../../src/pgoutput/tuple.js';
import { CorruptSegmentError } from '../../src/segment/reader.js';
import { EXISTED, HAS_ROW, type TableEffect } from '../../replay/net-effect.js';
import { Planner, type EffectSink } from '../../replay/planner.js';
import type { ReplayValue } from '../../replay/values.js';
import { seededRandom, TEST_SEED } from '../support/random.js';

// Changes go through what replay reads (segment entries, EntryScanner, the planner); a fake sink
// applies the batches it is handed to tables in memory as the applier would, and a model applies
// each change directly. Both must end with the same rows.

const U = UNCHANGED;
type Cell = string | null | typeof U;
type Row = Cell[];
const col = (name: string, key: boolean) => ({ name, key, typeOid: 25, typmod: -1, typeName: 'text' });
const T: RelationDef = {
  oid: 100,
  schema: 'public',
  name: 't',
  replicaIdentity: 'd',
  columns: [col('id', true), col('a', false), col('b', false)],
};
const T2: RelationDef = { ...T, columns: [...T.columns, col('c', false)] };
/** REPLICA IDENTITY FULL: every column flagged as key; a multiset of whole rows. */
const F: RelationDef = { oid: 200, schema: 'public', name: 'f', replicaIdentity: 'f', columns: [col('a', true), col('b', true)] };
/** The rows both tables hold before the changes. */
const BASE = {
  keyed: [
    ['1', 'a1', 'b1'],
    ['2', 'a2', 'b2'],
  ] as Row[],
  multiset: [
    ['1', 'x'],
    ['1', 'x'],
    ['2', 'y'],
  ] as Row[],
};

type Step =
  | { op: 'insert'; rel: RelationDef; row: Row }
  | { op: 'update'; rel: RelationDef; row: Row; key?: Row; old?: Row }
  | { op: 'delete'; rel: RelationDef; key?: Row; old?: Row }
  | { op: 'truncate'; rels: RelationDef[] };
const ins = (row: Row, rel = T): Step => ({ op: 'insert', rel, row });
const upd = (row: Row, from?: string): Step => ({ op: 'update', rel: T, row, key: from === undefined ? undefined : [from, null, null] });
const del = (id: string): Step => ({ op: 'delete', rel: T, key: [id, null, null] });
const updF = (old: Row, row: Row): Step => ({ op: 'update', rel: F, old, row });
const delF = (old: Row): Step => ({ op: 'delete', rel: F, old });

// COPY text, written here independently of replay/copy-text.ts.
const ESC: Record<string, string> = { '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v' };
const esc = (v: Cell) => (v === null ? '\\N' : typeof v !== 'string' ? '?' : v.replace(/[\\\b\f\n\r\t\v]/g, (c) => ESC[c]!));
const keyOf = (rel: RelationDef, row: Row) => rel.columns.flatMap((c, i) => (c.key ? [esc(row[i]!)] : [])).join('\t');
const line = (row: Row) => row.map(esc).join('\t');
const merged = (row: Row, previous: Row) => row.map((v, i) => (v === U ? previous[i]! : v));
function count(m: Map<string, number>, k: string, n: number): void {
  const c = (m.get(k) ?? 0) + n;
  if (c < 0) throw new Error(`removed more copies of ${k} than there are`);
  if (c) m.set(k, c);
  else m.delete(k);
}

const tuple = (row: Row): Tuple => ({
  kinds: Buffer.from(row.map((v) => (v === null ? 'n' : v === U ? 'u' : 't')).join('')),
  values: row.flatMap((v) => (typeof v === 'string' ? [Buffer.from(v)] : [])),
});

/** One segment body: its steps as entries, a Relation entry before a relation's first change (or a new definition). */
function segment(steps: Step[]): Buffer {
  const defined = new Map<number, RelationDef>();
  const entries: SegmentEntry[] = [{ kind: 'begin', xid: 700, commitLsn: 0x100n, commitTime: 0n }];
  for (const s of steps) {
    for (const rel of s.op === 'truncate' ? s.rels : [s.rel]) {
      if (defined.get(rel.oid) !== rel) entries.push({ kind: 'relation', relation: rel });
      defined.set(rel.oid, rel);
    }
    if (s.op === 'insert') entries.push({ kind: 'insert', relation: s.rel.oid, new: tuple(s.row) });
    else if (s.op === 'update')
      entries.push({ kind: 'update', relation: s.rel.oid, key: s.key && tuple(s.key), old: s.old && tuple(s.old), new: tuple(s.row) });
    else if (s.op === 'delete')
      entries.push({ kind: 'delete', relation: s.rel.oid, key: s.key && tuple(s.key), old: s.old && tuple(s.old) });
    else entries.push({ kind: 'truncate', relations: s.rels.map((r) => r.oid), flags: 0 });
  }
  entries.push({ kind: 'commit', commitLsn: 0x100n, endLsn: 0x180n, commitTime: 0n, flags: 0 });
  return Buffer.concat(entries.map(encodeEntry));
}

type Op = { op: 'insert' | 'update'; row: Row } | { op: 'delete'; key: string } | { op: 'insert' | 'delete'; n: number; line: string };
type Event = { apply: Record<string, Op[]> } | { truncate: string[] } | { redefine: string } | { updateKey: { from: string; row: Row } };

/** The applier, in memory: keyed tables by key, multisets as line → count; refuses what SQL would refuse. */
class FakeSink implements EffectSink {
  sequences(): void {}
  readonly events: Event[] = [];
  readonly keyed = new Map<string, Row>();
  readonly multiset = new Map<string, number>();

  async apply(effects: TableEffect[]): Promise<void> {
    const batch: Record<string, Op[]> = {};
    for (const e of effects) batch[e.relation.name] = this.decode(e);
    this.events.push({ apply: batch });
    // As the applier's statements run: every delete of a table, then its updates, then its inserts.
    for (const [name, ops] of Object.entries(batch))
      for (const op of ['delete', 'update', 'insert']) ops.filter((o) => o.op === op).forEach((o) => this.applyOp(name, o));
  }
  async truncate(relations: RelationDef[]): Promise<void> {
    this.events.push({ truncate: relations.map((r) => r.name) });
    for (const r of relations) (r.oid === T.oid ? this.keyed : this.multiset).clear();
  }
  async redefine(previous: RelationDef, next: RelationDef): Promise<void> {
    this.events.push({ redefine: `${previous.name}: ${previous.columns.length} → ${next.columns.length} columns` });
  }
  async ddl(): Promise<void> {}
  async updateKey(relation: RelationDef, oldKey: ReplayValue[], row: ReplayValue[]): Promise<void> {
    const cells = (vs: ReplayValue[]): Row => vs.map((v) => (v === null || v === U ? v : v.toString('utf8')));
    const from = keyOf(relation, cells(oldKey));
    this.events.push({ updateKey: { from, row: cells(row) } });
    const before = this.keyed.get(from)!;
    this.applyOp(relation.name, { op: 'delete', key: from });
    this.applyOp(relation.name, { op: 'insert', row: merged(cells(row), before) });
  }

  private decode(e: TableEffect): Op[] {
    const ops: Op[] = [];
    const view = new TupleView();
    const keyText = (i: number) => e.keys.keyBuffer(i).toString('utf8', e.keys.keyStart(i), e.keys.keyEnd(i));
    for (let i = 0; i < e.size; i++) {
      if (!e.rowEntries) {
        if (e.delta[i] !== 0) ops.push({ op: e.delta[i]! < 0 ? 'delete' : 'insert', n: Math.abs(e.delta[i]!), line: keyText(i) });
      } else if (e.state[i]! & HAS_ROW) {
        const v = e.rowOf(i, view);
        let n = 0;
        const row = Array.from({ length: v.columns }, (_, c) =>
          v.kind(c) === 0x6e ? null : v.kind(c) === 0x75 ? U : v.buf.toString('utf8', v.valueStart[n]!, v.valueEnd[n++]!),
        );
        // An append-only multiset's rows come one by one.
        if (!e.keyed) ops.push({ op: 'insert', n: 1, line: line(row) });
        else ops.push({ op: e.state[i]! & EXISTED ? 'update' : 'insert', row });
      } else if (e.state[i]! & EXISTED) ops.push({ op: 'delete', key: keyText(i) });
    }
    return ops;
  }

  private applyOp(table: string, o: Op): void {
    if (table === F.name && 'line' in o) count(this.multiset, o.line, o.op === 'insert' ? o.n : -o.n);
    else if ('key' in o) {
      if (!this.keyed.delete(o.key)) throw new Error(`delete of a row not there: ${o.key}`);
    } else if ('row' in o) {
      const k = keyOf(T, o.row);
      const before = this.keyed.get(k);
      if (o.op === 'insert' ? before : !before) throw new Error(`${o.op} of ${k}: the row is ${before ? '' : 'not '}there`);
      if (o.op === 'insert' && o.row.includes(U))
        throw new Error(`insert of ${k} with an unchanged value it does not know: it would be NULL`);
      this.keyed.set(k, before ? merged(o.row, before) : o.row);
    }
  }
}

/** The same changes applied one at a time with full knowledge of each row (FULL rows also kept as a list). */
class Model {
  readonly keyed = new Map<string, Row>();
  readonly multiset = new Map<string, number>();
  readonly rows: Row[] = [];
  constructor() {
    BASE.keyed.forEach((r) => this.keyed.set(keyOf(T, r), r));
    BASE.multiset.forEach((r) => this.add(r, 1));
  }
  private add(row: Row, n: 1 | -1): void {
    count(this.multiset, line(row), n);
    if (n > 0) this.rows.push(row);
    else
      this.rows.splice(
        this.rows.findIndex((r) => line(r) === line(row)),
        1,
      );
  }
  apply(s: Step): void {
    if (s.op === 'truncate') {
      for (const r of s.rels) (r === T ? this.keyed : this.multiset).clear();
      if (s.rels.includes(F)) this.rows.splice(0);
    } else if (s.rel.oid === F.oid) {
      if (s.op !== 'insert') this.add(s.old!, -1);
      if (s.op !== 'delete') this.add(s.op === 'update' ? merged(s.row, s.old!) : s.row, 1);
    } else if (s.op === 'insert') this.keyed.set(keyOf(T, s.row), s.row);
    else if (s.op === 'delete') this.keyed.delete(keyOf(T, s.key!));
    else {
      const from = keyOf(T, s.key ?? s.row);
      const row = merged(s.row, this.keyed.get(from)!);
      this.keyed.delete(from);
      this.keyed.set(keyOf(T, row), row);
    }
  }
}

/** With `headers`, the planner knows which tables only get inserts (as a replay's segment headers tell it). */
async function replay(segments: Step[][], maxBytes?: number, headers = false) {
  const sink = new FakeSink();
  BASE.keyed.forEach((r) => sink.keyed.set(keyOf(T, r), r));
  BASE.multiset.forEach((r) => count(sink.multiset, line(r), 1));
  const changedInPlace = new Set(
    segments.flat().flatMap((s) => (s.op === 'truncate' ? s.rels.map((r) => r.oid) : s.op === 'insert' ? [] : [s.rel.oid])),
  );
  const planner = new Planner(sink, maxBytes, undefined, headers ? changedInPlace : undefined);
  for (const steps of segments) {
    // As a segment header counts them: the planner sizes its tables by these.
    const counts = new Map<number, TableCount>();
    for (const st of steps.flatMap((x) => (x.op === 'truncate' ? [] : [x]))) {
      const c = counts.get(st.rel.oid) ?? {
        oid: st.rel.oid,
        schema: 'public',
        name: st.rel.name,
        inserts: 0,
        updates: 0,
        deletes: 0,
        truncates: 0,
      };
      c[`${st.op}s`]++;
      counts.set(st.rel.oid, c);
    }
    planner.expect([...counts.values()]);
    const defs = new Map<number, RelationDef>();
    const s = new EntryScanner();
    s.reset(segment(steps));
    while (s.next()) {
      if (s.kind === INSERT || s.kind === UPDATE || s.kind === DELETE) await planner.change(s, defs.get(s.relation)!);
      else if (s.kind === RELATION || s.kind === TRUNCATE) {
        const e = s.entry();
        if (e.kind === 'relation') defs.set(e.relation.oid, e.relation);
        if (e.kind === 'truncate') await planner.truncate(e.relations.map((oid) => defs.get(oid)!));
      }
    }
  }
  await planner.finish();
  const expected = new Model();
  segments.flat().forEach((step) => expected.apply(step));
  return { sink, expected, applied: sink.events.flatMap((e) => ('apply' in e && Object.keys(e.apply).length ? [e.apply] : [])) };
}

describe('net effect of a batch on a keyed table', () => {
  it.each<[string, Step[], Op[]]>([
    [
      'insert then update: an insert of the final row',
      [ins(['3', 'x', 'y']), upd(['3', 'x2', 'y'])],
      [{ op: 'insert', row: ['3', 'x2', 'y'] }],
    ],
    ['insert then delete: nothing', [ins(['3', 'x', 'y']), del('3')], []],
    ['update then delete: a delete of the row that was there', [upd(['1', 'z', 'z']), del('1')], [{ op: 'delete', key: '1' }]],
    ['delete then insert: an update', [del('1'), ins(['1', 'n', 'n'])], [{ op: 'update', row: ['1', 'n', 'n'] }]],
    [
      'updates leaving a TOAST value unchanged: an update that keeps it',
      [upd(['1', 'x', U]), upd(['1', 'y', U])],
      [{ op: 'update', row: ['1', 'y', U] }],
    ],
    [
      'an unchanged value after an insert: the inserted value',
      [ins(['3', 'a', 'B3']), upd(['3', 'c', U])],
      [{ op: 'insert', row: ['3', 'c', 'B3'] }],
    ],
    [
      'an unchanged value after a full update: that update value',
      [upd(['1', 'x', 'B']), upd(['1', 'y', U])],
      [{ op: 'update', row: ['1', 'y', 'B'] }],
    ],
    [
      'a key change: a delete of the old key and an insert of the new',
      [upd(['5', 'a1', 'b1'], '1')],
      [
        { op: 'delete', key: '1' },
        { op: 'insert', row: ['5', 'a1', 'b1'] },
      ],
    ],
    [
      'a key changed and changed back: an update',
      [upd(['5', 'q', 'b1'], '1'), upd(['1', 'q', 'b1'], '5')],
      [{ op: 'update', row: ['1', 'q', 'b1'] }],
    ],
    [
      'a key moved onto one deleted before: an update of it',
      [del('2'), upd(['2', 'a1', 'b1'], '1')],
      [
        { op: 'update', row: ['2', 'a1', 'b1'] },
        { op: 'delete', key: '1' },
      ],
    ],
    [
      'a key change keeping a value the batch knows: carried over',
      [ins(['3', 'a', 'B3']), upd(['7', 'a', U], '3')],
      [{ op: 'insert', row: ['7', 'a', 'B3'] }],
    ],
    [
      'keys that need COPY escaping',
      [ins(['k\t1\\', 'a', null]), upd(['k\t1\\', 'b', null]), del('1')],
      [
        { op: 'insert', row: ['k\t1\\', 'b', null] },
        { op: 'delete', key: '1' },
      ],
    ],
  ])('%s', async (_name, steps, effect) => {
    const { sink, expected, applied } = await replay([steps]);
    expect(applied.length <= 1).toBe(true);
    expect(applied[0]?.t ?? []).toEqual(effect);
    expect(sink.keyed).toEqual(expected.keyed);
  });

  it('a key change leaving unchanged a value the batch does not know: what is pending first, then the update in place', async () => {
    const { sink, expected } = await replay([[upd(['2', 'z', 'b2']), upd(['6', 'a1', U], '1'), ins(['9', 'n', 'n'])]]);
    expect(sink.events).toEqual([
      { apply: { t: [{ op: 'update', row: ['2', 'z', 'b2'] }] } },
      { updateKey: { from: '1', row: ['6', 'a1', U] } },
      { apply: { t: [{ op: 'insert', row: ['9', 'n', 'n'] }] } },
    ]);
    expect(sink.keyed).toEqual(expected.keyed);
  });

  // A key change whose row leaves a TOAST value unchanged that the batch's image of the old key left
  // unchanged too cannot be folded: folded, it became an insert still saying "unchanged" (written as
  // NULL), or an update of the key moved onto (keeping the deleted row's value).
  it('a key change after an update that left a TOAST value unchanged keeps that value', async () => {
    const { sink, expected } = await replay([[upd(['1', 'x', U]), upd(['8', 'x', U], '1')]]);
    expect(sink.keyed).toEqual(expected.keyed);
  });

  it('a key change onto a deleted key, after an update that left a TOAST value unchanged, keeps the moved value', async () => {
    const { sink, expected } = await replay([[upd(['1', 'x', U]), del('2'), upd(['2', 'x', U], '1')]]);
    expect(sink.keyed.get('2')).toEqual(['2', 'x', 'b1']);
    expect(sink.keyed).toEqual(expected.keyed);
  });
});

describe('net effect of a batch on a REPLICA IDENTITY FULL table (a multiset of rows)', () => {
  it.each<[string, Step[], Op[]]>([
    ['an inserted copy deleted again: nothing', [ins(['1', 'x'], F), delF(['1', 'x'])], []],
    [
      'both copies of a duplicated row deleted: one delete of two',
      [delF(['1', 'x']), delF(['1', 'x'])],
      [{ op: 'delete', n: 2, line: '1\tx' }],
    ],
    [
      'one copy updated: one fewer of the old row, one of the new',
      [updF(['1', 'x'], ['1', 'z'])],
      [
        { op: 'delete', n: 1, line: '1\tx' },
        { op: 'insert', n: 1, line: '1\tz' },
      ],
    ],
    [
      'an unchanged TOAST value in the new row: taken from the old row',
      [updF(['2', 'y'], ['3', U])],
      [
        { op: 'delete', n: 1, line: '2\ty' },
        { op: 'insert', n: 1, line: '3\ty' },
      ],
    ],
    [
      'NULLs and values that need escaping, counted as COPY lines',
      [ins(['a\tb\\', null], F), ins(['a\tb\\', null], F)],
      [{ op: 'insert', n: 2, line: 'a\\tb\\\\\t\\N' }],
    ],
  ])('%s', async (_name, steps, effect) => {
    const { sink, expected, applied } = await replay([steps]);
    expect(applied[0]?.f ?? []).toEqual(effect);
    expect(sink.multiset).toEqual(expected.multiset);
  });
});

describe('tables the whole replay only inserts into (append-only)', () => {
  it('keeps every insert as a row of its own, in order, keyed or not, across batches', async () => {
    const steps = [
      [ins(['3', 'a', 'b']), ins(['1', 'x'], F), ins(['4', 'c', null])],
      [ins(['1', 'x'], F), ins(['5', 'e', 'f']), ins(['2', 'z'], F)],
    ];
    const { sink, expected, applied } = await replay(steps, undefined, true);
    expect(sink.keyed).toEqual(expected.keyed);
    expect(sink.multiset).toEqual(expected.multiset);
    expect(applied[0]).toEqual({
      t: [
        { op: 'insert', row: ['3', 'a', 'b'] },
        { op: 'insert', row: ['4', 'c', null] },
        { op: 'insert', row: ['5', 'e', 'f'] },
      ],
      f: [
        { op: 'insert', n: 1, line: '1\tx' },
        { op: 'insert', n: 1, line: '1\tx' },
        { op: 'insert', n: 1, line: '2\tz' },
      ],
    });
    // A small memory bound splits them into batches: the same rows.
    const small = await replay(steps, 1, true);
    expect(small.sink.keyed).toEqual(expected.keyed);
    expect(small.sink.multiset).toEqual(expected.multiset);
  });

  it('calls an update of a table the headers count only inserts into damage to the archive', async () => {
    const sink = new FakeSink();
    const planner = new Planner(sink, undefined, undefined, new Set());
    const s = new EntryScanner();
    s.reset(segment([upd(['1', 'A', 'B'])]));
    let failed: unknown;
    while (s.next()) {
      try {
        if (s.kind === UPDATE) await planner.change(s, T);
      } catch (err) {
        failed = err;
      }
    }
    expect(failed).toBeInstanceOf(CorruptSegmentError);
  });
});

describe('planner barriers and batches', () => {
  it('applies what is pending (every table) before a TRUNCATE, and folds what follows anew', async () => {
    const { sink, expected } = await replay([
      [ins(['3', 'a', 'b']), ins(['5', '5'], F), { op: 'truncate', rels: [F] }, ins(['6', '6'], F), del('3')],
    ]);
    expect(sink.events).toEqual([
      { apply: { t: [{ op: 'insert', row: ['3', 'a', 'b'] }], f: [{ op: 'insert', n: 1, line: '5\t5' }] } },
      { truncate: ['f'] },
      { apply: { f: [{ op: 'insert', n: 1, line: '6\t6' }], t: [{ op: 'delete', key: '3' }] } },
    ]);
    expect([sink.keyed, sink.multiset]).toEqual([expected.keyed, expected.multiset]);
  });

  it('applies what is pending before a relation changes shape, then folds with the new shape', async () => {
    const { sink } = await replay([[ins(['3', 'a', 'b']), ins(['4', 'a', 'b', 'c'], T2)]]);
    expect(sink.events).toEqual([
      { apply: { t: [{ op: 'insert', row: ['3', 'a', 'b'] }] } },
      { redefine: 't: 3 → 4 columns' },
      { apply: { t: [{ op: 'insert', row: ['4', 'a', 'b', 'c'] }] } },
    ]);
  });

  it('goes on folding across segments that define the same relation again', async () => {
    const { sink } = await replay([[ins(['3', 'a', 'b'])], [upd(['3', 'c', U])], [del('1')]]);
    expect(sink.events).toEqual([
      {
        apply: {
          t: [
            { op: 'insert', row: ['3', 'c', 'b'] },
            { op: 'delete', key: '1' },
          ],
        },
      },
    ]);
  });

  it('hands over a batch whenever it reaches its memory bound', async () => {
    const { applied } = await replay([[ins(['3', 'a', 'b']), upd(['3', 'c', U]), del('3')]], 1);
    expect(applied).toEqual([
      { t: [{ op: 'insert', row: ['3', 'a', 'b'] }] },
      { t: [{ op: 'update', row: ['3', 'c', U] }] },
      { t: [{ op: 'delete', key: '3' }] },
    ]);
  });
});

describe('net effect against a model on random changes', () => {
  const KEYS = ['1', '2', '3', '007', 'k\t5', 'k\\6', 'ü7'];
  const VALUES = [null, '', 'v', 'w', 'ünï', 'line\nbreak', 'back\\slash'];

  function workload(seed: number, n: number, toastOnKeyChange: boolean): Step[][] {
    const rnd = seededRandom(seed);
    const pick = <X>(xs: readonly X[]) => xs[Math.floor(rnd() * xs.length)]!;
    const state = new Model();
    const segments: Step[][] = [[]];
    for (let i = 0; i < n; i++) {
      if (rnd() < 0.02) segments.push([]);
      const r = rnd();
      let step: Step;
      if (r < 0.005) step = { op: 'truncate', rels: pick([[T], [F], [T, F]]) };
      else if (r < 0.35) {
        // The multiset: duplicates are likely (two values per column).
        const row: Row = [pick(['1', '2']), pick(['x', null])];
        const old = state.rows[Math.floor(rnd() * state.rows.length)];
        if (!old || rnd() < 0.4) step = ins(row, F);
        else if (rnd() < 0.5) step = delF(old);
        else step = updF(old, rnd() < 0.3 ? [row[0]!, U] : row);
      } else {
        const id = pick(KEYS);
        const exists = (k: string) => state.keyed.has(keyOf(T, [k]));
        const free = KEYS.filter((k) => !exists(k));
        const moved = free.length > 0 && rnd() < 0.3 ? pick(free) : id;
        const keep = rnd() < 0.4 && (moved === id || toastOnKeyChange);
        if (!exists(id)) step = ins([id, pick(VALUES), pick(VALUES)]);
        else if (rnd() < 0.25) step = del(id);
        else step = upd([moved, pick(VALUES), keep ? U : pick(VALUES)], moved === id ? undefined : id);
      }
      segments.at(-1)!.push(step);
      state.apply(step);
    }
    return segments;
  }

  it.each([
    ['one batch, key changes sending every value', 512 << 20, false],
    ['batches of a few changes, key changes sending every value', 68_000, false],
    ['a batch per change, key changes leaving values unchanged too', 1, true],
  ] as const)('folds a seeded random sequence as the model applies it (%s)', async (_name, maxBytes, toastOnKeyChange) => {
    const seed = TEST_SEED;
    const { sink, expected } = await replay(workload(seed, 3000, toastOnKeyChange), maxBytes);
    expect(sink.keyed, `seed ${seed} (PGTAPE_TEST_SEED)`).toEqual(expected.keyed);
    expect(sink.multiset, `seed ${seed} (PGTAPE_TEST_SEED)`).toEqual(expected.multiset);
  });
});
