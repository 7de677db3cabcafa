import type pg from 'pg';
import { manifestEntry, type BaseManifest, type BaseRef, type BaseSchema, type BaseTable } from '../src/log/bases.js';
import { mapLimit } from '../src/core/concurrency.js';
import type { Logger } from '../src/core/log.js';
import { quoteQualified } from '../src/core/sql.js';
import { sameColumnTypes, type RelationDef } from '../src/segment/format.js';
import type { Store } from '../src/store/store.js';
import { appendInserts, loadBaseTable } from './base-merge.js';
import type { TableEffect } from './net-effect.js';
import type { EffectSink } from './planner.js';
import { baseDdl, keyDdl } from './schema.js';
import type { ReplayValue } from './values.js';
import type { CapturedDdl } from '../src/source/ddl-capture.js';
import { EnumLabels, type DetachedPartitions } from './enum-labels.js';
import { SchemaRestore, type BaseNames } from './restore-schema.js';
import { TargetTables, type SourceTable } from './target-tables.js';
import type { JobPool } from './jobs.js';
import { SetBasedWriter } from './set-based.js';

export interface TableRows {
  schema: string;
  name: string;
  rows: number;
}

/** Where the replay starts: the base, loaded with the first batch. */
export interface BaseToLoad {
  store: Store;
  base: BaseRef;
  manifest: BaseManifest;
  schema: BaseSchema;
  /** Only these tables (`schema.table`); all when undefined. */
  only?: Set<string>;
  /** Enum labels values use before the replay's types had them (learned by an attempt that failed on them). */
  labels?: EnumLabels;
  /** Partitions the source detached after the base (learned by an attempt that failed on a row outside one). */
  detached?: DetachedPartitions;
  /**
   * Connections for parallel jobs, in a cluster nobody else uses: the schema's pre-data is then
   * committed before the tables are loaded on them, each in a transaction of its own.
   */
  pool?: JobPool;
}

/**
 * Applies net effects to the replay database in bulk: the first batch merged into the base's
 * load, then each table's rows into a staging table with COPY and one set-based DELETE, UPDATE
 * and INSERT. Which table a relation's rows go to, and its shape, is TargetTables' business.
 */
export class Applier implements EffectSink {
  private readonly tables: TargetTables;
  private readonly labels: EnumLabels;
  /** The base's whole schema (format 2); older bases carry their tables' shapes only. */
  private readonly restore: SchemaRestore | undefined;
  private baseLoaded = false;
  private readonly writer: SetBasedWriter;

  constructor(
    private readonly client: pg.Client,
    private readonly base: BaseToLoad,
    private readonly log: Logger,
  ) {
    this.labels = base.labels ?? new EnumLabels();
    this.tables = new TargetTables(client, log, base.only, this.labels, base.schema.serverVersion >= 180000);
    this.writer = new SetBasedWriter(client, this.tables);
    this.restore = base.schema.ddl
      ? new SchemaRestore(
          client,
          base.schema.ddl,
          log,
          base.only,
          (fields, message) => this.tables.note(`${message}:${JSON.stringify(fields)}`, fields, message),
          (name) => {
            // The base names its objects with quoteQualified.
            const e = base.schema.enums.find((x) => quoteQualified(x.schema, x.name) === name);
            return e && this.labels.createEnum(e.schema, e.name, e.labels);
          },
          base.schema.tables,
        )
      : undefined;
  }

  /**
   * Starts making the base's schema and loading the tables the log does not change in place
   * (inserts only, or nothing), while the log is folded (the server loads them on its core
   * meanwhile): their base rows are final as they are. The first batch then appends their
   * inserts (loadBase). Failures surface there.
   */
  preload(changedInPlace: Set<number> | undefined): void {
    if (!changedInPlace) return;
    const final = new Set(this.baseTables.filter((t) => !changedInPlace.has(t.oid)).map((t) => t.oid));
    if (!final.size) return;
    this.preloading = this.schemaAndPreload(final);
    this.preloading.catch(() => {});
  }

  private preloading: Promise<Map<number, number>> | undefined;

  /** Once nothing the preload started still uses the connection (a failed replay rolls back after it). */
  async settled(): Promise<void> {
    await this.preloading?.catch(() => {});
  }

  private get baseTables() {
    const { schema, only } = this.base;
    return schema.tables.filter((t) => !only || only.has(`${t.schema}.${t.name}`));
  }

  /** The base's schema before its rows; then the rows of the tables given, loaded as they are. Returns their row counts. */
  private async schemaAndPreload(final: Set<number>): Promise<Map<number, number>> {
    const { schema } = this.base;
    if (this.restore) await this.restore.preData();
    else for (const sql of baseDdl({ ...schema, tables: this.baseTables }, this.labels)) await this.client.query(sql);
    await this.detachLearned();
    // The jobs' connections see the tables from here on.
    if (this.base.pool) await this.client.query('commit; begin');
    const tables = this.baseTables.filter((t) => final.has(t.oid));
    const rows = await this.eachTable(
      tables,
      () => true,
      async (client, t) => {
        const started = Date.now();
        const n = await loadBaseTable(client, this.base.store, this.base.base, t, this.manifestEntry(t));
        this.log.debug(
          { table: `${t.schema}.${t.name}`, rows: n, loadMs: Date.now() - started },
          'base table loaded while the log is folded',
        );
        return n;
      },
    );
    return new Map(tables.map((t, i) => [t.oid, rows[i]!]));
  }

  /**
   * `fn` for each table: in this session, one after the other, or with jobs in parallel, each in
   * a transaction of its own that starts by emptying a table still empty (`empty`) — one made
   * empty in its loading transaction is written without WAL at the loading cluster's wal_level minimal.
   * The largest tables (base rows and rows to merge, `merging`) start first, as pg_restore -j
   * orders them: a large table started last would keep one job busy while the others idle.
   */
  private async eachTable<R>(
    tables: BaseTable[],
    empty: (t: BaseTable) => boolean,
    fn: (client: pg.Client, t: BaseTable) => Promise<R>,
    merging: (t: BaseTable) => number = () => 0,
  ): Promise<R[]> {
    const pool = this.base.pool;
    if (!pool) return mapLimit(tables, 1, (t) => fn(this.client, t));
    const size = (t: BaseTable) => (empty(t) ? this.manifestEntry(t).rows : 0) + merging(t);
    const order = tables.map((t, i) => ({ i, size: size(t) })).sort((a, b) => b.size - a.size);
    const results = await pool.each(order, async (client, { i }) => {
      const t = tables[i]!;
      await client.query('begin');
      const table = quoteQualified(t.schema, t.name);
      // A partitioned table (a root published through it) holds no rows of its own to empty.
      const plain = async () =>
        (await client.query<{ r: boolean }>(`select relkind = 'r' as r from pg_class where oid = $1::regclass`, [table])).rows[0]?.r;
      if (empty(t) && (await plain())) await client.query(`truncate only ${table}`);
      const result = await fn(client, t);
      await client.query('commit');
      return result;
    });
    const out = new Array<R>(tables.length);
    order.forEach(({ i }, k) => (out[i] = results[k]!));
    return out;
  }

  private manifestEntry(t: { file: string; schema: string; name: string }): BaseManifest['tables'][number] {
    return manifestEntry(this.base.store, this.base.base, this.base.manifest, t);
  }

  /**
   * The first batch: creates the base's tables (unless the preload did), loads each with the batch's effect on it merged
   * in where the shapes agree (checking each file's checksum), adds keys, then applies the rest
   * of the batch set-based.
   */
  private async loadBase(effects: TableEffect[]): Promise<void> {
    const { store, base } = this.base;
    const tables = this.baseTables;
    const preloaded = await (this.preloading ?? this.schemaAndPreload(new Set()));
    for (const l of this.labels.guessed()) {
      this.tables.note(
        `label:${l.type}:${l.label}`,
        l,
        'a value uses an enum label added after the base: the type is made with it at its end (without --capture-ddl, the order of its labels may differ from the source)',
      );
    }
    const byOid = new Map(effects.map((e) => [e.relation.oid, e]));
    const counts = await this.eachTable(
      tables,
      (t) => !preloaded.has(t.oid),
      async (client, t) => {
        const entry = this.manifestEntry(t);
        const effect = byOid.get(t.oid);
        const merged = effect && sameColumnTypes(t.columns, effect.relation.columns) ? effect : undefined;
        const started = Date.now();
        const already = preloaded.get(t.oid);
        // Loaded while the log was folded: its inserts follow (any other change is left to the set-based statements).
        const rows =
          already === undefined
            ? await loadBaseTable(client, store, base, t, entry, merged)
            : already + (merged ? await appendInserts(client, t, merged) : 0);
        const loaded = Date.now();
        if (!this.restore) for (const sql of keyDdl(t)) await client.query(sql);
        this.log.debug(
          {
            table: `${t.schema}.${t.name}`,
            rows,
            merged: merged?.changes ?? 0,
            leftForSetBased: effect?.pending() ?? 0,
            loadMs: loaded - started,
            keyMs: Date.now() - loaded,
          },
          'base table loaded',
        );
        return rows;
      },
      (t) => byOid.get(t.oid)?.size ?? 0,
    );
    tables.forEach((t, i) => this.tables.adopt(t, counts[i]!));
    await this.restore?.keys(this.base.pool);
  }

  /**
   * Partitions an earlier attempt found the source detached: detached before any row is loaded
   * (a row the first batch merges into one may lie outside its bound), their indexes then made
   * on them alone, not attached to their parent's — as the source's are once detached.
   */
  private async detachLearned(): Promise<void> {
    const learned = this.base.detached?.tables ?? [];
    this.restore?.detachedPartitions(learned.map((p) => `${p.schema}.${p.name}`));
    for (const p of learned) {
      const table = quoteQualified(p.schema, p.name);
      const { rows } = await this.client.query<{ parent: string | null }>(
        `select (select inhparent::regclass::text from pg_inherits where inhrelid = c.oid) as parent from pg_class c where c.oid = $1::regclass and c.relispartition`,
        [table],
      );
      if (rows[0]?.parent) await this.client.query(`alter table ${rows[0].parent} detach partition ${table}`);
      this.tables.note(
        `detached:${table}`,
        { table: `${p.schema}.${p.name}` },
        'a row outside its partition: the source detached it after the base (without --capture-ddl, when is unknown: it is detached from the start)',
      );
    }
  }

  /** After the last change: the base loaded if no change came, and the rest of its schema restored. */
  async finish(): Promise<void> {
    if (!this.baseLoaded) {
      this.baseLoaded = true;
      await this.loadBase([]);
    }
    const dropped = await this.tables.settleAside();
    const restore = this.restore;
    if (restore) {
      restore.leaveOut(dropped);
      await this.tables.underBaseNames(async (unreachable) => {
        // With jobs, what this session changed is committed first: the jobs' index builds would wait for its locks.
        if (this.base.pool) await this.client.query('commit; begin');
        await restore.finish(this.base.pool, unreachable);
      });
      await restore.setRecordedSequences();
    }
    // After the base's own: foreign keys and triggers made after the base, as they last were.
    await this.tables.finishForeignKeys();
    // Partitions' clones of the keys made just now (a captured parent's keys are made here, after
    // the base's renames ran) under their source names: the base's partitions', the captured
    // ones', then the base's again, for a base partition under a captured one, with the base's
    // comments that waited for those keys. The base's name their tables, hence the window.
    const baseClones = restore?.clonesToName() ? restore : undefined;
    if (baseClones) await this.tables.underBaseNames(() => baseClones.inheritedKeyNames());
    await this.tables.finishInheritedKeys();
    if (baseClones)
      await this.tables.underBaseNames(async () => {
        await baseClones.inheritedKeyNames();
        await baseClones.keyCommentsAgain();
      });
    await this.tables.finishTypedTables();
    await this.tables.finishIndexAttachments();
    await restore?.foreignKeyComments((oid) => this.tables.nameNow(oid));
    await this.tables.finishObjects();
  }

  async apply(effects: TableEffect[]): Promise<void> {
    if (!this.baseLoaded) {
      this.baseLoaded = true;
      await this.loadBase(effects);
    }
    for (const e of effects) {
      // Its Relation message is followed (a rename) even when the base's load took every change of it.
      await this.tables.of(e.relation);
      await this.writer.apply(e);
    }
  }

  /** Where the replay may differ from the source (said as it went). */
  get warnings(): TargetTables['warnings'] {
    return this.tables.warnings;
  }

  sequences(values: Record<string, string>): void {
    this.restore?.recorded(values);
  }

  /** DDL captured by `archive --capture-ddl`, at its point. */
  async ddl(captured: CapturedDdl): Promise<void> {
    this.writer.forgetIdentities();
    const names: BaseNames = {
      byOid: (oid) => {
        const t = this.base.schema.tables.find((b) => b.oid === oid);
        return t ? `${t.schema}.${t.name}` : this.tables.madeSinceBase(oid) ? null : undefined;
      },
      byName: (schema, name) => this.tables.baseNameOf(schema, name),
    };
    this.restore?.dropped(captured, names);
    await this.tables.apply(captured);
    this.restore?.shaped(captured, names);
  }

  async truncate(relations: RelationDef[]): Promise<void> {
    const targets: string[] = [];
    for (const r of relations) {
      const t = await this.tables.of(r);
      targets.push(quoteQualified(t.schema, t.name));
      t.rows = 0;
    }
    await this.client.query(`truncate ${targets.join(', ')}`);
  }

  async redefine(_previous: RelationDef, next: RelationDef): Promise<void> {
    this.writer.forgetIdentities();
    await this.tables.of(next);
  }

  updateKey(rel: RelationDef, oldKey: ReplayValue[], row: ReplayValue[]): Promise<void> {
    return this.writer.updateKey(rel, oldKey, row);
  }

  /** The source's oid of each table replayed, by name (see TargetTables.sourceOids). */
  sourceOids(): Map<string, SourceTable> {
    return this.tables.sourceOids();
  }

  /** Final row counts of the replayed tables. */
  async countRows(): Promise<TableRows[]> {
    const out: TableRows[] = [];
    for (const t of this.tables.all()) {
      let rows = t.rows;
      if (rows === undefined)
        rows = Number(
          (await this.client.query<{ n: string }>(`select count(*)::text as n from ${quoteQualified(t.schema, t.name)}`)).rows[0]!.n,
        );
      out.push({ schema: t.schema, name: t.name, rows });
    }
    return out;
  }
}
