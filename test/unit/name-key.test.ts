import { describe, expect, it } from 'vitest';
import { nameKey } from '../../src/core/sql.js';
import {
  commentsOnRenamed,
  identityInRenamedSchema,
  inRenamedSchema,
  KeptTriggers,
  onMovedTable,
  parentsFirst,
  referencingRenamed,
} from '../../src/source/ddl-statements.js';
import { schemaPatch } from '../../src/audit/diff/schema-patch.js';
import type { TableSnapshot } from '../../src/source/ddl-capture.js';

// Names Postgres writes quote a keyword (`public."order"`) where pgtape's writing does not, and
// servers disagree on which words are keywords: names written on either side compare by nameKey.

const table = (oid: number, schema: string, name: string, extra: Partial<TableSnapshot> = {}): TableSnapshot => ({
  oid,
  schema,
  name,
  replicaIdentity: 'd',
  columns: [{ name: 'id', attnum: 1, type: 'integer', typeOid: 23, typmod: -1, notNull: true, default: null }],
  primaryKey: ['id'],
  indexes: [],
  constraints: [],
  ...extra,
});

describe('nameKey', () => {
  it('is one key for every writing of a name, and tells different names apart', () => {
    expect(nameKey('public."order"')).toBe(nameKey('public.order'));
    expect(nameKey('"public"."order"')).toBe(nameKey('public.order'));
    expect(nameKey('tr on public."order"')).toBe(nameKey('"tr" on "public"."order"'));
    expect(nameKey('public."Order"')).not.toBe(nameKey('public.order'));
    expect(nameKey('public."a.b"')).not.toBe(nameKey('public.a.b'));
    expect(nameKey('"a$b".t')).toBe(nameKey('"a$b"."t"'));
    expect(nameKey('public."x"" on y"')).not.toBe(nameKey('public.x on y'));
  });
});

describe('names moved', () => {
  it('follows a keyword-named table whichever side wrote its name', () => {
    expect(onMovedTable({ kind: 'trigger', identity: 'tr on public."order"' }, '"public"."order"', '"s"."select"')).toBe(
      'tr on "s"."select"',
    );
    expect(onMovedTable({ kind: 'table', identity: 'public."order"' }, 'public.order', '"public"."o2"')).toBe('"public"."o2"');
    expect(onMovedTable({ kind: 'table column', identity: 'public."order".qty' }, 'public.order', '"public"."o2"')).toBe(
      '"public"."o2".qty',
    );
    // A trigger whose own name says " on " is on the table after the last one outside quotes.
    expect(onMovedTable({ kind: 'trigger', identity: '"a on public.t" on public.u' }, 'public.t', 'public.v')).toBeUndefined();
    expect(onMovedTable({ kind: 'trigger', identity: '"a on public.t" on public.u' }, 'public.u', 'public.v')).toBe(
      '"a on public.t" on public.v',
    );
    expect(inRenamedSchema('"user".f(integer)', { from: 'user', identity: 'people' })).toBe('people.f(integer)');
    expect(inRenamedSchema('users.f(integer)', { from: 'user', identity: 'people' })).toBeUndefined();
  });

  it('moves the triggers kept for the end with their statements, and forgets one dropped under another writing of its name', () => {
    const kept = new KeptTriggers();
    kept.set('tr on public."order"', 'CREATE TRIGGER tr AFTER INSERT ON public."order" FOR EACH ROW EXECUTE FUNCTION f()');
    kept.set(
      '"x ON public.order" on public.t',
      'CREATE TRIGGER "x ON public.order " AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f()',
    );
    kept.moved('"public"."order"', '"public"."select"');
    expect([...kept]).toEqual([
      {
        identity: '"x ON public.order" on public.t',
        create: 'CREATE TRIGGER "x ON public.order " AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f()',
      },
      {
        identity: 'tr on "public"."select"',
        create: 'CREATE TRIGGER tr AFTER INSERT ON "public"."select" FOR EACH ROW EXECUTE FUNCTION f()',
      },
    ]);
    kept.delete('tr on public."select"');
    expect([...kept].map((t) => t.identity)).toEqual(['"x ON public.order" on public.t']);
  });

  it('puts a partition after its keyword-named parent', () => {
    const parts = parentsFirst([table(2, 'public', 'order_2026', { parent: 'public."order"' }), table(1, 'public', 'order')]);
    expect(parts.map((t) => t.name)).toEqual(['order', 'order_2026']);
  });
});

describe("diff's patch", () => {
  it('makes a trigger and a comment of a keyword-named table on it under its new name, and in its schema renamed', () => {
    const p = schemaPatch(
      [
        { lsn: '0/1', captured: { tag: 'ALTER TABLE', tables: [table(1, 'public', 'order')] } },
        {
          lsn: '0/2',
          captured: {
            tag: 'CREATE TRIGGER',
            objects: [
              {
                kind: 'trigger',
                identity: 'tr on public."order"',
                create: 'CREATE TRIGGER tr AFTER INSERT ON public."order" FOR EACH ROW EXECUTE FUNCTION f()',
              },
            ],
            comments: [{ kind: 'trigger', identity: 'tr on public."order"', comment: 'audit' }],
          },
        },
        { lsn: '0/3', captured: { tag: 'ALTER TABLE', tables: [table(1, 'public', 'select')] } },
        {
          lsn: '0/4',
          captured: {
            tag: 'ALTER SCHEMA',
            renamedSchemas: [{ from: 'public', identity: '"user"', rename: 'alter schema public rename to "user"', back: '' }],
          },
        },
      ],
      new Map([[1, { schema: 'public', name: 'order' }]]),
    );
    const after = p.after.join('\n');
    expect(after).toContain('drop trigger if exists tr on "user"."select";');
    expect(after).toContain('CREATE TRIGGER tr AFTER INSERT ON "user"."select" FOR EACH ROW');
    expect(after).toMatch(/comment on trigger tr on "user"."select" is .audit./i);
    expect(after).not.toContain('order');
  });
});

describe('triggers kept for the end', () => {
  it('call their function under its name at the end: renamed, then moved with its schema; and follow their table into a schema renamed', () => {
    const kept = new KeptTriggers();
    const create = (fn: string, table = 'public.s') =>
      `CREATE TRIGGER t BEFORE INSERT ON ${table} FOR EACH ROW WHEN ((new.v <> ' EXECUTE FUNCTION fns.stamp(')) EXECUTE FUNCTION ${fn}('fns.stamp(')`;
    kept.set('t on public.s', create('fns.stamp'));
    kept.functionRenamed('fns.other()', 'fns.other2()');
    // Another function of the name, with arguments, is not the trigger's.
    kept.functionRenamed('fns.stamp(integer)', 'fns.stamp3(integer)');
    kept.functionRenamed('fns.stamp()', 'fns.stamp2()');
    expect([...kept][0]!.create).toBe(create('fns.stamp2'));
    kept.schemaRenamed('public', 'p2');
    expect([...kept][0]).toEqual({ identity: 't on p2.s', create: create('fns.stamp2', 'p2.s') });
    kept.schemaRenamed('fns', '"select"');
    expect([...kept][0]!.create).toBe(create('"select".stamp2', 'p2.s'));
  });
});

describe('comments kept for the end', () => {
  it('follow an object renamed under either writing of its name, and a schema renamed, but not an extension of its name', () => {
    const comments = [
      { kind: 'trigger', identity: 'tr on "public"."select"' },
      { kind: 'table column', identity: 'public."select".qty' },
      { kind: 'extension', identity: 'hstore' },
      { kind: 'schema', identity: 'hstore' },
    ];
    commentsOnRenamed(comments, 'tr on public."select"', 'tr2 on public."select"');
    const r = { from: 'public', identity: '"user"' };
    const h = { from: 'hstore', identity: 'kv' };
    expect(comments.map((c) => identityInRenamedSchema(c.kind, c.identity, r) ?? c.identity)).toEqual([
      'tr2 on "user"."select"',
      '"user"."select".qty',
      'hstore',
      'hstore',
    ]);
    expect(comments.map((c) => identityInRenamedSchema(c.kind, c.identity, h))).toEqual([undefined, undefined, undefined, 'kv']);
  });
});

describe('foreign keys made at the end', () => {
  it('reference their table under its name then: renamed, moved with its schema, either writing of a keyword', () => {
    const def = `FOREIGN KEY (owner) REFERENCES public."order"(id) ON DELETE CASCADE`;
    expect(referencingRenamed(def, { from: 'public.order', to: 'public.order_old' })).toBe(
      'FOREIGN KEY (owner) REFERENCES public.order_old(id) ON DELETE CASCADE',
    );
    expect(referencingRenamed(def, { from: 'public.orders', to: 'public.x' }), 'another table').toBe(def);
    expect(referencingRenamed(def, { from: 'public', to: '"user"', schema: true })).toBe(
      'FOREIGN KEY (owner) REFERENCES "user"."order"(id) ON DELETE CASCADE',
    );
    // A column named like the table is not the table; nor is a table named like the schema.
    const self = `FOREIGN KEY ("REFERENCES public.t") REFERENCES public.public(id)`;
    expect(referencingRenamed(self, { from: 'public.t', to: 'public.u' })).toBe(self);
    expect(referencingRenamed(self, { from: 'public', to: 'p2', schema: true })).toBe(
      'FOREIGN KEY ("REFERENCES public.t") REFERENCES p2.public(id)',
    );
  });

  it("in diff's patch, follow a table swapped for a new one of its name, and a schema renamed", () => {
    const pets = (def: string) =>
      table(2, 'public', 'pets', { constraints: [{ name: 'pets_owner_fkey', def: `FOREIGN KEY (owner) REFERENCES ${def}(id)` }] });
    const p = schemaPatch(
      [
        { lsn: '0/1', captured: { tag: 'CREATE TABLE', tables: [pets('public.owners')] } },
        { lsn: '0/2', captured: { tag: 'ALTER TABLE', tables: [table(1, 'public', 'owners_old')] } },
        { lsn: '0/3', captured: { tag: 'CREATE TABLE', tables: [table(3, 'public', 'owners')] } },
        {
          lsn: '0/4',
          captured: {
            tag: 'ALTER SCHEMA',
            renamedSchemas: [{ from: 'public', identity: 'p2', rename: 'alter schema public rename to p2', back: '' }],
          },
        },
      ],
      new Map([[1, { schema: 'public', name: 'owners' }]]),
    );
    expect(p.after.join('\n')).toContain('FOREIGN KEY (owner) REFERENCES p2."owners_old"(id)');
  });
});
