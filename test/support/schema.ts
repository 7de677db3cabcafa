import type pg from 'pg';

// The schema oracle (docs/ARCHITECTURE.md, How correctness and speed are shown): a canonical
// description of a database's schema, read from the catalog and normalized, so that a replay
// with the right rows in the wrong database is caught. Two databases of the same server version
// that hold the same schema describe it identically; sequence values are described apart
// (a replay may stand below the source: it knows values only through the rows).

const USER = `n.nspname not in ('pg_catalog', 'information_schema', 'pgtape') and n.nspname not like 'pg\\_%'`;

async function rows<T extends pg.QueryResultRow>(client: pg.Client, sql: string): Promise<T[]> {
  return (await client.query<T>(sql)).rows;
}

/** The operators and support functions that depend on a class or family (its own members), as text. */
function members(catalog: string, oid: string): string {
  return `(select array_agg(m order by m) from (
     select 'operator ' || ao.amopstrategy || ' ' || ao.amopopr::regoperator::text || ' ' || ao.amoppurpose::text as m
       from pg_amop ao join pg_depend d on d.classid = 'pg_amop'::regclass and d.objid = ao.oid and d.refclassid = '${catalog}'::regclass and d.refobjid = ${oid}
     union all
     select 'function ' || ap.amprocnum || ' ' || format_type(ap.amproclefttype, null) || ',' || format_type(ap.amprocrighttype, null) || ' ' || ap.amproc::regprocedure::text
       from pg_amproc ap join pg_depend d on d.classid = 'pg_amproc'::regclass and d.objid = ap.oid and d.refclassid = '${catalog}'::regclass and d.refobjid = ${oid}) x)`;
}

export interface SchemaDescription {
  [section: string]: unknown[];
}

/** Every user object, by kind, each as text: what must be equal between the source and a replay. */
export async function describeSchema(client: pg.Client): Promise<SchemaDescription> {
  await client.query(`set search_path = ''`);
  try {
    return {
      schemas: await rows(client, `select n.nspname as name from pg_namespace n where ${USER} order by 1`),
      extensions: await rows(client, `select extname as name, extversion as version from pg_extension order by 1`),
      types: await rows(
        client,
        `select format_type(t.oid, null) as type, t.typtype as kind,
                (select array_agg(enumlabel::text order by enumsortorder) from pg_enum where enumtypid = t.oid) as labels,
                (select array_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) order by a.attnum)
                   from pg_attribute a where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped) as fields,
                format_type(t.typbasetype, t.typtypmod) as base, t.typnotnull as not_null, t.typdefault as default,
                (select array_agg(conname || ': ' || pg_get_constraintdef(c.oid) order by conname) from pg_constraint c where c.contypid = t.oid and c.contype = 'c') as checks,
                (select format_type(rngsubtype, null) from pg_range where rngtypid = t.oid) as subtype
           from pg_type t join pg_namespace n on n.oid = t.typnamespace
           left join pg_class r on r.oid = t.typrelid
          where ${USER} and t.typtype in ('e', 'c', 'd', 'r') and (t.typtype <> 'c' or r.relkind = 'c')
          order by 1`,
      ),
      relations: await rows(
        client,
        `select c.oid::regclass::text as name, c.relkind as kind, c.relreplident as identity, c.relpersistence as persistence,
                pg_get_partkeydef(c.oid) as partition_key, pg_get_expr(c.relpartbound, c.oid) as bound,
                (select array_agg(i.inhparent::regclass::text order by i.inhseqno) from pg_inherits i where i.inhrelid = c.oid) as parents,
                case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end as view, c.reloptions as options,
                case when c.relkind = 'm' then c.relispopulated end as populated,
                case when c.reloftype <> 0 then format_type(c.reloftype, null) end as of_type,
                (select am.amname from pg_am am where am.oid = c.relam) as access_method
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where ${USER} and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
          order by 1`,
      ),
      columns: await rows(
        client,
        `select c.oid::regclass::text as table, a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
                case when a.attcollation <> t.typcollation then a.attcollation::regcollation::text end as collation,
                a.attnotnull as not_null, pg_get_expr(d.adbin, d.adrelid) as default, a.attidentity as identity,
                a.attgenerated as generated, a.attstorage as storage,
                case when a.attstattarget::int >= 0 then a.attstattarget::int end as statistics, a.attcompression as compression,
                a.attoptions as options,
                row_number() over (partition by c.oid order by a.attnum) as position
           from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
           join pg_type t on t.oid = a.atttypid
           left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
          where ${USER} and c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0 and not a.attisdropped
          order by 1, position`,
      ),
      constraints: await rows(
        client,
        // A foreign key referencing a partitioned table has a clone on its own table for each
        // partition it references, named by Postgres in the order the partitions met the key
        // (fk_a_fkey1, fk_a_fkey2, …): internal, not shown by \d, not kept by pg_dump. Compared
        // by what they reference, not by those names.
        `select c.conrelid::regclass::text as table,
                case when exists (select 1 from pg_constraint p where p.oid = c.conparentid and p.conrelid = c.conrelid)
                     then '(a clone for a referenced partition)' else c.conname end as name,
                c.contype as type, pg_get_constraintdef(c.oid) as def, c.condeferrable as deferrable, c.convalidated as validated
           from pg_constraint c join pg_namespace n on n.oid = c.connamespace
          where ${USER} and c.conrelid <> 0 and c.contype <> 'n'
          order by 1, 2, 4`,
      ),
      indexes: await rows(
        client,
        `select i.indrelid::regclass::text as table, i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def,
                (select h.inhparent::regclass::text from pg_inherits h where h.inhrelid = i.indexrelid) as parent, i.indisvalid as valid
           from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
          where ${USER}
          order by 2`,
      ),
      triggers: await rows(
        client,
        `select t.tgrelid::regclass::text as table, t.tgname as name, pg_get_triggerdef(t.oid) as def, t.tgenabled as enabled,
                t.tgparentid <> 0 as cloned
           from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
          where ${USER} and not t.tgisinternal
          order by 1, 2`,
      ),
      rules: await rows(
        client,
        `select r.ev_class::regclass::text as table, r.rulename as name, pg_get_ruledef(r.oid) as def
           from pg_rewrite r join pg_class c on c.oid = r.ev_class join pg_namespace n on n.oid = c.relnamespace
          where ${USER} and r.rulename <> '_RETURN' order by 1, 2`,
      ),
      routines: await rows(
        client,
        `select p.oid::regprocedure::text as name, p.prokind as kind,
                case when p.prokind in ('f', 'p', 'w') then pg_get_functiondef(p.oid) end as def,
                (select a.aggtransfn::regproc::text || ' ' || format_type(a.aggtranstype, null) from pg_aggregate a where a.aggfnoid = p.oid) as aggregate
           from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where ${USER} and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
            -- Over a temporary table's row type: dropped with its session, no part of the database.
            and not exists (select 1 from pg_depend d join pg_type t on t.oid = d.refobjid join pg_namespace tn on tn.oid = t.typnamespace
                             where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.refclassid = 'pg_type'::regclass
                               and tn.nspname like 'pg\\_temp\\_%')
          order by 1`,
      ),
      sequences: await rows(
        client,
        `select c.oid::regclass::text as name, format_type(s.seqtypid, null) as type, s.seqstart::text as start,
                s.seqincrement::text as increment, s.seqmin::text as min, s.seqmax::text as max, s.seqcache::text as cache, s.seqcycle as cycle,
                (select d.refobjid::regclass::text || '.' || a.attname from pg_depend d
                   join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
                  where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')) as owned_by
           from pg_sequence s join pg_class c on c.oid = s.seqrelid join pg_namespace n on n.oid = c.relnamespace
          where ${USER} order by 1`,
      ),
      // The user's (made after initdb, not by an extension): they have no schema.
      accessMethods: await rows(
        client,
        `select am.amname as name, am.amtype as type, am.amhandler::regproc::text as handler
           from pg_am am where am.oid >= 16384
            and not exists (select 1 from pg_depend d where d.classid = 'pg_am'::regclass and d.objid = am.oid and d.deptype = 'e')
          order by 1`,
      ),
      comments: await rows(
        client,
        `select o.type, o.identity, d.description
           from pg_description d, pg_identify_object(d.classoid, d.objoid, d.objsubid) o
          where d.objoid >= 16384 and o.schema is distinct from 'pg_catalog'
            -- Publications are the archive's, not the database's: no replay makes them.
            and o.type <> 'publication' order by 1, 2`,
      ),
      // The locale is in a column of its own from 15 (colliculocale, then colllocale in 17): read
      // whole, with the catalog's every field of each, whichever major this is.
      collations: await rows(
        client,
        `select c.oid::regcollation::text as name, c.collprovider as provider, c.collisdeterministic as deterministic,
                to_jsonb(c) - 'oid' - 'collname' - 'collnamespace' - 'collowner' - 'collprovider' - 'collisdeterministic' - 'collversion' as settings
           from pg_collation c join pg_namespace n on n.oid = c.collnamespace
          where ${USER} and not exists (select 1 from pg_depend d where d.classid = 'pg_collation'::regclass and d.objid = c.oid and d.deptype = 'e')
          order by 1`,
      ),
      text_search: await rows(
        client,
        `select 'dictionary' as kind, d.oid::regdictionary::text as name, t.tmplname as template, d.dictinitoption as options, null as mappings
           from pg_ts_dict d join pg_namespace n on n.oid = d.dictnamespace join pg_ts_template t on t.oid = d.dicttemplate
          where ${USER}
         union all
         select 'configuration', c.oid::regconfig::text, p.prsname, null,
                (select array_agg(tt.alias || ': ' || m.mapdict::regdictionary::text order by m.maptokentype, m.mapseqno)
                   from pg_ts_config_map m join ts_token_type(c.cfgparser) tt on tt.tokid = m.maptokentype where m.mapcfg = c.oid)
           from pg_ts_config c join pg_namespace n on n.oid = c.cfgnamespace join pg_ts_parser p on p.oid = c.cfgparser
          where ${USER}
          order by 1, 2`,
      ),
      operators: await rows(
        client,
        `select o.oid::regoperator::text as name, o.oprcode::regproc::text as function, o.oprcom::regoperator::text as commutator,
                o.oprnegate::regoperator::text as negator, o.oprrest::regproc::text as restrict, o.oprjoin::regproc::text as join,
                o.oprcanhash as hashes, o.oprcanmerge as merges
           from pg_operator o join pg_namespace n on n.oid = o.oprnamespace where ${USER} order by 1`,
      ),
      // Each class and family with its members: those of a class, and a family's loose ones.
      operator_classes: await rows(
        client,
        `select 'class' as kind, quote_ident(n.nspname) || '.' || quote_ident(c.opcname) as name, am.amname as method,
                format_type(c.opcintype, null) as type, c.opcdefault as default, f.opfname as family, ${members('pg_opclass', 'c.oid')} as members
           from pg_opclass c join pg_namespace n on n.oid = c.opcnamespace join pg_am am on am.oid = c.opcmethod
           join pg_opfamily f on f.oid = c.opcfamily where ${USER}
         union all
         select 'family', quote_ident(n.nspname) || '.' || quote_ident(f.opfname), am.amname, null, null, null, ${members('pg_opfamily', 'f.oid')}
           from pg_opfamily f join pg_namespace n on n.oid = f.opfnamespace join pg_am am on am.oid = f.opfmethod where ${USER}
          order by 1, 2, 3`,
      ),
      // A cast has no schema: the user's are those made after initdb that no extension brought.
      casts: await rows(
        client,
        `select format_type(c.castsource, null) as source, format_type(c.casttarget, null) as target,
                case when c.castfunc <> 0 then c.castfunc::regprocedure::text end as function, c.castcontext as context, c.castmethod as method
           from pg_cast c
          where c.oid >= 16384 and not exists (select 1 from pg_depend e where e.classid = 'pg_cast'::regclass and e.objid = c.oid and e.deptype = 'e')
          order by 1, 2`,
      ),
      conversions: await rows(
        client,
        `select quote_ident(n.nspname) || '.' || quote_ident(c.conname) as name, pg_encoding_to_char(c.conforencoding) as source,
                pg_encoding_to_char(c.contoencoding) as target, c.conproc::regprocedure::text as function, c.condefault as default
           from pg_conversion c join pg_namespace n on n.oid = c.connamespace where ${USER} order by 1`,
      ),
      statistics: await rows(
        client,
        `select pg_get_statisticsobjdef(s.oid) as def from pg_statistic_ext s join pg_namespace n on n.oid = s.stxnamespace where ${USER} order by 1`,
      ),
    };
  } finally {
    await client.query('reset search_path');
  }
}

/** Each sequence's value, for the check that a replay's never ends below what its columns hold. */
export async function sequenceValues(client: pg.Client): Promise<Record<string, bigint | null>> {
  const found = await rows<{ name: string; value: string | null }>(
    client,
    `select quote_ident(schemaname) || '.' || quote_ident(sequencename) as name, last_value::text as value from pg_sequences
      where schemaname not in ('pgtape') order by 1`,
  );
  return Object.fromEntries(found.map((r) => [r.name, r.value === null ? null : BigInt(r.value)]));
}

/**
 * What differs between two descriptions, an entry a line (`section - entry` only in `want`,
 * `section + entry` only in `got`): a failing comparison of hundreds of objects says which.
 */
export function schemaDifferences(want: SchemaDescription, got: SchemaDescription): string[] {
  const out: string[] = [];
  for (const section of new Set([...Object.keys(want), ...Object.keys(got)])) {
    const a = (want[section] ?? []).map((x) => JSON.stringify(x));
    const b = (got[section] ?? []).map((x) => JSON.stringify(x));
    const inB = new Set(b);
    const inA = new Set(a);
    for (const x of a) if (!inB.has(x)) out.push(`${section} - ${x}`);
    for (const x of b) if (!inA.has(x)) out.push(`${section} + ${x}`);
  }
  return out;
}
