import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alive, ownerTag, sweepStale } from '../../src/core/spool-dir.js';

// What a process killed with SIGKILL leaves in TMPDIR is removed by the next one — only if it is
// of this pid namespace (containers sharing a TMPDIR volume see each other's directories, not
// each other's processes) and its process is gone.

describe('sweepStale', () => {
  const parent = mkdtempSync(join(tmpdir(), 'pgtape-sweep-'));
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  it('removes a dead process’s directories of this namespace, and nothing else', async () => {
    const ns = ownerTag().split('-')[1]!;
    let dead = 4_000_000;
    while (alive(dead)) dead--;
    const made = {
      dead: `pgtape-x-${dead}-${ns}-aaaaaa`,
      otherNamespace: `pgtape-x-${dead}-${Number(ns) + 1}-bbbbbb`,
      living: `pgtape-x-${process.pid}-${ns}-cccccc`,
      oldStyle: `pgtape-x-${dead}-dddddd`,
      otherPrefix: `pgtape-y-${dead}-${ns}-eeeeee`,
    };
    for (const name of Object.values(made)) {
      mkdirSync(join(parent, name, 'data'), { recursive: true });
      writeFileSync(join(parent, name, 'data', 'f'), 'x');
    }
    const released: string[] = [];
    await sweepStale(parent, 'pgtape-x-', async (dir) => {
      released.push(dir);
    });
    expect(released).toEqual([join(parent, made.dead)]);
    expect(existsSync(join(parent, made.dead))).toBe(false);
    for (const name of [made.otherNamespace, made.living, made.oldStyle, made.otherPrefix])
      expect(existsSync(join(parent, name)), name).toBe(true);
  });

  it('passes over what it cannot remove instead of failing', async () => {
    let dead = 4_000_000;
    while (alive(dead)) dead--;
    const name = `pgtape-z-${dead}-${ownerTag().split('-')[1]}-ffffff`;
    mkdirSync(join(parent, name));
    await expect(
      sweepStale(parent, 'pgtape-z-', async () => {
        throw Object.assign(new Error('EACCES'), { code: 'EACCES' });
      }),
    ).resolves.toBeUndefined();
    expect(existsSync(join(parent, name))).toBe(true);
  });
});
