import type pg from 'pg';
import type { BaseManifest, BaseRef, BaseSchema } from '../src/log/bases.js';
import { UserError } from '../src/core/errors.js';
import type { Logger } from '../src/core/log.js';
import { quoteIdent, quoteQualified } from '../src/core/sql.js';
import { TupleView } from '../src/segment/entry-scanner.js';
import { sameColumnTypes, type RelationDef } from '../src/segment/format.js';
import type { Store } from '../src/store/store.js';
import { loadBaseTable } from './base-merge.js';
import { CopyIn } from './copy-in.js';
import { CopyText, LineFields } from './copy-text.js';
import { DONE, EXISTED, HAS_ROW, type TableEffect } from './net-effect.js';
import type { EffectSink } from './planner.js';
import { baseDdl, keyDdl } from './schema.js';
import { TUPLE_UNCHANGED, UNCHANGED } from '../src/pgoutput/tuple.js';
import type { ReplayValue } from './values.js';
import { isConstant } from '../src/base/published-schema.js';
import type { CapturedDdl, TableSnapshot } from '../src/source/ddl-capture.js';

export interface TableRows {
  schema: string;
  name: string;
  rows: number;
}


/** The staging table's `u` mask, a letter per column: `u` keeps the table's value (unchanged TOAST), `.` sets it. */
const MASK_KEEP = 0x75;
const MASK_SET = 0x2e;

/** Staging rows are handed to COPY in pieces of about this size. */
const PIECE = 1 << 20;

interface TargetColumn {
  name: string;
  /** The source's column number, where known (a base, captured DDL): how renames are recognized. */
  attnum?: number;
  typeOid: number;
  typmod: number;
  /** The type as SQL, for casts from text. */
  type: string;
}

interface TargetTable {
  schema: string;
  name: string;
  columns: TargetColumn[];
  /** Column count the staging table was made for. */
  stagedColumns?: number;
  /** Rows it holds, while every statement's count is known. */
  rows?: number;
}

/** Where the replay starts: the base, loaded with the first batch. */
export interface BaseToLoad {
  store: Store;
  base: BaseRef;
  manifest: BaseManifest;
  schema: BaseSchema;
  /** Only these tables (`schema.table`); all when undefined. */
  only?: Set<string>;
}

/**
 * Applies net effects to the replay database in bulk: each table's rows go into a staging table
 * with COPY, then one set-based DELETE, UPDATE and INSERT. Tables are created from the base's
 * schema, or from Relation messages for tables created later, and follow schema changes.
 */
export class Applier implements EffectSink {
  private readonly tables = new Map<number, TargetTable>();
  private readonly warned = new Set<string>();
  private baseLoaded = false;
  private readonly view = new TupleView();
  private readonly fields = new LineFields();

  constructor(
    private readonly client: pg.Client,
    private readonly base: BaseToLoad,
    private readonly log: Logger,
  ) {}

  /**
   * The first batch: creates the base's tables, loads each with the batch's effect on it merged
   * in where the shapes agree (checking each file's checksum), adds keys, then applies the rest
   * of the batch set-based.
   */
  private async loadBase(effects: TableEffect[]): Promise<void> {
    const { store, base, manifest, schema, only } = this.base;
    const tables = schema.tables.filter((t) => !only || only.has(`${t.schema}.${t.name}`));
    for (const sql of baseDdl({ ...schema, tables })) await this.client.query(sql);
    const byOid = new Map(effects.map((e) => [e.relation.oid, e]));
    for (const t of tables) {
      const entry = manifest.tables.find((m) => m.file === t.file);
      if (!entry) throw new UserError(`${store.description}/${base.prefix}manifest.json lists no file for ${quoteQualified(t.schema, t.name)}`, 'run pgtape verify');
      const effect = byOid.get(t.oid);
      const merged = effect && sameColumnTypes(t.columns, effect.relation.columns) ? effect : undefined;
      const started = Date.now();
      const rows = await loadBaseTable(this.client, store, base, t, entry.sha256, merged);
      const loaded = Date.now();
      for (const sql of keyDdl(t)) await this.client.query(sql);
      this.log.debug(
        { table: `${t.schema}.${t.name}`, rows, merged: merged?.changes ?? 0, leftForSetBased: effect?.pending() ?? 0, loadMs: loaded - started, keyMs: Date.now() - loaded },
        'base table loaded',
      );
      this.tables.set(t.oid, { schema: t.schema, name: t.name, columns: t.columns.map((c) => ({ name: c.name, attnum: c.attnum, typeOid: c.typeOid, typmod: c.typmod, type: c.type })), rows });
    }
  }

  /** The target table of a relation, created or brought to the relation's shape first. */
  private async table(rel: RelationDef): Promise<TargetTable> {
    const t = this.tables.get(rel.oid);
    if (!t) {
      const columns = await this.columnsOf(rel);
      const keys = rel.replicaIdentity === 'f' ? [] : rel.columns.filter((c) => c.key).map((c) => c.name);
      this.warnOnce(`created:${rel.oid}`, { table: `${rel.schema}.${rel.name}` }, 'table created after the base: made from its Relation message (no defaults, constraints or indexes beyond its key)');
      return this.createTable(rel.oid, rel.schema, rel.name, columns, columns.map((c) => `${quoteIdent(c.name)} ${c.type}`), keys, rel.replicaIdentity);
    }
    await this.moveTable(t, rel.schema, rel.name);
    if (!sameColumnTypes(t.columns, rel.columns)) await this.reshape(t, rel);
    return t;
  }

  /** A table made in the replay: its schema, its columns (`defs`), its key and replica identity. */
  private async createTable(oid: number, schema: string, name: string, columns: TargetColumn[], defs: string[], keys: string[], replicaIdentity: string): Promise<TargetTable> {
    const target = quoteQualified(schema, name);
    if (keys.length) defs = [...defs, `primary key (${keys.map(quoteIdent).join(', ')})`];
    await this.client.query(`create schema if not exists ${quoteIdent(schema)}`);
    await this.client.query(`create table ${target} (${defs.join(', ')})`);
    if (replicaIdentity === 'f') await this.client.query(`alter table ${target} replica identity full`);
    const t: TargetTable = { schema, name, columns, rows: 0 };
    this.tables.set(oid, t);
    return t;
  }

  /** Follows a table moved to another schema or renamed at the source. */
  private async moveTable(t: TargetTable, schema: string, name: string): Promise<void> {
    if (t.schema !== schema) await this.client.query(`alter table ${quoteQualified(t.schema, t.name)} set schema ${quoteIdent(schema)}`);
    if (t.name !== name) await this.client.query(`alter table ${quoteQualified(schema, t.name)} rename to ${quoteIdent(name)}`);
    t.schema = schema;
    t.name = name;
  }

  /** Columns added, dropped or retyped since the table was made. A rename looks like a drop and an add. */
  private async reshape(t: TargetTable, rel: RelationDef): Promise<void> {
    const wanted = await this.columnsOf(rel);
    const vanished = t.columns.filter((c) => !wanted.some((w) => w.name === c.name)).map((c) => c.name);
    const appeared = wanted.filter((w) => !t.columns.some((c) => c.name === w.name)).map((c) => c.name);
    if (vanished.length && appeared.length) {
      this.warnOnce(
        `rename:${t.schema}.${t.name}:${vanished}:${appeared}`,
        { table: `${t.schema}.${t.name}`, vanished, appeared },
        'columns vanished and others appeared: if that was a rename, rows not changed since hold NULL in the new column (pgoutput carries no DDL; archive with --capture-ddl to replay renames)',
      );
    }
    await this.alterColumns(t, wanted);
    this.log.info({ table: `${t.schema}.${t.name}`, columns: wanted.map((c) => c.name) }, 'table reshaped to follow the source');
  }

  /** Drops the columns not wanted, adds the missing ones, retypes the others (matched by name). */
  private async alterColumns(t: TargetTable, wanted: TargetColumn[]): Promise<void> {
    const target = quoteQualified(t.schema, t.name);
    for (const c of t.columns.filter((c) => !wanted.some((w) => w.name === c.name))) {
      await this.client.query(`alter table ${target} drop column ${quoteIdent(c.name)}`);
    }
    for (const w of wanted) {
      const have = t.columns.find((c) => c.name === w.name);
      if (!have) await this.client.query(`alter table ${target} add column ${quoteIdent(w.name)} ${w.type}`);
      else if (have.typeOid !== w.typeOid || have.typmod !== w.typmod) {
        await this.client.query(`alter table ${target} alter column ${quoteIdent(w.name)} type ${w.type} using ${quoteIdent(w.name)}::text::${w.type}`);
      }
    }
    t.columns = wanted;
    t.stagedColumns = undefined;
  }

  /** SQL types of a relation's columns: built-in types by OID, others by name where the replay database knows them. */
  private async columnsOf(rel: RelationDef): Promise<TargetColumn[]> {
    const out: TargetColumn[] = [];
    for (const c of rel.columns) {
      let type: string | null = null;
      if (c.typeOid < 10000) {
        type = (await this.client.query<{ t: string }>('select format_type($1::oid, $2::int) as t', [c.typeOid, c.typmod])).rows[0]!.t;
      } else {
        const known = await this.client.query<{ t: string | null }>('select to_regtype($1)::text as t', [c.typeName]);
        type = known.rows[0]!.t;
      }
      if (!type) {
        this.warnOnce(`type:${c.typeName}`, { type: c.typeName, column: `${rel.schema}.${rel.name}.${c.name}` }, 'type unknown to the replay database: the column is replayed as text');
        type = 'text';
      }
      out.push({ name: c.name, typeOid: c.typeOid, typmod: c.typmod, type });
    }
    return out;
  }

  async apply(effects: TableEffect[]): Promise<void> {
    if (!this.baseLoaded) {
      this.baseLoaded = true;
      await this.loadBase(effects);
    }
    for (const e of effects) await this.applySetBased(e);
  }

  /** What the base's load did not take of an effect: staged with COPY, then one DELETE, UPDATE and INSERT. */
  private async applySetBased(e: TableEffect): Promise<void> {
    const text = new CopyText(PIECE + (PIECE >> 2));
    const ops = { d: 0, u: 0, i: 0, masked: false, changes: 0 };
    const columns = e.relation.columns.length;
    let copy: CopyIn | undefined;
    let t: TargetTable | undefined;
    const line = async (op: 'd' | 'u' | 'i', n: number) => {
      if (!copy) {
        t = await this.table(e.relation);
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
      if (e.keyed) {
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
      if (ops.d) removed += (await this.client.query(`delete from ${target} t using ${stage} s where s.op = 'd' and ${match}`)).rowCount ?? 0;
      if (ops.u) {
        const set = t.columns
          .map((_, i) => i)
          .filter((i) => !keys.includes(i))
          .map((i) => `${names[i]} = ${ops.masked ? `case when substr(s.u, ${i + 1}, 1) = 'u' then t.${names[i]} else ${cast(i)} end` : cast(i)}`);
        if (set.length) await this.client.query(`update ${target} t set ${set.join(', ')} from ${stage} s where s.op = 'u' and ${match}`);
      }
    } else if (ops.d) {
      // Whole-row matching, duplicates included: remove n of the equal rows. Rows are compared
      // through their text form in this session, so types without equality (json, point) match too.
      const image = (prefix: string, i: number) => (prefix === 't' ? `t2.${names[i]}::text` : `(${cast(i)})::text`);
      const row = (p: string) => `json_build_array(${t!.columns.map((_, i) => image(p, i)).join(', ')})::text`;
      removed += (
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
      added += (
        await this.client.query(
          `insert into ${target} (${names.join(', ')}) select ${t.columns.map((_, i) => cast(i)).join(', ')} from ${stage} s cross join lateral generate_series(1, s.n) where s.op = 'i'`,
        )
      ).rowCount ?? 0;
    }
    if (t.rows !== undefined) t.rows += added - removed;
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

  /** DDL captured by `archive --capture-ddl`, at its point: tables made, reshaped, renamed or dropped. */
  async ddl(captured: CapturedDdl): Promise<void> {
    for (const d of captured.dropped ?? []) {
      const t = this.tables.get(d.oid);
      if (!t) continue;
      await this.client.query(`drop table if exists ${quoteQualified(t.schema, t.name)}`);
      this.tables.delete(d.oid);
    }
    for (const snapshot of captured.tables ?? []) {
      if (this.base.only && !this.base.only.has(`${snapshot.schema}.${snapshot.name}`)) continue;
      await this.reconcile(snapshot);
    }
  }

  /** Brings the target table to a captured shape: renames by column number, then drops, adds and retypes. */
  private async reconcile(s: TableSnapshot): Promise<void> {
    const columns: TargetColumn[] = s.columns.map((c) => ({ name: c.name, attnum: c.attnum, typeOid: c.typeOid, typmod: c.typmod, type: c.type }));
    const constant = (d: string | null) => (d !== null && isConstant(d) ? d : undefined);
    const q = (sql: string) => this.client.query(sql);
    const t = this.tables.get(s.oid);
    if (!t) {
      const defs = s.columns.map((c) => `${quoteIdent(c.name)} ${c.type}${c.notNull ? ' not null' : ''}${constant(c.default) ? ` default ${c.default}` : ''}`);
      await this.createTable(s.oid, s.schema, s.name, columns, defs, s.primaryKey, s.replicaIdentity);
    } else {
      await this.moveTable(t, s.schema, s.name);
      const target = quoteQualified(t.schema, t.name);
      for (const c of s.columns) {
        const have = t.columns.find((x) => x.attnum === c.attnum);
        if (have && have.name !== c.name) {
          await q(`alter table ${target} rename column ${quoteIdent(have.name)} to ${quoteIdent(c.name)}`);
          have.name = c.name;
        }
      }
      await this.alterColumns(t, columns);
      for (const c of s.columns) {
        const d = constant(c.default);
        await q(`alter table ${target} alter column ${quoteIdent(c.name)} ${d ? `set default ${d}` : 'drop default'}`);
      }
    }
    for (const index of s.indexes) {
      // The source's own statement, made idempotent: the same index may be captured again.
      const sql = index.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX IF NOT EXISTS ');
      await q('savepoint pgtape_index');
      try {
        await q(sql);
        await q('release savepoint pgtape_index');
      } catch (err) {
        await q('rollback to savepoint pgtape_index');
        this.warnOnce(`index:${sql}`, { index: sql, err: (err as Error).message }, 'an index captured from the source could not be made in the replay');
      }
    }
  }

  async truncate(relations: RelationDef[]): Promise<void> {
    const targets: string[] = [];
    for (const r of relations) {
      const t = await this.table(r);
      targets.push(quoteQualified(t.schema, t.name));
      t.rows = 0;
    }
    await this.client.query(`truncate ${targets.join(', ')}`);
  }

  async redefine(_previous: RelationDef, next: RelationDef): Promise<void> {
    await this.table(next);
  }

  async updateKey(rel: RelationDef, oldKey: ReplayValue[], row: ReplayValue[]): Promise<void> {
    const t = await this.table(rel);
    const params: (string | null)[] = [];
    const param = (v: ReplayValue) => {
      params.push(v === null || v === UNCHANGED ? null : v.toString('utf8'));
      return `$${params.length}`;
    };
    const set = t.columns.flatMap((c, i) => (row[i] === UNCHANGED ? [] : [`${quoteIdent(c.name)} = ${param(row[i]!)}::${c.type}`]));
    const where = rel.columns.flatMap((c, i) => (c.key ? [`${quoteIdent(c.name)} = ${param(oldKey[i]!)}::${t.columns[i]!.type}`] : []));
    await this.client.query(`update ${quoteQualified(t.schema, t.name)} set ${set.join(', ')} where ${where.join(' and ')}`, params);
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, message);
  }

  /** Final row counts of the replayed tables. */
  async countRows(): Promise<TableRows[]> {
    const out: TableRows[] = [];
    for (const t of this.tables.values()) {
      let rows = t.rows;
      if (rows === undefined) rows = Number((await this.client.query<{ n: string }>(`select count(*)::text as n from ${quoteQualified(t.schema, t.name)}`)).rows[0]!.n);
      out.push({ schema: t.schema, name: t.name, rows });
    }
    return out;
  }
}
