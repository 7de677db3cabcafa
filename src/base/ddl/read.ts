import type pg from 'pg';
import { quoteIdent, quoteLiteral } from '../../core/sql.js';
import { dependencyOrder, readDependencies, type Edge } from './graph.js';
import type { BaseDdl, SchemaObject } from '../../log/bases.js';
import { RANK, type CatalogObject } from './objects.js';
import { readComments, readPostData } from './post-data.js';
import { readRelations } from './relations.js';
import { readRoutines } from './routines.js';
import { notExtensionMember, readScope, USER_SCHEMA, type Scope } from './scope.js';
import { readTypes } from './types.js';
import { readCatalogObjects } from './catalog-objects.js';

/**
 * The whole schema of the published tables and of the user objects around them, read from the
 * catalog in the caller's transaction (the base's snapshot). Names are written qualified: the
 * session's search_path is emptied first, as pg_dump does, so that the deparsers qualify them.
 */
export async function readBaseDdl(client: pg.Client, publication: string): Promise<BaseDdl> {
  await client.query(`set local search_path = ''`);
  const scope = await readScope(client, publication);
  const types = await readTypes(client);
  const routines = await readRoutines(client);
  const relations = await readRelations(client, scope);
  const candidates: CatalogObject[] = [
    ...(await readSchemas(client)),
    ...(await readExtensionObjects(client)),
    ...(await readCatalogObjects(client)),
    ...types.objects,
    ...routines.objects,
    ...relations.objects,
  ];
  const edges = [...(await readDependencies(client)), ...ownershipEdges(candidates)];
  const { kept, notRestored } = await withoutUnpublished(client, candidates, edges, scope);
  const pre = dependencyOrder(kept, edges).map(({ key, rank: _rank, ...o }) => ({ ...o, ...(o.table ? {} : needsOf(key, edges, scope)) }));
  // What hangs on views too: a dump restores INSTEAD OF triggers and rules of views as it does a table's.
  const views = kept.filter((o) => o.kind === 'view' || o.kind === 'materialized view');
  const postData = await readPostData(
    client,
    scope,
    [...scope.tables],
    new Map(views.map((o) => [Number(o.key.slice('pg_class:'.length)), needsOf(o.key, edges, scope).needs ?? []])),
  );
  const comments = await readComments(client, new Set(kept.map((o) => o.key)));
  return {
    pre,
    post: [...relations.typed, ...postData.post, ...comments],
    final: postData.final,
    sequences: relations.sequences,
    alwaysIdentity: relations.alwaysIdentity,
    extensions: await readExtensions(client),
    notRestored: [...types.notRestored, ...routines.notRestored, ...notRestored, ...postData.notRestored],
  };
}

async function readSchemas(client: pg.Client): Promise<CatalogObject[]> {
  const { rows } = await client.query<{ oid: number; name: string }>(
    `select n.oid::int as oid, n.nspname as name from pg_namespace n where ${USER_SCHEMA} and ${notExtensionMember('pg_namespace', 'n.oid')} order by 2`,
  );
  return rows.map((r) => ({
    key: `pg_namespace:${r.oid}`,
    kind: 'schema',
    name: quoteIdent(r.name),
    sql: [`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(r.name)}`],
    rank: RANK.schema,
  }));
}

async function readExtensions(client: pg.Client): Promise<BaseDdl['extensions']> {
  const { rows } = await client.query<{ name: string; schema: string; version: string }>(
    `select e.extname as name, n.nspname as schema, e.extversion as version
       from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname <> 'plpgsql' order by 1`,
  );
  return rows;
}

async function readExtensionObjects(client: pg.Client): Promise<CatalogObject[]> {
  const { rows } = await client.query<{ oid: number; name: string; schema: string; version: string }>(
    `select e.oid::int as oid, e.extname as name, n.nspname as schema, e.extversion as version
       from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname <> 'plpgsql' order by 2`,
  );
  return rows.map((e) => ({
    key: `pg_extension:${e.oid}`,
    kind: 'extension',
    name: quoteIdent(e.name),
    sql: [`CREATE EXTENSION IF NOT EXISTS ${quoteIdent(e.name)} WITH SCHEMA ${quoteIdent(e.schema)} VERSION ${quoteLiteral(e.version)}`],
    rank: RANK.extension,
  }));
}

/** A sequence's OWNED BY comes after both the sequence and its table. */
function ownershipEdges(objects: CatalogObject[]): Edge[] {
  const tables = new Map(objects.filter((o) => o.table && o.key.startsWith('pg_class:')).map((o) => [o.table!, o.key]));
  return objects
    .filter((o) => o.key.startsWith('owned:'))
    .flatMap((o) => [
      { from: o.key, to: `pg_class:${o.key.slice('owned:'.length)}` },
      ...(tables.has(o.table!) ? [{ from: o.key, to: tables.get(o.table!)! }] : []),
    ]);
}

/**
 * Objects that need a relation the base does not recreate (a view over an unpublished table,
 * and what needs that view in turn) are left out and reported.
 */
async function withoutUnpublished(
  client: pg.Client,
  objects: CatalogObject[],
  edges: Edge[],
  scope: Scope,
): Promise<{ kept: CatalogObject[]; notRestored: string[] }> {
  const { rows } = await client.query<{ key: string; name: string }>(
    `select 'pg_class:' || c.oid as key, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p', 'f') and ${USER_SCHEMA} and not (c.oid = any($1::oid[]))`,
    [[...scope.tables]],
  );
  const missing = new Map(rows.map((r) => [r.key, `${r.name}, which the publication does not publish`]));
  const byKey = new Map(objects.map((o) => [o.key, o]));
  const why = new Map<string, string>();
  for (let changed = true; changed;) {
    changed = false;
    for (const e of edges) {
      if (why.has(e.from) || !byKey.has(e.from)) continue;
      const reason = missing.get(e.to) ?? (why.has(e.to) ? `${byKey.get(e.to)!.name}, itself left out` : undefined);
      if (reason) {
        why.set(e.from, reason);
        changed = true;
      }
    }
  }
  return {
    kept: objects.filter((o) => !why.has(o.key)),
    notRestored: [...why].map(([key, reason]) => `${byKey.get(key)!.kind} ${byKey.get(key)!.name}: it needs ${reason}`),
  };
}

/** The published tables an object needs besides its own (left out together with them by `replay --tables`). */
function needsOf(key: string, edges: Edge[], scope: Scope): Pick<SchemaObject, 'needs'> {
  const needs = new Set<string>();
  for (const e of edges) {
    if (e.from !== key || !e.to.startsWith('pg_class:')) continue;
    const name = scope.tableNames.get(Number(e.to.slice('pg_class:'.length)));
    if (name) needs.add(name);
  }
  return needs.size ? { needs: [...needs].sort() } : {};
}
