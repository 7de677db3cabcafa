import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../src/core/sql.js';
import { TUPLE_UNCHANGED, UNCHANGED } from '../src/pgoutput/tuple.js';
import { TupleView } from '../src/segment/entry-scanner.js';
import type { RelationDef } from '../src/segment/format.js';
import { CopyIn } from './copy-in.js';
import { unwritable } from './unwritable.js';
import { CopyText, LineFields } from './copy-text.js';
import { DONE, EXISTED, HAS_ROW, type TableEffect } from './net-effect.js';
import type { TargetTable, TargetTables } from './target-tables.js';
import type { ReplayValue } from './values.js';

// The applier's second stage: every batch after the first (and what the base's load left of the
// first) goes through a staging table per relation, filled with COPY, then one DELETE, UPDATE and
// INSERT each. See docs/ARCHITECTURE.md, The replay path.

/** The staging table's `u` mask, a letter per column: `u` keeps the table's value (unchanged TOAST), `.` sets it. */
const MASK_KEEP = 0x75;
const MASK_SET = 0x2e;

/** Staging rows are handed to COPY in pieces of about this size. */
const PIECE = 1 << 20;

/** Writes net effects and key updates to the tables TargetTables names, set-based. */
export class SetBasedWriter {
  private readonly view = new TupleView();
  private readonly fields = new LineFields();

  constructor(
    private readonly client: pg.Client,
    private readonly tables: TargetTables,
  ) {}

  /** Captured DDL or a new Relation may change a table's identities: read again when next needed. */
  forgetIdentities(): void {
    this.alwaysIdentity.clear();
  }

  /** What the base's load did not take of an effect: staged with COPY, then one DELETE, UPDATE and INSERT. */
  async apply(e: TableEffect): Promise<void> {
    const text = new CopyText(PIECE + (PIECE >> 2));
    const ops = { d: 0, u: 0, i: 0, masked: false, changes: 0 };
    const columns = e.relation.columns.length;
    let copy: CopyIn | undefined;
    let t: TargetTable | undefined;
    try {
      const line = async (op: 'd' | 'u' | 'i', n: number) => {
        if (!copy) {
          t = await this.tables.of(e.relation);
          copy = new CopyIn(this.client, `copy ${await this.stage(e.relation.oid, t)} from stdin`);
        }
        ops[op] += n;
        text.ascii(`${op}\t${n}\t`);
      };
      const flushed = async () => {
        text.newline();
        if (text.length >= PIECE) await copy!.write(text.take());
      };
      for (let i = 0; i < e.size; i++) {
        if (e.rowEntries) {
          const state = e.state[i]!;
          if (state & DONE || state === 0) continue;
          if (!(state & HAS_ROW)) {
            await line('d', 1);
            text.null();
            // The identity's fields at the key columns, NULL elsewhere.
            const key = this.fields.split(e.keys.keyBuffer(i), e.keys.keyStart(i), e.keys.keyEnd(i));
            let k = 0;
            for (let c = 0; c < columns; c++) {
              text.tab();
              if (e.keyColumns[k] === c) text.raw(key.buf, key.start[k]!, key.end[k++]!);
              else text.null();
            }
          } else {
            const row = e.rowOf(i, this.view);
            await line(state & EXISTED ? 'u' : 'i', 1);
            if (row.hasUnchanged()) {
              ops.masked = true;
              for (let c = 0; c < row.columns; c++) text.byte(row.kind(c) === TUPLE_UNCHANGED ? MASK_KEEP : MASK_SET);
            } else text.null();
            text.tab();
            text.tuple(row);
          }
        } else {
          const delta = e.delta[i]!;
          if (delta === 0) continue;
          await line(delta < 0 ? 'd' : 'i', Math.abs(delta));
          text.null();
          text.tab();
          text.raw(e.keys.keyBuffer(i), e.keys.keyStart(i), e.keys.keyEnd(i));
        }
        await flushed();
      }
      if (!copy || !t) return;
      await copy.write(text.take());
      await copy.end();

      const stage = `pg_temp.pgtape_stage_${e.relation.oid}`;
      const target = quoteQualified(t.schema, t.name);
      const cast = (i: number) => `s.c${i}::${t!.columns[i]!.type}`;
      const names = t.columns.map((c) => quoteIdent(c.name));
      let removed = 0;
      let added = 0;
      if (e.keyed) {
        const keys = e.keyColumns;
        const match = keys.map((i) => `t.${names[i]} = ${cast(i)}`).join(' and ');
        if (ops.d)
          removed += (await this.client.query(`delete from ${target} t using ${stage} s where s.op = 'd' and ${match}`)).rowCount ?? 0;
        if (ops.u) {
          const setColumns = t.columns.map((_, i) => i).filter((i) => !keys.includes(i) && !t!.columns[i]!.computed);
          const set = setColumns.map(
            (i) =>
              `${names[i]} = ${ops.masked ? `case when substr(s.u, ${i + 1}, 1) = 'u' then t.${names[i]} else ${cast(i)} end` : cast(i)}`,
          );
          if (set.length)
            await this.identityUpdatable(
              target,
              setColumns.map((i) => t!.columns[i]!.name),
              () => this.client.query(`update ${target} t set ${set.join(', ')} from ${stage} s where s.op = 'u' and ${match}`),
            );
        }
      } else if (ops.d) {
        // Whole-row matching, duplicates included: remove n of the equal rows. Rows are compared
        // through their text form in this session, so types without equality (json, point) match too.
        const image = (prefix: string, i: number) => (prefix === 't' ? `t2.${names[i]}::text` : `(${cast(i)})::text`);
        const row = (p: string) => `json_build_array(${t!.columns.map((_, i) => image(p, i)).join(', ')})::text`;
        removed +=
          (
            await this.client.query(
              `delete from ${target} t using (
             select x.tid from (
               select t2.ctid as tid, s.n, row_number() over (partition by s.ctid order by t2.ctid) as rn
                 from ${target} t2 join ${stage} s on s.op = 'd' and ${row('t')} = ${row('s')}
             ) x where x.rn <= x.n
           ) d where t.ctid = d.tid`,
            )
          ).rowCount ?? 0;
      }
      if (ops.i) {
        const written = t.columns.flatMap((c, i) => (c.computed ? [] : [i]));
        added +=
          (
            await this.client.query(
              // The source's values of identity columns GENERATED ALWAYS too, as COPY takes them.
              `insert into ${target} (${written.map((i) => names[i]).join(', ')}) overriding system value select ${written.map(cast).join(', ')} from ${stage} s cross join lateral generate_series(1, s.n) where s.op = 'i'`,
            )
          ).rowCount ?? 0;
      }
      if (t.rows !== undefined) t.rows += added - removed;
    } catch (err) {
      // A value no replay can write (a copy of pg_class's): said with its table.
      throw t ? unwritable(err, t) : err;
    }
  }

  private async stage(oid: number, t: TargetTable): Promise<string> {
    const stage = `pg_temp.pgtape_stage_${oid}`;
    if (t.stagedColumns !== t.columns.length) {
      await this.client.query(`drop table if exists ${stage}`);
      const cols = t.columns.map((_, i) => `c${i} text`).join(', ');
      await this.client.query(`create temp table pgtape_stage_${oid} (op "char", n int, u text${cols ? ', ' + cols : ''})`);
      t.stagedColumns = t.columns.length;
    } else {
      await this.client.query(`truncate ${stage}`);
    }
    return stage;
  }

  async updateKey(rel: RelationDef, oldKey: ReplayValue[], row: ReplayValue[]): Promise<void> {
    const t = await this.tables.of(rel);
    const params: (string | null)[] = [];
    const param = (v: ReplayValue) => {
      params.push(v === null || v === UNCHANGED ? null : v.toString('utf8'));
      return `$${params.length}`;
    };
    const set = t.columns.flatMap((c, i) =>
      row[i] === UNCHANGED || c.computed ? [] : [`${quoteIdent(c.name)} = ${param(row[i]!)}::${c.type}`],
    );
    const where = rel.columns.flatMap((c, i) => (c.key ? [`${quoteIdent(c.name)} = ${param(oldKey[i]!)}::${t.columns[i]!.type}`] : []));
    const target = quoteQualified(t.schema, t.name);
    await this.identityUpdatable(
      target,
      t.columns.filter((c, i) => row[i] !== UNCHANGED && !c.computed).map((c) => c.name),
      () => this.client.query(`update ${target} set ${set.join(', ')} where ${where.join(' and ')}`, params),
    );
  }

  /**
   * Runs an UPDATE that sets columns to the source's values: an identity column GENERATED ALWAYS
   * can be updated only to DEFAULT (even to the value it holds), so such columns are made BY
   * DEFAULT around it, and ALWAYS again after, inside the replay's transaction. The source changes
   * them with `SET … = DEFAULT`; the replay has the value that drew.
   */
  private async identityUpdatable<T>(target: string, setColumns: string[], update: () => Promise<T>): Promise<T> {
    let always = this.alwaysIdentity.get(target);
    if (!always) {
      const { rows } = await this.client.query<{ name: string }>(
        `select attname as name from pg_attribute where attrelid = $1::regclass and attnum > 0 and not attisdropped and attidentity = 'a' order by attnum`,
        [target],
      );
      this.alwaysIdentity.set(target, (always = rows.map((r) => r.name)));
    }
    // A key made of an identity column (the usual one) is not set: nothing to do then.
    const names = always.filter((n) => setColumns.includes(n));
    const identity = (how: string) =>
      `alter table ${target} ${names.map((n) => `alter column ${quoteIdent(n)} set generated ${how}`).join(', ')}`;
    if (names.length) await this.client.query(identity('by default'));
    const result = await update();
    if (names.length) await this.client.query(identity('always'));
    return result;
  }

  /** Each table's identity columns GENERATED ALWAYS, as its catalog said since the last captured DDL (which may change them). */
  private readonly alwaysIdentity = new Map<string, string[]>();
}
