import { Option } from 'commander';
import { UserError } from '../core/errors.js';

// Options every command that touches the source or the store shares, with their environment variables.

export const sourceOption = (description = 'the archived database') => new Option('--source <postgres-url>', description).env('PGTAPE_SOURCE');

export const storeOption = (description = 'the archive') => new Option('--store <dir>', description).env('PGTAPE_STORE');

export function requireSource(source: string | undefined): string {
  if (!source) throw new UserError('no source given', 'pass --source <postgres-url> or set PGTAPE_SOURCE');
  return source;
}
