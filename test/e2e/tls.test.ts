import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_USER } from '../../src/local-pg/local-cluster.js';
import { pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { tempStore } from '../support/tape.js';

// TLS as a production source has it: a server that refuses connections without TLS, with a
// self-signed certificate (the usual case behind a private network). The URL's sslmode must mean
// what it means to libpq, as the README says: `require` encrypts without checking the
// certificate, `verify-full` checks it (and is refused here, with a hint).

const certs = mkdtempSync(join(tmpdir(), 'pgtape-tls-'));
chmodSync(certs, 0o755);
const [crt, key] = [join(certs, 'server.crt'), join(certs, 'server.key')];
const made = spawnSync('openssl', ['req', '-new', '-x509', '-days', '2', '-nodes', '-subj', '/CN=db.example', '-keyout', key, '-out', crt]);
if (made.status === 0) {
  // The server reads its key only if it owns it, readable by nobody else.
  if (process.getuid?.() === 0) spawnSync('chown', [SERVER_USER, key, crt]);
  chmodSync(key, 0o600);
}
const embedded = !process.env.PGTAPE_TEST_PG;

describe.skipIf(made.status !== 0 || !embedded)('a source that requires TLS, with a self-signed certificate', () => {
  const source = useSource('create table t (id int primary key, v text); insert into t values (1, $$one$$), (2, $$two$$);', {
    settings: { ssl: 'on', ssl_cert_file: `'${crt}'`, ssl_key_file: `'${key}'` },
  });
  const url = (sslmode: string) => `${source.db.url()}?sslmode=${sslmode}`;

  beforeAll(async () => {
    // Connections without TLS refused from here on (the fixture's own client is already connected).
    // Read before COPY opens (and empties) the same file; tabs become spaces (COPY would escape them).
    await source.admin.query(String.raw`
      do $$ declare hba text := current_setting('hba_file'); lines text[]; begin
        lines := array['hostnossl all all all reject'] || regexp_split_to_array(replace(pg_read_file(hba), E'	', ' '), E'
');
        execute format('copy (select unnest(%L::text[])) to %L', lines, hba);
      end $$`);
    await source.admin.query('select pg_reload_conf()');
  });
  afterAll(() => rmSync(certs, { recursive: true, force: true }));

  it('refuses a connection without TLS (the server is set up as the test means)', async () => {
    const store = tempStore();
    const r = await pgtape(['archive', '--source', url('disable'), '--store', store.dir, '--until', 'now']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/no encryption|pg_hba/);
    store.cleanup();
  });

  it('archives with sslmode=require (a URL or a libpq string), without a warning, and replays over TLS', async () => {
    const store = tempStore();
    const a = await pgtape(['archive', '--source', url('require'), '--store', store.dir, '--create-publication', '--until', 'now']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).not.toContain('WARNING');
    await source.admin.query(`insert into t values (3, 'three')`);
    const { port, password } = new URL(source.db.url());
    const conninfo = `host=127.0.0.1 port=${port} user=postgres password=${password} dbname=postgres sslmode=require`;
    const b = await pgtape(['archive', '--source', conninfo, '--store', store.dir, '--until', 'now']);
    expect(b.code, b.stderr).toBe(0);
    // Into the same TLS-only server: --into takes the same sslmode.
    await source.admin.query('create database replayed');
    const into = `${source.db.url().replace(/\/postgres$/, '/replayed')}?sslmode=require`;
    const r = await pgtape(['replay', '--store', store.dir, '--to', 'latest', '--into', into]);
    expect(r.code, r.stderr).toBe(0);
    const client = new pg.Client({
      connectionString: source.db.url().replace(/\/postgres$/, '/replayed'),
      ssl: { rejectUnauthorized: false },
    });
    await client.connect();
    try {
      const { rows } = await client.query('select id, v from t order by id');
      expect(rows).toEqual([
        { id: 1, v: 'one' },
        { id: 2, v: 'two' },
        { id: 3, v: 'three' },
      ]);
    } finally {
      await client.end();
    }
    store.cleanup();
  });

  it('refuses sslmode=verify-full against a certificate it cannot trust, saying what to do', async () => {
    const store = tempStore();
    const r = await pgtape(['archive', '--source', url('verify-full'), '--store', store.dir, '--until', 'now']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("the server's TLS certificate is not trusted");
    expect(r.stderr).toContain('sslrootcert=<file>');
    store.cleanup();
  });
});
