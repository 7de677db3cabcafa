import type pg from 'pg';
import { quoteIdent, quoteLiteral, quoteQualified } from '../src/core/sql.js';
import {
  DOMAIN_FACTS_SQL,
  TYPE_CREATE_SQL,
  type DomainFacts,
  type TableImage,
  type TableSnapshot,
  type TypeSnapshot,
} from '../src/source/ddl-capture.js';
import { indexNameOf } from '../src/source/ddl-statements.js';
import { renameType as renameTypeStatement, typeNamed } from '../src/audit/diff/catalog-checks.js';
import { attempt } from './savepoint.js';
import type { EnumLabels } from './enum-labels.js';

// Captured DDL other than table shapes, applied at its point (docs/ARCHITECTURE.md, "Schema
// changes"): objects dropped, types created or altered, and the rows of rewritten tables.

/**
 * Brings a type to its captured definition: created when the replay has none of that name; an
 * enum's new labels added in their place (the replay creates its types in its own transaction,
 * so Postgres lets rows use a label added in it). Other changes to an existing type are not
 * followed: said by the caller.
 */
export async function reconcileType(
  client: pg.Client,
  t: TypeSnapshot,
  labels: EnumLabels,
): Promise<'created' | 'altered' | 'same' | 'unfollowed'> {
  if (t.was) await renameType(client, t, t.was, labels);
  if (t.kind === 'e' && t.labels) labels.capturedOrder(t.schema, t.name, t.labels);
  const exists = await client.query<{ oid: number | null }>(`select ${typeNamed('$1')}::oid::int as oid`, [
    quoteQualified(t.schema, t.name),
  ]);
  const oid = exists.rows[0]!.oid;
  if (oid === null) {
    await client.query(`create schema if not exists ${quoteIdent(t.schema)}`);
    // An enum is made with every label the replay will need (EnumLabels): labels added to it
    // later in the replay's transaction would not be usable in it.
    await client.query(t.kind === 'e' && t.labels ? labels.createEnum(t.schema, t.name, t.labels) : t.create);
    return 'created';
  }
  if (t.kind !== 'e' || !t.labels) {
    // Unchanged as the replay sees it (an owner or a comment changed): nothing to do.
    if ((await typeCreate(client, oid)) === t.create) return 'same';
    // Nothing uses it yet: made again as the source has it now.
    const kind = t.kind === 'd' ? 'domain' : 'type';
    if (!(await attempt(client, [`drop ${kind} ${quoteQualified(t.schema, t.name)}`, t.create]))) return 'altered';
    // A domain in use: what ALTER DOMAIN changes, changed; anything else is not followed (said by the caller).
    return t.domain && !(await attempt(client, await alterDomain(client, oid, t, t.domain))) ? 'altered' : 'unfollowed';
  }
  const have = (
    await client.query<{ label: string }>('select enumlabel as label from pg_enum where enumtypid = $1 order by enumsortorder', [oid])
  ).rows.map((r) => r.label);
  let changed = false;
  // A label renamed (RENAME VALUE) keeps its place: the rows holding it hold the new name too.
  // Labels the type was made with ahead of their time are none the source had yet.
  const ahead = labels.madeAhead(t.schema, t.name).filter((l) => !t.labels!.includes(l));
  const own = have.filter((l) => !ahead.includes(l));
  const removed = own.filter((l) => !t.labels!.includes(l));
  const added = t.labels.filter((l) => !have.includes(l));
  if (removed.length && removed.length === added.length && own.length === t.labels.length) {
    for (const old of removed) {
      const to = t.labels[own.indexOf(old)];
      if (to === undefined || !added.includes(to)) continue;
      await client.query(`alter type ${quoteQualified(t.schema, t.name)} rename value ${quoteLiteral(old)} to ${quoteLiteral(to)}`);
      have[have.indexOf(old)] = to;
      changed = true;
    }
  }
  for (const [i, label] of t.labels.entries()) {
    if (have.includes(label)) continue;
    // Placed after the label before it in the source's order (or before the first one).
    const place = i > 0 ? `after ${quoteLiteral(t.labels[i - 1]!)}` : have.length ? `before ${quoteLiteral(have[0]!)}` : '';
    await client.query(`alter type ${quoteQualified(t.schema, t.name)} add value if not exists ${quoteLiteral(label)} ${place}`);
    have.splice(i, 0, label);
    changed = true;
  }
  return changed ? 'altered' : 'same';
}

/**
 * A type the command renamed or moved to another schema: the replay's, under its old name, takes
 * the new one — unless the replay has none of the old name, or one of the new name already (then
 * reconcileType makes or brings that one as captured). What uses it (columns, other types) follows
 * by oid, as it does in the source. The same statement as diff's patch writes.
 */
async function renameType(client: pg.Client, t: TypeSnapshot, was: { schema: string; name: string }, labels: EnumLabels): Promise<void> {
  await client.query(renameTypeStatement(t, was));
  labels.renamed(was.schema, was.name, t.schema, t.name);
}

/** The ALTER DOMAIN statements that bring the replay's domain to the captured facts. */
async function alterDomain(client: pg.Client, oid: number, t: TypeSnapshot, want: DomainFacts): Promise<string[]> {
  const have = (await client.query<{ facts: DomainFacts }>(`select ${DOMAIN_FACTS_SQL} as facts from pg_type t where t.oid = $1`, [oid]))
    .rows[0]!.facts;
  const domain = `alter domain ${quoteQualified(t.schema, t.name)}`;
  const out: string[] = [];
  // Captured facts arrive with their nulls stripped: no default is absent, not null.
  const wantDefault = want.default ?? null;
  if (have.default !== wantDefault) out.push(wantDefault === null ? `${domain} drop default` : `${domain} set default ${wantDefault}`);
  if (have.notNull !== want.notNull) out.push(`${domain} ${want.notNull ? 'set' : 'drop'} not null`);
  for (const k of have.checks) if (!want.checks.some((w) => w.name === k.name)) out.push(`${domain} drop constraint ${quoteIdent(k.name)}`);
  for (const k of want.checks)
    if (!have.checks.some((h) => h.name === k.name)) out.push(`${domain} add constraint ${quoteIdent(k.name)} ${k.def}`);
  return out;
}

/** The replay's own statement for a type, written as captured DDL writes the source's. */
async function typeCreate(client: pg.Client, oid: number): Promise<string | undefined> {
  return inCapturePath(
    client,
    async () =>
      (await client.query<{ create: string }>(`select ${TYPE_CREATE_SQL} as create from pg_type t where t.oid = $1`, [oid])).rows[0]
        ?.create,
  );
}

/**
 * A table's column types as captured DDL names them (`public.mood`, `public.mood[]`): after a
 * type was renamed, what the replay's statements cast its columns' values to.
 */
export async function capturedColumnTypes(client: pg.Client, table: string): Promise<Map<string, string>> {
  const { rows } = await inCapturePath(client, () =>
    client.query<{ name: string; type: string }>(
      `select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute
        where attrelid = to_regclass($1) and attnum > 0 and not attisdropped`,
      [table],
    ),
  );
  return new Map(rows.map((r) => [r.name, r.type]));
}

/** A table's generated columns' expressions as captured DDL writes them (other schemas' names qualified). */
export async function capturedExpressions(client: pg.Client, table: string): Promise<Map<string, string>> {
  const { rows } = await inCapturePath(client, () =>
    client.query<{ name: string; expression: string }>(
      `select a.attname as name, pg_get_expr(d.adbin, d.adrelid) as expression
         from pg_attribute a join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attrelid = to_regclass($1) and a.attgenerated <> ''`,
      [table],
    ),
  );
  return new Map(rows.map((r) => [r.name, r.expression]));
}

/** Runs `fn` with the search path captured DDL's functions run with (every other schema's names qualified). */
async function inCapturePath<T>(client: pg.Client, fn: () => Promise<T>): Promise<T> {
  const path = (await client.query<{ p: string }>(`select current_setting('search_path') as p`)).rows[0]!.p;
  await client.query(`select set_config('search_path', 'pg_catalog', true)`);
  try {
    return await fn();
  } finally {
    await client.query(`select set_config('search_path', $1, true)`, [path]);
  }
}

/**
 * Indexes and constraints the source renamed: one the snapshot names that the replay lacks,
 * where the replay has one of the same definition that the snapshot does not name, is renamed
 * (not made again beside the old one).
 */
export async function followRenames(client: pg.Client, s: TableSnapshot): Promise<void> {
  const target = quoteQualified(s.schema, s.name);
  const { rows: constraints } = await client.query<{ name: string; def: string }>(
    'select conname as name, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = $1::regclass',
    [target],
  );
  const named = new Set((s.constraints ?? []).map((k) => k.name));
  for (const k of s.constraints ?? []) {
    if (constraints.some((c) => c.name === k.name)) continue;
    const old = constraints.find((c) => !named.has(c.name) && c.def === k.def);
    if (!old) continue;
    await client.query(`alter table ${target} rename constraint ${quoteIdent(old.name)} to ${quoteIdent(k.name)}`);
    old.name = k.name;
  }
  const { rows: indexes } = await client.query<{ name: string; def: string }>(
    `select quote_ident(c.relname) as name, pg_get_indexdef(i.indexrelid) as def from pg_index i join pg_class c on c.oid = i.indexrelid
      where i.indrelid = $1::regclass and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = i.indrelid)`,
    [target],
  );
  const unnamed = (def: string) => def.replace(` ${indexNameOf(def)} ON `, ' ON ');
  const wanted = new Set(s.indexes.map(indexNameOf));
  for (const def of s.indexes) {
    const name = indexNameOf(def);
    if (!name || indexes.some((i) => i.name === name)) continue;
    const old = indexes.find((i) => !wanted.has(i.name) && unnamed(i.def) === unnamed(def));
    if (!old) continue;
    await client.query(`alter index ${quoteIdent(s.schema)}.${old.name} rename to ${name}`);
    old.name = name;
  }
}

/** The rows of a rewritten table, as the source had them: the first chunk empties the table. */
export async function applyImage(
  client: pg.Client,
  image: TableImage,
  table: string,
  insertable: { name: string; type: string }[],
  overriding: boolean,
): Promise<void> {
  if (image.first) await client.query(`truncate ${table}`);
  if (!image.rows.length || !insertable.length) return;
  const override = overriding ? 'overriding system value ' : '';
  if (image.columns) {
    // Each column's text, in the image's order, through the type's input function.
    const columns = image.columns.flatMap((name, i) => {
      const c = insertable.find((x) => x.name === name);
      return c ? [{ name, value: `(x->>${i})::${c.type}` }] : [];
    });
    if (!columns.length) return;
    await client.query(
      `insert into ${table} (${columns.map((c) => quoteIdent(c.name)).join(', ')}) ${override}select ${columns.map((c) => c.value).join(', ')} from jsonb_array_elements($1::jsonb) x`,
      [JSON.stringify(image.rows)],
    );
    return;
  }
  const cols = insertable.map((c) => quoteIdent(c.name)).join(', ');
  await client.query(`insert into ${table} (${cols}) ${override}select ${cols} from jsonb_populate_recordset(null::${table}, $1::jsonb)`, [
    JSON.stringify(image.rows),
  ]);
}
