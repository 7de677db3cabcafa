import { Option } from 'commander';
import { UserError } from '../core/errors.js';

// Options every command that touches the source or the store shares, with their environment variables.

export const sourceOption = (description = 'the archived database') => new Option('--source <postgres-url>', description).env('PGTAPE_SOURCE');

export const storeOption = (description = 'the archive') =>
  new Option('--store <dir|s3://bucket/prefix|pfs://repo@branch>', description).env('PGTAPE_STORE');

export const s3EndpointOption = () =>
  new Option('--s3-endpoint <url>', 'S3 endpoint for s3:// (default AWS_ENDPOINT_URL) and pfs:// stores (default PACHD_S3_ENDPOINT, else http://localhost:30600)');

export function requireSource(source: string | undefined): string {
  if (!source) throw new UserError('no source given', 'pass --source <postgres-url> or set PGTAPE_SOURCE');
  return source;
}
