import { describe, expect, it } from 'vitest';
import { schemaPatch } from '../../src/audit/diff/schema-patch.js';
import { formatDiff } from '../../src/audit/diff/format.js';
import type { TableSnapshot } from '../../src/source/ddl-capture.js';

// The statements diff --format sql writes for captured DDL: their order and bookkeeping. Whether
// they bring a database to the source's schema is the schema oracle's to show (schema-changes-oracle).

const table = (oid: number, name: string, extra: Partial<TableSnapshot> = {}): TableSnapshot => ({
  oid,
  schema: 'public',
  name,
  replicaIdentity: 'd',
  columns: [{ name: 'id', attnum: 1, type: 'integer', typeOid: 23, typmod: -1, notNull: true, default: null }],
  primaryKey: ['id'],
  indexes: [],
  constraints: [{ name: `${name}_pkey`, def: 'PRIMARY KEY (id)' }],
  ...extra,
});

/** The statements of a trigger-states DO block (their JSON, in an E'' literal). */
const sqlOf = (block: string) =>
  (JSON.parse(/E'(\[.*\])'::jsonb/s.exec(block)![1]!.replace(/''/g, "'").replace(/\\\\/g, '\\')) as { sql: string }[]).map((w) => w.sql);

describe('schemaPatch', () => {
  it("gives a view its columns' defaults: those it has after a CREATE, every column's after an ALTER (which may have dropped one)", () => {
    const view = { kind: 'view', identity: 'public.v', create: 'create or replace view public.v as  SELECT 1 AS a, 2 AS b' };
    const viewColumns = [{ name: 'a' }, { name: 'b', default: '5' }];
    const made = schemaPatch([{ lsn: '0/1', captured: { tag: 'CREATE VIEW', objects: [{ ...view, viewColumns }] } }], new Map());
    expect(made.before.filter((x) => x.startsWith('alter view'))).toEqual(['alter view public.v alter column "b" set default 5;']);
    const altered = schemaPatch([{ lsn: '0/1', captured: { tag: 'ALTER VIEW', objects: [{ ...view, viewColumns }] } }], new Map());
    expect(altered.before.filter((x) => x.startsWith('alter view'))).toEqual([
      'alter view public.v alter column "a" drop default, alter column "b" set default 5;',
    ]);
    // An archive from before view columns were captured: the view alone.
    const old = schemaPatch([{ lsn: '0/1', captured: { tag: 'ALTER VIEW', objects: [view] } }], new Map());
    expect(old.before.filter((x) => x.startsWith('alter view'))).toEqual([]);
  });

  it('makes a partition with its own generated expressions where the server takes them (16), and follows a changed expression', () => {
    const columns: TableSnapshot['columns'] = [
      { name: 'id', attnum: 1, type: 'integer', typeOid: 23, typmod: -1, notNull: true, default: null },
      { name: 'w', attnum: 2, type: 'integer', typeOid: 23, typmod: -1, notNull: false, default: null, generated: '(id * 3)' },
      {
        name: 'v',
        attnum: 3,
        type: 'integer',
        typeOid: 23,
        typmod: -1,
        notNull: false,
        default: null,
        generated: '(id * 4)',
        virtual: true,
      },
    ];
    const p = schemaPatch(
      [
        {
          lsn: '0/1',
          captured: { tag: 'CREATE TABLE', tables: [table(2, 'p2', { columns, parent: '"public"."p"', bound: 'FOR VALUES IN (2)' })] },
        },
      ],
      new Map(),
    );
    const create = p.before.find((x) => x.includes('partition of'))!;
    expect(create).toContain("if current_setting('server_version_num')::int >= 160000");
    expect(create).toContain(
      'partition of "public"."p" ("w" with options generated always as ((id * 3)) stored, "v" with options generated always as ((id * 4)) virtual) FOR VALUES IN (2)',
    );
    expect(create).toContain('partition of "public"."p" FOR VALUES IN (2)');
    expect(p.before.filter((x) => x.includes('set expression as'))).toHaveLength(2);
  });

  it("takes a partitioned table's trigger made again with its clones' states, not a former one's of the name", () => {
    const made = (enabled: string) => ({
      kind: 'trigger',
      identity: 'tr on public.t',
      create: 'CREATE TRIGGER tr BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f()',
      trigger: { table: 1, name: 'tr', enabled, clones: { '3': 'O' } },
    });
    const p = schemaPatch(
      [
        {
          lsn: '0/1',
          captured: { tag: 'ALTER TABLE', tables: [table(1, 't', { triggers: { tr: 'D' } }), table(3, 'p3', { triggers: { tr: 'D' } })] },
        },
        {
          lsn: '0/2',
          captured: {
            tag: 'DROP TRIGGER',
            droppedObjects: [{ type: 'trigger', identity: 'tr on public.t', names: ['public', 't', 'tr'] }],
          },
        },
        { lsn: '0/3', captured: { tag: 'CREATE TRIGGER', objects: [made('O')] } },
      ],
      new Map(),
    );
    const states = p.after.find((x) => x.includes('jsonb_to_recordset'))!;
    expect(sqlOf(states)).toEqual(['alter table "public"."t" enable trigger "tr"', 'alter table "public"."p3" enable trigger "tr"']);
    expect(states).not.toContain('disable');
  });

  it("sets the triggers' states the range last gave them, on their tables' names at --to, before the rows and after the triggers", () => {
    const p = schemaPatch(
      [
        { lsn: '0/1', captured: { tag: 'ALTER TABLE', tables: [table(1, 't', { triggers: { a: 'D', b: 'O' } })] } },
        {
          lsn: '0/2',
          captured: {
            tag: 'ALTER TRIGGER',
            objects: [
              {
                kind: 'trigger',
                identity: 'c on public.t',
                create: 'CREATE TRIGGER c BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f()',
                trigger: { table: 1, name: 'c', enabled: 'R' },
              },
            ],
          },
        },
        { lsn: '0/3', captured: { tag: 'ALTER TABLE', tables: [table(1, 'u', { triggers: { a: 'A', c: 'R' } })] } },
        // A table dropped in the range: nothing to set on it.
        { lsn: '0/4', captured: { tag: 'ALTER TABLE', tables: [table(2, 'gone', { triggers: { z: 'D' } })] } },
        { lsn: '0/5', captured: { tag: 'DROP TABLE', dropped: [{ oid: 2, schema: 'public', name: 'gone' }] } },
      ],
      new Map(),
    );
    // Before the rows, only what keeps a trigger from firing for them.
    expect(sqlOf(p.before.at(-1)!)).toEqual(['alter table "public"."u" enable replica trigger "c"']);
    const states = p.after.find((x) => x.includes('jsonb_to_recordset'))!;
    expect(p.after.indexOf(states)).toBeGreaterThan(p.after.findIndex((x) => x.startsWith('CREATE TRIGGER c')));
    expect(sqlOf(states)).toEqual([
      'alter table "public"."u" enable always trigger "a"',
      'alter table "public"."u" enable replica trigger "c"',
    ]);
  });

  it('makes an enum with the labels the range leaves it, and adds none before the transaction to one the range made', () => {
    const p = schemaPatch(
      [
        {
          lsn: '0/1',
          captured: { tag: 'CREATE TYPE', types: [{ oid: 1, schema: 'public', name: 'm', kind: 'e', create: '', labels: ['a'] }] },
        },
        {
          lsn: '0/2',
          captured: { tag: 'ALTER TYPE', types: [{ oid: 1, schema: 'public', name: 'm', kind: 'e', create: '', labels: ['a', 'b'] }] },
        },
      ],
      new Map(),
    );
    expect(p.before[0]).toContain(`create type "public"."m" as enum (''a'', ''b'')`);
    expect(p.labels).toEqual([]);
  });

  it('brings an existing enum through each list of labels in turn, under its name at --from, before the transaction', () => {
    const enumAt = (labels: string[], name = 'm', was?: string) => ({
      oid: 1,
      schema: 'public',
      name,
      kind: 'e',
      create: '',
      labels,
      ...(was ? { was: { schema: 'public', name: was } } : {}),
    });
    const p = schemaPatch(
      [
        { lsn: '0/1', captured: { tag: 'ALTER TYPE', types: [enumAt(['a', 'b2'], 'n', 'm')] } },
        { lsn: '0/2', captured: { tag: 'ALTER TYPE', types: [enumAt(['a', 'b2', 'c'], 'n')] } },
        // Another type takes the name it had: what the range did to the first is not done to it.
        { lsn: '0/3', captured: { tag: 'CREATE TYPE', types: [{ ...enumAt(['x'], 'm'), oid: 2 }] } },
      ],
      new Map(),
    );
    expect(p.labels).toHaveLength(2);
    expect(p.labels[0]).toContain(`array['a', 'b2']`);
    expect(p.labels[1]).toContain(`array['a', 'b2', 'c']`);
    for (const l of p.labels) expect(l).toContain(`to_regtype('"public"."m"')`);
    expect(p.typeNames.get(1)).toBe('"public"."n"');
  });

  it('follows a rename from the name at --from, keeps NOT NULL and keys for after the rows, and forgets dropped tables', () => {
    const p = schemaPatch(
      [
        { lsn: '0/1', captured: { tag: 'ALTER TABLE', tables: [table(7, 'renamed')] } },
        { lsn: '0/2', captured: { tag: 'CREATE TABLE', tables: [table(8, 'brief')] } },
        { lsn: '0/3', captured: { tag: 'DROP TABLE', dropped: [{ oid: 8, schema: 'public', name: 'brief' }] } },
      ],
      new Map([[7, { schema: 'public', name: 'old' }]]),
    );
    expect(p.before.join('\n')).toContain(`execute 'alter table "public"."old" rename to "renamed"'`);
    expect(p.before.join('\n')).toContain('drop table if exists "public"."brief" cascade;');
    expect(p.before.join('\n')).not.toMatch(/set not null|add constraint/);
    expect(p.after.join('\n')).toContain(`alter table "public"."renamed" add constraint "renamed_pkey" PRIMARY KEY (id)`);
    expect(p.after.join('\n')).not.toContain('brief');
    expect([...p.shaped]).toEqual([7, 8]);
    expect([...p.gone]).toEqual([8]);
  });

  it('quotes every DO block with a tag its body does not hold', () => {
    const create = 'create or replace view "public"."v" as select \'$pgtape$\'::text as x';
    const p = schemaPatch(
      [
        {
          lsn: '0/1',
          captured: {
            tag: 'CREATE MATERIALIZED VIEW',
            objects: [{ kind: 'materialized view', identity: 'public.v', create, populated: true }],
          },
        },
      ],
      new Map(),
    );
    expect(p.before[0]).toMatch(/^do \$pgtape1\$ .* \$pgtape1\$;$/s);
    expect(p.after).toContain('refresh materialized view public.v;');
  });
});

describe('the patch', () => {
  it('writes a line break in a name as \\n in its comments: a break would end the comment and make the rest a statement', () => {
    const what = 'CREATE TABLE public."x\ndrop table victims; --"';
    const lines = [
      ...formatDiff(
        {
          from: 'name:a\nb',
          to: 'latest',
          fromLsn: '0/1',
          toLsn: '0/2',
          sources: ['change log'],
          tables: [],
          schemaChanges: [{ lsn: '0/2', what }],
          rewritten: [],
          close: async () => {},
        },
        'sql',
        false,
        (s: string) => s,
      ),
    ];
    expect(lines.join('\n')).not.toMatch(/^drop table victims/m);
    expect(lines).toContain('-- schema change at 0/2, not in this patch: CREATE TABLE public."x\\ndrop table victims; --"');
  });
});
