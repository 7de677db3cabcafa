import type { BaseSchema, BaseTable } from '../src/log/bases.js';
import { quoteIdent, quoteQualified } from '../src/core/sql.js';
import type { EnumLabels } from './enum-labels.js';

/** DDL that recreates a base's schemas, types and tables (keys are added after the rows are loaded). */
export function baseDdl(schema: BaseSchema, labels: EnumLabels): string[] {
  const out: string[] = [];
  for (const s of schema.schemas) out.push(`create schema if not exists ${quoteIdent(s)}`);
  for (const e of schema.enums) out.push(labels.createEnum(e.schema, e.name, e.labels));
  for (const d of schema.domains) {
    out.push(
      `create domain ${quoteQualified(d.schema, d.name)} as ${d.baseType}${d.notNull ? ' not null' : ''}${d.default ? ` default ${d.default}` : ''}`,
    );
  }
  for (const t of schema.tables) out.push(createTable(t));
  return out;
}

function createTable(t: BaseTable): string {
  const columns = t.columns.map(
    (c) => `${quoteIdent(c.name)} ${c.type}${c.notNull ? ' not null' : ''}${c.default ? ` default ${c.default}` : ''}`,
  );
  return `create table ${quoteQualified(t.schema, t.name)} (${columns.join(', ')})`;
}

/** Keys and replica identity, once the base's rows are in. */
export function keyDdl(t: BaseTable): string[] {
  const out: string[] = [];
  if (t.primaryKey.length)
    out.push(`alter table ${quoteQualified(t.schema, t.name)} add primary key (${t.primaryKey.map(quoteIdent).join(', ')})`);
  if (t.replicaIdentity === 'f') out.push(`alter table ${quoteQualified(t.schema, t.name)} replica identity full`);
  return out;
}
