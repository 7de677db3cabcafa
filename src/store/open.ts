import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../core/errors.js';
import { DirectoryStore } from './directory.js';
import type { Store } from './store.js';

/** Opens the store a `--store` value names: a path or a `file://` URL for now. */
export function openStore(location: string | undefined): Store {
  if (!location) throw new UserError('no store given', 'pass --store <dir> or set PGTAPE_STORE');
  if (location.startsWith('file://')) return new DirectoryStore(fileURLToPath(location));
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location);
  if (scheme) {
    throw new UserError(
      `unsupported store URL scheme ${JSON.stringify(scheme[1])} in --store`,
      'use a directory path or a file:// URL',
    );
  }
  return new DirectoryStore(resolve(location));
}
