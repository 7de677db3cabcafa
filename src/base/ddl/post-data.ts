import type pg from 'pg';
import { doBlock, quoteIdent, quoteLiteral } from '../../core/sql.js';
import type { SchemaObject } from '../../log/bases.js';
import { FIRST_NORMAL_OID, type Scope } from './scope.js';
import { inheritedKeyNames, triggerStateStatement } from '../../source/ddl-statements.js';

// What a dump restores after the rows: indexes, constraints (keys before the foreign keys that
// need them), triggers, rules, statistics objects, replica identities; and what a replay does
// last: materialized views refreshed, triggers and rules set to fire as on the source.

export interface PostData {
  post: SchemaObject[];
  final: SchemaObject[];
  notRestored: string[];
}

/**
 * `oids`: the tables the base recreates; `views`: its views and materialized views (their
 * indexes, INSTEAD OF triggers and rules), each with the published tables it needs.
 */
export async function readPostData(
  client: pg.Client,
  scope: Scope,
  oids: number[],
  views = new Map<number, string[]>(),
): Promise<PostData> {
  const post: SchemaObject[] = [];
  const final: SchemaObject[] = [];
  const notRestored: string[] = [];
  oids = [...oids, ...views.keys()];
  // What an object belongs to, for `replay --tables`: a table, or the tables a view of it needs.
  const table = (oid: number): Pick<SchemaObject, 'table' | 'needs'> => {
    const name = scope.tableNames.get(oid);
    const needs = views.get(oid);
    return name ? { table: name } : needs?.length ? { needs } : {};
  };

  // Indexes that no constraint owns; an index of a partition is attached to its parent's.
  const { rows: indexes } = await client.query<{ rel: number; name: string; def: string; parent: string | null }>(
    `select i.indrelid::int as rel, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as name, pg_get_indexdef(i.indexrelid) as def,
            (select quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) from pg_inherits h join pg_class pc on pc.oid = h.inhparent
               join pg_namespace pn on pn.oid = pc.relnamespace where h.inhrelid = i.indexrelid) as parent
       from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
      where i.indrelid = any($1::oid[])
        and not exists (select 1 from pg_constraint k where k.conrelid = i.indrelid and k.conindid = i.indexrelid and k.contype in ('p', 'u', 'x'))
      order by 2`,
    [oids],
  );
  for (const i of indexes) post.push({ kind: 'index', name: i.name, sql: [i.def], ...table(i.rel) });

  const { rows: constraints } = await client.query<{
    rel: number;
    on: string;
    name: string;
    type: string;
    def: string;
    index: string | null;
    parent_index: string | null;
    inherited: boolean;
    references: number | null;
  }>(
    `select k.conrelid::int as rel, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as on, k.conname as name, k.contype as type,
            pg_get_constraintdef(k.oid) as def,
            case when k.contype in ('p', 'u', 'x') then quote_ident(n.nspname) || '.' || quote_ident(ic.relname) end as index,
            (select quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) from pg_inherits h join pg_class pc on pc.oid = h.inhparent
               join pg_namespace pn on pn.oid = pc.relnamespace where h.inhrelid = k.conindid and k.contype in ('p', 'u', 'x')) as parent_index,
            (k.conparentid <> 0 or not k.conislocal) as inherited,
            nullif(k.confrelid, 0)::int as references
       from pg_constraint k
       join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
       left join pg_class ic on ic.oid = k.conindid
      where k.conrelid = any($1::oid[]) and k.contype in ('p', 'u', 'x', 'c', 'f')
      order by case k.contype when 'p' then 0 when 'u' then 1 when 'x' then 2 when 'c' then 3 else 4 end, 2, 3`,
    [oids],
  );
  const attach: SchemaObject[] = [];
  for (const k of constraints) {
    const name = `${quoteIdent(k.name)} on ${k.on}`;
    const kind = { p: 'primary key', u: 'unique constraint', x: 'exclusion constraint', c: 'check constraint', f: 'foreign key' }[k.type]!;
    if (k.type === 'p' || k.type === 'u' || k.type === 'x') {
      // On a partition, the key is made on the partition alone and its index attached to the parent's.
      post.push({ kind, name, sql: [`ALTER TABLE ONLY ${k.on} ADD CONSTRAINT ${quoteIdent(k.name)} ${k.def}`], ...table(k.rel) });
      if (k.parent_index) {
        attach.push({
          kind: k.type === 'p' ? 'primary key attachment' : 'index attachment',
          name: k.index!,
          sql: [`ALTER INDEX ${k.parent_index} ATTACH PARTITION ${k.index}`],
          ...table(k.rel),
        });
      }
    } else if (!k.inherited) {
      // Checks and foreign keys made on a parent reach its partitions and children by themselves.
      if (k.type === 'f' && k.references !== null && !scope.tables.has(k.references)) {
        notRestored.push(`foreign key ${name}: it references a table the publication does not publish`);
        continue;
      }
      post.push({
        kind,
        name,
        sql: [`ALTER TABLE ${k.on} ADD CONSTRAINT ${quoteIdent(k.name)} ${k.def}`],
        ...table(k.rel),
        ...(k.references !== null ? { needs: [scope.tableNames.get(k.references)!] } : {}),
      });
    }
  }
  // A partition's clones of its parent's foreign keys under their names on the source, parents
  // first: after the foreign keys, before comments on them.
  const { rows: inheritedKeys } = await client.query<{ rel: number; on: string; name: string; parent: string }>(
    `select k.conrelid::int as rel, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as on, k.conname as name, p.conname as parent
       from pg_constraint k join pg_constraint p on p.oid = k.conparentid
       join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
      where k.conrelid = any($1::oid[]) and k.contype = 'f' and p.conrelid <> k.conrelid
      order by (select count(*) from pg_partition_ancestors(k.conrelid)), 2, 3`,
    [oids],
  );
  const byPartition = new Map<number, typeof inheritedKeys>();
  for (const k of inheritedKeys) byPartition.set(k.rel, [...(byPartition.get(k.rel) ?? []), k]);
  for (const [rel, keys] of byPartition) {
    const sql = inheritedKeyNames(keys.map((k) => ({ table: k.on, name: k.name, parent: k.parent })))!;
    post.push({ kind: 'foreign key names', name: keys[0]!.on, sql: [sql], ...table(rel) });
  }
  const { rows: indexAttachments } = await client.query<{ rel: number; name: string; parent: string }>(
    `select i.indrelid::int as rel, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as name,
            quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) as parent
       from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
       join pg_inherits h on h.inhrelid = i.indexrelid join pg_class pc on pc.oid = h.inhparent join pg_namespace pn on pn.oid = pc.relnamespace
      where i.indrelid = any($1::oid[])
        and not exists (select 1 from pg_constraint k where k.conrelid = i.indrelid and k.conindid = i.indexrelid and k.contype in ('p', 'u', 'x'))`,
    [oids],
  );
  for (const i of indexAttachments) {
    attach.push({
      kind: 'index attachment',
      name: i.name,
      sql: [`ALTER INDEX ${i.parent} ATTACH PARTITION ${i.name}`],
      ...table(i.rel),
    });
  }
  // Keys first: attaching an index needs both, and foreign keys need the referenced key.
  const firstForeignKey = post.findIndex((o) => o.kind === 'foreign key');
  post.splice(firstForeignKey < 0 ? post.length : firstForeignKey, 0, ...attach);

  const { rows: identities } = await client.query<{ rel: number; on: string; identity: string; index: string | null }>(
    `select c.oid::int as rel, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as on, c.relreplident as identity,
            (select quote_ident(ic.relname) from pg_index i join pg_class ic on ic.oid = i.indexrelid where i.indrelid = c.oid and i.indisreplident) as index
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.oid = any($1::oid[]) and c.relreplident <> 'd' and c.relkind in ('r', 'p')`,
    [oids],
  );
  for (const r of identities) {
    const how = r.identity === 'f' ? 'FULL' : r.identity === 'n' ? 'NOTHING' : r.index ? `USING INDEX ${r.index}` : undefined;
    if (how)
      post.push({ kind: 'replica identity', name: r.on, sql: [`ALTER TABLE ONLY ${r.on} REPLICA IDENTITY ${how}`], ...table(r.rel) });
  }

  // Clones on partitions too, parents first: a parent's state reaches its clones, and a clone
  // whose state differs from its parent's is set after it.
  const { rows: triggers } = await client.query<{
    rel: number;
    name: string;
    on: string;
    def: string;
    enabled: string;
    parent: string | null;
  }>(
    `select t.tgrelid::int as rel, t.tgname as name, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as on,
            pg_get_triggerdef(t.oid) as def, t.tgenabled as enabled, (select p.tgenabled from pg_trigger p where p.oid = t.tgparentid) as parent
       from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_namespace n on n.oid = c.relnamespace
      where t.tgrelid = any($1::oid[]) and not t.tgisinternal
      order by (select count(*) from pg_partition_ancestors(t.tgrelid)), 3, 2`,
    [oids],
  );
  for (const t of triggers) {
    const name = `${quoteIdent(t.name)} on ${t.on}`;
    if (t.parent === null) post.push({ kind: 'trigger', name, sql: [t.def], ...table(t.rel) });
    // Set last: a trigger that fires in replica mode would fire again for rows the log already holds.
    const state = t.enabled !== (t.parent ?? 'O') && triggerStateStatement(t.on, t.name, t.enabled);
    if (!state) continue;
    // A clone is where its parent's trigger reached: not on a partition detached since, nor without its parent (--table).
    const sql =
      t.parent === null
        ? state
        : doBlock(
            `if exists (select 1 from pg_trigger where tgrelid = to_regclass(${quoteLiteral(t.on)}) and tgname = ${quoteLiteral(t.name)}) then execute ${quoteLiteral(state)}; end if;`,
          );
    final.push({ kind: 'trigger state', name, sql: [sql], ...table(t.rel) });
  }

  const { rows: rules } = await client.query<{ rel: number; name: string; on: string; def: string; enabled: string }>(
    `select r.ev_class::int as rel, r.rulename as name, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as on,
            pg_get_ruledef(r.oid) as def, r.ev_enabled as enabled
       from pg_rewrite r join pg_class c on c.oid = r.ev_class join pg_namespace n on n.oid = c.relnamespace
      where r.ev_class = any($1::oid[]) and r.rulename <> '_RETURN'
      order by 3, 2`,
    [oids],
  );
  for (const r of rules) {
    const name = `${quoteIdent(r.name)} on ${r.on}`;
    post.push({ kind: 'rule', name, sql: [r.def.replace(/;\s*$/, '')], ...table(r.rel) });
    const state = { D: 'DISABLE RULE', R: 'ENABLE REPLICA RULE', A: 'ENABLE ALWAYS RULE' }[r.enabled];
    if (state) final.push({ kind: 'rule state', name, sql: [`ALTER TABLE ${r.on} ${state} ${quoteIdent(r.name)}`], ...table(r.rel) });
  }

  const { rows: statistics } = await client.query<{ rel: number; name: string; def: string }>(
    `select s.stxrelid::int as rel, quote_ident(n.nspname) || '.' || quote_ident(s.stxname) as name, pg_get_statisticsobjdef(s.oid) as def
       from pg_statistic_ext s join pg_namespace n on n.oid = s.stxnamespace where s.stxrelid = any($1::oid[]) order by 2`,
    [oids],
  );
  for (const s of statistics) post.push({ kind: 'statistics object', name: s.name, sql: [s.def], ...table(s.rel) });

  const { rows: policies } = await client.query<{ name: string; on: string }>(
    `select quote_ident(p.polname) as name, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as on
       from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace where p.polrelid = any($1::oid[])`,
    [oids],
  );
  for (const p of policies)
    notRestored.push(`row security policy ${p.name} on ${p.on}: policies name roles the replay server may not have`);

  const { rows: matviews } = await client.query<{ rel: number; name: string }>(
    `select c.oid::int as rel, quote_ident(n.nspname) || '.' || quote_ident(c.relname) as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = any($1::oid[]) and c.relkind = 'm' and c.relispopulated
      order by 2`,
    [oids],
  );
  for (const m of matviews)
    final.push({ kind: 'materialized view data', name: m.name, sql: [`REFRESH MATERIALIZED VIEW ${m.name}`], ...table(m.rel) });
  return { post, final, notRestored };
}

/** COMMENT ON's keyword for each kind of object pg_identify_object names. */
const COMMENT_KEYWORD: Record<string, string> = {
  table: 'TABLE',
  'table column': 'COLUMN',
  view: 'VIEW',
  'view column': 'COLUMN',
  'materialized view': 'MATERIALIZED VIEW',
  'materialized view column': 'COLUMN',
  sequence: 'SEQUENCE',
  index: 'INDEX',
  function: 'FUNCTION',
  procedure: 'PROCEDURE',
  aggregate: 'AGGREGATE',
  type: 'TYPE',
  domain: 'DOMAIN',
  schema: 'SCHEMA',
  'table constraint': 'CONSTRAINT',
  trigger: 'TRIGGER',
  rule: 'RULE',
  'statistics object': 'STATISTICS',
  collation: 'COLLATION',
  'text search dictionary': 'TEXT SEARCH DICTIONARY',
  'text search configuration': 'TEXT SEARCH CONFIGURATION',
  operator: 'OPERATOR',
  'operator family': 'OPERATOR FAMILY',
  'operator class': 'OPERATOR CLASS',
  cast: 'CAST',
  conversion: 'CONVERSION',
  'access method': 'ACCESS METHOD',
};

/** The COMMENT statement for an object as pg_identify_object names it (null removes it); undefined for a kind not followed. */
export function commentStatement(type: string, identity: string, comment: string | null | undefined): string | undefined {
  const k = COMMENT_KEYWORD[type];
  // Removed (IS NULL): null, or absent where captured DDL's payload had its nulls stripped.
  return k && `COMMENT ON ${k} ${identity} IS ${comment == null ? 'NULL' : quoteLiteral(comment)}`;
}

/** Comments on the objects a base recreates, as COMMENT statements (post-data, as in a dump). */
export async function readComments(client: pg.Client, keys: Set<string>): Promise<SchemaObject[]> {
  const { rows } = await client.query<{ key: string; type: string; identity: string; comment: string }>(
    `select case d.classoid when 'pg_class'::regclass then 'pg_class:' || coalesce((select indrelid from pg_index where indexrelid = d.objoid), d.objoid)
                            when 'pg_type'::regclass then 'pg_type:' || d.objoid
                            when 'pg_proc'::regclass then 'pg_proc:' || d.objoid when 'pg_namespace'::regclass then 'pg_namespace:' || d.objoid
                            when 'pg_constraint'::regclass then 'pg_class:' || (select conrelid from pg_constraint where oid = d.objoid)
                            when 'pg_trigger'::regclass then 'pg_class:' || (select tgrelid from pg_trigger where oid = d.objoid)
                            when 'pg_rewrite'::regclass then 'pg_class:' || (select ev_class from pg_rewrite where oid = d.objoid)
                            when 'pg_statistic_ext'::regclass then 'pg_class:' || (select stxrelid from pg_statistic_ext where oid = d.objoid)
                            -- A catalog object's own key (catalog-objects.ts): its catalog's name, unqualified.
                            else (select relname from pg_class where oid = d.classoid) || ':' || d.objoid end as key,
            o.type, o.identity, d.description as comment
       from pg_description d, pg_identify_object(d.classoid, d.objoid, d.objsubid) o
      where d.objoid >= ${FIRST_NORMAL_OID} and d.classoid in ('pg_class'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass, 'pg_namespace'::regclass,
                                                 'pg_constraint'::regclass, 'pg_trigger'::regclass, 'pg_rewrite'::regclass,
                                                 'pg_statistic_ext'::regclass, 'pg_collation'::regclass, 'pg_ts_dict'::regclass,
                                                 'pg_ts_config'::regclass, 'pg_operator'::regclass, 'pg_opfamily'::regclass,
                                                 'pg_opclass'::regclass, 'pg_cast'::regclass, 'pg_conversion'::regclass, 'pg_am'::regclass)`,
  );
  const out: SchemaObject[] = [];
  for (const r of rows) {
    const sql = commentStatement(r.type, r.identity, r.comment);
    // A comment goes with what it is on (an index's, a column's or a constraint's: its table).
    if (!sql || !keys.has(r.key)) continue;
    out.push({ kind: 'comment', name: `${r.type} ${r.identity}`, sql: [sql] });
  }
  return out;
}
