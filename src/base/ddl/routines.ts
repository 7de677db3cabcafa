import type pg from 'pg';
import { quoteLiteral } from '../../core/sql.js';
import { RANK, type CatalogObject } from './objects.js';
import { notExtensionMember, USER_SCHEMA } from './scope.js';
import { onTemporaryType } from '../../source/ddl-statements.js';

// Functions, procedures and aggregates. pg_get_functiondef writes functions and procedures as
// Postgres would; aggregates have no deparser and are written from pg_aggregate.

export async function readRoutines(client: pg.Client): Promise<{ objects: CatalogObject[]; notRestored: string[] }> {
  const { rows } = await client.query<{ oid: number; kind: string; name: string; def: string | null }>(
    `select p.oid::int as oid, p.prokind as kind,
            quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')' as name,
            case when p.prokind in ('f', 'p', 'w') then pg_get_functiondef(p.oid) end as def
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where ${USER_SCHEMA} and ${notExtensionMember('pg_proc', 'p.oid')}
        -- A range type's constructors come with the type.
        and not exists (select 1 from pg_depend i where i.classid = 'pg_proc'::regclass and i.objid = p.oid and i.deptype = 'i')
        and not ${onTemporaryType("'pg_proc'::regclass", 'p.oid')}
      order by 3`,
  );
  const aggregates = await aggregateDefinitions(client);
  const objects: CatalogObject[] = [];
  const notRestored: string[] = [];
  for (const r of rows) {
    const key = `pg_proc:${r.oid}`;
    if (r.kind === 'a') {
      const def = aggregates.get(r.oid);
      if (def) objects.push({ key, kind: 'aggregate', name: r.name, sql: [`CREATE AGGREGATE ${r.name} (${def})`], rank: RANK.function });
      else notRestored.push(`aggregate ${r.name}: an ordered-set or hypothetical-set aggregate (make it on the replay server by hand)`);
    } else {
      objects.push({ key, kind: r.kind === 'p' ? 'procedure' : 'function', name: r.name, sql: [r.def!], rank: RANK.function });
    }
  }
  return { objects, notRestored };
}

/** The options of each normal aggregate, as CREATE AGGREGATE takes them. */
async function aggregateDefinitions(client: pg.Client): Promise<Map<number, string>> {
  const { rows } = await client.query<{
    oid: number;
    sfunc: string;
    stype: string;
    finalfunc: string | null;
    finalextra: boolean;
    initcond: string | null;
    combinefunc: string | null;
    serialfunc: string | null;
    deserialfunc: string | null;
    sortop: string | null;
    parallel: string;
  }>(
    `select a.aggfnoid::int as oid, a.aggtransfn::regproc::text as sfunc, format_type(a.aggtranstype, null) as stype,
            nullif(a.aggfinalfn, 0)::regproc::text as finalfunc, a.aggfinalextra as finalextra, a.agginitval as initcond,
            nullif(a.aggcombinefn, 0)::regproc::text as combinefunc, nullif(a.aggserialfn, 0)::regproc::text as serialfunc,
            nullif(a.aggdeserialfn, 0)::regproc::text as deserialfunc,
            case when a.aggsortop <> 0 then a.aggsortop::regoperator::text end as sortop, p.proparallel as parallel
       from pg_aggregate a join pg_proc p on p.oid = a.aggfnoid
      where a.aggkind = 'n'`,
  );
  const parallel: Record<string, string> = { s: 'SAFE', r: 'RESTRICTED', u: 'UNSAFE' };
  return new Map(
    rows.map((a) => [
      a.oid,
      [
        `SFUNC = ${a.sfunc}`,
        `STYPE = ${a.stype}`,
        a.finalfunc && `FINALFUNC = ${a.finalfunc}`,
        a.finalextra && 'FINALFUNC_EXTRA',
        a.initcond !== null && `INITCOND = ${quoteLiteral(a.initcond)}`,
        a.combinefunc && `COMBINEFUNC = ${a.combinefunc}`,
        a.serialfunc && `SERIALFUNC = ${a.serialfunc}`,
        a.deserialfunc && `DESERIALFUNC = ${a.deserialfunc}`,
        // regoperator prints `<(integer,integer)`; SORTOP takes the operator's name alone.
        a.sortop && `SORTOP = OPERATOR(${a.sortop.replace(/\(.*$/, '')})`,
        `PARALLEL = ${parallel[a.parallel] ?? 'UNSAFE'}`,
      ]
        .filter(Boolean)
        .join(', '),
    ]),
  );
}
