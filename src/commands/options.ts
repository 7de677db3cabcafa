import { Option } from 'commander';
import { UserError } from '../core/errors.js';

// Options every command that touches the source or the store shares, with their environment variables.

export const sourceOption = (description = 'the archived database') =>
  new Option('--source <postgres-url>', description).env('PGTAPE_SOURCE');

export const storeOption = (description = 'the archive') =>
  new Option('--store <dir|s3://bucket/prefix|pfs://repo@branch>', description).env('PGTAPE_STORE');

export const s3EndpointOption = () =>
  new Option(
    '--s3-endpoint <url>',
    'S3 endpoint for s3:// (default AWS_ENDPOINT_URL) and pfs:// stores (default PACHD_S3_ENDPOINT, else http://localhost:30600)',
  );

export function requireSource(source: string | undefined): string {
  if (!source) throw new UserError('no source given', 'pass --source <postgres-url> or set PGTAPE_SOURCE');
  return source;
}

/**
 * A replication slot name as Postgres takes it (lower-case letters, digits and underscores, at
 * most 63), checked before anything is written, instead of failing after the store was opened.
 */
export function parseSlotName(text: string, option = '--slot'): string {
  if (!/^[a-z0-9_]{1,63}$/.test(text))
    throw new UserError(
      `${option} ${JSON.stringify(text)} is not a replication slot name`,
      'use lower-case letters, digits and underscores, at most 63 characters (for example pgtape_shop)',
    );
  return text;
}

/**
 * `schema.table` (or `table`, in public) as log and replay name tables: a double-quoted part may
 * hold dots and doubled quotes, as in SQL.
 */
export function parseTableName(text: string): string {
  const parts: string[] = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^."]+))\s*(\.|$)/y;
  let m: RegExpExecArray | null;
  let separator = '';
  while (re.lastIndex < text.length && (m = re.exec(text))) {
    parts.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!.trim());
    separator = m[3]!;
    if (separator === '') break;
  }
  // A trailing dot leaves the table part out; an empty part (`""`, blanks) names nothing.
  if (re.lastIndex !== text.length || separator === '.' || parts.length < 1 || parts.length > 2 || parts.includes('')) {
    throw new UserError(
      `${JSON.stringify(text)} is not a table name`,
      'use schema.table, or "Odd Schema"."Odd Table" with quotes for names holding dots',
    );
  }
  return parts.length === 1 ? `public.${parts[0]}` : `${parts[0]}.${parts[1]}`;
}

const addTables = (value: string, previous: Set<string> | undefined) => {
  const out = new Set(previous ?? []);
  for (const t of splitTableList(value)) out.add(parseTableName(t));
  return out;
};
// One name: a comma in it is part of it (`--table 'a, b'` is the table "a, b", never two).
const addTable = (value: string, previous: Set<string> | undefined) => new Set([...(previous ?? []), parseTableName(value)]);

/**
 * `--table a.b --table c.d` (repeatable) and `--tables a.b,c.d` (a list): both forms in every
 * command that selects tables, so that neither is a surprise. `selectedTables` joins them.
 */
export const tableOption = (what: string) => new Option('--table <schema.table>', `${what} (schema.table); repeatable`).argParser(addTable);
export const tablesOption = (what = 'the same as --table, as a comma-separated list') =>
  new Option('--tables <schema.table,...>', what).argParser(addTables);

/** The tables --table and --tables name; undefined when neither was given. Refuses a list naming none. */
export function selectedTables(opts: { table?: Set<string>; tables?: Set<string> }): Set<string> | undefined {
  if (opts.table === undefined && opts.tables === undefined) return undefined;
  const all = new Set([...(opts.table ?? []), ...(opts.tables ?? [])]);
  if (all.size === 0) throw new UserError('--table/--tables names no table', 'name tables as schema.table, separated by commas');
  return all;
}

/** A comma-separated list of table names, commas inside double quotes kept. */
export function splitTableList(text: string): string[] {
  return (text.match(/(?:"(?:[^"]|"")*"|[^,])+/g) ?? []).map((t) => t.trim()).filter(Boolean);
}
