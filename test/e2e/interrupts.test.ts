import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { archiveArgs, pgtape, startPgtape } from '../support/cli.js';
import { sleep, useSource } from '../support/fixture.js';
import { seededRandom, TEST_SEED } from '../support/random.js';

// Interrupted at any moment, a replay that starts its own server stops it and leaves either the
// finished output or nothing: no orphaned postgres, no half-built PGDATA or CSV directory, and the
// next run into the same place works.

/** Postgres processes still running on a data directory under `dir`. */
function serversUnder(dir: string): string[] {
  const r = spawnSync('pgrep', ['-af', `postgres -D ${dir}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

describe('replay interrupted by SIGTERM or SIGINT', () => {
  const source = useSource(
    `create table t (id int primary key, v text); insert into t select g, repeat('x', 200) from generate_series(1, 200000) g;`,
  );
  const store = () => source.store.dir;

  it('archives a table large enough to take a while to replay', async () => {
    const r = await pgtape(archiveArgs(source.db.url(), store(), '--create-publication', '--until', 'now'));
    expect(r.code, r.stderr).toBe(0);
    await source.admin.query(`update t set v = 'y' where id % 10 = 0`);
    const more = await pgtape(archiveArgs(source.db.url(), store(), '--until', 'now'));
    expect(more.code, more.stderr).toBe(0);
  });

  for (const output of ['--pgdata', '--csv'] as const) {
    it(`${output}: stops its server and leaves the finished output or nothing, at random moments`, async () => {
      const random = seededRandom(TEST_SEED + output.length);
      // As root, the server runs as an unprivileged user: the output's parent must be reachable by it.
      const parent = mkdtempSync(join(tmpdir(), 'pgtape-out-'));
      chmodSync(parent, 0o755);
      const dir = join(parent, output.slice(2));
      for (let i = 0; i < 3; i++) {
        const signal = i % 2 ? 'SIGINT' : 'SIGTERM';
        const child = startPgtape(['replay', '--store', store(), output, dir]);
        await sleep(300 + Math.floor(random() * 2500));
        child.kill(signal);
        const r = await child.done;
        const at = `${signal} run ${i}: ${r.stderr.slice(-500)}`;
        if (r.code === 0) {
          // Finished before the signal: the whole output, the server stopped.
          expect(readdirSync(dir), at).toContain('replay.json');
        } else {
          // Killed before the replay took charge of its output (Node still starting), or by its own handler.
          if (r.code === null) expect(r.signal, at).toBe(signal);
          else expect(r.code, at).toBe(signal === 'SIGINT' ? 130 : 143);
          expect(existsSync(dir) ? readdirSync(dir) : [], at).toEqual([]);
        }
        expect(serversUnder(dir), at).toEqual([]);
        if (r.code !== 0) {
          // The next run into the same place works.
          const again = await pgtape(['replay', '--store', store(), output, dir]);
          expect(again.code, again.stderr).toBe(0);
        }
        spawnSync('rm', ['-rf', dir]);
      }
      spawnSync('rm', ['-rf', parent]);
    });
  }
});
