import { doBlock, quoteIdent, quoteLiteral } from '../core/sql.js';

// SQL expressions that write the statement making a catalog object Postgres has no deparser
// for, as pg_dump writes it: shared by a base (src/base/ddl, read in its snapshot) and captured
// DDL (src/source/ddl-capture.ts, at the command's end), so that both make the object alike.
// Each reads one catalog row under the alias its comment names, and its namespace as `n`.

/**
 * The statement that makes the collation `c` (a pg_collation row), without its version (the replay
 * server's library gives its own). Its locale is in `colllocale` from 17, `colliculocale` in 15
 * and 16, `collcollate` before: read through to_jsonb, so that one text serves every major.
 */
export const COLLATION_CREATE = `case when c.collprovider = 'c' and c.collencoding = -1 and c.collcollate in ('C', 'POSIX') and c.collctype = c.collcollate
  -- A copy of C or POSIX (CREATE COLLATION … FROM "C"), for every encoding as they are: a locale would give it the database's.
  then format('CREATE COLLATION IF NOT EXISTS %I.%I FROM pg_catalog.%I', n.nspname, c.collname, c.collcollate)
  else format('CREATE COLLATION IF NOT EXISTS %I.%I (%s)', n.nspname, c.collname, concat_ws(', ',
    'provider = ' || case c.collprovider when 'i' then 'icu' when 'b' then 'builtin' else 'libc' end,
    case when c.collprovider <> 'c' then 'locale = ' || quote_literal(coalesce(to_jsonb(c)->>'colllocale', to_jsonb(c)->>'colliculocale', c.collcollate))
         when c.collcollate = c.collctype then 'locale = ' || quote_literal(c.collcollate)
         else 'lc_collate = ' || quote_literal(c.collcollate) || ', lc_ctype = ' || quote_literal(c.collctype) end,
    'rules = ' || quote_literal(to_jsonb(c)->>'collicurules'),
    case when not c.collisdeterministic then 'deterministic = false' end)) end`;

/** The statement that makes dictionary `d` (a pg_ts_dict row; `n` its namespace). */
export const TEXT_SEARCH_DICTIONARY_CREATE = `(select format('CREATE TEXT SEARCH DICTIONARY %I.%I (TEMPLATE = %I.%I%s)', n.nspname, d.dictname,
    tn.nspname, t.tmplname, coalesce(', ' || d.dictinitoption, ''))
  from pg_ts_template t join pg_namespace tn on tn.oid = t.tmplnamespace where t.oid = d.dicttemplate)`;

/**
 * The statements that make configuration `cfg` (a pg_ts_config row; `n` its namespace) as a
 * jsonb array: made with its parser and no mapping, then every token type's dictionaries in
 * order.
 */
export const TEXT_SEARCH_CONFIGURATION_STATEMENTS = `(select jsonb_build_array(format('CREATE TEXT SEARCH CONFIGURATION %I.%I (PARSER = %I.%I)',
      n.nspname, cfg.cfgname, pn.nspname, p.prsname)) || coalesce((
    select jsonb_agg(format('ALTER TEXT SEARCH CONFIGURATION %I.%I ADD MAPPING FOR %I WITH %s', n.nspname, cfg.cfgname, m.alias, m.dicts) order by m.tokid)
      from (select tt.tokid, tt.alias, string_agg(format('%I.%I', dn.nspname, dd.dictname), ', ' order by cm.mapseqno) as dicts
              from pg_ts_config_map cm
              join ts_token_type(cfg.cfgparser) tt on tt.tokid = cm.maptokentype
              join pg_ts_dict dd on dd.oid = cm.mapdict join pg_namespace dn on dn.oid = dd.dictnamespace
             where cm.mapcfg = cfg.oid group by tt.tokid, tt.alias) m), '[]'::jsonb)
  from pg_ts_parser p join pg_namespace pn on pn.oid = p.prsnamespace where p.oid = cfg.cfgparser)`;

/**
 * A column's collation (`a` a pg_attribute row): null where its type has none, '' where it is the
 * type's own, else its qualified name as COLLATE takes it. What captured DDL records, and what
 * replay and diff's patch compare with what they hold.
 */
export const COLUMN_COLLATION = `(select case when a.attcollation = ty.typcollation then '' else pg_catalog.format('%I.%I', cn.nspname, co.collname) end
   from pg_catalog.pg_type ty, pg_catalog.pg_collation co join pg_catalog.pg_namespace cn on cn.oid = co.collnamespace
  where ty.oid = a.atttypid and co.oid = a.attcollation)`;

/** The COLLATE clause that gives a column the collation COLUMN_COLLATION said ('': its type's own). */
export function collateClause(collation: string): string {
  return ` collate ${collation || 'pg_catalog."default"'}`;
}

/** SET STORAGE's word for a pg_attribute.attstorage or pg_type.typstorage value ($S). */
const STORAGE_NAME = `case $S when 'p' then 'plain' when 'e' then 'external' when 'm' then 'main' else 'extended' end`;

/**
 * A column's settings that ALTER COLUMN alone gives it (`a` a pg_attribute row), those not at their
 * default: its storage (where not its type's), statistics target (null for the default from 17, -1 before), compression (14+) and
 * options (n_distinct …). What a base and captured DDL record, and replay and diff's patch
 * compare with what they hold.
 */
export const COLUMN_SETTINGS = `pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'storage', (select ${STORAGE_NAME.replace('$S', 'a.attstorage')} from pg_catalog.pg_type ty where ty.oid = a.atttypid and ty.typstorage <> a.attstorage),
    'statistics', case when a.attstattarget::int >= 0 then a.attstattarget::int end,
    'compression', case a.attcompression when 'p' then 'pglz' when 'l' then 'lz4' end,
    'options', a.attoptions))`;

/** A column's settings as COLUMN_SETTINGS records them. */
export interface ColumnSettings {
  storage?: string;
  statistics?: number;
  compression?: string;
  options?: string[];
}

/** The attribute options Postgres has (RESET takes names only). */
const ATTRIBUTE_OPTIONS = ['n_distinct', 'n_distinct_inherited'];

/**
 * The statements that give a column these settings: only those not at their default, or (`all`,
 * for a column that may hold others already) every one, defaults included.
 */
export function columnSettingStatements(table: string, column: string, s: ColumnSettings, all = false): string[] {
  const alter = `ALTER TABLE ONLY ${table} ALTER COLUMN ${quoteIdent(column)}`;
  const out: string[] = [];
  if (s.storage !== undefined) out.push(`${alter} SET STORAGE ${s.storage}`);
  // Back to its type's (SET STORAGE DEFAULT is Postgres 16's).
  else if (all) {
    const typeStorage = `(select ${STORAGE_NAME.replace('$S', 'ty.typstorage')} from pg_catalog.pg_type ty join pg_catalog.pg_attribute a on a.atttypid = ty.oid
       where a.attrelid = ${quoteLiteral(table)}::regclass and a.attname = ${quoteLiteral(column)})`;
    out.push(doBlock(`execute ${quoteLiteral(`${alter} SET STORAGE `)} || ${typeStorage};`));
  }
  if (s.statistics !== undefined || all) out.push(`${alter} SET STATISTICS ${s.statistics ?? -1}`);
  if (s.compression !== undefined || all) out.push(`${alter} SET COMPRESSION ${s.compression ?? 'default'}`);
  if (all) out.push(`${alter} RESET (${ATTRIBUTE_OPTIONS.join(', ')})`);
  if (s.options?.length) out.push(`${alter} SET (${s.options.join(', ')})`);
  return out;
}

/** Whether two columns' settings are the same. */
export function sameColumnSettings(a: ColumnSettings, b: ColumnSettings): boolean {
  return (
    a.storage === b.storage &&
    a.statistics === b.statistics &&
    a.compression === b.compression &&
    (a.options ?? []).join() === (b.options ?? []).join()
  );
}
