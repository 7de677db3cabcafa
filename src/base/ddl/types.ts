import type pg from 'pg';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../core/sql.js';
import { RANK, type CatalogObject } from './objects.js';
import { notExtensionMember, USER_SCHEMA } from './scope.js';

// User-defined types: enums, composites, ranges and domains (with their constraints). Base types
// need C functions only an extension brings: those not brought by one are reported, not made.

export async function readTypes(client: pg.Client): Promise<{ objects: CatalogObject[]; notRestored: string[] }> {
  const { rows } = await client.query<{
    oid: number;
    schema: string;
    name: string;
    typtype: string;
    relid: number;
    base: string | null;
    collation: string | null;
    def: string | null;
    not_null: boolean;
  }>(
    `select t.oid::int as oid, n.nspname as schema, t.typname as name, t.typtype, t.typrelid::int as relid,
            case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) end as base,
            case when t.typtype = 'd' and t.typcollation <> 0 and t.typcollation <> bt.typcollation
                 then quote_ident(cn.nspname) || '.' || quote_ident(co.collname) end as collation,
            t.typdefault as def, t.typnotnull as not_null
       from pg_type t
       join pg_namespace n on n.oid = t.typnamespace
       left join pg_type bt on bt.oid = t.typbasetype
       left join pg_collation co on co.oid = t.typcollation
       left join pg_namespace cn on cn.oid = co.collnamespace
       left join pg_class rc on rc.oid = t.typrelid
      where ${USER_SCHEMA} and ${notExtensionMember('pg_type', 't.oid')}
        and t.typtype in ('e', 'c', 'r', 'd', 'b')
        and (t.typtype <> 'c' or rc.relkind = 'c')
        and not (t.typtype = 'b' and t.typelem <> 0 and t.typsubscript = 'array_subscript_handler'::regproc)
      order by 2, 3`,
  );
  const objects: CatalogObject[] = [];
  const notRestored: string[] = [];
  const labels = await enumLabels(client);
  const fields = await compositeFields(client);
  const ranges = await rangeDefinitions(client);
  const checks = await domainConstraints(client);
  for (const t of rows) {
    const name = quoteQualified(t.schema, t.name);
    const object = (kind: string, sql: string[], rank: number): CatalogObject => ({ key: `pg_type:${t.oid}`, kind, name, sql, rank });
    switch (t.typtype) {
      case 'e':
        objects.push(
          object('enum type', [`CREATE TYPE ${name} AS ENUM (${(labels.get(t.oid) ?? []).map(quoteLiteral).join(', ')})`], RANK.type),
        );
        break;
      case 'c':
        objects.push(object('composite type', [`CREATE TYPE ${name} AS (${(fields.get(t.relid) ?? []).join(', ')})`], RANK.type));
        break;
      case 'r':
        objects.push(object('range type', [`CREATE TYPE ${name} AS RANGE (${ranges.get(t.oid)})`], RANK.type));
        break;
      case 'd': {
        const sql = [
          `CREATE DOMAIN ${name} AS ${t.base}${t.collation ? ` COLLATE ${t.collation}` : ''}${t.def !== null ? ` DEFAULT ${t.def}` : ''}`,
          ...(checks.get(t.oid) ?? []).map((c) => `ALTER DOMAIN ${name} ADD CONSTRAINT ${quoteIdent(c.name)} ${c.def}`),
          ...(t.not_null ? [`ALTER DOMAIN ${name} SET NOT NULL`] : []),
        ];
        objects.push(object('domain', sql, RANK.domain));
        break;
      }
      default:
        notRestored.push(`type ${name}: a base type defined in C outside any extension (make it on the replay server by hand)`);
    }
  }
  return { objects, notRestored };
}

async function enumLabels(client: pg.Client): Promise<Map<number, string[]>> {
  const { rows } = await client.query<{ oid: number; labels: string[] }>(
    `select enumtypid::int as oid, array_agg(enumlabel::text order by enumsortorder) as labels from pg_enum group by enumtypid`,
  );
  return new Map(rows.map((r) => [r.oid, r.labels]));
}

async function compositeFields(client: pg.Client): Promise<Map<number, string[]>> {
  const { rows } = await client.query<{ rel: number; field: string }>(
    `select a.attrelid::int as rel,
            quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) ||
              case when a.attcollation <> 0 and a.attcollation <> t.typcollation
                   then ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) else '' end as field
       from pg_attribute a
       join pg_class c on c.oid = a.attrelid and c.relkind = 'c'
       join pg_type t on t.oid = a.atttypid
       left join pg_collation co on co.oid = a.attcollation
       left join pg_namespace cn on cn.oid = co.collnamespace
      where a.attnum > 0 and not a.attisdropped
      order by a.attrelid, a.attnum`,
  );
  const out = new Map<number, string[]>();
  for (const r of rows) (out.get(r.rel) ?? out.set(r.rel, []).get(r.rel)!).push(r.field);
  return out;
}

async function rangeDefinitions(client: pg.Client): Promise<Map<number, string>> {
  const { rows } = await client.query<{ oid: number; def: string }>(
    `select r.rngtypid::int as oid,
            concat_ws(', ',
              'SUBTYPE = ' || format_type(r.rngsubtype, null),
              'SUBTYPE_OPCLASS = ' || quote_ident(opn.nspname) || '.' || quote_ident(opc.opcname),
              case when r.rngcollation <> 0 and r.rngcollation <> st.typcollation
                   then 'COLLATION = ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) end,
              case when r.rngcanonical <> 0 then 'CANONICAL = ' || r.rngcanonical::regproc::text end,
              case when r.rngsubdiff <> 0 then 'SUBTYPE_DIFF = ' || r.rngsubdiff::regproc::text end,
              'MULTIRANGE_TYPE_NAME = ' || quote_ident(mn.nspname) || '.' || quote_ident(mt.typname)) as def
       from pg_range r
       join pg_type st on st.oid = r.rngsubtype
       join pg_opclass opc on opc.oid = r.rngsubopc
       join pg_namespace opn on opn.oid = opc.opcnamespace
       left join pg_collation co on co.oid = r.rngcollation
       left join pg_namespace cn on cn.oid = co.collnamespace
       join pg_type mt on mt.oid = r.rngmultitypid
       join pg_namespace mn on mn.oid = mt.typnamespace`,
  );
  return new Map(rows.map((r) => [r.oid, r.def]));
}

async function domainConstraints(client: pg.Client): Promise<Map<number, { name: string; def: string }[]>> {
  const { rows } = await client.query<{ oid: number; name: string; def: string }>(
    `select contypid::int as oid, conname as name, pg_get_constraintdef(oid) as def
       from pg_constraint where contypid <> 0 and contype = 'c' order by contypid, conname`,
  );
  const out = new Map<number, { name: string; def: string }[]>();
  for (const r of rows) (out.get(r.oid) ?? out.set(r.oid, []).get(r.oid)!).push({ name: r.name, def: r.def });
  return out;
}
