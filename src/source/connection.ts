import pg from 'pg';
import { UserError } from '../core/errors.js';
import { redactUrl } from '../core/log.js';

/**
 * How values are written as text depends on these settings. The archiver's walsender and the
 * base's COPY use the same fixed ones, so that a value reads back the same way from either (and
 * replay, which sets the same, parses dates as they were written, whatever the server's defaults).
 */
// search_path empty, as pg_dump sets it: names the catalog prints (a regclass value, a column's
// type) come out qualified, not as the source database's own search_path would shorten them.
export const OUTPUT_SETTINGS = `set datestyle = 'ISO, MDY'; set intervalstyle = 'postgres'; set extra_float_digits = 3; set bytea_output = 'hex'; set search_path = ''`;

/**
 * Client settings for a source URL. The URL goes to node-postgres whole, so its TLS options
 * (sslmode, sslrootcert, sslcert, sslkey) and PG* environment defaults pass through unchanged.
 */
export function clientConfig(url: string): pg.ClientConfig {
  return { connectionString: url, application_name: 'pgtape', connectionTimeoutMillis: 15_000 };
}

/**
 * A connected client for `url`. `option` is the option the URL came from (`--source`,
 * `--into`): a failure names it, so the user knows which of two URLs to fix.
 */
export async function connect(url: string, option = '--source'): Promise<pg.Client> {
  let client: pg.Client | undefined;
  try {
    checkPostgresUrl(url, option);
    client = new pg.Client(clientConfig(url));
    // A server going away later must not crash the process through an unhandled 'error' event.
    client.on('error', () => {});
    await client.connect();
    return client;
  } catch (err) {
    await client?.end().catch(() => {});
    throw connectionError(url, err, option);
  }
}

const FORM = 'use the form postgres://user:password@host:5432/database (or a libpq key=value string)';

/**
 * node-postgres takes anything for a URL: `mysql://…` would be tried as Postgres and fail as
 * "authentication failed", `http//host` as a host name. Refused here, naming what is wrong.
 */
export function checkPostgresUrl(url: string, option = '--source'): void {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    // A libpq key=value string ("host=db dbname=shop") or a socket path is fine; a bare word is not.
    if (url.includes('=') || url.startsWith('/')) return;
    throw new UserError(`${option} ${JSON.stringify(url)} is not a Postgres URL`, FORM);
  }
  if (scheme !== 'postgres' && scheme !== 'postgresql' && scheme !== 'socket') {
    throw new UserError(`${option} ${redactUrl(url)} is a ${scheme}:// URL, not a Postgres one`, FORM);
  }
  try {
    new URL(url);
  } catch {
    throw new UserError(`${option} ${redactUrl(url)} is not a valid URL`, FORM);
  }
}

/** A connection whose failure keeps its code (for retry decisions), instead of a user-facing error. */
export async function connectQuietly(url: string): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(url));
  client.on('error', () => {});
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
}

/** Turns a connection failure into a message that names the option, the URL (without its password) and the fix. */
export function connectionError(url: string, err: unknown, option = '--source'): Error {
  if (err instanceof UserError) return err;
  const e = err as { code?: string; message?: string };
  const where = `${option} ${redactUrl(url)}`;
  switch (e.code) {
    case 'ECONNREFUSED':
      return new UserError(
        `cannot connect to ${where}: connection refused`,
        `check the host and port in ${option}, and that Postgres is running there`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new UserError(`cannot connect to ${where}: host not found`, `check the host name in ${option}`);
    case 'ETIMEDOUT':
      return new UserError(`cannot connect to ${where}: timed out`, `check the host and port in ${option}, and the firewall`);
    case '28P01':
    case '28000':
      return new UserError(`cannot connect to ${where}: authentication failed (${e.message})`, `check the user and password in ${option}`);
    case '3D000':
      return new UserError(`cannot connect to ${where}: ${e.message}`, `check the database name in ${option}`);
    default:
      if (e.code === 'ERR_INVALID_URL' || e.message?.includes('Invalid URL')) return new UserError(`${option} is not a valid URL`, FORM);
      return new UserError(`cannot connect to ${where}: ${e.message ?? String(err)}`, `check ${option}`);
  }
}

/**
 * Connection errors that waiting will not fix: the slot, the credentials, the database or the
 * privileges are wrong. Everything else (refused, reset, shutting down, starting up, a killed
 * walsender, the slot still held by a walsender that has not noticed its client is gone) is retried.
 */
export function fatalConnectionError(err: Error): boolean {
  const code = (err as { code?: string }).code ?? '';
  return ['42704', '28P01', '28000', '3D000', '42501', '55000', '42P01'].includes(code) || code.startsWith('28');
}
