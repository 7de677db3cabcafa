import type pg from 'pg';
import { baseTableFile, type BaseSchema, type BaseTable } from '../log/bases.js';
import { publishedColumnLists } from './ddl/scope.js';

/**
 * Reads the shape of the published tables from the catalog, inside the base's snapshot:
 * columns with their types and modifiers, NOT NULL, constant defaults, primary keys,
 * replica identity, and the enum and domain types the columns use.
 */
export async function readPublishedSchema(
  client: pg.Client,
  publication: string,
  serverVersion: number,
): Promise<Pick<BaseSchema, 'schemas' | 'enums' | 'domains' | 'tables'>> {
  // Row filters and column lists came with 15: the base copies only what the publication publishes.
  const filters = serverVersion >= 150000 ? 'p.rowfilter' : 'null as rowfilter';
  const columnLists = await publishedColumnLists(client, publication);
  const tables = await client.query<{
    oid: number;
    schema: string;
    name: string;
    identity: string;
    kind: string;
    rowfilter: string | null;
  }>(
    `select c.oid::int as oid, n.nspname as schema, c.relname as name, c.relreplident as identity, c.relkind as kind, ${filters}
       from pg_publication_tables p
       join pg_namespace n on n.nspname = p.schemaname
       join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename
      where p.pubname = $1
      order by 2, 3`,
    [publication],
  );
  const oids = tables.rows.map((t) => t.oid);
  const columns = await client.query<{
    rel: number;
    attnum: number;
    name: string;
    type: string;
    type_oid: number;
    typmod: number;
    not_null: boolean;
    def: string | null;
    generated: string;
  }>(
    `select a.attrelid::int as rel, a.attnum::int as attnum, a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
            a.atttypid::int as type_oid, a.atttypmod as typmod, a.attnotnull as not_null,
            pg_get_expr(d.adbin, d.adrelid) as def, a.attgenerated::text as generated
       from pg_attribute a
       left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped and a.attgenerated in ('', 's')
      order by a.attrelid, a.attnum`,
    [oids],
  );
  const keys = await client.query<{ rel: number; columns: string[] }>(
    `select i.indrelid::int as rel, array_agg(a.attname::text order by k.ord) as columns
       from pg_index i
       cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
       join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
      where i.indrelid = any($1::oid[]) and i.indisprimary
      group by i.indrelid`,
    [oids],
  );
  const usedTypes = [...new Set(columns.rows.filter((c) => !c.generated).map((c) => c.type_oid))];
  const enums = await client.query<{ schema: string; name: string; labels: string[] }>(
    `select n.nspname as schema, t.typname as name, array_agg(e.enumlabel::text order by e.enumsortorder) as labels
       from pg_type t join pg_namespace n on n.oid = t.typnamespace join pg_enum e on e.enumtypid = t.oid
      where t.oid = any($1::oid[]) or t.oid in (select typelem from pg_type where oid = any($1::oid[]))
      group by 1, 2 order by 1, 2`,
    [usedTypes],
  );
  const domains = await client.query<{ schema: string; name: string; base_type: string; not_null: boolean; def: string | null }>(
    `select n.nspname as schema, t.typname as name, format_type(t.typbasetype, t.typtypmod) as base_type,
            t.typnotnull as not_null, t.typdefault as def
       from pg_type t join pg_namespace n on n.oid = t.typnamespace
      where t.typtype = 'd' and t.oid = any($1::oid[])
      order by 1, 2`,
    [usedTypes],
  );
  const byTable = new Map<number, BaseTable>();
  const published = new Map<number, Set<string> | undefined>();
  tables.rows.forEach((t, i) => {
    published.set(t.oid, columnLists.get(t.oid));
    byTable.set(t.oid, {
      schema: t.schema,
      name: t.name,
      oid: t.oid,
      replicaIdentity: t.identity,
      columns: [],
      primaryKey: [],
      file: baseTableFile(i + 1),
      ...(t.kind === 'p' ? { partitioned: true } : {}),
      ...(t.rowfilter ? { rowFilter: t.rowfilter } : {}),
    });
  });
  for (const c of columns.rows) {
    if (c.generated) {
      // COPY leaves them out of the base's rows; a Postgres 18 publication may send their values.
      const t = byTable.get(c.rel)!;
      t.generatedColumns = [...(t.generatedColumns ?? []), c.name];
      continue;
    }
    const list = published.get(c.rel);
    if (list && !list.has(c.name)) {
      const t = byTable.get(c.rel)!;
      t.unpublishedColumns = [...(t.unpublishedColumns ?? []), c.name];
      continue;
    }
    byTable.get(c.rel)!.columns.push({
      name: c.name,
      attnum: c.attnum,
      type: c.type,
      typeOid: c.type_oid,
      typmod: c.typmod,
      notNull: c.not_null,
      ...(c.def !== null && isConstant(c.def) ? { default: c.def } : {}),
    });
  }
  for (const k of keys.rows) byTable.get(k.rel)!.primaryKey = k.columns;
  const all = [...byTable.values()];
  return {
    schemas: [
      ...new Set(
        all
          .map((t) => t.schema)
          .concat(
            enums.rows.map((e) => e.schema),
            domains.rows.map((d) => d.schema),
          ),
      ),
    ].sort(),
    enums: enums.rows,
    domains: domains.rows.map((d) => ({
      schema: d.schema,
      name: d.name,
      baseType: d.base_type,
      notNull: d.not_null,
      ...(d.def !== null && isConstant(d.def) ? { default: d.def } : {}),
    })),
    tables: all,
  };
}

const CONSTANT = /^(?:'(?:[^']|'')*'|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|true|false|null)(?:::[\w\s."\[\]]+(?:\(\d+(?:,\d+)?\))?(?:\[\])*)*$/i;

/** A literal, possibly cast: 'abc'::text, 42, -1.5, true, NULL. No calls, no sequences. */
export function isConstant(expr: string): boolean {
  return CONSTANT.test(expr.trim());
}
