import type pg from 'pg';
import type { Logger } from '../src/core/log.js';
import { quoteIdent, quoteQualified } from '../src/core/sql.js';
import { isConstant } from '../src/base/published-schema.js';
import type { BaseTable } from '../src/log/bases.js';
import { sameColumnTypes, type RelationDef } from '../src/segment/format.js';
import type { CapturedDdl, TableSnapshot } from '../src/source/ddl-capture.js';

export interface TargetColumn {
  name: string;
  /** The source's column number, where known (a base, captured DDL): how renames are recognized. */
  attnum?: number;
  typeOid: number;
  typmod: number;
  /** The type as SQL, for casts from text. */
  type: string;
}

export interface TargetTable {
  schema: string;
  name: string;
  columns: TargetColumn[];
  /** Column count the staging table was made for. */
  stagedColumns?: number;
  /** Rows it holds, while every statement's count is known. */
  rows?: number;
}

/**
 * The tables of the replay database, following the source's shape (docs/ARCHITECTURE.md, "The
 * replay path"): made from the base's schema, or from a Relation message for a table created
 * later; moved, renamed, reshaped or dropped as Relation messages and captured DDL say. The
 * applier asks for the target table of each relation before it writes rows into it.
 */
export class TargetTables {
  private readonly tables = new Map<number, TargetTable>();
  private readonly warned = new Set<string>();

  constructor(
    private readonly client: pg.Client,
    private readonly log: Logger,
    /** Only these tables (`schema.table`); all when undefined. */
    private readonly only: Set<string> | undefined,
  ) {}

  /** A base table, made and loaded by the applier, from here on followed like any other. */
  adopt(t: BaseTable, rows: number): void {
    this.tables.set(t.oid, {
      schema: t.schema,
      name: t.name,
      columns: t.columns.map((c) => ({ name: c.name, attnum: c.attnum, typeOid: c.typeOid, typmod: c.typmod, type: c.type })),
      rows,
    });
  }

  all(): Iterable<TargetTable> {
    return this.tables.values();
  }

  /** The target table of a relation, created or brought to the relation's shape first. */
  async of(rel: RelationDef): Promise<TargetTable> {
    const t = this.tables.get(rel.oid);
    if (!t) {
      const columns = await this.columnsOf(rel);
      const keys = rel.replicaIdentity === 'f' ? [] : rel.columns.filter((c) => c.key).map((c) => c.name);
      this.warnOnce(
        `created:${rel.oid}`,
        { table: `${rel.schema}.${rel.name}` },
        'table created after the base: made from its Relation message (no defaults, constraints or indexes beyond its key)',
      );
      return this.create(
        rel.oid,
        rel.schema,
        rel.name,
        columns,
        columns.map((c) => `${quoteIdent(c.name)} ${c.type}`),
        keys,
        rel.replicaIdentity,
      );
    }
    await this.move(t, rel.schema, rel.name);
    if (!sameColumnTypes(t.columns, rel.columns)) await this.reshape(t, rel);
    return t;
  }

  /** A table made in the replay: its schema, its columns (`defs`), its key and replica identity. */
  private async create(
    oid: number,
    schema: string,
    name: string,
    columns: TargetColumn[],
    defs: string[],
    keys: string[],
    replicaIdentity: string,
  ): Promise<TargetTable> {
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
  private async move(t: TargetTable, schema: string, name: string): Promise<void> {
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
        await this.client.query(
          `alter table ${target} alter column ${quoteIdent(w.name)} type ${w.type} using ${quoteIdent(w.name)}::text::${w.type}`,
        );
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
        this.warnOnce(
          `type:${c.typeName}`,
          { type: c.typeName, column: `${rel.schema}.${rel.name}.${c.name}` },
          'type unknown to the replay database: the column is replayed as text',
        );
        type = 'text';
      }
      out.push({ name: c.name, typeOid: c.typeOid, typmod: c.typmod, type });
    }
    return out;
  }

  /** DDL captured by `archive --capture-ddl`, at its point: tables made, reshaped, renamed or dropped. */
  async apply(captured: CapturedDdl): Promise<void> {
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
    const columns: TargetColumn[] = s.columns.map((c) => ({
      name: c.name,
      attnum: c.attnum,
      typeOid: c.typeOid,
      typmod: c.typmod,
      type: c.type,
    }));
    const constant = (d: string | null) => (d !== null && isConstant(d) ? d : undefined);
    const q = (sql: string) => this.client.query(sql);
    const t = this.tables.get(s.oid);
    if (!t) {
      const defs = s.columns.map(
        (c) => `${quoteIdent(c.name)} ${c.type}${c.notNull ? ' not null' : ''}${constant(c.default) ? ` default ${c.default}` : ''}`,
      );
      await this.create(s.oid, s.schema, s.name, columns, defs, s.primaryKey, s.replicaIdentity);
    } else {
      await this.move(t, s.schema, s.name);
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
        this.warnOnce(
          `index:${sql}`,
          { index: sql, err: (err as Error).message },
          'an index captured from the source could not be made in the replay',
        );
      }
    }
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, message);
  }
}
