import type { Relation, TypeMessage } from '../pgoutput/messages.js';
import { BUILTIN_TYPE_NAMES } from '../pgoutput/builtin-types.js';
import { columnTypeName, type RelationDef } from '../segment/format.js';
import { quoteQualified } from '../core/sql.js';

/**
 * The relation definitions the stream has announced. pgoutput sends a Relation message once per
 * connection (and again when the relation changes), so this outlives segments: each new segment
 * re-emits the definitions its changes use.
 */
export class RelationCatalog {
  private readonly relations = new Map<number, RelationDef>();
  private readonly typeNames = new Map<number, string>();

  defineType(t: TypeMessage): void {
    this.typeNames.set(t.oid, columnTypeName(quoteQualified(t.schema, t.name)));
  }

  /** Returns the new definition; a changed relation gets a new object, so identity marks a change. */
  define(r: Relation): RelationDef {
    const def: RelationDef = {
      oid: r.oid,
      schema: r.schema,
      name: r.name,
      replicaIdentity: r.replicaIdentity,
      columns: r.columns.map((c) => ({ ...c, typeName: this.typeName(c.typeOid) })),
    };
    this.relations.set(r.oid, def);
    return def;
  }

  get(oid: number): RelationDef {
    const def = this.relations.get(oid);
    if (!def) throw new Error(`pgoutput sent a change for relation ${oid} before its Relation message`);
    return def;
  }

  private typeName(oid: number): string {
    return this.typeNames.get(oid) ?? BUILTIN_TYPE_NAMES.get(oid) ?? `oid:${oid}`;
  }
}
