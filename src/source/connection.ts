import pg from 'pg';
import { UserError } from '../core/errors.js';
import { redactUrl } from '../core/log.js';

/**
 * How values are written as text depends on these settings. The archiver's walsender and the
 * base's COPY use the same fixed ones, so that a value reads back the same way from either (and
 * replay, which sets the same, parses dates as they were written, whatever the server's defaults).
 */
export const OUTPUT_SETTINGS = `set datestyle = 'ISO, MDY'; set intervalstyle = 'postgres'; set extra_float_digits = 3; set bytea_output = 'hex'`;

/**
 * Client settings for a source URL. The URL goes to node-postgres whole, so its TLS options
 * (sslmode, sslrootcert, sslcert, sslkey) and PG* environment defaults pass through unchanged.
 */
export function clientConfig(url: string): pg.ClientConfig {
  return { connectionString: url, application_name: 'pgtape', connectionTimeoutMillis: 15_000 };
}

export async function connect(url: string): Promise<pg.Client> {
  let client: pg.Client | undefined;
  try {
    client = new pg.Client(clientConfig(url));
    // A server going away later must not crash the process through an unhandled 'error' event.
    client.on('error', () => {});
    await client.connect();
    return client;
  } catch (err) {
    await client?.end().catch(() => {});
    throw connectionError(url, err);
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

/** Turns a connection failure into a message that names the source (without its password) and the fix. */
export function connectionError(url: string, err: unknown): Error {
  const e = err as { code?: string; message?: string };
  const where = redactUrl(url);
  switch (e.code) {
    case 'ECONNREFUSED':
      return new UserError(`cannot connect to ${where}: connection refused`, 'check the host and port, and that Postgres is running');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new UserError(`cannot connect to ${where}: host not found`, 'check the host name in the source URL');
    case 'ETIMEDOUT':
      return new UserError(`cannot connect to ${where}: timed out`, 'check the host, port and firewall');
    case '28P01':
    case '28000':
      return new UserError(
        `cannot connect to ${where}: authentication failed (${e.message})`,
        'check the user and password in the source URL',
      );
    case '3D000':
      return new UserError(`cannot connect to ${where}: ${e.message}`, 'check the database name in the source URL');
    default:
      if (e.code === 'ERR_INVALID_URL' || e.message?.includes('Invalid URL')) {
        return new UserError('the source URL is not valid', 'use the form postgres://user:password@host:5432/database');
      }
      return new UserError(`cannot connect to ${where}: ${e.message ?? String(err)}`);
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
