// The schema of a base as statements to run, in the order pg_restore runs a dump's: pre-data
// (schemas, extensions, types, functions, sequences, tables, views), the rows, then post-data
// (indexes, constraints, foreign keys, triggers, materialized views' data, comments). Each object is
// read from the catalog in the base's snapshot and written with Postgres' own deparsers where
// they exist (docs/ARCHITECTURE.md, Bases).

import type { SchemaObject } from '../../log/bases.js';

/** An object as read from the catalog, before it is ordered. */
export interface CatalogObject extends SchemaObject {
  /** Its identity in the dependency graph: `<catalog>:<oid>` (`pg_class:16400`). */
  key: string;
  /** Where it goes among objects that do not depend on each other: pg_dump's order of kinds. */
  rank: number;
}

/** pg_dump's order of kinds (pg_dump_sort.c), for objects that do not depend on each other. */
export const RANK = {
  schema: 0,
  collation: 1,
  extension: 2,
  type: 3,
  domain: 4,
  function: 5,
  operator: 6,
  textSearch: 7,
  sequence: 8,
  table: 9,
  view: 10,
  owned: 11,
} as const;
