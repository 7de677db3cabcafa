import { parse } from 'pg-connection-string';
import { describe, expect, it } from 'vitest';
import { checkPostgresUrl, conninfoUrl } from '../../src/source/connection.js';

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
