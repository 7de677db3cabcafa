import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findPgBin } from '../../src/local-pg/binaries.js';
import { archiveArgs, pgtape } from '../support/cli.js';
import { leftIn, useSource } from '../support/fixture.js';
import { scratchDir } from '../support/scratch.js';

// As root, pgtape runs its own Postgres server as an unprivileged user; binaries that user cannot
// reach (an install under a private directory) are copied where it can (src/local-pg/binaries.ts,
// reachableBin). The copy is of what a server needs, keyed by the install's content, made again
// when it does not run, and never left half made.

const root = process.getuid?.() === 0;

describe.skipIf(!root)('server binaries as root, from a private PGTAPE_PG_BIN', () => {
  const source = useSource(`create table t (id int primary key, v text); insert into t select g, 'v' || g from generate_series(1, 100) g;`);
  const { dir: work, remove: removeScratch } = scratchDir('pgtape-bin-');
  chmodSync(work, 0o755);
  // Private, as a checkout in `mktemp -d` is: the server user cannot reach the binaries.
  const install = join(work, 'private', 'install');
  const bin = join(install, 'bin');
  const tmp = join(work, 'tmp');
  let run = 0;
  afterAll(removeScratch);

  const replay = () => {
    const out = join(tmp, `out-${run++}`);
    return pgtape(['replay', '--store', source.store.dir, '--csv', out], { PGTAPE_PG_BIN: bin, TMPDIR: tmp }).then((r) => ({ ...r, out }));
  };
  const copies = () => readdirSync(tmp).filter((f) => f.startsWith('pgtape-postgres-'));

  it('archives a small table', async () => {
    const r = await pgtape(archiveArgs(source.db.url(), source.store.dir, '--create-publication', '--until', 'now'));
    expect(r.code, r.stderr).toBe(0);
    mkdirSync(join(work, 'private'), { mode: 0o700 });
    const from = dirname(findPgBin());
    for (const part of ['bin', 'lib', 'share']) cpSync(join(from, part), join(install, part), { recursive: true, verbatimSymlinks: true });
    // Something beside the install that a server does not need: it must not be copied.
    writeFileSync(join(work, 'private', 'unrelated.bin'), Buffer.alloc(1 << 20));
    writeFileSync(join(install, 'unrelated.bin'), Buffer.alloc(1 << 20));
    mkdirSync(tmp, { mode: 0o755 });
  });

  it('copies bin, lib and share once where the server user can run them, and replays', async () => {
    const r = await replay();
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(r.out, 'public.t.csv'), 'utf8').split('\n').length).toBe(102);
    expect(copies()).toHaveLength(1);
    expect(readdirSync(join(tmp, copies()[0]!)).sort()).toEqual(['bin', 'lib', 'share']);
    const again = await replay();
    expect(again.code, again.stderr).toBe(0);
    expect(copies()).toHaveLength(1);
  });

  it('makes a copy that does not run again, instead of failing on it forever', async () => {
    rmSync(join(tmp, copies()[0]!, 'lib'), { recursive: true });
    const r = await replay();
    expect(r.code, r.stderr).toBe(0);
    expect(copies()).toHaveLength(1);
    expect(existsSync(join(tmp, copies()[0]!, 'lib'))).toBe(true);
  });

  it('makes a new copy of an install that changed', async () => {
    writeFileSync(join(install, 'share', 'pgtape-test-marker'), 'changed\n');
    const r = await replay();
    expect(r.code, r.stderr).toBe(0);
    expect(copies()).toHaveLength(2);
  });

  it('never runs a server from a copy someone else made, or others can write to', async () => {
    // The current install's copy alone.
    for (const c of copies()) rmSync(join(tmp, c), { recursive: true, force: true });
    expect((await replay()).code).toBe(0);
    const copy = join(tmp, copies()[0]!);
    for (const [what, change, undo] of [
      ['owned by another user', () => chownSync(copy, 65534, 65534), () => chownSync(copy, 0, 0)],
      ['writable by others', () => chmodSync(copy, 0o777), () => chmodSync(copy, 0o755)],
    ] as const) {
      change();
      const r = await replay();
      expect(r.code, `${what}: ${r.stderr}`).toBe(2);
      expect(r.stderr, what).toMatch(
        /is in the way: pgtape copies the server binaries there, and it was not made by this user or others can write to it/,
      );
      expect(existsSync(r.out), what).toBe(false);
      undo();
    }
    expect((await replay()).code).toBe(0);
  });

  it('says when the server user cannot reach TMPDIR, where the copy would go', async () => {
    const hidden = join(work, 'private', 'tmp');
    mkdirSync(hidden, { mode: 0o700 });
    const r = await pgtape(['replay', '--store', source.store.dir, '--csv', join(tmp, 'hidden')], { PGTAPE_PG_BIN: bin, TMPDIR: hidden });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/cannot reach TMPDIR/);
    expect(readdirSync(hidden)).toEqual([]);
  });

  it('refuses an install that cannot run, saying so, and leaves no copy or output', async () => {
    rmSync(join(install, 'lib'), { recursive: true });
    const before = copies();
    const r = await replay();
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/does not run as postgres/);
    expect(r.stderr).toMatch(/what to do: check that installation/);
    expect(copies()).toEqual(before);
    expect(existsSync(r.out)).toBe(false);
    expect(leftIn(tmp, 'out-')).toEqual([]);
  });

  it('refuses a PGTAPE_PG_BIN without a postgres binary', async () => {
    const r = await pgtape(['replay', '--store', source.store.dir, '--csv', join(tmp, 'never')], { PGTAPE_PG_BIN: work, TMPDIR: tmp });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/has no postgres binary/);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  });
});
