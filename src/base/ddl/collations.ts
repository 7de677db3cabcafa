import type pg from 'pg';
import { RANK, type CatalogObject } from './objects.js';
import { notExtensionMember, USER_SCHEMA } from './scope.js';
import { COLLATION_CREATE } from '../../source/deparse.js';

// User-defined collations (CREATE COLLATION): a column, domain or index that names one cannot be
// made without it. Postgres has no deparser for them; this writes what pg_dump's dumpCollation
// writes (without the version, which the replay server's library gives its own).

export async function readCollations(client: pg.Client): Promise<CatalogObject[]> {
  const { rows } = await client.query<{ oid: number; name: string; sql: string }>(
    `select c.oid::int as oid, quote_ident(n.nspname) || '.' || quote_ident(c.collname) as name, ${COLLATION_CREATE} as sql
       from pg_collation c join pg_namespace n on n.oid = c.collnamespace
      where ${USER_SCHEMA} and ${notExtensionMember('pg_collation', 'c.oid')} and c.collprovider in ('c', 'i', 'b')
      order by 2`,
  );
  return rows.map((r) => ({ key: `pg_collation:${r.oid}`, kind: 'collation', name: r.name, sql: [r.sql], rank: RANK.collation }));
}
