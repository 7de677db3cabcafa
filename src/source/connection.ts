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
 * (sslmode, sslrootcert, sslcert, sslkey) and PG* environment defaults pass through, sslmode
 * read with libpq's meanings (libpqSslModes).
 */
export function clientConfig(url: string): pg.ClientConfig {
  return {
    connectionString: libpqSslModes(isConninfo(url) ? conninfoUrl(url) : url, process.env.PGSSLMODE),
    application_name: 'pgtape',
    connectionTimeoutMillis: 15_000,
  };
}

/**
 * node-postgres 8 reads `sslmode=require`, `prefer` and `verify-ca` as `verify-full` (a server
 * with a self-signed certificate is refused where psql connects) and prints a warning of nine
 * lines each time; PGSSLMODE=require it reads as verify-full too. A user who writes an sslmode
 * means libpq's (the README promises it), so node-postgres is asked for libpq's meanings, unless
 * the URL says otherwise itself. PGSSLMODE counts where the URL has no sslmode, as in libpq.
 */
export function libpqSslModes(url: string, envSslmode?: string): string {
  const join = (u: string, param: string) => `${u}${u.includes('?') ? '&' : '?'}${param}`;
  if (/[?&]uselibpqcompat=/i.test(url)) return url;
  if (/[?&]sslmode=/i.test(url)) return join(url, 'uselibpqcompat=true');
  // Only a URL takes parameters (a socket path does not).
  if (envSslmode && /^postgres(ql)?:/i.test(url))
    return join(join(url, `sslmode=${encodeURIComponent(envSslmode)}`), 'uselibpqcompat=true');
  return url;
}

/** A libpq key=value string (`host=db dbname=shop`), not a URL nor a socket path. */
function isConninfo(text: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(text) && !text.startsWith('/') && text.includes('=');
}

/** One `keyword = value` of a libpq connection string; a value quoted in '…' may hold spaces, `\'` and `\\`. */
const CONNINFO_PAIR = /([A-Za-z_]+)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|((?:[^\s'\\]|\\.)+))\s*/y;

/**
 * A libpq key=value string as the URL node-postgres reads: it parses no other form (it would take
 * `host=db port=5433` for a host called `base`). Every keyword besides host, port, user,
 * password and dbname (sslmode, sslrootcert, application_name …) becomes a URL parameter, which
 * node-postgres reads as libpq does.
 */
export function conninfoUrl(conninfo: string): string {
  const params = new Map<string, string>();
  const text = conninfo.trim();
  for (let at = 0; at < text.length;) {
    CONNINFO_PAIR.lastIndex = at;
    const m = CONNINFO_PAIR.exec(text);
    if (!m)
      throw new UserError(
        `${JSON.stringify(redactUrl(conninfo))} is not a libpq key=value string (at ${JSON.stringify(redactUrl(text.slice(at)).slice(0, 20))})`,
        FORM,
      );
    params.set(m[1]!.toLowerCase(), (m[2] ?? m[3]!).replace(/\\(.)/g, '$1'));
    at = CONNINFO_PAIR.lastIndex;
  }
  const take = (key: string) => {
    const value = params.get(key);
    params.delete(key);
    return value;
  };
  const url = new URL('postgres://');
  // A URL holds a user, password or port only with a host: node-postgres's own default, then.
  const host = take('host') ?? take('hostaddr') ?? process.env.PGHOST ?? 'localhost';
  // A socket directory is no host name: node-postgres takes it as a parameter.
  url.hostname = host.startsWith('/') ? 'localhost' : host;
  if (host.startsWith('/')) params.set('host', host);
  const port = take('port');
  if (port) url.port = port;
  const user = take('user');
  if (user) url.username = encodeURIComponent(user);
  const password = take('password');
  if (password) url.password = encodeURIComponent(password);
  const dbname = take('dbname');
  if (dbname) url.pathname = `/${encodeURIComponent(dbname)}`;
  for (const [key, value] of params) url.searchParams.set(key, value);
  return url.toString();
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
    if (isConninfo(url)) conninfoUrl(url);
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
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_HAS_EXPIRED':
      return new UserError(
        `cannot connect to ${where}: the server's TLS certificate is not trusted (${e.message})`,
        `give the certificate of the CA that signed it with sslrootcert=<file> in ${option}, or use sslmode=require to encrypt without checking it (as libpq does)`,
      );
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return new UserError(
        `cannot connect to ${where}: the server's TLS certificate is for another host name (${e.message})`,
        `connect by a host name the certificate names, or use sslmode=verify-ca to check the certificate but not the name (as libpq does)`,
      );
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

/**
 * A session that ended under its user: the server shut down or ended it (pg_terminate_backend),
 * or the network dropped it. node-postgres says so in several ways, none of them naming the URL.
 */
export function connectionLost(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    ['57P01', '57P02', '57P03', '08006', '08003', 'ECONNRESET', 'EPIPE'].includes(e?.code ?? '') ||
    /Connection terminated|not queryable|connection error/i.test(e?.message ?? '')
  );
}
