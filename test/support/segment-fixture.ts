import type { RelationDef } from '../../src/segment/format.js';

// What the segment format's unit tests write: one keyed table of an id and a note, under a name
// of the test's choosing, from one stream.

/** A table `schema.name` (oid 16384) keyed by a bigint id, with a text note. */
export function noteTable(schema: string, name: string): RelationDef {
  return {
    oid: 16384,
    schema,
    name,
    replicaIdentity: 'd',
    columns: [
      { name: 'id', key: true, typeOid: 20, typmod: -1, typeName: 'bigint' },
      { name: 'note', key: false, typeOid: 25, typmod: -1, typeName: 'text' },
    ],
  };
}

/** A row image: a kind letter per column and the values of the `t` ones. */
export const tuple = (kinds: string, ...values: string[]) => ({ kinds: Buffer.from(kinds), values: values.map((v) => Buffer.from(v)) });

export const identity = { systemIdentifier: '7300000000000000001', database: 'shop', slot: 'pgtape', serverVersion: 170010 };
