import { describe, expect, it } from 'vitest';
import type { BaseSchema } from '../../src/log/bases.js';
import { GeneratedColumns } from '../../src/audit/diff/generated-columns.js';
import { TUPLE_NULL, TUPLE_TEXT, TUPLE_UNCHANGED } from '../../src/pgoutput/tuple.js';
import type { RelationDef } from '../../src/segment/format.js';

const relation: RelationDef = {
  oid: 7,
  schema: 'public',
  name: 'orders',
  replicaIdentity: 'd',
  columns: ['id', 'total', 'note', 'twice'].map((name, i) => ({ name, key: i === 0, typeOid: 25, typmod: -1, typeName: 'text' })),
};
const schema = { tables: [{ oid: 7, generatedColumns: ['total', 'twice'] }] } as unknown as BaseSchema;
const tuple = (kinds: number[], values: string[]) => ({ kinds: Buffer.from(kinds), values: values.map((v) => Buffer.from(v)) });

describe('GeneratedColumns', () => {
  it("leaves the base's generated columns out of a relation and its tuples, whatever kinds their columns are", () => {
    const g = new GeneratedColumns(schema);
    const e = g.entry({
      kind: 'update',
      relation,
      key: tuple([TUPLE_TEXT, TUPLE_NULL, TUPLE_NULL, TUPLE_NULL], ['1']),
      new: tuple([TUPLE_TEXT, TUPLE_TEXT, TUPLE_UNCHANGED, TUPLE_TEXT], ['1', '20', '4']),
    });
    expect(e.relation.columns.map((c) => c.name)).toEqual(['id', 'note']);
    expect([...e.new.kinds]).toEqual([TUPLE_TEXT, TUPLE_UNCHANGED]);
    expect(e.new.values.map(String)).toEqual(['1']);
    expect([...e.key!.kinds]).toEqual([TUPLE_TEXT, TUPLE_NULL]);
    // The same relation object stays one object: diff knows a table's changes by it.
    expect(g.relation(relation)).toBe(e.relation);
  });

  it('follows captured shapes from their point on, and keeps what it does not know', () => {
    const g = new GeneratedColumns();
    expect(g.relation(relation)).toBe(relation);
    const column = (name: string, generated?: string, virtual?: boolean) => ({ name, generated, virtual });
    g.learn({ tables: [{ oid: 7, columns: [column('id'), column('total', 'a * b'), column('twice', 'a * 2', true)] }] } as never);
    // A virtual column is never published: only the stored one is known as generated.
    expect(g.relation(relation).columns.map((c) => c.name)).toEqual(['id', 'note', 'twice']);
    g.learn({ tables: [{ oid: 7, columns: [column('id'), column('total'), column('twice')] }] } as never);
    expect(g.relation(relation)).toBe(relation);
  });
});
