import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  readlinkSync,
  realpathSync,
  rmdirSync,
  statSync,
} from 'node:fs';
import { UserError } from './errors.js';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package's root directory, found by walking up from this file: the same code runs from
 * `src/` under vitest and tsx and from `dist/src/` once built.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('pgtape: cannot find the package root (proto/ beside package.json)');
    dir = parent;
  }
}

/**
 * Why `dir` cannot be used as a directory pgtape fills, or undefined if it can: it is a file,
 * it lies under a file, or the nearest directory that exists is not writable. Creates nothing,
 * so a command refused later leaves no directory behind.
 */
export function unusableDirectory(dir: string): string | undefined {
  const path = resolve(dir);
  for (let at = path; ; at = dirname(at)) {
    let stats;
    try {
      stats = statSync(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return `${at} cannot be read (${(err as NodeJS.ErrnoException).code})`;
      if (lexists(at)) return `${at} is a symbolic link to ${readlinkSync(at)}, which does not exist`;
      if (dirname(at) === at) return `${at} does not exist`;
      continue;
    }
    if (!stats.isDirectory()) return at === path ? `${at} is a file, not a directory` : `${at} is a file, so ${path} cannot be a directory`;
    try {
      accessSync(at, constants.W_OK | constants.X_OK);
    } catch {
      return `${at} is not writable by this user`;
    }
    return undefined;
  }
}

/** The path with its symbolic links resolved, as far as it exists (the rest appended as it is). */
function realPath(path: string): string {
  const absolute = resolve(path);
  for (let at = absolute; ; at = dirname(at)) {
    try {
      return join(realpathSync(at), relative(at, absolute));
    } catch {
      if (dirname(at) === at) return absolute;
    }
  }
}

/** Whether `path` is `dir` or lies under it, symbolic links followed (one may not exist yet). */
export function isWithin(path: string, dir: string): boolean {
  const rel = relative(realPath(dir), realPath(path));
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** Whether anything is at `path`, a symbolic link to nothing included (existsSync follows links). */
export function lexists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes `dir` and what is missing above it, one directory at a time, and gives `dir` `mode` (when
 * given, also a `dir` that was there; the directories above get the umask's). Node's
 * recursive mkdir takes ENOENT for a missing parent and retries forever where a parent exists but
 * refuses directories (/proc, as root): each failure here names the path instead (exit 2).
 * Returns the directories this call made, outermost first (one made by another process meanwhile
 * is not among them): what a caller that fails removes again (removeMadeDirectories).
 */
export function makeDirectory(dir: string, mode?: number, retries = 4): string[] {
  const path = resolve(dir);
  const missing: string[] = [];
  for (let at = path; !existsSync(at); at = dirname(at)) {
    if (dirname(at) === at) break;
    missing.unshift(at);
  }
  const made: string[] = [];
  for (const at of missing) {
    try {
      mkdirSync(at, { mode: at === path ? (mode ?? 0o777) : 0o777 });
      made.push(at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && statSync(at).isDirectory()) continue;
      // A directory above, made by another process, removed by it again meanwhile (a failed
      // replay removes what it made): walked again from the top.
      if (code === 'ENOENT' && retries > 0) return [...made, ...makeDirectory(dir, mode, retries - 1)];
      throw new UserError(
        `cannot make the directory ${at} (${code})`,
        'give a directory on a filesystem where this user can make directories',
      );
    }
  }
  if (!missing.length && mode !== undefined) chmodSync(path, mode);
  return made;
}

/**
 * Removes directories makeDirectory made, innermost first, each only while it is empty: another
 * process may have put something of its own in one meanwhile (two replays into neighbours).
 */
export function removeMadeDirectories(made: string[]): void {
  for (const at of [...made].reverse()) {
    try {
      rmdirSync(at);
    } catch (err) {
      // Gone already (removed whole by the caller): on to its parent. Not empty: someone's.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return;
    }
  }
}
