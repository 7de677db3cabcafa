import type pg from 'pg';
import type { Logger } from '../core/log.js';
import { quoteLiteral } from '../core/sql.js';
import { DDL_PREFIX } from './logical-messages.js';

/** One table as the catalog has it right after a DDL command (what `--capture-ddl` records). */
export interface TableSnapshot {
  oid: number;
  schema: string;
  name: string;
  replicaIdentity: string;
  columns: { attnum: number; name: string; type: string; typeOid: number; typmod: number; notNull: boolean; default: string | null }[];
  primaryKey: string[];
  /** CREATE INDEX statements of the indexes other than the primary key's. */
  indexes: string[];
}

/** What one captured DDL command did: the tables it left, as they are now, and the ones it dropped. */
export interface CapturedDdl {
  tag: string;
  tables?: TableSnapshot[];
  dropped?: { oid: number; schema: string; name: string }[];
}

/**
 * The event triggers `pgtape archive --capture-ddl` installs (once, as a superuser): after each
 * DDL command on a table of the publication, a transactional logical message with the table's
 * whole shape; after a DROP TABLE, one naming it. The functions run as their (superuser) owner
 * and never fail the application's DDL for want of reading the catalog: that is a warning. The messages travel in the DDL's own
 * transaction, so replay meets them exactly at their point. A snapshot (not the statement's
 * text) is recorded because the text may hold several statements, or DML.
 */
function installSql(publication: string): string {
  const pub = quoteLiteral(publication);
  return `
create schema if not exists pgtape;
create or replace function pgtape.table_shape(rel oid) returns jsonb language sql stable set search_path = pg_catalog as $f$
  select jsonb_build_object(
    'oid', c.oid::int, 'schema', n.nspname, 'name', c.relname, 'replicaIdentity', c.relreplident,
    'columns', coalesce((select jsonb_agg(jsonb_build_object(
        'attnum', a.attnum, 'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'typeOid', a.atttypid::int,
        'typmod', a.atttypmod, 'notNull', a.attnotnull, 'default', pg_get_expr(d.adbin, d.adrelid)) order by a.attnum)
      from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
      where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]'::jsonb),
    'primaryKey', coalesce((select jsonb_agg(a.attname order by k.ord) from pg_index i
      cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
      join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
      where i.indrelid = c.oid and i.indisprimary), '[]'::jsonb),
    'indexes', coalesce((select jsonb_agg(pg_get_indexdef(i.indexrelid) order by i.indexrelid) from pg_index i
      where i.indrelid = c.oid and not i.indisprimary), '[]'::jsonb))
  from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = rel
$f$;
create or replace function pgtape.capture_ddl() returns event_trigger language plpgsql security definer set search_path = pg_catalog as $f$
declare
  rels oid[];
  payload text;
begin
  -- Reading the catalog may fail without failing the application's DDL (a warning instead). The
  -- message is emitted outside that block: an exception block is a subtransaction, and a message
  -- emitted in one reaches the stream after the transaction's later changes, not at its point.
  begin
    select array_agg(distinct coalesce(i.indrelid, c.oid)) into rels
      from pg_event_trigger_ddl_commands() d
      join pg_class c on d.classid = 'pg_class'::regclass and c.oid = d.objid
      left join pg_index i on i.indexrelid = c.oid
     where c.relkind in ('r', 'p', 'i');
    rels := array(select r from unnest(rels) r join pg_class c on c.oid = r join pg_namespace n on n.oid = c.relnamespace
                   join pg_publication_tables p on p.pubname = ${pub} and p.schemaname = n.nspname and p.tablename = c.relname);
    if cardinality(rels) > 0 then
      payload := jsonb_build_object('tag', tg_tag, 'tables', (select jsonb_agg(pgtape.table_shape(r)) from unnest(rels) r))::text;
    end if;
  exception when others then
    raise warning 'pgtape: DDL not captured (%): %', tg_tag, sqlerrm;
  end;
  if payload is not null then
    perform pg_logical_emit_message(true, '${DDL_PREFIX}', payload);
  end if;
end $f$;
create or replace function pgtape.capture_drop() returns event_trigger language plpgsql security definer set search_path = pg_catalog as $f$
declare
  payload text;
begin
  begin
    select jsonb_build_object('tag', tg_tag, 'dropped', jsonb_agg(jsonb_build_object('oid', o.objid::int, 'schema', o.schema_name, 'name', o.object_name)))::text into payload
      from pg_event_trigger_dropped_objects() o where o.object_type = 'table' and o.original
    having count(*) > 0;
  exception when others then
    raise warning 'pgtape: DROP not captured (%): %', tg_tag, sqlerrm;
  end;
  if payload is not null then
    perform pg_logical_emit_message(true, '${DDL_PREFIX}', payload);
  end if;
end $f$;
drop event trigger if exists pgtape_capture_ddl;
create event trigger pgtape_capture_ddl on ddl_command_end execute function pgtape.capture_ddl();
drop event trigger if exists pgtape_capture_drop;
create event trigger pgtape_capture_drop on sql_drop execute function pgtape.capture_drop();
`;
}

/** Installs (or refreshes) the DDL capture; needs a superuser, like any event trigger. */
export async function installDdlCapture(client: pg.Client, publication: string, log: Logger): Promise<void> {
  await client.query(installSql(publication));
  log.info({ publication }, 'DDL capture installed (event triggers pgtape_capture_ddl and pgtape_capture_drop)');
}
