import { parse } from 'pg-connection-string';
import { describe, expect, it } from 'vitest';
import { checkPostgresUrl, clientConfig, conninfoUrl, libpqSslModes } from '../../src/source/connection.js';

// node-postgres reads URLs only: a libpq key=value string is turned into one, read as libpq reads it.
describe('a libpq key=value string', () => {
  it('becomes the URL node-postgres reads, quoted values and parameters kept', () => {
    const url = conninfoUrl(
      `host=db.example port=5433 user=archiver password='p w\\'@x' dbname=shop sslmode=verify-full application_name=x`,
    );
    expect(parse(url)).toMatchObject({
      host: 'db.example',
      port: '5433',
      user: 'archiver',
      password: "p w'@x",
      database: 'shop',
      sslmode: 'verify-full',
      application_name: 'x',
    });
  });

  it('takes a socket directory for a host, and node-postgres defaults for what it leaves out', () => {
    expect(parse(conninfoUrl('host=/var/run/postgresql dbname=x'))).toMatchObject({ host: '/var/run/postgresql', database: 'x' });
    expect(parse(conninfoUrl('  dbname = shop  '))).toMatchObject({ database: 'shop' });
  });

  it('is refused, naming where, when it is not one', () => {
    expect(() => conninfoUrl('host=db port')).toThrow(/not a libpq key=value string \(at "port"\)/);
    expect(() => checkPostgresUrl("host=db password='unclosed", '--into')).toThrow(/not a libpq key=value string/);
    expect(() => checkPostgresUrl("host=db password='unclosed", '--into')).not.toThrow(/unclosed/);
  });
});

// What node-postgres makes of an sslmode, read by its own parser (as pg.Client reads the URL).
describe('sslmode', () => {
  const tls = (url: string) => parse(clientConfig(url).connectionString!).ssl;

  it("means what it means to libpq: require encrypts without checking the server's certificate", () => {
    expect(tls('postgres://a@db/shop?sslmode=require')).toMatchObject({ rejectUnauthorized: false });
    expect(tls('host=db dbname=shop sslmode=require')).toMatchObject({ rejectUnauthorized: false });
    expect(tls('postgres://a@db/shop?sslmode=disable')).toBe(false);
  });

  it('verify-full checks the certificate and the host name', () => {
    const ssl = tls('postgres://a@db/shop?sslmode=verify-full') as { rejectUnauthorized?: boolean; checkServerIdentity?: unknown };
    expect(ssl.rejectUnauthorized).not.toBe(false);
    expect(ssl.checkServerIdentity).toBeUndefined();
  });

  it('leaves a URL alone that says which meaning it wants, or has no sslmode', () => {
    expect(clientConfig('postgres://a@db/shop?sslmode=require&uselibpqcompat=false').connectionString).toBe(
      'postgres://a@db/shop?sslmode=require&uselibpqcompat=false',
    );
    expect(libpqSslModes('postgres://a@db/shop')).toBe('postgres://a@db/shop');
  });

  it('PGSSLMODE counts where the URL names none, with the same meaning', () => {
    expect(parse(libpqSslModes('postgres://a@db/shop', 'require')).ssl).toMatchObject({ rejectUnauthorized: false });
    expect(parse(libpqSslModes('postgres://a@db/shop?sslmode=disable', 'require')).ssl).toBe(false);
  });
});
