import { accessSync, constants, lstatSync, mkdtempSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
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
  if (made.size === 0) process.once('exit', removeAll);
  // Made and noted in one synchronous step: a signal's exit handler runs between two awaits, and
  // an asynchronous mkdtemp in flight left a directory no handler knew of.
  let dir: string;
  try {
    dir = mkdtempSync(join(parent, `${PREFIX}${ownerTag()}`));
  } catch (err) {
    throw tempDirError(parent, err as NodeJS.ErrnoException, process.env.PGTAPE_SPOOL_DIR ? 'PGTAPE_SPOOL_DIR' : 'TMPDIR');
  }
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
    // Who made it in the name: what a killed process leaves, the next one can find (sweepStale).
    return mkdtempSync(join(parent, `${prefix}${ownerTag()}`));
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
 * `<pid>-<pid namespace>-`: a pid means something only in its namespace. Containers sharing a
 * TMPDIR volume see each other's directories but not each other's processes: a directory of
 * another namespace is never taken for a dead process's.
 */
export function ownerTag(): string {
  return `${process.pid}-${pidNamespace()}-`;
}

let namespace: string | undefined;
/** This process's pid namespace (its inode number), '0' where there is no /proc. */
export function pidNamespace(): string {
  if (namespace === undefined) {
    try {
      namespace = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '0';
    } catch {
      namespace = '0'; // no /proc: one namespace as far as pgtape can tell
    }
  }
  return namespace;
}

/**
 * Removes the directories `<prefix><pid>-<namespace>-*` under `parent` that processes of this pid
 * namespace left when they died (SIGKILL, which no exit handler sees), after `release` let go of
 * what runs in one. Only this user's (or, as root, any): another user's leftovers are theirs, and
 * one that cannot be removed is passed over — a sweep never fails the command that makes it.
 */
export async function sweepStale(parent: string, prefix: string, release?: (dir: string) => Promise<void>): Promise<void> {
  const ns = pidNamespace();
  const uid = process.getuid?.();
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const owner = /^(\d+)-(\d+)-/.exec(name.slice(prefix.length));
    const pid = Number(owner?.[1]);
    if (!pid || owner?.[2] !== ns || pid === process.pid || alive(pid)) continue;
    const dir = join(parent, name);
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory() || (uid !== 0 && st.uid !== uid)) continue;
      await release?.(dir);
      await rm(dir, { recursive: true, force: true });
    } catch {
      // Not ours to remove after all (permissions): left as it is.
    }
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
