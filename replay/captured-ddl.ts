import type pg from 'pg';
import { quoteIdent, quoteLiteral, quoteQualified } from '../src/core/sql.js';
import type { DroppedObject, TableImage, TypeSnapshot } from '../src/source/ddl-capture.js';
import type { EnumLabels } from './enum-labels.js';

// Captured DDL other than table shapes, applied at its point (docs/ARCHITECTURE.md, "Schema
// changes"): objects dropped, types created or altered, and the rows of rewritten tables.

/** Drop order: what hangs on a table first, then views, routines and sequences, then types, then schemas. */
const DROP_ORDER = [
  'trigger',
  'rule',
  'policy',
  'table constraint',
  'index',
  'materialized view',
  'view',
  'function',
  'procedure',
  'aggregate',
  'sequence',
  'type',
  'domain',
  'schema',
];

/** The statement that drops one object the source dropped (tables are dropped by TargetTables). */
export function dropStatement(o: DroppedObject): string | undefined {
  switch (o.type) {
    case 'index':
      return `drop index if exists ${o.identity} cascade`;
    case 'trigger':
    case 'rule':
    case 'policy':
      // Their identity is `name on schema.table`, as DROP takes it.
      return `drop ${o.type} if exists ${o.identity}`;
    case 'table constraint': {
      const [schema, table, name] = o.names;
      if (!schema || !table || !name) return undefined;
      return `alter table if exists ${quoteQualified(schema, table)} drop constraint if exists ${quoteIdent(name)} cascade`;
    }
    case 'type':
    case 'domain':
    case 'view':
    case 'materialized view':
    case 'function':
    case 'procedure':
    case 'aggregate':
    case 'sequence':
      // What depended on it went with it on the source, and was dropped there too (CASCADE reports dependents).
      return `drop ${o.type} if exists ${o.identity} cascade`;
    case 'schema':
      return `drop schema if exists ${o.identity} cascade`;
    default:
      return undefined;
  }
}

export function inDropOrder(objects: DroppedObject[]): DroppedObject[] {
  return [...objects].sort((a, b) => DROP_ORDER.indexOf(a.type) - DROP_ORDER.indexOf(b.type));
}

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
  if (t.kind === 'e' && t.labels) labels.capturedOrder(t.schema, t.name, t.labels);
  const exists = await client.query<{ oid: number | null }>('select to_regtype($1)::oid::int as oid', [quoteQualified(t.schema, t.name)]);
  const oid = exists.rows[0]!.oid;
  if (oid === null) {
    await client.query(`create schema if not exists ${quoteIdent(t.schema)}`);
    // An enum is made with every label the replay will need (EnumLabels): labels added to it
    // later in the replay's transaction would not be usable in it.
    await client.query(t.kind === 'e' && t.labels ? labels.createEnum(t.schema, t.name, t.labels) : t.create);
    return 'created';
  }
  if (t.kind !== 'e' || !t.labels) return 'unfollowed';
  const have = (
    await client.query<{ label: string }>('select enumlabel as label from pg_enum where enumtypid = $1 order by enumsortorder', [oid])
  ).rows.map((r) => r.label);
  let changed = false;
  // A label renamed (RENAME VALUE) keeps its place: the rows holding it hold the new name too.
  const removed = have.filter((l) => !t.labels!.includes(l));
  const added = t.labels.filter((l) => !have.includes(l));
  if (removed.length && removed.length === added.length && have.length === t.labels.length) {
    for (const old of removed) {
      const to = t.labels[have.indexOf(old)];
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

/** The rows of a rewritten table, as the source had them: the first chunk empties the table. */
export async function applyImage(
  client: pg.Client,
  image: TableImage,
  table: string,
  insertable: string[],
  overriding: boolean,
): Promise<void> {
  if (image.first) await client.query(`truncate ${table}`);
  if (!image.rows.length || !insertable.length) return;
  const cols = insertable.map(quoteIdent).join(', ');
  await client.query(
    `insert into ${table} (${cols}) ${overriding ? 'overriding system value ' : ''}select ${cols} from jsonb_populate_recordset(null::${table}, $1::jsonb)`,
    [JSON.stringify(image.rows)],
  );
}

/** `{value}` (attmissingval as text, one element) to the element's text. */
export function missingValue(arrayText: string): string | null {
  const inner = arrayText.slice(1, -1);
  if (inner === 'NULL') return null;
  if (!inner.startsWith('"')) return inner;
  return inner.slice(1, -1).replace(/\\(.)/g, '$1');
}
