import { displayQualified, quoteIdent, quoteLiteral, quoteQualified } from '../../core/sql.js';
import { literal, pairs, type RowValues } from '../row-text.js';
import type { DiffResult, RowDiff, TableDiff, TableShape } from './diff.js';
import { addColumn, quietTriggers, retype, triggersBack } from './catalog-checks.js';
import type { SchemaPatch } from './schema-patch.js';

export type DiffFormat = 'table' | 'jsonl' | 'sql' | 'csv';

export interface TableSummary {
  table: string;
  added: number;
  deleted: number;
  modified: number;
  cellsModified: number;
}

const name = (s: Pick<TableShape, 'schema' | 'name'>) => displayQualified(s.schema, s.name);

export function summarize(t: TableDiff): TableSummary {
  return { table: name(t.after), ...t.counts };
}

/** What changed in a table's shape between the two points, in words. */
function shapeChanges(t: TableDiff): string[] {
  const out: string[] = [];
  if (!t.before) return ['table created'];
  if (name(t.before) !== name(t.after)) out.push(`renamed from ${name(t.before)}`);
  const added = t.after.columns.filter((c) => !t.before!.columns.some((b) => b.name === c.name)).map((c) => c.name);
  const dropped = t.before.columns.filter((c) => !t.after.columns.some((a) => a.name === c.name)).map((c) => c.name);
  const retyped = t.after.columns
    .filter((c) => t.before!.columns.some((b) => b.name === c.name && (b.typeOid !== c.typeOid || b.typmod !== c.typmod)))
    .map((c) => `${c.name} → ${c.type}`);
  if (added.length) out.push(`columns added: ${added.join(', ')}`);
  if (dropped.length) out.push(`columns dropped: ${dropped.join(', ')}`);
  if (retyped.length) out.push(`columns retyped: ${retyped.join(', ')}`);
  if (t.truncated) out.push('truncated in the range');
  return out;
}

function describeRow(r: RowDiff, mark: (s: string) => string): string {
  const key = r.key ? `(${pairs(r.key, ', ')}) ` : '';
  const copies = r.copies && r.copies > 1 ? `${r.copies}× ` : '';
  if (r.change === 'added') return `  + ${copies}${key}${pairs(r.after)}`;
  if (r.change === 'deleted') return `  - ${copies}${key}${pairs(r.before)}`;
  return `  ~ ${key}${r.cells!.map((c) => mark(`${c}: ${literal(r.before![c])} → ${literal(r.after![c])}`)).join(', ')}`;
}

/** The lines of a diff in the chosen format, produced one at a time (the caller writes them out). */
export function* formatDiff(
  d: DiffResult,
  format: DiffFormat,
  summaryOnly: boolean,
  mark: (s: string) => string = (s) => s,
): Generator<string> {
  const where = `${d.from} (${d.fromLsn ?? 'start'}) → ${d.to} (${d.toLsn ?? 'end'}), from the ${d.sources.join(' and ')}`;
  if (summaryOnly) {
    if (format === 'jsonl') for (const t of d.tables) yield JSON.stringify(summarize(t));
    else if (format === 'csv') {
      yield 'table,added,deleted,modified,cells_modified';
      for (const t of d.tables) {
        const s = summarize(t);
        yield [csv(s.table), s.added, s.deleted, s.modified, s.cellsModified].join(',');
      }
    } else {
      yield `diff ${where}`;
      for (const t of d.tables) {
        const s = summarize(t);
        yield `${s.table}: ${s.added} added, ${s.deleted} deleted, ${s.modified} modified (${s.cellsModified} cells)`;
      }
      if (d.schemaChanges.length) yield `${d.schemaChanges.length} schema changes (captured DDL; pgtape log shows them)`;
      if (!d.tables.length && !d.schemaChanges.length) yield '(no differences)';
    }
    return;
  }
  switch (format) {
    case 'table':
      yield `diff ${where}`;
      for (const c of d.schemaChanges) yield `schema change at ${c.lsn}: ${c.what}`;
      for (const t of d.tables) {
        const s = summarize(t);
        yield `${s.table}: ${s.added} added, ${s.deleted} deleted, ${s.modified} modified (${s.cellsModified} cells)`;
        for (const c of shapeChanges(t)) yield `  ${c}`;
        for (const r of t.rows()) yield describeRow(r, mark);
      }
      if (!d.tables.length && !d.schemaChanges.length) yield '(no differences)';
      return;
    case 'jsonl':
      for (const c of d.schemaChanges) yield JSON.stringify({ change: 'ddl', lsn: c.lsn, what: c.what });
      for (const t of d.tables) {
        if (shapeChanges(t).length)
          yield JSON.stringify({ table: name(t.after), change: 'schema', before: t.before, after: t.after, what: shapeChanges(t) });
        for (const r of t.rows()) yield JSON.stringify({ table: name(t.after), ...r });
      }
      return;
    case 'csv':
      yield 'table,change,key,copies,column,before,after';
      for (const t of d.tables) {
        for (const r of t.rows()) {
          const head = [csv(name(t.after)), r.change, r.key ? csv(JSON.stringify(r.key)) : '', String(r.copies ?? 1)];
          const columns = r.change === 'modified' ? r.cells! : Object.keys((r.after ?? r.before)!);
          for (const c of columns) yield [...head, csv(c), csv(r.before?.[c]), csv(r.after?.[c])].join(',');
        }
      }
      return;
    case 'sql':
      yield comment(`pgtape diff ${where}`);
      yield '-- turns the database at --from into the database at --to';
      yield* schemaPatched(d);
      return;
  }
}

/**
 * The patch: captured schema changes in order, each table's reshape from its Relation messages
 * where no captured DDL shaped it, the rows, then what constrains them (docs/ARCHITECTURE.md,
 * "Schema changes").
 */
function* schemaPatched(d: DiffResult): Generator<string> {
  const s = d.schemaPatch;
  if (!s) for (const c of d.schemaChanges) yield comment(`schema change at ${c.lsn}, not in this patch: ${c.what}`);
  else {
    for (const c of d.schemaChanges) yield comment(`schema change at ${c.lsn}: ${c.what}`);
    for (const u of s.unfollowed) yield comment(`not in this patch: ${u}`);
    if (s.labels.length) {
      yield '-- enum labels first, each committed: a row can use a label only once the transaction that added it committed';
      yield* s.labels;
    }
  }
  yield 'begin;';
  // As pg_dump writes it: a function's body may name a table the patch makes after it.
  yield 'set local check_function_bodies = false;';
  yield* s?.before ?? [];
  // Every table's DDL before any row: a row may need another table's new shape (the README says so).
  // Rows' values are cast to their columns' types: as the log named them, before a rename in the range.
  const tables = d.tables.filter((t) => !s?.gone.has(t.oid)).map((t) => asNamedAtTo(t, s));
  for (const t of tables) if (!s?.shaped.has(t.oid)) yield* reshape(t, s);
  // No trigger fires for the rows (docs/ARCHITECTURE.md, "Schema changes"): they hold what triggers did at the source.
  const written = tables.filter((t) => t.counts.added + t.counts.deleted + t.counts.modified > 0);
  if (written.length) yield quietTriggers(written.map((t) => quoteQualified(t.after.schema, t.after.name)));
  for (const t of tables) yield* patch(t);
  if (written.length) yield triggersBack();
  yield* s?.after ?? [];
  yield 'commit;';
}

/**
 * A comment line of the patch. Names are the source's and may hold a line break: one would end
 * the comment and make the rest of the name a statement, so breaks are written as \n.
 */
function comment(text: string): string {
  return `-- ${text.replace(/\r/g, '\\r').replace(/\n/g, '\\n')}`;
}

/** CSV field: NULL is an empty field, an empty string is "" (as COPY ... CSV does). */
function csv(v: string | null | undefined): string {
  if (v === null || v === undefined) return '';
  return v === '' || /[",\r\n]/.test(v) || v.trim() !== v ? `"${v.replace(/"/g, '""')}"` : v;
}

/** `t` named as at --to, and its columns' types, where the range renamed them (known by oid: a name may pass to another). */
function asNamedAtTo(t: TableDiff, s: SchemaPatch | undefined): TableDiff {
  const name = s?.tableNames.get(t.oid);
  if (!s || (!s.typeNames.size && !s.schemaNames.length && !name)) return t;
  const inSchemaAtTo = (type: string) =>
    s.schemaNames.reduce(
      (n, r) => (n.startsWith(`${quoteIdent(r.from)}.`) ? `${quoteIdent(r.to)}${n.slice(quoteIdent(r.from).length)}` : n),
      type,
    );
  const columns = t.after.columns.map((c) => ({ ...c, type: s.typeNames.get(c.typeOid) ?? inSchemaAtTo(c.type) }));
  // Named by the log's last Relation message otherwise: one before the range renamed its schema names the old.
  const schema = name?.schema ?? schemaAtTo(s, t.after.schema);
  return { ...t, after: { ...t.after, schema, name: name?.name ?? t.after.name, columns } };
}

/** A schema's name at --to, after the range's schema renames. */
function schemaAtTo(s: SchemaPatch, schema: string): string {
  return s.schemaNames.reduce((n, r) => (n === r.from ? r.to : n), schema);
}

function* patch(t: TableDiff): Generator<string> {
  const after = t.after;
  const target = quoteQualified(after.schema, after.name);
  const types = new Map(after.columns.map((c) => [c.name, c.type]));
  const lit = (column: string, v: string | null | undefined) =>
    v === null || v === undefined ? 'NULL' : `${quoteLiteral(v)}::${types.get(column) ?? 'text'}`;
  const keyMatch = (key: RowValues) =>
    Object.entries(key)
      .map(([c, v]) => `${quoteIdent(c)} = ${lit(c, v)}`)
      .join(' and ');
  // Tables matched on the whole row compare text forms, so types without equality (json, point) match.
  const rowMatch = (row: RowValues) =>
    after.columns
      .map((c) => {
        const v = row[c.name];
        return v === null || v === undefined ? `${quoteIdent(c.name)} is null` : `${quoteIdent(c.name)}::text = (${lit(c.name, v)})::text`;
      })
      .join(' and ');

  for (const r of t.rows('deleted')) {
    if (r.key) yield `delete from ${target} where ${keyMatch(r.key)};`;
    else yield `delete from ${target} where ctid in (select ctid from ${target} where ${rowMatch(r.before!)} limit ${r.copies ?? 1});`;
  }
  for (const r of t.rows('modified')) {
    const set = r.cells!.map((c) => `${quoteIdent(c)} = ${lit(c, r.after![c])}`);
    yield `update ${target} set ${set.join(', ')} where ${keyMatch(r.key!)};`;
  }
  for (const r of t.rows('added')) {
    const columns = Object.keys(r.after!);
    const values = columns.map((c) => lit(c, r.after![c])).join(', ');
    // An identity GENERATED ALWAYS takes the source's value only so (a table without one ignores it).
    const into = `insert into ${target} (${columns.map(quoteIdent).join(', ')}) overriding system value`;
    yield (r.copies ?? 1) > 1 ? `${into} select ${values} from generate_series(1, ${r.copies});` : `${into} values (${values});`;
  }
}

/** DDL that brings the table from its shape at --from to its shape at --to. */
function* reshape(t: TableDiff, s: SchemaPatch | undefined): Generator<string> {
  const { before, after } = t;
  const target = quoteQualified(after.schema, after.name);
  if (!before) {
    const defs = after.columns.map((c) => `${quoteIdent(c.name)} ${c.type}`);
    if (after.key.length) defs.push(`primary key (${after.key.map(quoteIdent).join(', ')})`);
    yield `create schema if not exists ${quoteIdent(after.schema)};`;
    yield `create table if not exists ${target} (${defs.join(', ')});`;
    if (after.replicaIdentity === 'f') yield `alter table ${target} replica identity full;`;
    return;
  }
  // The log names a table by its last Relation message before --from, which may be older than a
  // move the captured DDL made: a name the database does not have is left alone (IF EXISTS).
  // A schema the range renamed took its tables along (the patch renames it before): a table of the
  // old name there since is another one.
  const beforeSchema = s ? schemaAtTo(s, before.schema) : before.schema;
  if (beforeSchema !== after.schema)
    yield `alter table if exists ${quoteQualified(beforeSchema, before.name)} set schema ${quoteIdent(after.schema)};`;
  if (before.name !== after.name)
    yield `alter table if exists ${quoteQualified(after.schema, before.name)} rename to ${quoteIdent(after.name)};`;
  for (const c of before.columns)
    if (!after.columns.some((a) => a.name === c.name)) yield `alter table ${target} drop column if exists ${quoteIdent(c.name)};`;
  for (const c of after.columns) {
    const was = before.columns.find((b) => b.name === c.name);
    if (!was) yield addColumn(target, c.name, c.type);
    else if (was.typeOid !== c.typeOid || was.typmod !== c.typmod) yield retype(target, c.name, c.type, c.typmod);
  }
}
