import type pg from 'pg';
import type { CatalogObject } from './objects.js';
import { FIRST_NORMAL_OID } from './scope.js';

// The order of pre-data objects, as pg_dump finds it: from pg_depend. Dependencies of parts of an
// object (a column's default, a view's rewrite rule, a domain's constraint, a table's row type,
// an array type) count as dependencies of the object itself.

/** `from` needs `to` to exist first, both as object keys (`pg_class:16400`). */
export interface Edge {
  from: string;
  to: string;
}

/** Catalogs whose objects are keyed by their own oid, on either side of a dependency. */
const KEYED_BY_OID = [
  'pg_proc',
  'pg_collation',
  'pg_ts_dict',
  'pg_ts_config',
  'pg_operator',
  'pg_opfamily',
  'pg_opclass',
  'pg_cast',
  'pg_conversion',
  'pg_am',
];

const byOid = (oid: string) => KEYED_BY_OID.map((c) => `                when '${c}'::regclass then '${c}:' || ${oid}`).join('\n');

/** An operator class's or family's member (`catalog` pg_amop or pg_amproc): part of its class, or, loose, of its family. */
const memberOf = (catalog: string, family: string) => `                when '${catalog}'::regclass then coalesce(
                  (select 'pg_opclass:' || x.refobjid from pg_depend x
                    where x.classid = d.classid and x.objid = d.objid and x.refclassid = 'pg_opclass'::regclass limit 1),
                  (select 'pg_opfamily:' || ${family} from ${catalog} where oid = d.objid))`;

export async function readDependencies(client: pg.Client): Promise<Edge[]> {
  const { rows } = await client.query<{ obj: string | null; ref: string | null; seq_owned: boolean }>(
    `with typekey(oid, key) as (
       select t.oid,
              case when t.typrelid <> 0 and rc.relkind <> 'c' then 'pg_class:' || t.typrelid
                   when t.typelem <> 0 and t.typsubscript = 'array_subscript_handler'::regproc then 'pg_type:' || t.typelem
                   when r.rngtypid is not null then 'pg_type:' || r.rngtypid
                   else 'pg_type:' || t.oid end
         from pg_type t
         left join pg_class rc on rc.oid = t.typrelid
         left join pg_range r on r.rngmultitypid = t.oid
        where t.oid >= ${FIRST_NORMAL_OID}
     ),
     relkey(oid, key, kind) as (
       select c.oid, case when c.relkind = 'c' then 'pg_type:' || c.reltype
                          when c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') then 'pg_class:' || c.oid end, c.relkind
         from pg_class c where c.oid >= ${FIRST_NORMAL_OID}
     ),
     keyed as (
       select case d.classid
                when 'pg_class'::regclass then (select key from relkey where oid = d.objid)
                when 'pg_type'::regclass then (select key from typekey where oid = d.objid)
${byOid('d.objid')}
                when 'pg_attrdef'::regclass then (select 'pg_class:' || adrelid from pg_attrdef where oid = d.objid)
                when 'pg_rewrite'::regclass then (select 'pg_class:' || ev_class from pg_rewrite where oid = d.objid and rulename = '_RETURN')
                when 'pg_constraint'::regclass then (select 'pg_type:' || contypid from pg_constraint where oid = d.objid and contypid <> 0)
${memberOf('pg_amop', 'amopfamily')}
${memberOf('pg_amproc', 'amprocfamily')}
              end as obj,
              case d.refclassid
                when 'pg_class'::regclass then (select key from relkey where oid = d.refobjid)
                when 'pg_type'::regclass then (select key from typekey where oid = d.refobjid)
${byOid('d.refobjid')}
                when 'pg_namespace'::regclass then 'pg_namespace:' || d.refobjid
                when 'pg_extension'::regclass then 'pg_extension:' || d.refobjid
              end as ref,
              -- A sequence owned by a column depends on its table, and the column's default on the
              -- sequence: the sequence comes first, OWNED BY after the table.
              (d.classid = 'pg_class'::regclass and d.deptype = 'a' and (select kind from relkey where oid = d.objid) = 'S') as seq_owned
         from pg_depend d
        where d.deptype in ('n', 'a') and d.objid >= ${FIRST_NORMAL_OID} and d.refobjid >= ${FIRST_NORMAL_OID}
     )
     select distinct obj, ref, seq_owned from keyed where obj is not null and ref is not null and obj <> ref`,
  );
  return rows.filter((r) => !r.seq_owned).map((r) => ({ from: r.obj!, to: r.ref! }));
}

/**
 * Orders objects so that each comes after what it depends on; among objects free to go, the
 * lowest rank (pg_dump's order of kinds) and then the name go first. A cycle, which the catalog
 * should never hold, is broken at its lowest-ranked object.
 */
export function dependencyOrder(objects: CatalogObject[], edges: Edge[]): CatalogObject[] {
  const byKey = new Map(objects.map((o) => [o.key, o]));
  const needs = new Map<string, Set<string>>(objects.map((o) => [o.key, new Set<string>()]));
  const dependents = new Map<string, string[]>();
  for (const e of edges) {
    if (!byKey.has(e.from) || !byKey.has(e.to) || e.from === e.to || needs.get(e.from)!.has(e.to)) continue;
    needs.get(e.from)!.add(e.to);
    (dependents.get(e.to) ?? dependents.set(e.to, []).get(e.to)!).push(e.from);
  }
  const compare = (a: CatalogObject, b: CatalogObject) => a.rank - b.rank || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const waiting = new Map(objects.map((o) => [o.key, needs.get(o.key)!.size]));
  let ready = objects.filter((o) => waiting.get(o.key) === 0);
  const out: CatalogObject[] = [];
  const placed = new Set<string>();
  while (out.length < objects.length) {
    // A cycle leaves nothing ready: its lowest-ranked object goes first.
    if (!ready.length) ready = [objects.filter((o) => !placed.has(o.key)).sort(compare)[0]!];
    let best = 0;
    for (let i = 1; i < ready.length; i++) if (compare(ready[i]!, ready[best]!) < 0) best = i;
    const next = ready[best]!;
    ready.splice(best, 1);
    if (placed.has(next.key)) continue;
    out.push(next);
    placed.add(next.key);
    for (const d of dependents.get(next.key) ?? []) {
      const left = waiting.get(d)! - 1;
      waiting.set(d, left);
      if (left === 0 && !placed.has(d)) ready.push(byKey.get(d)!);
    }
  }
  return out;
}
