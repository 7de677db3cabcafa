import type pg from 'pg';
import { quoteIdent, quoteQualified } from '../../core/sql.js';
import type { BaseDdl, SchemaObject } from '../../log/bases.js';
import { accessMethodFollow, IDENTITY_SEQUENCE_FROM, usingClause } from '../../source/ddl-statements.js';
import { COLUMN_SETTINGS, columnSettingStatements, type ColumnSettings } from '../../source/deparse.js';
import { RANK, type CatalogObject } from './objects.js';
import { notExtensionMember, USER_SCHEMA, type Scope } from './scope.js';

// Tables (with their partitions and inheritance), sequences, views and materialized views.
// Constraints, indexes and triggers are post-data (post-data.ts), as in a dump.

interface Column {
  rel: number;
  name: string;
  type: string;
  collation: string | null;
  not_null: boolean;
  def: string | null;
  identity: string;
  generated: string;
  local: boolean;
  identity_sequence: string | null;
  settings: ColumnSettings;
}

export async function readRelations(
  client: pg.Client,
  scope: Scope,
): Promise<{
  objects: CatalogObject[];
  sequences: BaseDdl['sequences'];
  alwaysIdentity: BaseDdl['alwaysIdentity'];
  typed: SchemaObject[];
}> {
  const tables = [...scope.tables];
  const { rows: rels } = await client.query<{
    oid: number;
    schema: string;
    name: string;
    kind: string;
    partkey: string | null;
    bound: string | null;
    parent: string | null;
    parent_oid: number | null;
    inherits: string[] | null;
    options: string[] | null;
    populated: boolean;
    viewdef: string | null;
    view_defaults: { column: string; def: string }[] | null;
    of_type: string | null;
    access_method: string | null;
  }>(
    `select c.oid::int as oid, n.nspname as schema, c.relname as name, c.relkind as kind,
            case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end as partkey,
            case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end as bound,
            case when c.relispartition then (select quote_ident(pn.nspname) || '.' || quote_ident(pc.relname)
                                               from pg_inherits i join pg_class pc on pc.oid = i.inhparent
                                               join pg_namespace pn on pn.oid = pc.relnamespace where i.inhrelid = c.oid) end as parent,
            case when c.relispartition then (select i.inhparent::int from pg_inherits i where i.inhrelid = c.oid) end as parent_oid,
            case when not c.relispartition then (select array_agg(quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) order by i.inhseqno)
                                                   from pg_inherits i join pg_class pc on pc.oid = i.inhparent
                                                   join pg_namespace pn on pn.oid = pc.relnamespace where i.inhrelid = c.oid) end as inherits,
            c.reloptions as options, c.relispopulated as populated,
            case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end as viewdef,
            case when c.relkind = 'v' then (select json_agg(json_build_object('column', a.attname, 'def', pg_get_expr(d.adbin, d.adrelid)) order by a.attnum)
                                              from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
                                             where d.adrelid = c.oid) end as view_defaults,
            case when c.reloftype <> 0 and not c.relispartition then format_type(c.reloftype, null) end as of_type,
            (select am.amname from pg_am am where am.oid = c.relam) as access_method
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where (c.oid = any($1::oid[]) or (c.relkind in ('v', 'm') and ${USER_SCHEMA} and ${notExtensionMember('pg_class', 'c.oid')}))
      order by 2, 3`,
    [tables],
  );
  const columns = await readColumns(client, tables);
  const objects: CatalogObject[] = [];
  const alwaysIdentity: BaseDdl['alwaysIdentity'] = [];
  const typed: SchemaObject[] = [];
  for (const r of rels) {
    const name = quoteQualified(r.schema, r.name);
    const key = `pg_class:${r.oid}`;
    // An access method of an extension's, or made by the user (catalog-objects.ts).
    const with_ = `${usingClause(r.access_method, r.parent !== null)}${r.options?.length ? ` WITH (${r.options.join(', ')})` : ''}`;
    if (r.kind === 'v' || r.kind === 'm') {
      const query = r.viewdef!.trim().replace(/;$/, '');
      const sql =
        r.kind === 'v' ? `CREATE VIEW ${name}${with_} AS ${query}` : `CREATE MATERIALIZED VIEW ${name}${with_} AS ${query} WITH NO DATA`;
      // A view's column defaults (ALTER VIEW … ALTER COLUMN … SET DEFAULT: what an INSERT through it takes).
      const defaults = (r.view_defaults ?? []).map((d) => `ALTER VIEW ${name} ALTER COLUMN ${quoteIdent(d.column)} SET DEFAULT ${d.def}`);
      objects.push({ key, kind: r.kind === 'v' ? 'view' : 'materialized view', name, sql: [sql, ...defaults], rank: RANK.view });
      continue;
    }
    // Columns a publication's column list leaves out are not in the archive: not in the replay either.
    const list = scope.columnLists.get(r.oid);
    const own = (columns.get(r.oid) ?? []).filter((c) => !list || list.has(c.name));
    for (const c of own) if (c.identity === 'a') alwaysIdentity.push({ schema: r.schema, table: r.name, column: c.name });
    const table = `${r.schema}.${r.name}`;
    const sql: string[] = [];
    if (r.parent) {
      // A partition: its columns are its parent's; what it sets apart is added after, but for a
      // generation expression of its own (Postgres 16), which only its CREATE can give it.
      const parentColumns = columns.get(r.parent_oid!) ?? [];
      const ownExpressions = own
        .filter((c) => c.generated && parentColumns.some((p) => p.name === c.name && p.generated && p.def !== c.def))
        .map((c) => `${quoteIdent(c.name)} WITH OPTIONS${generatedDefinition(c)}`);
      const of = ownExpressions.length ? ` (${ownExpressions.join(', ')})` : '';
      sql.push(`CREATE TABLE ${name} PARTITION OF ${r.parent}${of} ${r.bound}${r.partkey ? ` PARTITION BY ${r.partkey}` : ''}${with_}`);
      // A partitioned partition without a method takes its parent's when made (Postgres 17): taken away again.
      if (r.kind === 'p' && !r.access_method) sql.push(accessMethodFollow(name, ''));
    } else {
      const local = own.filter((c) => c.local);
      const defs = local.map(columnDefinition);
      const inherits = r.inherits?.length ? ` INHERITS (${r.inherits.join(', ')})` : '';
      sql.push(`CREATE TABLE ${name} (${defs.join(', ')})${inherits}${r.partkey ? ` PARTITION BY ${r.partkey}` : ''}${with_}`);
    }
    for (const c of own) {
      if (r.parent || !c.local) {
        // Inherited columns take their parent's default and NOT NULL: what differs is set here.
        if (c.def !== null && !c.generated) sql.push(`ALTER TABLE ONLY ${name} ALTER COLUMN ${quoteIdent(c.name)} SET DEFAULT ${c.def}`);
        if (c.not_null && !c.identity) sql.push(`ALTER TABLE ONLY ${name} ALTER COLUMN ${quoteIdent(c.name)} SET NOT NULL`);
      }
      sql.push(...columnSettingStatements(name, c.name, c.settings));
    }
    objects.push({ key, kind: r.kind === 'p' ? 'partitioned table' : 'table', name, sql, table, rank: RANK.table });
    // A typed table (CREATE TABLE … OF type) is linked to its type once every change is in: the link
    // forbids the column changes captured DDL may replay, and a publication's column list may leave
    // the table unable to match its type (a warning then, not a failed table).
    if (r.of_type) typed.push({ kind: 'typed table', name, sql: [`ALTER TABLE ONLY ${name} OF ${r.of_type}`], table });
  }
  const sequences = await readSequences(client, scope);
  return { objects: [...objects, ...sequences.objects], sequences: sequences.sequences, alwaysIdentity, typed };
}

/**
 * A column as CREATE TABLE writes it. An identity column GENERATED ALWAYS is made BY DEFAULT:
 * replay writes the values the source assigned, and sets it back to ALWAYS at the end.
 */
function columnDefinition(c: Column): string {
  let def = `${quoteIdent(c.name)} ${c.type}`;
  if (c.collation) def += ` COLLATE ${c.collation}`;
  if (c.generated) def += generatedDefinition(c);
  else if (c.identity) def += ` GENERATED BY DEFAULT AS IDENTITY${c.identity_sequence ? ` (${c.identity_sequence})` : ''}`;
  else if (c.def !== null) def += ` DEFAULT ${c.def}`;
  if (c.not_null) def += ' NOT NULL';
  return def;
}

function generatedDefinition(c: Column): string {
  return ` GENERATED ALWAYS AS (${c.def}) ${c.generated === 'v' ? 'VIRTUAL' : 'STORED'}`;
}

async function readColumns(client: pg.Client, tables: number[]): Promise<Map<number, Column[]>> {
  const { rows } = await client.query<Column>(
    `select a.attrelid::int as rel, a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
            case when a.attcollation <> 0 and a.attcollation <> t.typcollation
                 then quote_ident(cn.nspname) || '.' || quote_ident(co.collname) end as collation,
            a.attnotnull as not_null, pg_get_expr(d.adbin, d.adrelid) as def, a.attidentity as identity,
            a.attgenerated as generated, a.attislocal as local,
            case when a.attidentity <> '' then (
              select concat_ws(' ', 'SEQUENCE NAME ' || quote_ident(sn.nspname) || '.' || quote_ident(sc.relname),
                               'START WITH ' || s.seqstart, 'INCREMENT BY ' || s.seqincrement,
                               'MINVALUE ' || s.seqmin, 'MAXVALUE ' || s.seqmax, 'CACHE ' || s.seqcache,
                               case when s.seqcycle then 'CYCLE' else 'NO CYCLE' end)
                ${IDENTITY_SEQUENCE_FROM})
            end as identity_sequence,
            ${COLUMN_SETTINGS} as settings
       from pg_attribute a
       join pg_type t on t.oid = a.atttypid
       left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
       left join pg_collation co on co.oid = a.attcollation
       left join pg_namespace cn on cn.oid = co.collnamespace
      where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped
      order by a.attrelid, a.attnum`,
    [tables],
  );
  const out = new Map<number, Column[]>();
  for (const r of rows) (out.get(r.rel) ?? out.set(r.rel, []).get(r.rel)!).push(r);
  return out;
}

/**
 * Sequences in the user's schemas (identity sequences come with their column), each made before
 * the tables whose defaults draw from it, then OWNED BY its column once the table exists.
 */
async function readSequences(client: pg.Client, scope: Scope): Promise<{ objects: CatalogObject[]; sequences: BaseDdl['sequences'] }> {
  const { rows } = await client.query<{
    oid: number;
    schema: string;
    name: string;
    def: string;
    last_value: string | null;
    owner: number | null;
    owned_by: string | null;
    columns: { schema: string; table: string; column: string }[];
    identity: boolean;
  }>(
    `select c.oid::int as oid, n.nspname as schema, c.relname as name,
            concat_ws(' ', 'AS ' || format_type(s.seqtypid, null), 'INCREMENT BY ' || s.seqincrement, 'MINVALUE ' || s.seqmin,
                      'MAXVALUE ' || s.seqmax, 'START WITH ' || s.seqstart, 'CACHE ' || s.seqcache,
                      case when s.seqcycle then 'CYCLE' else 'NO CYCLE' end) as def,
            ps.last_value::text as last_value,
            own.refobjid::int as owner,
            case when own.refobjid is not null then quote_ident(tn.nspname) || '.' || quote_ident(tc.relname) || '.' || quote_ident(ta.attname) end as owned_by,
            coalesce((select json_agg(distinct jsonb_build_object('schema', un.nspname, 'table', uc.relname, 'column', ua.attname))
                        from pg_depend u
                        join pg_attrdef ad on u.classid = 'pg_attrdef'::regclass and ad.oid = u.objid
                        join pg_class uc on uc.oid = ad.adrelid join pg_namespace un on un.oid = uc.relnamespace
                        join pg_attribute ua on ua.attrelid = ad.adrelid and ua.attnum = ad.adnum
                       where u.refclassid = 'pg_class'::regclass and u.refobjid = c.oid), '[]') as columns,
            exists (select 1 from pg_depend i where i.classid = 'pg_class'::regclass and i.objid = c.oid and i.deptype = 'i') as identity
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       join pg_sequence s on s.seqrelid = c.oid
       left join pg_sequences ps on ps.schemaname = n.nspname and ps.sequencename = c.relname
       left join pg_depend own on own.classid = 'pg_class'::regclass and own.objid = c.oid and own.deptype = 'a' and own.refobjsubid > 0
       left join pg_class tc on tc.oid = own.refobjid
       left join pg_namespace tn on tn.oid = tc.relnamespace
       left join pg_attribute ta on ta.attrelid = own.refobjid and ta.attnum = own.refobjsubid
      where c.relkind = 'S' and ${USER_SCHEMA} and ${notExtensionMember('pg_class', 'c.oid')}
      order by 2, 3`,
  );
  const objects: CatalogObject[] = [];
  const sequences: BaseDdl['sequences'] = [];
  const identity = await identityColumns(client, scope);
  for (const r of rows) {
    const name = quoteQualified(r.schema, r.name);
    // A sequence owned by a table the base leaves out goes with it.
    if (r.owner !== null && !scope.tables.has(r.owner)) continue;
    // Columns of tables the base leaves out are not there to look at.
    const recreated = new Set(scope.tableNames.values());
    const columns = r.identity ? (identity.get(r.oid) ?? []) : r.columns.filter((c) => recreated.has(`${c.schema}.${c.table}`));
    sequences.push({ schema: r.schema, name: r.name, lastValue: r.last_value, columns });
    if (r.identity) continue;
    objects.push({ key: `pg_class:${r.oid}`, kind: 'sequence', name, sql: [`CREATE SEQUENCE ${name} ${r.def}`], rank: RANK.sequence });
    if (r.owned_by) {
      objects.push({
        key: `owned:${r.oid}`,
        kind: 'sequence ownership',
        name,
        sql: [`ALTER SEQUENCE ${name} OWNED BY ${r.owned_by}`],
        rank: RANK.owned,
        table: scope.tableNames.get(r.owner!),
      });
    }
  }
  return { objects, sequences };
}

/** Identity sequences by oid, with the column each serves. */
async function identityColumns(client: pg.Client, scope: Scope): Promise<Map<number, { schema: string; table: string; column: string }[]>> {
  const { rows } = await client.query<{ seq: number; schema: string; table: string; column: string }>(
    `select d.objid::int as seq, n.nspname as schema, c.relname as table, a.attname as column
       from pg_depend d join pg_class c on c.oid = d.refobjid join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
      where d.classid = 'pg_class'::regclass and d.deptype = 'i' and d.refobjid = any($1::oid[])`,
    [[...scope.tables]],
  );
  return new Map(rows.map((r) => [r.seq, [{ schema: r.schema, table: r.table, column: r.column }]]));
}
