import { rm } from 'node:fs/promises';
import {
  manifestEntry,
  readBase,
  type BaseFileEntry,
  type BaseManifest,
  type BaseRef,
  type BaseSchema,
  type BaseTable,
} from '../../log/bases.js';
import { UserError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { formatLsn } from '../../core/lsn.js';
import { createSpoolDir } from '../../core/spool-dir.js';
import type { RelationDef, SegmentHeader } from '../../segment/format.js';
import { eachEntryIn } from '../../log/change-log.js';
import type { Store } from '../../store/store.js';
import { eachBaseLine } from './base-rows.js';
import { sizeParts } from './parts.js';
import { DiffHelper } from './diff-helper.js';
import { GeneratedColumns } from './generated-columns.js';
import { ColumnLists, hashText, imageDef, imageOps, opsOf } from './ops.js';
import { Backslashes, copyLineRow, image, keyNames, keyText, LineKeys, LineRow, sharedColumns, type RowDiff } from './rows.js';
import { sameTableShape, shapesAt, shapeOf, type TableShape } from './table-shape.js';
import { TableDiffer, WholeTableNeeded, type Change, type RowDiffCounts } from './table.js';
import {
  headerOf,
  indexArchive,
  loadHeaders,
  refuseUnknownTables,
  segmentsIn,
  type ArchiveIndex,
  type IndexedSegment,
} from '../../log/archive-index.js';
import { beforeFirstBase, firstBaseDescription, inRange, resolveRange, type LogRange } from '../../log/resolve.js';
import { describeTarget, type Target } from '../../log/target.js';
import { displayQualified } from '../../core/sql.js';
import { DDL_PREFIX, SEQUENCES_PREFIX } from '../../source/logical-messages.js';
import { valuesAfterRenames } from '../../source/ddl-statements.js';
import { schemaPatch, type CapturedChange, type SchemaPatch } from './schema-patch.js';
import { parseCapturedDdl, type CapturedDdl, type TableSnapshot } from '../../source/ddl-capture.js';
import { describeDdl } from '../transactions.js';

export type { RowValues } from '../row-text.js';
export type { RowDiff } from './rows.js';
export type { RowDiffCounts } from './table.js';
export type { ColumnShape, TableShape } from './table-shape.js';

export interface TableDiff {
  oid: number;
  /** The table as it is at --to; `before` as it was at --from (null: it did not exist then). */
  after: TableShape;
  before: TableShape | null;
  truncated: boolean;
  counts: RowDiffCounts;
  /**
   * The rows that differ (of one kind, or all), made or read back as they are iterated: a
   * million RowDiff objects at once would be most of diff's memory. Each call iterates anew.
   */
  rows: (change?: Change) => Iterable<RowDiff>;
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
  /** Schema changes captured DDL recorded in the range, in order (archive --capture-ddl). */
  schemaChanges: { lsn: string; what: string }[];
  /** Tables whose rows DDL rewrote in the range: the log holds their new values only as captured images. */
  rewritten: string[];
  /** The schema changes as statements, for --format sql (where DiffOptions.schemaPatch asked for them and the range has any). */
  schemaPatch?: SchemaPatch;
  /** Removes what the diff spilled to disk; the rows cannot be read after. */
  close: () => Promise<void>;
}

export interface DiffOptions {
  store: Store;
  from: Target;
  to: Target;
  tables?: Set<string>;
  /** Memory the comparison may take; a table whose difference needs more is spilled to disk in parts. */
  memoryBytes?: number;
  /** False when only the counts are wanted (--summary): spilled tables do not keep their rows. */
  keepRows?: boolean;
  /** Write the range's captured schema changes as statements (diff --format sql). */
  schemaPatch?: boolean;
  log: Logger;
}

/**
 * The net difference between two points, row by row (issue 5). The range's changes are folded
 * per key; the rows as they were at --from are needed only for keys the range updated or deleted
 * (and whole tables it truncated): they come from the log since the base and, for rows untouched
 * since, straight from the base's COPY files. No database is involved. A table whose difference
 * would take more than its share of `memoryBytes` is split by key hash into parts spilled to
 * disk and compared one part at a time.
 */
export async function diffPoints(options: DiffOptions): Promise<DiffResult> {
  const { store, log } = options;
  const index = await indexArchive(store, { requireBase: false, lostTail: true });
  const range = await resolveRange(index, options.from, options.to);
  for (const [option, target] of [
    ['--from', options.from],
    ['--to', options.to],
  ] as const) {
    if (await beforeFirstBase(index, target)) {
      throw new UserError(
        `${option} ${describeTarget(target!)} is before the archive begins: no state of the database is known there`,
        `${await firstBaseDescription(index)}; compare from that point on`,
      );
    }
  }
  await refuseUnknownTables(index, options.tables, range);
  const base = range.after === undefined ? undefined : index.bases.filter((b) => b.lsn <= range.after! + 1n).at(-1);
  const baseFiles = base ? await readBase(store, base) : undefined;
  const baseSchema = baseFiles?.schema;
  // A table truncated in the range is compared with all its rows at --from: the base's count them.
  const baseRows = new Map<number, number>();
  for (const t of baseSchema?.tables ?? []) baseRows.set(t.oid, baseFiles!.manifest.tables.find((m) => m.file === t.file)?.rows ?? 0);
  // The headers of the range's segments size the folds.
  // Parts compared two at a time (a helper thread beside this one) share the memory a part may take.
  const helped = DiffHelper.available();
  const partCounts = await sizeParts(
    headersOf(range.segments({ headers: true })),
    options.memoryBytes ?? 512 << 20,
    baseRows,
    helped ? 2 : 1,
  );
  const dir = await createSpoolDir();
  const close = () => rm(dir, { recursive: true, force: true });
  try {
    // A table found to need diffing whole (rare: see WholeTableNeeded) restarts the passes.
    const whole = new Set<number>();
    for (;;) {
      try {
        return await diffOnce({
          ...options,
          index,
          range,
          base,
          baseSchema,
          baseManifest: baseFiles?.manifest,
          dir,
          close,
          helped,
          parts: (oid) => (whole.has(oid) ? 1 : (partCounts.get(oid)?.parts ?? 1)),
          expected: (oid) => partCounts.get(oid)?.changes ?? 0,
        });
      } catch (err) {
        if (!(err instanceof WholeTableNeeded) || whole.has(err.oid)) throw err;
        log.info({ table: err.oid }, 'diff compares a table whole: a key change takes values from the old key, or the key columns change');
        whole.add(err.oid);
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
}

function compareNames(a: { schema: string; name: string }, b: { schema: string; name: string }): number {
  return a.schema < b.schema ? -1 : a.schema > b.schema ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

async function* headersOf(segments: AsyncIterable<IndexedSegment>): AsyncGenerator<SegmentHeader> {
  for await (const s of segments) yield headerOf(s);
}

interface Pass extends DiffOptions {
  index: ArchiveIndex;
  range: LogRange;
  base: BaseRef | undefined;
  baseSchema: BaseSchema | undefined;
  baseManifest: BaseManifest | undefined;
  dir: string;
  close: () => Promise<void>;
  /** Spilled tables' parts are compared on two threads. */
  helped: boolean;
  parts: (oid: number) => number;
  expected: (oid: number) => number;
}

async function diffOnce(p: Pass): Promise<DiffResult> {
  const { store, index, range, base, baseSchema, log } = p;
  const wanted = (def: RelationDef) => !p.tables || p.tables.has(`${def.schema}.${def.name}`);
  const lists = new ColumnLists();
  const tables = new Map<number, TableDiffer>();
  const helper = p.helped ? new DiffHelper() : undefined;
  try {
    // 1. Fold the range (or spill it, by key, to the parts of large tables).
    const table = (def: RelationDef): TableDiffer => {
      let t = tables.get(def.oid);
      if (!t) {
        tables.set(def.oid, (t = new TableDiffer(def, p.parts(def.oid), p.expected(def.oid), p.dir, lists)));
        if (t.spilled) helper?.warm();
      }
      // Keys hashed with other key columns would not meet in one part.
      if (t.def !== def && t.spilled && keyNames(def).join('\u0000') !== keyNames(t.def).join('\u0000'))
        throw new WholeTableNeeded(def.oid);
      t.def = def;
      return t;
    };
    const schemaChanges: DiffResult['schemaChanges'] = [];
    const rewritten = new Set<string>();
    const captures: CapturedChange[] = [];
    const snapshots = new Map<number, TableSnapshot>();
    let sequences: Record<string, string> | undefined;
    const generated = new GeneratedColumns(baseSchema);
    await eachEntryIn(
      store,
      range.segments(),
      (lsn) => inRange(range, lsn),
      (e, commitLsn) => {
        if (e.kind === 'message' && e.prefix === DDL_PREFIX) {
          const captured = parseCapturedDdl(e.content);
          generated.learn(captured);
          const what = describeDdl(captured);
          if (what) schemaChanges.push({ lsn: formatLsn(commitLsn), what });
          for (const s of captured.tables ?? []) snapshots.set(s.oid, s);
          // A sequence renamed since its value was recorded: the value goes with it.
          if (sequences) sequences = valuesAfterRenames(sequences, captured);
          const img = captured.image;
          if (img && (!p.tables || p.tables.has(`${img.schema}.${img.name}`))) {
            const def = tables.get(img.oid)?.def ?? imageDef(snapshots.get(img.oid));
            // Archives before images carried text: their rows are not comparable with the log's, said instead.
            if (!img.columns || !def) rewritten.add(displayQualified(img.schema, img.name));
            else imageOps(table(def), img);
          } else if (p.schemaPatch && !captured.image)
            captures.push({ lsn: formatLsn(commitLsn), captured: onlyTables(captured, p.tables) });
        } else if (e.kind === 'message' && e.prefix === SEQUENCES_PREFIX) {
          if (p.schemaPatch) sequences = { ...sequences, ...(JSON.parse(e.content.toString('utf8')) as Record<string, string>) };
        } else if (e.kind === 'truncate') {
          for (const r of e.relations) if (wanted(r)) table(generated.relation(r)).range({ kind: 'truncate', oid: r.oid });
        } else if ('relation' in e && wanted(e.relation)) {
          const change = generated.entry(e);
          const t = table(change.relation);
          for (const op of opsOf(change, { keyed: t.keyed, spilled: t.spilled })) t.range(op);
        }
      },
    );

    log.debug({ tables: tables.size }, 'diff folded the range');
    // The tables as they were at --from: the names the patch follows renames from, the shapes compared.
    const captured = captures.flatMap((c) => [...(c.captured.tables ?? []), ...(c.captured.dropped ?? [])].map((t) => t.oid));
    const atFrom = await shapesAt(store, index, base, baseSchema, range.after, new Set([...tables.keys(), ...captured]));
    let patch: SchemaPatch | undefined;
    if (captures.length) {
      // One with no shape at --from is named by its first capture (SchemaPatch.table): named so
      // from the start, a schema renamed before it was made would take it along.
      const namesAtFrom = new Map<number, { schema: string; name: string }>();
      for (const oid of captured) {
        const shape = atFrom.get(oid);
        if (shape) namesAtFrom.set(oid, shape);
      }
      patch = schemaPatch(captures, namesAtFrom, sequences, baseColumnsAtFrom(baseSchema, atFrom));
    }

    // 2. The rows at --from the comparison needs: the base's, then the log's changes up to --from.
    const needing = new Map([...tables].filter(([, t]) => t.needsBefore()));
    const sources = ['change log'];
    if (needing.size && base && baseSchema) {
      sources.push(`base ${formatLsn(base.lsn)}`);
      await loadBefore(p, base, baseSchema, needing);
      log.info(
        { base: formatLsn(base.lsn), tables: needing.size, spilled: [...tables.values()].filter((t) => t.spilled).length },
        'diff read the rows at --from from the base and the log since',
      );
    } else log.info('diff from the change log alone');

    // 3. Compare.
    const missingBase = (): never => {
      throw new UserError(
        `the rows as they were at --from ${describeTarget(p.from)} are needed (the range updates or deletes them) but no base is at or before it`,
        'choose a --from at or after the first base (pgtape log shows the range)',
      );
    };
    const out: TableDiff[] = [];
    for (const t of tables.values()) await t.finish(base !== undefined, missingBase, p.keepRows ?? true, t.spilled ? helper : undefined);
    const spilled = [...tables.values()].filter((t) => t.spilled);
    if (spilled.length)
      log.debug(
        { parts: spilled.reduce((n, t) => n + t.partCount, 0), onHelper: spilled.reduce((n, t) => n + t.partsHelped, 0) },
        'diff compared the spilled parts',
      );
    for (const [oid, t] of tables) {
      const after = shapeOf(t.def);
      const before = atFrom.get(oid) ?? null;
      const c = t.counts;
      if (c.added + c.deleted + c.modified > 0 || t.truncated || !sameTableShape(before, after)) {
        out.push({ oid, after, before, truncated: t.truncated, counts: t.counts, rows: (change) => t.rows(change) });
      }
    }
    return {
      from: describeTarget(p.from),
      to: describeTarget(p.to),
      fromLsn: range.after === undefined ? null : formatLsn(range.after),
      toLsn: range.upTo === undefined ? null : formatLsn(range.upTo),
      sources,
      // In name order, as people look for them (the fold's order is the log's).
      tables: out.sort((a, b) => compareNames(a.after, b.after)),
      schemaChanges,
      rewritten: [...rewritten],
      ...(patch ? { schemaPatch: patch } : {}),
      close: async () => {
        for (const t of tables.values()) t.close();
        await p.close();
      },
    };
  } catch (err) {
    for (const t of tables.values()) t.close();
    throw err;
  } finally {
    await helper?.close();
  }
}

/**
 * The base's column numbers of each table whose columns at --from are still the base's, by name
 * and order (no rename between the base and --from could have moved a name to another column):
 * a rename that is the range's first captured shape of a table is then told from a drop and an add.
 */
function baseColumnsAtFrom(schema: BaseSchema | undefined, atFrom: Map<number, TableShape | null>): Map<number, Map<number, string>> {
  const out = new Map<number, Map<number, string>>();
  for (const t of schema?.tables ?? []) {
    const shape = atFrom.get(t.oid);
    const names = t.columns.map((c) => c.name);
    if (!shape || t.columns.some((c) => c.attnum === undefined) || shape.columns.map((c) => c.name).join('\u0000') !== names.join('\u0000'))
      continue;
    out.set(t.oid, new Map(t.columns.map((c) => [c.attnum!, c.name])));
  }
  return out;
}

/**
 * The rows at --from of the tables that need them: the base's (a line whose key is not needed is
 * skipped from its key fields, not parsed), then the changes between the base and --from.
 */
async function loadBefore(p: Pass, base: BaseRef, schema: BaseSchema, needing: Map<number, TableDiffer>): Promise<void> {
  for (const bt of schema.tables) {
    const t = needing.get(bt.oid);
    if (t) await feedBaseRows(p.store, base, bt, t, manifestEntry(p.store, base, p.baseManifest!, bt));
  }
  // Only segments that touched a needed table are read.
  const at = p.range.after!;
  const since = await loadHeaders(p.store, await segmentsIn(p.index, base.lsn - 1n, at));
  const segments = since.filter((s) => headerOf(s).firstCommitLsn <= at && headerOf(s).tables.some((t) => needing.has(t.oid)));
  const generated = new GeneratedColumns(schema);
  await eachEntryIn(
    p.store,
    segments,
    (lsn) => lsn >= base.lsn && lsn <= at,
    (e) => {
      if (e.kind === 'truncate') {
        for (const r of e.relations) needing.get(r.oid)?.before({ kind: 'truncate', oid: r.oid });
      } else if ('relation' in e) {
        const t = needing.get(e.relation.oid);
        if (t) for (const op of opsOf(generated.entry(e), { ...t.matching, spilled: t.spilled })) t.before(op);
      } else if (e.kind === 'message' && e.prefix === DDL_PREFIX && e.content.includes('"tables"')) {
        generated.learn(parseCapturedDdl(e.content));
      }
    },
  );
}

async function feedBaseRows(store: Store, base: BaseRef, bt: BaseTable, t: TableDiffer, entry: BaseFileEntry): Promise<void> {
  // The log's rows of the same shape share this list: rows compare as texts only within one list.
  const columns = sharedColumns(bt.columns.map((c) => c.name));
  const { keyed, keys } = t.matching;
  const positions = keys.map((k) => columns.indexOf(k));
  const lineKeys = keyed && !positions.some((i) => i < 0) ? new LineKeys(positions, columns.length) : undefined;
  const backslashes = new Backslashes();
  await eachBaseLine(store, base, bt, entry, (buf, start, end) => {
    const fieldsKey = lineKeys?.of(buf, start, end);
    // A spilled table's keys go by their hash (Bloom filter, part): it is computed once.
    const hash = fieldsKey !== undefined && t.spilled ? hashText(fieldsKey) : undefined;
    if (fieldsKey !== undefined && !t.mayNeed(fieldsKey, hash)) return;
    // Written to its part before the next line: copied there as bytes.
    const row =
      hash !== undefined && !backslashes.in(buf, start, end)
        ? new LineRow(columns, buf, start, end)
        : copyLineRow(buf.toString('utf8', start, end), columns);
    t.before(
      keyed
        ? { kind: 'insert', oid: bt.oid, row, key: fieldsKey ?? keyText(row, keys) }
        : { kind: 'add', oid: bt.oid, row, key: image(row) },
      hash,
    );
  });
}

/** With --table, the captured DDL of the chosen tables only (and every object that is no table). */
function onlyTables(c: CapturedDdl, only: Set<string> | undefined): CapturedDdl {
  if (!only) return c;
  const wanted = (t: { schema: string; name: string }) => only.has(`${t.schema}.${t.name}`);
  return { ...c, tables: c.tables?.filter(wanted), dropped: c.dropped?.filter(wanted) };
}
