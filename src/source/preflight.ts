import type pg from 'pg';
import { UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { quoteIdent, quoteQualified } from '../core/sql.js';

export interface SourceFacts {
  systemIdentifier: string;
  database: string;
  serverVersion: number;
}

/** Checks the source can be archived at all: wal_level and the replication privilege. */
export async function checkSource(client: pg.Client): Promise<SourceFacts> {
  const { rows } = await client.query<{ wal_level: string; version: string; database: string; replication: boolean }>(
    `select current_setting('wal_level') as wal_level,
            current_setting('server_version_num') as version,
            current_database() as database,
            (select rolreplication or rolsuper from pg_roles where rolname = current_user) as replication`,
  );
  const facts = rows[0]!;
  const serverVersion = Number(facts.version);
  if (serverVersion < 140000) {
    throw new UserError(`the source runs PostgreSQL ${facts.version}; pgtape needs 14 or later`);
  }
  if (facts.wal_level !== 'logical') {
    throw new UserError(
      `the source has wal_level = '${facts.wal_level}'; logical replication needs wal_level = 'logical'`,
      "run ALTER SYSTEM SET wal_level = 'logical' and restart Postgres",
    );
  }
  if (!facts.replication) {
    throw new UserError(
      'the source user has no REPLICATION privilege',
      'run ALTER ROLE <user> REPLICATION (as a superuser), or connect as a user that has it',
    );
  }
  let systemIdentifier = '';
  try {
    const r = await client.query<{ id: string }>('select system_identifier::text as id from pg_control_system()');
    systemIdentifier = r.rows[0]?.id ?? '';
  } catch {
    // pg_control_system() needs pg_monitor or superuser on some setups; the identifier is informative only.
  }
  return { systemIdentifier, database: facts.database, serverVersion };
}

interface TableWithoutIdentity {
  schema: string;
  name: string;
  identity: string;
}

const NO_IDENTITY = `
  c.relkind in ('r', 'p')
  and (c.relreplident = 'n' or (c.relreplident = 'd' and not exists (
        select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary)))`;

/** Tables whose UPDATE and DELETE would fail once published: no primary key and identity DEFAULT, or NOTHING. */
async function tablesWithoutIdentity(client: pg.Client, publication?: string): Promise<TableWithoutIdentity[]> {
  const scope = publication
    ? `exists (select 1 from pg_publication_tables p where p.pubname = $1 and p.schemaname = n.nspname and p.tablename = c.relname)`
    : `n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%' and not c.relispartition`;
  const { rows } = await client.query<TableWithoutIdentity>(
    `select n.nspname as schema, c.relname as name, c.relreplident as identity
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where ${scope} and ${NO_IDENTITY}
      order by 1, 2`,
    publication ? [publication] : [],
  );
  return rows;
}

function describeFixes(tables: TableWithoutIdentity[]): string {
  return tables
    .map(
      (t) =>
        `  ${quoteQualified(t.schema, t.name)}: ALTER TABLE ${quoteQualified(t.schema, t.name)} REPLICA IDENTITY FULL; (or add a primary key)`,
    )
    .join('\n');
}

/**
 * Makes sure the publication exists. Creating it FOR ALL TABLES is refused while some table
 * has no usable replica identity: once published, UPDATE and DELETE on it fail in production.
 */
/**
 * Why the publication cannot be used or created as asked, or undefined. Read-only: checked
 * before anything is written, so that a refused start leaves the store and the source as they were.
 */
export async function publicationProblem(
  client: pg.Client,
  publication: string,
  options: { create: boolean; force: boolean },
): Promise<UserError | undefined> {
  const { rows } = await client.query('select 1 from pg_publication where pubname = $1', [publication]);
  if (rows.length > 0) return undefined;
  if (!options.create) {
    return new UserError(
      `publication ${quoteIdent(publication)} does not exist on the source`,
      `create it (CREATE PUBLICATION ${quoteIdent(publication)} FOR ALL TABLES), or pass --create-publication`,
    );
  }
  const risky = await tablesWithoutIdentity(client);
  if (risky.length > 0 && !options.force) {
    return new UserError(
      `refusing to create publication ${quoteIdent(publication)}: ${risky.length} table(s) have no usable replica identity, ` +
        `and once published their UPDATE and DELETE would fail on the source:\n${describeFixes(risky)}`,
      'fix each table as shown, or pass --force to publish them anyway',
    );
  }
  return undefined;
}

/**
 * Creates the publication if it is missing — once publicationProblem has allowed it (the start's
 * read-only checks come first) — and warns of published tables without a replica identity.
 * Returns whether it created it (a start refused later drops it again).
 */
export async function ensurePublication(client: pg.Client, publication: string, log: Logger): Promise<boolean> {
  const { rows } = await client.query('select 1 from pg_publication where pubname = $1', [publication]);
  let created = false;
  if (rows.length === 0) {
    await client.query(`create publication ${quoteIdent(publication)} for all tables`);
    log.info({ publication }, 'created publication for all tables');
    created = true;
  }
  const risky = await tablesWithoutIdentity(client, publication);
  if (risky.length > 0) {
    log.warn(
      { publication, tables: risky.map((t) => `${t.schema}.${t.name}`) },
      `published tables without a usable replica identity: their UPDATE and DELETE fail on the source\n${describeFixes(risky)}`,
    );
  }
  return created;
}

/**
 * A row filter (15+) on a column outside the table's replica identity makes the source refuse
 * that table's UPDATE and DELETE ("column used in the publication WHERE expression is not part
 * of the replica identity"): said at start, before the application finds out. The columns are
 * found in the filter's deparsed text, which names them as SQL does.
 */
export async function warnOfRowFilters(client: pg.Client, publication: string, serverVersion: number, log: Logger): Promise<void> {
  if (serverVersion < 150000) return;
  const { rows } = await client.query<{ table: string; filter: string; outside: string[] }>(
    `select quote_ident(n.nspname) || '.' || quote_ident(c.relname) as table, pg_get_expr(r.prqual, r.prrelid) as filter,
            array(select quote_ident(a.attname) from pg_attribute a
                   where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and c.relreplident <> 'f'
                     and not exists (select 1 from pg_index i where i.indrelid = c.oid and a.attnum = any(i.indkey)
                                       and (i.indisreplident or (c.relreplident = 'd' and i.indisprimary)))) as outside
       from pg_publication p join pg_publication_rel r on r.prpubid = p.oid
       join pg_class c on c.oid = r.prrelid join pg_namespace n on n.oid = c.relnamespace
      where p.pubname = $1 and r.prqual is not null`,
    [publication],
  );
  for (const r of rows) {
    const used = r.outside.filter((column) =>
      new RegExp(`(^|[^\\w"])${column.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^\\w"])`).test(r.filter),
    );
    if (used.length) {
      log.warn(
        { table: r.table, filter: r.filter, columns: used },
        "the publication's row filter uses columns outside the table's replica identity: the source will refuse this table's UPDATE and DELETE (add them to the replica identity, or change the filter)",
      );
    }
  }
}

/** A publication that publishes no table archives nothing but marks: said at start. */
export async function warnOfEmptyPublication(client: pg.Client, publication: string, log: Logger): Promise<void> {
  const { rows } = await client.query<{ n: number }>('select count(*)::int as n from pg_publication_tables where pubname = $1', [
    publication,
  ]);
  if (rows[0]!.n === 0) {
    log.warn(
      { publication },
      'the publication publishes no table: nothing but marks will be archived (ALTER PUBLICATION … ADD TABLE, or FOR ALL TABLES)',
    );
  }
}
