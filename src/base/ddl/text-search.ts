import type pg from 'pg';
import { RANK, type CatalogObject } from './objects.js';
import { notExtensionMember, USER_SCHEMA } from './scope.js';
import { TEXT_SEARCH_CONFIGURATION_STATEMENTS, TEXT_SEARCH_DICTIONARY_CREATE } from '../../source/deparse.js';

// Text search dictionaries and configurations (CREATE TEXT SEARCH …): a generated column or an
// index calling to_tsvector('my_config', …) cannot be made without them. No deparser exists;
// these write what pg_dump's dumpTSDictionary and dumpTSConfig write. Parsers and templates are
// C functions: only extensions bring them, and an extension is made as a whole.

export async function readTextSearch(client: pg.Client): Promise<CatalogObject[]> {
  const dictionaries = await client.query<{ oid: number; name: string; sql: string }>(
    `select d.oid::int as oid, quote_ident(n.nspname) || '.' || quote_ident(d.dictname) as name, ${TEXT_SEARCH_DICTIONARY_CREATE} as sql
       from pg_ts_dict d join pg_namespace n on n.oid = d.dictnamespace
      where ${USER_SCHEMA} and ${notExtensionMember('pg_ts_dict', 'd.oid')}
      order by 2`,
  );
  const configurations = await client.query<{ oid: number; name: string; sql: string[] }>(
    `select cfg.oid::int as oid, quote_ident(n.nspname) || '.' || quote_ident(cfg.cfgname) as name, ${TEXT_SEARCH_CONFIGURATION_STATEMENTS} as sql
       from pg_ts_config cfg join pg_namespace n on n.oid = cfg.cfgnamespace
      where ${USER_SCHEMA} and ${notExtensionMember('pg_ts_config', 'cfg.oid')}
      order by 2`,
  );
  return [
    ...dictionaries.rows.map((r) => ({
      key: `pg_ts_dict:${r.oid}`,
      kind: 'text search dictionary',
      name: r.name,
      sql: [r.sql],
      rank: RANK.textSearch,
    })),
    ...configurations.rows.map((r) => ({
      key: `pg_ts_config:${r.oid}`,
      kind: 'text search configuration',
      name: r.name,
      sql: r.sql,
      rank: RANK.textSearch,
    })),
  ];
}
