import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from './errors.js';

const PREFIX = 'pgtape-spool-';

/**
 * A private directory for open and sealed segments waiting for the store. Its name carries the
 * pid, so spool directories left behind by a killed archiver are removed by the next one.
 */
export async function createSpoolDir(parent = process.env.PGTAPE_SPOOL_DIR ?? tmpdir()): Promise<string> {
  await sweepStale(parent, PREFIX);
  const dir = await mkdtemp(join(parent, `${PREFIX}${process.pid}-`)).catch((err: NodeJS.ErrnoException) => {
    throw tempDirError(parent, err, process.env.PGTAPE_SPOOL_DIR ? 'PGTAPE_SPOOL_DIR' : 'TMPDIR');
  });
  if (made.size === 0) process.once('exit', removeAll);
  made.add(dir);
  return dir;
}

/**
 * A new private directory under the system's temporary directory (TMPDIR), or a clear error
 * (exit 2) saying which variable to change: a missing or read-only TMPDIR is the environment's.
 */
export function privateTempDir(prefix: string): string {
  const parent = tmpdir();
  try {
    // The pid in the name: what a killed process leaves, the next one can find (sweepStale).
    return mkdtempSync(join(parent, `${prefix}${process.pid}-`));
  } catch (err) {
    throw tempDirError(parent, err as NodeJS.ErrnoException, 'TMPDIR');
  }
}

/**
 * The system's temporary directory, refused (exit 2, naming TMPDIR) unless it exists and this
 * user can write to it: a copy made into it must not create it (and its parents) on the way.
 */
export function usableTempDir(): string {
  const dir = tmpdir();
  try {
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error(dir), { code: 'ENOTDIR' });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw tempDirError(dir, err as NodeJS.ErrnoException, 'TMPDIR');
  }
  return dir;
}

function tempDirError(parent: string, err: NodeJS.ErrnoException, variable: string): Error {
  if (err.code !== 'ENOENT' && err.code !== 'EACCES' && err.code !== 'EROFS' && err.code !== 'ENOTDIR') return err;
  return new UserError(
    `cannot make a temporary directory under ${parent} (${err.code})`,
    `set ${variable} to a directory this user can write to`,
  );
}

/** Spool directories of this process: removed at its exit, however it exits (but SIGKILL). */
const made = new Set<string>();

function removeAll(): void {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
}

/**
 * Removes the directories `<prefix><pid>-*` under `parent` of processes no longer alive (killed
 * with SIGKILL, which no exit handler sees), after `release` let go of what runs in one.
 */
export async function sweepStale(parent: string, prefix: string, release?: (dir: string) => Promise<void>): Promise<void> {
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    const dir = join(parent, name);
    await release?.(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
