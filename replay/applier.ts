import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { BaseManifest, BaseRef, BaseSchema } from '../src/base/format.js';
import { UserError } from '../src/core/errors.js';
import type { Logger } from '../src/core/log.js';
import { quoteIdent, quoteQualified } from '../src/core/sql.js';
import { createDecompressor } from '../src/segment/compression.js';
import type { RelationDef } from '../src/segment/format.js';
import type { Store } from '../src/store/store.js';
import { copyField } from './copy-text.js';
import { UNCHANGED, type EffectSink, type TableEffect, type Value } from './planner.js';
import { baseDdl, keyDdl } from './schema.js';
import { isConstant } from '../src/base/catalog.js';
import type { CapturedDdl, TableSnapshot } from '../src/source/ddl-capture.js';

export interface TableRows {
  schema: string;
  name: string;
  rows: number;
}

const TAB = Buffer.from('\t');
const NEWLINE = Buffer.from('\n');
/** The common start of a staging line: one row, no unchanged values. */
const PREFIX = { d: Buffer.from('d\t1\t\\N'), u: Buffer.from('u\t1\t\\N'), i: Buffer.from('i\t1\t\\N') };

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
}

/**
 * Applies net effects to the replay database in bulk: each table's rows go into a staging table
 * with COPY, then one set-based DELETE, UPDATE and INSERT. Tables are created from the base's
 * schema, or from Relation messages for tables created later, and follow schema changes.
 */
export class Applier implements EffectSink {
  private readonly tables = new Map<number, TargetTable>();
  changesApplied = 0;
  private readonly warned = new Set<string>();
  private only: Set<string> | undefined;

  constructor(
    private readonly client: pg.Client,
    private readonly log: Logger,
  ) {}

  /** Creates the base's tables, loads their rows (checking each file's checksum), then adds keys. */
  async loadBase(store: Store, base: BaseRef, manifest: BaseManifest, schema: BaseSchema, only?: Set<string>): Promise<void> {
    this.only = only;
    const tables = schema.tables.filter((t) => !only || only.has(`${t.schema}.${t.name}`));
    for (const sql of baseDdl({ ...schema, tables })) await this.client.query(sql);
    for (const t of tables) {
      const entry = manifest.tables.find((m) => m.file === t.file);
      if (!entry) throw new UserError(`${store.description}/${base.prefix}manifest.json lists no file for ${quoteQualified(t.schema, t.name)}`, 'run pgtape verify');
      const hash = createHash('sha256');
      const tap = new Transform({
        transform(chunk: Buffer, _e, cb) {
          hash.update(chunk);
          cb(null, chunk);
        },
      });
      const columns = t.columns.map((c) => quoteIdent(c.name)).join(', ');
      await pipeline(
        store.read(base.prefix + t.file),
        tap,
        createDecompressor('br'),
        this.client.query(copyFrom(`copy ${quoteQualified(t.schema, t.name)} (${columns}) from stdin`)),
      );
      if (hash.digest('hex') !== entry.sha256) {
        throw new UserError(`${store.description}/${base.prefix}${t.file} (${t.schema}.${t.name}) does not match the checksum in its manifest`, 'the base is damaged: replay from another base, or take a new one');
      }
      for (const sql of keyDdl(t)) await this.client.query(sql);
      this.tables.set(t.oid, { schema: t.schema, name: t.name, columns: t.columns.map((c) => ({ name: c.name, attnum: c.attnum, typeOid: c.typeOid, typmod: c.typmod, type: c.type })) });
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
    const same = t.columns.length === rel.columns.length && rel.columns.every((c, i) => c.name === t.columns[i]!.name && c.typeOid === t.columns[i]!.typeOid && c.typmod === t.columns[i]!.typmod);
    if (!same) await this.reshape(t, rel);
    return t;
  }

  /** A table made in the replay: its schema, its columns (`defs`), its key and replica identity. */
  private async createTable(oid: number, schema: string, name: string, columns: TargetColumn[], defs: string[], keys: string[], replicaIdentity: string): Promise<TargetTable> {
    const target = quoteQualified(schema, name);
    if (keys.length) defs = [...defs, `primary key (${keys.map(quoteIdent).join(', ')})`];
    await this.client.query(`create schema if not exists ${quoteIdent(schema)}`);
    await this.client.query(`create table ${target} (${defs.join(', ')})`);
    if (replicaIdentity === 'f') await this.client.query(`alter table ${target} replica identity full`);
    const t: TargetTable = { schema, name, columns };
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
    for (const e of effects) {
      const t = await this.table(e.relation);
      const stage = await this.stage(e.relation.oid, t);
      const parts: Buffer[] = [];
      const push = (op: 'd' | 'u' | 'i', n: number, row: Value[]) => {
        const unchanged = row.includes(UNCHANGED);
        parts.push(
          n === 1 && !unchanged ? PREFIX[op] : Buffer.from(`${op}\t${n}\t${unchanged ? row.map((v) => (v === UNCHANGED ? 'u' : '.')).join('') : '\\N'}`),
        );
        for (const v of row) parts.push(TAB, copyField(v));
        parts.push(NEWLINE);
      };
      for (const r of e.deletes) push('d', 1, r);
      for (const r of e.updates) push('u', 1, r);
      for (const r of e.inserts) push('i', 1, r);
      for (const c of e.counts) push(c.delta < 0 ? 'd' : 'i', Math.abs(c.delta), c.row);
      await this.copyInto(stage, parts);

      const target = quoteQualified(t.schema, t.name);
      const cast = (i: number) => `s.c${i}::${t.columns[i]!.type}`;
      const names = t.columns.map((c) => quoteIdent(c.name));
      if (e.keyed) {
        const keys = e.relation.columns.flatMap((c, i) => (c.key ? [i] : []));
        const match = keys.map((i) => `t.${names[i]} = ${cast(i)}`).join(' and ');
        if (e.deletes.length) await this.client.query(`delete from ${target} t using ${stage} s where s.op = 'd' and ${match}`);
        if (e.updates.length) {
          const masked = e.updates.some((r) => r.includes(UNCHANGED));
          const set = t.columns
            .map((_, i) => i)
            .filter((i) => !keys.includes(i))
            .map((i) => `${names[i]} = ${masked ? `case when substr(s.u, ${i + 1}, 1) = 'u' then t.${names[i]} else ${cast(i)} end` : cast(i)}`);
          if (set.length) await this.client.query(`update ${target} t set ${set.join(', ')} from ${stage} s where s.op = 'u' and ${match}`);
        }
      } else if (e.counts.some((c) => c.delta < 0)) {
        // Whole-row matching, duplicates included: remove n of the equal rows. Rows are compared
        // through their text form in this session, so types without equality (json, point) match too.
        const image = (prefix: string, i: number) => (prefix === 't' ? `t2.${names[i]}::text` : `(${cast(i)})::text`);
        const row = (p: string) => `json_build_array(${t.columns.map((_, i) => image(p, i)).join(', ')})::text`;
        await this.client.query(
          `delete from ${target} t using (
             select x.tid from (
               select t2.ctid as tid, s.n, row_number() over (partition by s.ctid order by t2.ctid) as rn
                 from ${target} t2 join ${stage} s on s.op = 'd' and ${row('t')} = ${row('s')}
             ) x where x.rn <= x.n
           ) d where t.ctid = d.tid`,
        );
      }
      const inserts = e.inserts.length || e.counts.some((c) => c.delta > 0);
      if (inserts) {
        await this.client.query(
          `insert into ${target} (${names.join(', ')}) select ${t.columns.map((_, i) => cast(i)).join(', ')} from ${stage} s cross join lateral generate_series(1, s.n) where s.op = 'i'`,
        );
      }
      const changed = e.deletes.length + e.updates.length + e.inserts.length + e.counts.reduce((n, c) => n + Math.abs(c.delta), 0);
      this.changesApplied += changed;
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

  private async copyInto(stage: string, parts: Buffer[]): Promise<void> {
    const stream = this.client.query(copyFrom(`copy ${stage} from stdin`));
    const done = new Promise<void>((resolve, reject) => {
      stream.on('finish', resolve);
      stream.on('error', reject);
    });
    const chunk = 16_384;
    for (let i = 0; i < parts.length; i += chunk) {
      if (!stream.write(Buffer.concat(parts.slice(i, i + chunk)))) await new Promise((r) => stream.once('drain', r));
    }
    stream.end();
    await done;
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
      if (this.only && !this.only.has(`${snapshot.schema}.${snapshot.name}`)) continue;
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
    }
    await this.client.query(`truncate ${targets.join(', ')}`);
    this.changesApplied += relations.length;
  }

  async redefine(_previous: RelationDef, next: RelationDef): Promise<void> {
    await this.table(next);
  }

  async updateKey(rel: RelationDef, oldKey: Value[], row: Value[]): Promise<void> {
    const t = await this.table(rel);
    const params: (string | null)[] = [];
    const param = (v: Value) => {
      params.push(v === null || v === UNCHANGED ? null : v.toString('utf8'));
      return `$${params.length}`;
    };
    const set = t.columns.flatMap((c, i) => (row[i] === UNCHANGED ? [] : [`${quoteIdent(c.name)} = ${param(row[i]!)}::${c.type}`]));
    const where = rel.columns.flatMap((c, i) => (c.key ? [`${quoteIdent(c.name)} = ${param(oldKey[i]!)}::${t.columns[i]!.type}`] : []));
    await this.client.query(`update ${quoteQualified(t.schema, t.name)} set ${set.join(', ')} where ${where.join(' and ')}`, params);
    this.changesApplied++;
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
      const { rows } = await this.client.query<{ n: string }>(`select count(*)::text as n from ${quoteQualified(t.schema, t.name)}`);
      out.push({ schema: t.schema, name: t.name, rows: Number(rows[0]!.n) });
    }
    return out;
  }
}
