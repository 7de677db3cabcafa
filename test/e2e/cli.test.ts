import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pgtape } from '../support/cli.js';

describe('the pgtape command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgtape-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('resolves options from flags, then PGTAPE_* variables, then --config, then defaults; secrets masked', async () => {
    const config = join(dir, 'archive.json');
    writeFileSync(
      config,
      JSON.stringify({
        source: 'postgres://archiver:s3cret-pw@db:5432/shop',
        store: './from-config',
        'segment-seconds': 30,
        segmentBytes: '8MB',
        'max-idle-wal': '16MB',
      }),
    );
    const r = await pgtape(['archive', '--config', config, '--segment-seconds', '5', '--print-config'], {
      PGTAPE_SEGMENT_BYTES: '1MB',
      PGTAPE_CREATE_PUBLICATION: 'true',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('s3cret-pw');
    const c = JSON.parse(r.stdout) as Record<string, { value: unknown; from: string }>;
    expect(c['segment-seconds']).toEqual({ value: '5', from: 'cli' });
    expect(c['segment-bytes']).toEqual({ value: '1MB', from: 'env' });
    expect(c['create-publication']).toEqual({ value: true, from: 'env' });
    expect(c['max-idle-wal']).toEqual({ value: '16MB', from: 'config' });
    expect(c.store).toEqual({ value: './from-config', from: 'config' });
    expect(c.slot).toEqual({ value: 'pgtape', from: 'default' });
    expect(c.source!.value).toBe('postgres://archiver:***@db:5432/shop');

    writeFileSync(config, JSON.stringify({ 'segment-second': 30 }));
    const bad = await pgtape(['archive', '--config', config, '--print-config']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown options segment-second for pgtape archive/);
    writeFileSync(config, '{ not json');
    expect((await pgtape(['archive', '--config', config])).stderr).toMatch(/--config .*archive\.json: .*JSON/);
  });

  it('has --version, and --help with an example for every command', async () => {
    const version = await pgtape(['--version']);
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')).version);
    const top = await pgtape(['--help']);
    const commands = [
      ...top.stdout
        .split('\nCommands:\n')[1]!
        .split('\n\n')[0]!
        .matchAll(/^ {2}([a-z]+) /gm),
    ]
      .map((m) => m[1]!)
      .filter((c) => c !== 'help');
    expect(commands.sort()).toEqual([
      'archive',
      'base',
      'compact',
      'diff',
      'expire',
      'index',
      'keygen',
      'log',
      'mark',
      'rekey',
      'replay',
      'status',
      'verify',
    ]);
    for (const c of commands) {
      const help = await pgtape([c, '--help']);
      expect(help.code, c).toBe(0);
      expect(help.stdout, c).toMatch(/Examples?:\n {2}pgtape /);
      // keygen writes files only: it has no store or source.
      if (c !== 'keygen') expect(help.stdout, c).toMatch(/env: PGTAPE_STORE|env: PGTAPE_SOURCE/);
    }
  });
});
