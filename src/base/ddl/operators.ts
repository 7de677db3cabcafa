import type pg from 'pg';
import { RANK, type CatalogObject } from './objects.js';
import { notExtensionMember, USER_SCHEMA } from './scope.js';
import { OPERATOR_CLASS_CREATE, OPERATOR_CREATE, OPERATOR_FAMILY_STATEMENTS } from '../../source/deparse.js';

// Operators, operator families and operator classes of the user's: an index or a partition key
// that names a class (a hash partition key's own hash function, a custom sort order) cannot be
// made without it. Written as pg_dump writes them (src/source/deparse.ts); pg_depend orders them
// after the functions and types they use, and each family before the classes that join it.

export async function readOperators(client: pg.Client): Promise<CatalogObject[]> {
  const operators = await client.query<{ oid: number; name: string; sql: string }>(
    `select o.oid::int as oid, o.oid::regoperator::text as name, ${OPERATOR_CREATE} as sql
       from pg_operator o join pg_namespace n on n.oid = o.oprnamespace
      where ${USER_SCHEMA} and ${notExtensionMember('pg_operator', 'o.oid')} and o.oprcode <> 0
      order by 2`,
  );
  const families = await client.query<{ oid: number; name: string; sql: string[] }>(
    `select f.oid::int as oid, quote_ident(n.nspname) || '.' || quote_ident(f.opfname) as name, ${OPERATOR_FAMILY_STATEMENTS} as sql
       from pg_opfamily f join pg_namespace n on n.oid = f.opfnamespace
      where ${USER_SCHEMA} and ${notExtensionMember('pg_opfamily', 'f.oid')}
      order by 2`,
  );
  const classes = await client.query<{ oid: number; name: string; sql: string }>(
    `select c.oid::int as oid, quote_ident(n.nspname) || '.' || quote_ident(c.opcname) as name, ${OPERATOR_CLASS_CREATE} as sql
       from pg_opclass c join pg_namespace n on n.oid = c.opcnamespace
      where ${USER_SCHEMA} and ${notExtensionMember('pg_opclass', 'c.oid')}
      order by 2`,
  );
  return [
    ...operators.rows.map((r) => ({ key: `pg_operator:${r.oid}`, kind: 'operator', name: r.name, sql: [r.sql], rank: RANK.operator })),
    ...families.rows.map((r) => ({ key: `pg_opfamily:${r.oid}`, kind: 'operator family', name: r.name, sql: r.sql, rank: RANK.operator })),
    ...classes.rows.map((r) => ({ key: `pg_opclass:${r.oid}`, kind: 'operator class', name: r.name, sql: [r.sql], rank: RANK.operator })),
  ];
}
