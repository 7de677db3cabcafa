import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { findPgBin } from '../../src/local-pg/binaries.js';
import { archiveArgs, pgtape, startPgtape } from '../support/cli.js';
import { leftIn, sleep, until, useSource } from '../support/fixture.js';
import { seededRandom, TEST_SEED } from '../support/random.js';

// Interrupted at any moment, a replay that starts its own server stops it and leaves either the
// finished output or nothing: no orphaned postgres, no half-built PGDATA or CSV directory, and the
// next run into the same place works.

/** Postgres processes still running on a data directory under `dir`. */
function serversUnder(dir: string): string[] {
  const r = spawnSync('pgrep', ['-af', `postgres -D ${dir}`], { encoding: 'utf8' });
  const found = r.stdout.split('\n').filter(Boolean);
  // A process the server has just forked shows the server's command line until it sets its own
  // (a checkpointer, a backend): only those whose parent is not one of them are servers.
  const pids = new Set(found.map((l) => l.trim().split(' ')[0]!));
  return found.filter((l) => {
    const ppid = spawnSync('ps', ['-o', 'ppid=', '-p', l.trim().split(' ')[0]!], { encoding: 'utf8' }).stdout.trim();
    return !pids.has(ppid);
  });
}

/**
 * A new directory for a replay's output. As root the server runs as an unprivileged user: the
 * output's parent must be reachable by it.
 */
const parents: string[] = [];
// Each test removes its own at its end; one that failed before it did left its outputs in /tmp.
afterAll(() => void spawnSync('rm', ['-rf', ...parents]));

function outputParent(): string {
  const parent = mkdtempSync(join(tmpdir(), 'pgtape-out-'));
  chmodSync(parent, 0o755);
  parents.push(parent);
  return parent;
}

/** The pid of the first server serversUnder(dir) lists (0 when none). */
function serverPid(dir: string): number {
  return Number(serversUnder(dir)[0]?.trim().split(' ')[0] ?? 0);
}

/** The status line of a data directory's postmaster.pid (`starting`, `ready`, `stopping`), if any. */
function postmasterStatus(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[7]?.trim();
  } catch {
    return undefined;
  }
}

/** `base/<16 hex digits>` as an LSN target. */
function lsnOfBase(dir: string): string {
  return `${parseInt(dir.slice(0, 8), 16).toString(16).toUpperCase()}/${parseInt(dir.slice(8), 16).toString(16).toUpperCase()}`;
}

describe('replay and diff interrupted by SIGTERM or SIGINT', () => {
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
      const parent = outputParent();
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

  it('--pgdata and --csv: a damaged segment found while the cluster is still being made leaves nothing, no server', async () => {
    // The log is read and folded while initdb runs: the failure comes before the cluster is up.
    const damaged = join(mkdtempSync(join(tmpdir(), 'pgtape-damaged-')), 'tape');
    cpSync(store(), damaged, { recursive: true });
    const last = readdirSync(join(damaged, 'segments')).sort().at(-1)!;
    const file = join(damaged, 'segments', last);
    const bytes = readFileSync(file);
    const body = 12 + bytes.readUInt32BE(8);
    const i = body + Math.floor((bytes.length - body) / 2);
    bytes[i] = bytes[i]! ^ 0x40;
    writeFileSync(file, bytes);
    const parent = outputParent();
    for (const output of ['--pgdata', '--csv']) {
      const dir = join(parent, output.slice(2));
      // --csv's scratch cluster is made under TMPDIR: a private one, to see that it goes too.
      const tmp = mkdtempSync(join(tmpdir(), 'pgtape-damaged-tmp-'));
      chmodSync(tmp, 0o755);
      const r = await pgtape(['replay', '--store', damaged, output, dir], { TMPDIR: tmp });
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/checksum|cannot be decoded/);
      expect(existsSync(dir) ? readdirSync(dir) : [], output).toEqual([]);
      expect(serversUnder(parent), output).toEqual([]);
      expect(serversUnder(tmp), output).toEqual([]);
      // Save the binaries cache a root run keeps there on purpose (src/local-pg/binaries.ts, reachableBin).
      expect(leftIn(tmp), output).toEqual([]);
      spawnSync('rm', ['-rf', tmp]);
    }
    spawnSync('rm', ['-rf', parent, join(damaged, '..')]);
  });

  it('--into: the database is left empty (one transaction), and the next run fills it, at random moments', async () => {
    const random = seededRandom(TEST_SEED + 7);
    await source.admin.query('create database interrupted_into');
    const url = new URL(source.db.url());
    url.pathname = '/interrupted_into';
    const into = new pg.Client({ connectionString: url.toString() });
    await into.connect();
    try {
      for (let i = 0; i < 3; i++) {
        const signal = i % 2 ? 'SIGINT' : 'SIGTERM';
        const child = startPgtape(['replay', '--store', store(), '--into', url.toString()]);
        await sleep(300 + Math.floor(random() * 2000));
        child.kill(signal);
        const r = await child.done;
        const at = `${signal} run ${i}: ${r.stderr.slice(-500)}`;
        const { rows } = await into.query(`select count(*)::int as n from pg_class where relname = 't' and relkind = 'r'`);
        if (r.code === 0) expect(rows[0].n, at).toBe(1);
        // One transaction: interrupted, the database is empty — or whole, when the signal came
        // after the commit (the replay had finished; only its exit was interrupted).
        if (rows[0].n === 1) {
          const { rows: count } = await into.query('select count(*)::int as n from t');
          expect(count[0].n, at).toBe(200000);
          await into.query('drop table t');
        }
        // No backend of the replay is left holding the database.
        await until(
          async () =>
            (await into.query(`select count(*)::int as n from pg_stat_activity where datname = 'interrupted_into'`)).rows[0].n === 1,
        );
      }
      const again = await pgtape(['replay', '--store', store(), '--into', url.toString()]);
      expect(again.code, again.stderr).toBe(0);
    } finally {
      await into.end();
      await source.admin.query('drop database interrupted_into');
    }
  });

  it('compact: removes its scratch cluster and stores no base, or the whole base, at random moments', async () => {
    const random = seededRandom(TEST_SEED + 13);
    const copy = join(mkdtempSync(join(tmpdir(), 'pgtape-compact-')), 'tape');
    cpSync(store(), copy, { recursive: true });
    const manifests = () => readdirSync(join(copy, 'base')).filter((b) => existsSync(join(copy, 'base', b, 'manifest.json')));
    for (let i = 0; i < 4; i++) {
      const signal = i % 2 ? 'SIGINT' : 'SIGTERM';
      const tmp = mkdtempSync(join(tmpdir(), 'pgtape-compact-tmp-'));
      chmodSync(tmp, 0o755);
      const before = manifests().length;
      const child = startPgtape(['compact', '--store', copy], { TMPDIR: tmp });
      await sleep(300 + Math.floor(random() * 3000));
      child.kill(signal);
      const r = await child.done;
      const at = `${signal} run ${i}: code ${r.code} ${r.stderr.slice(-300)}`;
      if (r.code === 0) expect(manifests().length, at).toBe(before + 1);
      else {
        if (r.code !== null) expect(r.code, at).toBe(signal === 'SIGINT' ? 130 : 143);
        expect(manifests().length, at).toBe(before);
      }
      // Save the binaries cache a root run keeps there on purpose (src/local-pg/binaries.ts, reachableBin).
      expect(leftIn(tmp), at).toEqual([]);
      expect(serversUnder(tmp), at).toEqual([]);
      // No unfinished base is left behind for verify to report.
      const verified = await pgtape(['verify', '--store', copy]);
      expect(verified.code, `${at}: ${verified.stdout}`).toBe(0);
      spawnSync('rm', ['-rf', tmp]);
      if (r.code === 0) break;
    }
    // Whatever was interrupted, the archive still verifies and compacts.
    expect((await pgtape(['verify', '--store', copy])).code).toBe(0);
    const done = await pgtape(['compact', '--store', copy]);
    expect(done.code, done.stderr).toBe(0);
    spawnSync('rm', ['-rf', join(copy, '..')]);
  });

  it('compact: interrupted as its replay ends, exits 130/143 with no base, never with the error its clean-up caused', async () => {
    // The signal's clean-up stops the scratch server under the compaction, which then fails on a
    // closed connection: that failure must not become the exit code (it did: exit 1 or 2).
    const copy = join(mkdtempSync(join(tmpdir(), 'pgtape-compact-')), 'tape');
    cpSync(store(), copy, { recursive: true });
    const bases = () => readdirSync(join(copy, 'base')).length;
    const before = bases();
    for (let i = 0; i < 4; i++) {
      const signal = i % 2 ? 'SIGINT' : 'SIGTERM';
      const tmp = mkdtempSync(join(tmpdir(), 'pgtape-compact-tmp-'));
      chmodSync(tmp, 0o755);
      const child = startPgtape(['compact', '--store', copy], { TMPDIR: tmp });
      await until(() => child.output.stderr.includes('replay done') || child.exitCode !== null, 60_000);
      await sleep(i * 12);
      child.kill(signal);
      const r = await child.done;
      const at = `${signal} run ${i}: code ${r.code} ${r.stderr.slice(-300)}`;
      if (r.code === 0) {
        // Finished before the signal: drop the new base, so that the next round has work again.
        expect(bases(), at).toBe(before + 1);
        spawnSync('sh', ['-c', `rm -rf "${join(copy, 'base')}/$(ls "${join(copy, 'base')}" | sort | tail -1)"`]);
      } else {
        expect(r.code, at).toBe(signal === 'SIGINT' ? 130 : 143);
        expect(bases(), at).toBe(before);
      }
      expect(serversUnder(tmp), at).toEqual([]);
      spawnSync('rm', ['-rf', tmp]);
    }
    expect((await pgtape(['verify', '--store', copy])).code).toBe(0);
    spawnSync('rm', ['-rf', join(copy, '..')]);
  });

  for (const victim of ['postmaster', 'backend', 'session'] as const) {
    it(`--csv: its own server's ${victim} killed mid-replay is said as such (exit 2), and nothing is left`, async () => {
      const parent = outputParent();
      const tmp = join(parent, 'tmp');
      mkdirSync(tmp, { mode: 0o755 });
      const out = join(parent, 'csv');
      const child = startPgtape(['replay', '--store', store(), '--csv', out], { TMPDIR: tmp });
      // The moment the replay is connected to it (the log is folded and the rows loaded meanwhile).
      let postmaster = 0;
      let backend = 0;
      await until(() => {
        postmaster = serverPid(tmp);
        const line = postmaster
          ? spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(postmaster)], { encoding: 'utf8' })
              .stdout.split('\n')
              .find((l) => l.includes('127.0.0.1'))
          : undefined;
        const seen = Number(line?.trim().split(' ')[0] ?? 0);
        // The same backend in two polls 50 ms apart: the replay's session, not the start's probe.
        const stable = seen > 0 && seen === backend;
        backend = seen;
        return stable || child.exitCode !== null;
      }, 60_000);
      // session: ended as pg_terminate_backend ends one (SIGTERM to its process).
      process.kill(victim === 'postmaster' ? postmaster : backend, victim === 'session' ? 'SIGTERM' : 'SIGKILL');
      const r = await child.done;
      const at = `code ${r.code}: ${r.stderr.slice(-800)}`;
      expect(r.code, at).toBe(2);
      expect(r.stderr, at).toMatch(
        victim === 'postmaster'
          ? /the replay's own PostgreSQL server stopped \(killed by SIGKILL/
          : victim === 'backend'
            ? /the replay's own PostgreSQL server lost its session \(a server process ended: server process \(PID \d+\) was terminated by signal 9/
            : /the replay's own PostgreSQL server lost its session \(a session was ended from outside/,
      );
      expect(existsSync(out), at).toBe(false);
      expect(leftIn(tmp), at).toEqual([]);
      await until(() => serversUnder(tmp).length === 0);
      spawnSync('rm', ['-rf', parent]);
    });
  }

  it('--csv killed with SIGKILL leaves its server running; the next run that makes a cluster stops it and removes its directory', async () => {
    const parent = outputParent();
    const tmp = join(parent, 'tmp');
    mkdirSync(tmp, { mode: 0o755 });
    try {
      // TMPDIR relative, as it may be: the server left behind is still found by its directory.
      const child = startPgtape(['replay', '--store', store(), '--csv', join(parent, 'killed')], { TMPDIR: 'tmp' }, { cwd: parent });
      await until(() => serversUnder(tmp).length > 0 || child.exitCode !== null, 60_000);
      child.kill('SIGKILL');
      await child.done;
      // What SIGKILL leaves: no exit handler ran.
      expect(serversUnder(tmp)).toHaveLength(1);
      const left = readdirSync(tmp).filter((f) => f.startsWith(`pgtape-pg-${child.pid}-`));
      expect(left).toHaveLength(1);
      const next = await pgtape(['replay', '--store', store(), '--csv', join(parent, 'next')], { TMPDIR: 'tmp' }, { cwd: parent });
      expect(next.code, next.stderr).toBe(0);
      expect(serversUnder(tmp)).toEqual([]);
      expect(leftIn(tmp)).toEqual([]);
    } finally {
      // A failed run leaves no server behind it either.
      for (const pid of serversUnder(tmp).map((l) => Number(l.trim().split(' ')[0]))) process.kill(pid, 'SIGQUIT');
      await until(() => serversUnder(tmp).length === 0);
      spawnSync('rm', ['-rf', parent]);
    }
  });

  it('--pgdata killed with SIGKILL: the next run into the same directory names the server left running on it, and touches nothing', async () => {
    const parent = outputParent();
    const dir = join(parent, 'pgdata');
    const child = startPgtape(['replay', '--store', store(), '--pgdata', dir]);
    await until(() => serversUnder(dir).length > 0 || child.exitCode !== null, 60_000);
    child.kill('SIGKILL');
    await child.done;
    const server = serverPid(dir);
    expect(server).toBeGreaterThan(0);
    // The server, orphaned while it started, goes on to finish starting (it writes postmaster.opts
    // then): what the next run must not touch is the directory as the server leaves it.
    await until(() => postmasterStatus(dir) === 'ready', 60_000);
    const before = readdirSync(dir).sort();
    // Relative, as a user types it: the server was started with the absolute path.
    const r = await pgtape(['replay', '--store', store(), '--pgdata', 'pgdata'], {}, { cwd: parent });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`a PostgreSQL server, pid ${server}, is running on it`);
    expect(r.stderr).toMatch(/what to do: stop that server/);
    expect(readdirSync(dir).sort()).toEqual(before);
    process.kill(server, 'SIGQUIT');
    await until(() => serversUnder(dir).length === 0);
    spawnSync('rm', ['-rf', parent]);
  });

  it('--pgdata: Ctrl-C during the hand-over (initdb --sync-only) exits 130 and leaves nothing', async () => {
    const parent = outputParent();
    const dir = join(parent, 'pgdata');
    let caught = 0;
    // The sync lasts a fraction of a second: a few tries to send the signal while it runs.
    for (let i = 0; i < 4 && caught < 2; i++) {
      const child = startPgtape(['replay', '--store', store(), '--pgdata', dir], {}, { detached: true });
      let syncing = false;
      while (child.exitCode === null && !syncing) {
        syncing = spawnSync('pgrep', ['-f', `initdb --sync-only -D ${dir}`]).status === 0;
        if (!syncing) await sleep(5);
      }
      // Ctrl-C from a terminal: the whole process group, initdb included.
      if (syncing) process.kill(-child.pid!, 'SIGINT');
      const r = await child.done;
      if (!syncing) {
        expect(r.code, r.stderr).toBe(0);
        spawnSync('rm', ['-rf', dir]);
        continue;
      }
      caught++;
      expect(r.code, r.stderr.slice(-500)).toBe(130);
      expect(existsSync(dir)).toBe(false);
      expect(serversUnder(dir)).toEqual([]);
    }
    expect(caught, 'the signal reached a hand-over at least once').toBeGreaterThan(0);
    spawnSync('rm', ['-rf', parent]);
  });

  it('--pgdata, --csv and compact: Ctrl-C before initdb traps signals (while it makes the first template) exits 130 and leaves nothing', async () => {
    // initdb sets its signal handlers only after its first steps (running `postgres -V`, say): a
    // Ctrl-C before kills it outright. Here a wrapper stands in for those first steps, long
    // enough to be caught in them. A TMPDIR of its own has no template yet: initdb makes one.
    const work = mkdtempSync(join(tmpdir(), 'pgtape-early-'));
    chmodSync(work, 0o755);
    parents.push(work); // removed by afterAll should this test fail midway
    // A copy of the install, not links into it: as root the server user must reach every file,
    // and a checkout in a private directory (mktemp -d) is out of its reach.
    const install = join(work, 'install');
    const real = dirname(findPgBin());
    for (const part of ['bin', 'lib', 'share']) cpSync(join(real, part), join(install, part), { recursive: true, verbatimSymlinks: true });
    const bin = join(install, 'bin');
    renameSync(join(bin, 'initdb'), join(bin, 'initdb.real'));
    const pause = `${(60 + Math.random()).toFixed(6)}`;
    writeFileSync(join(bin, 'initdb'), `#!/bin/sh\nsleep ${pause}\nexec "$0.real" "$@"\n`, { mode: 0o755 });
    const parent = outputParent();
    for (const command of [['replay', '--pgdata'], ['replay', '--csv'], ['compact']]) {
      const tmp = mkdtempSync(join(work, 'tmp-'));
      chmodSync(tmp, 0o755);
      const dir = join(parent, command.at(-1)!.replace(/^--/, ''));
      const args = command[0] === 'compact' ? ['compact', '--store', store()] : ['replay', '--store', store(), command[1]!, dir];
      const bases = readdirSync(join(store(), 'base')).length;
      const child = startPgtape(args, { PGTAPE_PG_BIN: bin, TMPDIR: tmp }, { detached: true });
      await until(() => child.exitCode !== null || spawnSync('pgrep', ['-f', `sleep ${pause}`]).status === 0);
      // Ctrl-C from a terminal: the whole process group, initdb's first steps included.
      const signalled = Date.now();
      try {
        process.kill(-child.pid!, 'SIGINT');
      } catch {
        // Ended before initdb ran: its exit code and stderr, below, say why.
      }
      const r = await child.done;
      const at = `${command.join(' ')}: ${r.stderr.slice(-500)}`;
      expect(r.code, at).toBe(130);
      expect(r.stderr, 'said, not only an exit code').toContain('pgtape: stopped by SIGINT: cleaning up, then exiting 130');
      // At once: no second initdb (through the same minute-long wrapper) after the signal.
      expect(Date.now() - signalled, at).toBeLessThan(30_000);
      // The replay made its output directory: gone whole.
      expect(existsSync(dir), at).toBe(false);
      expect(serversUnder(tmp), at).toEqual([]);
      expect(serversUnder(parent), at).toEqual([]);
      expect(leftIn(tmp), at).toEqual([]);
      expect(readdirSync(join(store(), 'base')), at).toHaveLength(bases);
    }
    spawnSync('rm', ['-rf', parent, work]);
  });

  it('diff: removes its spool directory, at random moments', async () => {
    const random = seededRandom(TEST_SEED + 11);
    const base = readdirSync(join(store(), 'base'))[0]!;
    for (let i = 0; i < 4; i++) {
      const signal = i % 2 ? 'SIGINT' : 'SIGTERM';
      const tmp = mkdtempSync(join(tmpdir(), 'pgtape-diff-tmp-'));
      // A small --memory: the difference is spilled in parts, so there is a spool to leave behind.
      const child = startPgtape(['diff', '--store', store(), '--from', `lsn:${lsnOfBase(base)}`, '--memory', '1MiB'], { TMPDIR: tmp });
      await sleep(200 + Math.floor(random() * 1500));
      child.kill(signal);
      const r = await child.done;
      const at = `${signal} run ${i}: code ${r.code} ${r.stderr.slice(-300)}`;
      if (r.code !== 0 && r.code !== null) expect(r.code, at).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(readdirSync(tmp), at).toEqual([]);
      spawnSync('rm', ['-rf', tmp]);
    }
  });
});
