import { UserError } from '../src/core/errors.js';
import { quoteIdent, quoteQualified } from '../src/core/sql.js';

/**
 * The refusal of a type whose input function takes no value at all (feature_not_supported): only
 * the server makes its values (pg_node_tree: a partition bound, a default's expression;
 * pg_ndistinct, pg_dependencies, pg_mcv_list: extended statistics). A copy of a catalog holds
 * them (CREATE TABLE … AS SELECT * FROM pg_class), and no replay can write them.
 */
const NO_INPUT = /^cannot accept a value of type (\S+)$/;

/**
 * `err` said as what it is when it is that refusal while the rows of `table` were written: the
 * table, the column (COPY names it; otherwise those of the type) and the way out (exit 2).
 */
export function unwritable(err: unknown, table: { schema: string; name: string; columns: { name: string; type: string }[] }): unknown {
  const e = err as { code?: unknown; message?: unknown; where?: unknown };
  const type = e.code === '0A000' && typeof e.message === 'string' ? NO_INPUT.exec(e.message)?.[1] : undefined;
  if (!type) return err;
  const named = typeof e.where === 'string' ? /^COPY [^,]*, line \d+, column (.+?):/.exec(e.where)?.[1] : undefined;
  const columns = named ? [named] : table.columns.filter((c) => c.type.replace(/^pg_catalog\./, '') === type).map((c) => c.name);
  const which = columns.length ? `column ${columns.map(quoteIdent).join(', ')} holds` : 'it holds';
  return new UserError(
    `the replay cannot write the rows of table ${quoteQualified(table.schema, table.name)}: ${which} values of type ${type}, which Postgres takes from no input (only the server makes them)`,
    'leave the table out with --tables (on the source, the column cast to text would replay)',
  );
}
