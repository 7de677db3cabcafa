import type pg from 'pg';
import { RANK, type CatalogObject } from './objects.js';
import { FIRST_NORMAL_OID, notExtensionMember, USER_SCHEMA } from './scope.js';
import {
  ACCESS_METHOD_CREATE,
  CAST_CREATE,
  COLLATION_CREATE,
  CONVERSION_CREATE,
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
// partition key, an index), conversions, and casts (a view's or a default's expression may use
// one; a cast has no schema: the user's are those made after initdb), and access methods made over
// a handler (CREATE ACCESS METHOD … HANDLER heap_tableam_handler). Text search parsers and
// templates are C functions: only extensions bring them, and an extension is made as a whole.
// pg_depend orders them (graph.ts).

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
  {
    kind: 'conversion',
    catalog: 'pg_conversion',
    alias: 'cv',
    name: 'conname',
    namespace: 'connamespace',
    sql: CONVERSION_CREATE,
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
  const casts = await client.query<{ oid: number; name: string; sql: string }>(
    `select c.oid::int as oid, (pg_identify_object('pg_cast'::regclass, c.oid, 0)).identity as name, ${CAST_CREATE} as sql
       from pg_cast c where c.oid >= ${FIRST_NORMAL_OID} and ${notExtensionMember('pg_cast', 'c.oid')}
        -- Not one a type owns (a range's to its multirange): CREATE TYPE makes it.
        and not exists (select 1 from pg_depend i where i.classid = 'pg_cast'::regclass and i.objid = c.oid and i.deptype = 'i')
      order by 2`,
  );
  for (const r of casts.rows) out.push({ key: `pg_cast:${r.oid}`, kind: 'cast', name: r.name, sql: [r.sql], rank: RANK.operator });
  // Access methods have no schema either: the user's are those made after initdb (a table or
  // materialized view made USING one, an operator class or index of one, need it first).
  const methods = await client.query<{ oid: number; name: string; sql: string }>(
    `select am.oid::int as oid, quote_ident(am.amname) as name, ${ACCESS_METHOD_CREATE} as sql
       from pg_am am where am.oid >= ${FIRST_NORMAL_OID} and ${notExtensionMember('pg_am', 'am.oid')}
      order by 2`,
  );
  for (const r of methods.rows)
    out.push({ key: `pg_am:${r.oid}`, kind: 'access method', name: r.name, sql: [r.sql], rank: RANK.collation });
  return out;
}
