import type pg from 'pg';

// Which objects of the source a base recreates: the published tables with their partition trees,
// and the user objects around them — every object outside the system schemas and pgtape's own,
// that no extension owns (the extension brings those).

/** Objects an extension owns, by catalog and oid: never dumped one by one. */
const EXTENSION_MEMBER = `exists (select 1 from pg_depend e where e.classid = $CLASS::regclass and e.objid = $OID and e.deptype = 'e')`;

/** Postgres' FirstNormalObjectId: an object with a lower oid came with initdb. */
export const FIRST_NORMAL_OID = 16384;

/** A namespace pgtape recreates objects of. */
export const USER_SCHEMA = `(n.nspname not in ('pg_catalog', 'information_schema', 'pgtape') and n.nspname not like 'pg\\_%')`;

export function notExtensionMember(catalog: string, oid: string): string {
  return `not ${EXTENSION_MEMBER.replace('$CLASS', `'${catalog}'`).replace('$OID', oid)}`;
}

export interface Scope {
  /** Tables whose rows the publication carries (pg_publication_tables). */
  published: number[];
  /** Every table the schema recreates: the published ones, their partitions and ancestors. */
  tables: Set<number>;
  /** `schema.name` of each table, by oid. */
  tableNames: Map<number, string>;
  /** A publication's column list (15+): the only columns of the table the archive knows. */
  columnLists: Map<number, Set<string>>;
}

export async function readScope(client: pg.Client, publication: string): Promise<Scope> {
  const published = await client.query<{ oid: number }>(
    `select c.oid::int as oid
       from pg_publication_tables p
       join pg_namespace n on n.nspname = p.schemaname
       join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename
      where p.pubname = $1`,
    [publication],
  );
  const oids = published.rows.map((r) => r.oid);
  // A published root brings its partitions (its changes may come per leaf or through the root); a
  // published leaf needs its ancestors to exist.
  const all = await client.query<{ oid: number; name: string }>(
    `with t(oid) as (
       select unnest($1::oid[])
       union select p.relid from unnest($1::oid[]) r(oid), pg_partition_tree(r.oid) p
       union select a.relid from unnest($1::oid[]) r(oid), pg_partition_ancestors(r.oid) a
     )
     select c.oid::int as oid, n.nspname || '.' || c.relname as name
       from t join pg_class c on c.oid = t.oid join pg_namespace n on n.oid = c.relnamespace`,
    [oids],
  );
  return {
    published: oids,
    tables: new Set(all.rows.map((r) => r.oid)),
    tableNames: new Map(all.rows.map((r) => [r.oid, r.name])),
    columnLists: await publishedColumnLists(client, publication),
  };
}

/**
 * The column lists a publication (15+) gives its tables explicitly: the only columns of those
 * tables the archive knows. (pg_publication_tables.attnames lists every published column, and
 * leaves out generated columns, which a publication never carries before 18: not a column list.)
 */
export async function publishedColumnLists(client: pg.Client, publication: string): Promise<Map<number, Set<string>>> {
  const version = Number((await client.query<{ v: string }>(`select current_setting('server_version_num') as v`)).rows[0]!.v);
  if (version < 150000) return new Map();
  const { rows } = await client.query<{ oid: number; columns: string[] }>(
    `select r.prrelid::int as oid, array_agg(a.attname::text) as columns
       from pg_publication p join pg_publication_rel r on r.prpubid = p.oid
       join pg_attribute a on a.attrelid = r.prrelid and a.attnum = any(r.prattrs::int2[])
      where p.pubname = $1 and r.prattrs is not null
      group by r.prrelid`,
    [publication],
  );
  return new Map(rows.map((r) => [r.oid, new Set(r.columns)]));
}
