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

/**
 * The statement that makes operator `o` (a pg_operator row; not a shell, which a COMMUTATOR or
 * NEGATOR naming it makes). Operator names are symbols: never quoted, schema-qualified.
 */
export const OPERATOR_CREATE = `pg_catalog.format('CREATE OPERATOR %I.%s (%s)', n.nspname, o.oprname, pg_catalog.concat_ws(', ',
    'FUNCTION = ' || o.oprcode::pg_catalog.regproc::text,
    'LEFTARG = ' || pg_catalog.format_type(nullif(o.oprleft, 0), null),
    'RIGHTARG = ' || pg_catalog.format_type(nullif(o.oprright, 0), null),
    (select pg_catalog.format('COMMUTATOR = OPERATOR(%I.%s)', cn.nspname, co.oprname) from pg_catalog.pg_operator co
       join pg_catalog.pg_namespace cn on cn.oid = co.oprnamespace where co.oid = o.oprcom),
    (select pg_catalog.format('NEGATOR = OPERATOR(%I.%s)', nn.nspname, no.oprname) from pg_catalog.pg_operator no
       join pg_catalog.pg_namespace nn on nn.oid = no.oprnamespace where no.oid = o.oprnegate),
    'RESTRICT = ' || nullif(o.oprrest, 0)::pg_catalog.regproc::text,
    'JOIN = ' || nullif(o.oprjoin, 0)::pg_catalog.regproc::text,
    case when o.oprcanhash then 'HASHES' end,
    case when o.oprcanmerge then 'MERGES' end))`;

/**
 * The members of an operator class or family (those that depend on `catalog` row `oid`: a
 * class's own, a family's loose ones), each as CREATE OPERATOR CLASS and ALTER OPERATOR FAMILY …
 * ADD write it (`item`) and as ALTER OPERATOR FAMILY … DROP names it (`member`), gathered by
 * `aggregate` in order. Null where there is none.
 */
function operatorMembers(catalog: string, oid: string, aggregate = `pg_catalog.string_agg(item, ', ' order by kind, num)`): string {
  return `(select ${aggregate} from (
    select 1 as kind, ao.amopstrategy as num, pg_catalog.format('OPERATOR %s %s%s', ao.amopstrategy, ao.amopopr::pg_catalog.regoperator,
             case when ao.amoppurpose = 'o' then pg_catalog.format(' FOR ORDER BY %I.%I', sn.nspname, sf.opfname) else '' end) as item,
           pg_catalog.format('OPERATOR %s (%s, %s)', ao.amopstrategy, pg_catalog.format_type(ao.amoplefttype, null),
             pg_catalog.format_type(ao.amoprighttype, null)) as member
      from pg_catalog.pg_amop ao
      join pg_catalog.pg_depend dp on dp.classid = 'pg_catalog.pg_amop'::pg_catalog.regclass and dp.objid = ao.oid
       and dp.refclassid = '${catalog}'::pg_catalog.regclass and dp.refobjid = ${oid}
      left join pg_catalog.pg_opfamily sf on sf.oid = ao.amopsortfamily left join pg_catalog.pg_namespace sn on sn.oid = sf.opfnamespace
    union all
    select 2, ap.amprocnum, pg_catalog.format('FUNCTION %s (%s, %s) %s', ap.amprocnum, pg_catalog.format_type(ap.amproclefttype, null),
             pg_catalog.format_type(ap.amprocrighttype, null), ap.amproc::pg_catalog.regprocedure),
           pg_catalog.format('FUNCTION %s (%s, %s)', ap.amprocnum, pg_catalog.format_type(ap.amproclefttype, null),
             pg_catalog.format_type(ap.amprocrighttype, null))
      from pg_catalog.pg_amproc ap
      join pg_catalog.pg_depend dp on dp.classid = 'pg_catalog.pg_amproc'::pg_catalog.regclass and dp.objid = ap.oid
       and dp.refclassid = '${catalog}'::pg_catalog.regclass and dp.refobjid = ${oid}) members)`;
}

/**
 * The statements that make operator family `f` (a pg_opfamily row), as a jsonb array: made empty,
 * then given its loose members (those no class of it brought), one statement each. A family a class made implicitly is
 * made all the same: the class then joins it (FAMILY).
 */
export const OPERATOR_FAMILY_STATEMENTS = `(select pg_catalog.jsonb_build_array(pg_catalog.format('CREATE OPERATOR FAMILY %I.%I USING %I', n.nspname, f.opfname, am.amname))
    || coalesce(${operatorMembers(
      'pg_catalog.pg_opfamily',
      'f.oid',
      `pg_catalog.jsonb_agg(pg_catalog.format('ALTER OPERATOR FAMILY %I.%I USING %I ADD %s', n.nspname, f.opfname, am.amname, item) order by kind, num)`,
    )}, '[]'::pg_catalog.jsonb)
  from pg_catalog.pg_am am where am.oid = f.opfmethod)`;

/**
 * The statement that drops the loose members of operator family `identity` (as pg_identify_object
 * writes it; `familyOid` the query of its oid) that none of the captured `adds` (OPERATOR_FAMILY_STATEMENTS' ALTER … ADD) adds: a
 * member dropped from the family after it was made (ALTER OPERATOR FAMILY … DROP), which adding
 * the captured ones where missing would leave. One whose text differs on the replay is dropped
 * and added again.
 */
export function looseMembersNotIn(identity: string, familyOid: string, adds: string[]): string {
  const family = quoteLiteral(identity);
  const oid = `(${familyOid})`;
  const kept = adds.length ? `array[${adds.map(quoteLiteral).join(', ')}]` : `'{}'::text[]`;
  const drops = operatorMembers(
    'pg_catalog.pg_opfamily',
    oid,
    `pg_catalog.array_agg(pg_catalog.format('ALTER OPERATOR FAMILY %s DROP %s', ${family}, member))
       filter (where pg_catalog.format('ALTER OPERATOR FAMILY %s ADD %s', ${family}, item) <> all (${kept}))`,
  );
  return doBlock(`declare s text; begin for s in select pg_catalog.unnest(${drops}) loop execute s; end loop; end;`);
}

/**
 * The statement that makes operator class `c` (a pg_opclass row) with its members, in its family.
 * One without members or a storage type of its own says STORAGE its input type, as pg_dump does
 * (AS needs an item; Postgres records that storage as none).
 */
export const OPERATOR_CLASS_CREATE = `(select pg_catalog.format('CREATE OPERATOR CLASS %I.%I%s FOR TYPE %s USING %I FAMILY %I.%I AS %s', n.nspname, c.opcname,
      case when c.opcdefault then ' DEFAULT' else '' end, pg_catalog.format_type(c.opcintype, null), am.amname, fn.nspname, f.opfname,
      coalesce(nullif(pg_catalog.concat_ws(', ', ${operatorMembers('pg_catalog.pg_opclass', 'c.oid')},
        'STORAGE ' || pg_catalog.format_type(nullif(c.opckeytype, 0), null)), ''), 'STORAGE ' || pg_catalog.format_type(c.opcintype, null)))
  from pg_catalog.pg_am am, pg_catalog.pg_opfamily f join pg_catalog.pg_namespace fn on fn.oid = f.opfnamespace
 where am.oid = c.opcmethod and f.oid = c.opcfamily)`;

/**
 * The statement that makes cast `c` (a pg_cast row), as pg_dump writes it: its types and function
 * qualified where the session's search_path does not show them.
 */
export const CAST_CREATE = `pg_catalog.format('CREATE CAST (%s AS %s) %s%s',
  pg_catalog.format_type(c.castsource, null), pg_catalog.format_type(c.casttarget, null),
  case c.castmethod when 'f' then 'WITH FUNCTION ' || c.castfunc::pg_catalog.regprocedure::text when 'i' then 'WITH INOUT' else 'WITHOUT FUNCTION' end,
  case c.castcontext when 'a' then ' AS ASSIGNMENT' when 'i' then ' AS IMPLICIT' else '' end)`;

/** The statement that makes conversion `cv` (a pg_conversion row; `n` its namespace). */
export const CONVERSION_CREATE = `pg_catalog.format('CREATE %sCONVERSION %I.%I FOR %L TO %L FROM %s',
  case when cv.condefault then 'DEFAULT ' else '' end, n.nspname, cv.conname,
  pg_catalog.pg_encoding_to_char(cv.conforencoding), pg_catalog.pg_encoding_to_char(cv.contoencoding), cv.conproc::pg_catalog.regproc::text)`;

/**
 * The statement that makes access method `am` (a pg_am row) of the user's: a table or index
 * method over a handler function (a built-in one, as `heap_tableam_handler`, or an extension's).
 */
export const ACCESS_METHOD_CREATE = `pg_catalog.format('CREATE ACCESS METHOD %I TYPE %s HANDLER %s',
  am.amname, case am.amtype when 't' then 'TABLE' else 'INDEX' end, am.amhandler::pg_catalog.regproc::text)`;
