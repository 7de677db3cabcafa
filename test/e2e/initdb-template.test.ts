import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPgBin } from '../../src/local-pg/binaries.js';
import { crc32c, newSystemIdentifier } from '../../src/local-pg/initdb-template.js';
import { LocalCluster } from '../../src/local-pg/local-cluster.js';

// A cluster nobody needs made durably is a copy of one initdb made before, given a system
// identifier of its own (src/local-pg/initdb-template.ts). Two clusters sharing one would pass
// the archive's check that its source is the same Postgres system.

// A TMPDIR of this file's own: other test files, running beside it, make templates of their own.
const tmp = mkdtempSync(join(tmpdir(), 'pgtape-template-test-'));
chmodSync(tmp, 0o755);
const templates = () => readdirSync(tmp).filter((d) => d.startsWith('pgtape-initdb-') && !d.includes('partial'));

async function systemIdentifier(cluster: LocalCluster): Promise<string> {
  const client = new pg.Client({ connectionString: cluster.url() });
  await client.connect();
  try {
    return (await client.query<{ id: string }>('select system_identifier::text as id from pg_control_system()')).rows[0]!.id;
  } finally {
    await client.end();
  }
}

describe('clusters copied from an initdb template', () => {
  const outer = process.env.TMPDIR;
  beforeAll(() => {
    process.env.TMPDIR = tmp;
  });
  afterAll(() => {
    if (outer === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = outer;
    rmSync(tmp, { recursive: true, force: true });
  });
  const made = templates;

  it('have system identifiers of their own and start again after a crash', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const cluster = await LocalCluster.create({ unsafeFast: true });
      try {
        ids.add(await systemIdentifier(cluster));
        const client = new pg.Client({ connectionString: cluster.url() });
        await client.connect();
        await client.query('create table t as select g from generate_series(1, 10000) g');
        await client.query('insert into t values (0)');
        // The cluster commits asynchronously: a checkpoint puts the rows in its WAL and files.
        await client.query('checkpoint');
        await client.end();
        // Recovery reads the WAL whose headers were given the new identifier.
        await cluster.stop('immediate');
        await cluster.start();
        const again = new pg.Client({ connectionString: cluster.url() });
        await again.connect();
        expect((await again.query<{ n: string }>('select count(*)::text as n from t')).rows[0]!.n).toBe('10001');
        await again.end();
      } finally {
        await cluster.destroy();
      }
    }
    expect(ids.size).toBe(3);
    expect(made()).toHaveLength(1);
  });

  it('is shared by every copy of one installation (a key by path left a template per checkout)', async () => {
    const before = made();
    const copy = join(tmp, 'install-copy');
    const from = dirname(findPgBin());
    for (const part of ['bin', 'lib', 'share'])
      if (existsSync(join(from, part))) cpSync(join(from, part), join(copy, part), { recursive: true, verbatimSymlinks: true });
    process.env.PGTAPE_PG_BIN = join(copy, 'bin');
    try {
      const cluster = await LocalCluster.create({ unsafeFast: true });
      await cluster.destroy();
    } finally {
      delete process.env.PGTAPE_PG_BIN;
      rmSync(copy, { recursive: true, force: true });
    }
    expect(made()).toEqual(before);
  });

  it('never copies a template others can write to: initdb makes the cluster instead', async () => {
    const [template] = made();
    expect(template).toBeDefined();
    const dir = join(tmp, template!);
    // What someone else put there must not reach the new cluster.
    writeFileSync(join(dir, 'data', 'PLANTED'), 'x');
    chmodSync(dir, 0o777);
    try {
      const cluster = await LocalCluster.create({ unsafeFast: true });
      try {
        expect(existsSync(join(cluster.dataDir, 'PLANTED'))).toBe(false);
        expect(await systemIdentifier(cluster)).toMatch(/^\d+$/);
      } finally {
        await cluster.destroy();
      }
      // Into a directory holding the caller's claim (replay --pgdata's): initdb, which wants an
      // empty directory, runs beside it, and the claim stays.
      const claimed = mkdtempSync(join(tmp, 'claimed-'));
      writeFileSync(join(claimed, '.claim'), 'mine');
      const kept = await LocalCluster.create({ dataDir: claimed, loading: true, keep: '.claim' });
      try {
        expect(readFileSync(join(claimed, '.claim'), 'utf8')).toBe('mine');
        expect(existsSync(join(claimed, 'PLANTED'))).toBe(false);
        expect(existsSync(join(claimed, 'PG_VERSION'))).toBe(true);
        expect(await systemIdentifier(kept)).toMatch(/^\d+$/);
      } finally {
        await kept.destroy();
      }
    } finally {
      chmodSync(dir, 0o700);
      rmSync(join(dir, 'data', 'PLANTED'));
    }
  });

  it('makes a template again when files of it went (a cleaner of old files in /tmp)', async () => {
    const [template] = made();
    const dir = join(tmp, template!);
    rmSync(join(dir, 'data', 'global', 'pg_control'));
    const cluster = await LocalCluster.create({ unsafeFast: true });
    try {
      expect(await systemIdentifier(cluster)).toMatch(/^\d+$/);
      expect(existsSync(join(dir, 'data', 'global', 'pg_control'))).toBe(true);
      expect(made()).toEqual([template]);
    } finally {
      await cluster.destroy();
    }
  });

  // pg_control's layout differs between majors (its CRC at byte 288 on 14–17, 292 on 18): the
  // copy, not initdb's fallback, must make each major's cluster, and it must start.
  for (const major of [14, 15, 16, 17, 18]) {
    const bin = (() => {
      try {
        return findPgBin(major);
      } catch {
        return undefined;
      }
    })();
    it.skipIf(!bin)(`makes PostgreSQL ${major}'s clusters by copying, with identifiers of their own`, async () => {
      // The template is made by the first cluster; a file planted in it shows the second is a copy.
      const first = await LocalCluster.create({ unsafeFast: true, major });
      await first.destroy();
      const mine = made().filter((d) => readFileSync(join(tmp, d, 'data', 'PG_VERSION'), 'utf8').trim() === String(major));
      expect(mine).toHaveLength(1);
      const template = join(tmp, mine[0]!, 'data');
      writeFileSync(join(template, 'pgtape-test-copied'), '');
      try {
        const cluster = await LocalCluster.create({ unsafeFast: true, major });
        try {
          expect(existsSync(join(cluster.dataDir, 'pgtape-test-copied'))).toBe(true);
          const id = BigInt(await systemIdentifier(cluster));
          expect(id).not.toBe(readFileSync(join(template, 'global', 'pg_control')).readBigUInt64LE(0));
        } finally {
          await cluster.destroy();
        }
      } finally {
        rmSync(join(template, 'pgtape-test-copied'));
      }
    });
  }

  it('refuses to rewrite what is not a pg_control it knows', () => {
    const dir = mkdtempSync(join(tmp, 'not-pgdata-'));
    try {
      for (const sub of ['global', 'pg_wal']) rmSync(join(dir, sub), { force: true, recursive: true });
      writeFileSync(join(dir, 'x'), '');
      expect(() => newSystemIdentifier(dir)).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The CRC Postgres uses: CRC-32C's check value.
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });
});
