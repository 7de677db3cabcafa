import type pg from 'pg';
import { RANK, type CatalogObject } from './objects.js';
import { notExtensionMember, USER_SCHEMA } from './scope.js';
import {
  COLLATION_CREATE,
  OPERATOR_CLASS_CREATE,
  OPERATOR_CREATE,
  OPERATOR_FAMILY_STATEMENTS,
  TEXT_SEARCH_CONFIGURATION_STATEMENTS,
  TEXT_SEARCH_DICTIONARY_CREATE,
} from '../../source/deparse.js';

// The user's objects Postgres has no deparser for, written as pg_dump writes them
// (src/source/deparse.ts, which captured DDL shares): collations (a column, domain or index may
// name one), text search dictionaries and configurations (a generated column or index calling
// to_tsvector('my_config', …)), operators, operator families and classes (a hash or range
// partition key, an index). Text search parsers and templates are C functions: only extensions
// bring them, and an extension is made as a whole. pg_depend orders them (graph.ts).

interface Kind {
  kind: string;
  catalog: string;
  /** The row's alias, as the deparser's expression reads it, and its name and namespace columns. */
  alias: string;
  name: string;
  namespace: string;
  /** The statement (text), or the statements (a jsonb array), that make it. */
  sql: string;
  rank: number;
  /** Which of its rows are objects of their own. */
  where?: string;
  /** How it is named in messages, when not `schema.name`. */
  display?: string;
}

const KINDS: Kind[] = [
  // Only the providers a user can make (not the database's default).
  {
    kind: 'collation',
    catalog: 'pg_collation',
    alias: 'c',
    name: 'collname',
    namespace: 'collnamespace',
    sql: COLLATION_CREATE,
    rank: RANK.collation,
    where: `c.collprovider in ('c', 'i', 'b')`,
  },
  {
    kind: 'text search dictionary',
    catalog: 'pg_ts_dict',
    alias: 'd',
    name: 'dictname',
    namespace: 'dictnamespace',
    sql: TEXT_SEARCH_DICTIONARY_CREATE,
    rank: RANK.textSearch,
  },
  {
    kind: 'text search configuration',
    catalog: 'pg_ts_config',
    alias: 'cfg',
    name: 'cfgname',
    namespace: 'cfgnamespace',
    sql: TEXT_SEARCH_CONFIGURATION_STATEMENTS,
    rank: RANK.textSearch,
  },
  // Not a shell, which a COMMUTATOR or NEGATOR naming it makes.
  {
    kind: 'operator',
    catalog: 'pg_operator',
    alias: 'o',
    name: 'oprname',
    namespace: 'oprnamespace',
    sql: OPERATOR_CREATE,
    rank: RANK.operator,
    where: 'o.oprcode <> 0',
    display: 'o.oid::regoperator::text',
  },
  {
    kind: 'operator family',
    catalog: 'pg_opfamily',
    alias: 'f',
    name: 'opfname',
    namespace: 'opfnamespace',
    sql: OPERATOR_FAMILY_STATEMENTS,
    rank: RANK.operator,
  },
  {
    kind: 'operator class',
    catalog: 'pg_opclass',
    alias: 'c',
    name: 'opcname',
    namespace: 'opcnamespace',
    sql: OPERATOR_CLASS_CREATE,
    rank: RANK.operator,
  },
];

export async function readCatalogObjects(client: pg.Client): Promise<CatalogObject[]> {
  const out: CatalogObject[] = [];
  for (const k of KINDS) {
    const a = k.alias;
    const { rows } = await client.query<{ oid: number; name: string; sql: string | string[] }>(
      `select ${a}.oid::int as oid, ${k.display ?? `quote_ident(n.nspname) || '.' || quote_ident(${a}.${k.name})`} as name, ${k.sql} as sql
         from ${k.catalog} ${a} join pg_namespace n on n.oid = ${a}.${k.namespace}
        where ${USER_SCHEMA} and ${notExtensionMember(k.catalog, `${a}.oid`)}${k.where ? ` and ${k.where}` : ''}
        order by 2`,
    );
    for (const r of rows)
      out.push({ key: `${k.catalog}:${r.oid}`, kind: k.kind, name: r.name, sql: Array.isArray(r.sql) ? r.sql : [r.sql], rank: k.rank });
  }
  return out;
}
