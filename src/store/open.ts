import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../core/errors.js';
import { DirectoryStore } from './directory.js';
import { S3Store } from './s3.js';
import type { Store } from './store.js';

export interface StoreOptions {
  /** --s3-endpoint: for s3:// (else AWS_ENDPOINT_URL) and pfs:// (else PACHD_S3_ENDPOINT). */
  s3Endpoint?: string;
  /** For pfs:// stores: read the store as PFS commit `commit` holds it. */
  commit?: string;
}

const PFS_DEFAULT_ENDPOINT = 'http://localhost:30600';
const PFS_URL = /^pfs:\/\/(?:([^/@]+)\/)?([^/@]+)@([^/]+)(?:\/(.*))?$/;
const PACHYDERM_NAME = /^[a-zA-Z0-9_-]+$/;
const FORBIDDEN_KEY_CHARS = /[*?[\]{}!()@+^]/;

/**
 * Opens the store a `--store` value names:
 *   a path or file:// URL            a directory (in a pipeline, /pfs/out or /pfs/<input>)
 *   s3://<bucket>/<prefix>           any S3 store; credentials and region from the AWS SDK's chain
 *   pfs://[<project>/]<repo>@<branch>[/<prefix>]   Pachyderm through its S3 gateway
 */
export function openStore(location: string | undefined, options: StoreOptions = {}): Store {
  if (!location) throw new UserError('no store given', 'pass --store <dir|s3://bucket/prefix|pfs://repo@branch> or set PGTAPE_STORE');
  if (location.startsWith('file://')) return new DirectoryStore(directoryOfFileUrl(location));
  if (location.startsWith('s3://')) return openS3(location, options);
  if (location.startsWith('pfs://')) return openPfs(location, options);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location);
  if (scheme) {
    throw new UserError(
      `unsupported store URL scheme ${JSON.stringify(scheme[1])} in --store ${location}`,
      'use a directory path, file://, s3://<bucket>/<prefix> or pfs://<repo>@<branch>',
    );
  }
  return new DirectoryStore(resolve(location));
}

function directoryOfFileUrl(location: string): string {
  try {
    return fileURLToPath(location);
  } catch (err) {
    throw new UserError(
      `--store ${location} is not a file URL (${(err as Error).message})`,
      'use file:///absolute/path, or a plain path such as ./tape',
    );
  }
}

function openS3(location: string, options: StoreOptions): Store {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(location);
  if (!m || !m[1]) throw new UserError(`--store ${location} is not an S3 URL`, 'use s3://<bucket>/<prefix>');
  return new S3Store({
    bucket: m[1],
    prefix: checkPrefix(m[2] ?? '', location),
    description: location,
    endpoint: options.s3Endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL,
  });
}

/** Pachyderm's gateway names a bucket `<branch>.<repo>[.<project>]` and takes the token as both keys. */
function openPfs(location: string, options: StoreOptions): Store {
  const m = PFS_URL.exec(location);
  if (!m) throw new UserError(`--store ${location} is not a pfs:// URL`, 'use pfs://[<project>/]<repo>@<branch>[/<prefix>]');
  const [, project, repo, branch, prefix] = m;
  for (const [what, name] of [
    ['project', project],
    ['repo', repo],
    ['branch', branch],
  ] as const) {
    if (name !== undefined && !PACHYDERM_NAME.test(name)) {
      throw new UserError(
        `--store ${location}: the ${what} name ${JSON.stringify(name)} is not a valid Pachyderm name`,
        'Pachyderm names use letters, digits, _ and - only',
      );
    }
  }
  const token = process.env.PACH_TOKEN;
  const bucket = project ? `${branch}.${repo}.${project}` : `${branch}.${repo}`;
  return new S3Store({
    // The gateway serves a commit's view of a branch as the bucket `<commit>.<branch>.<repo>[.<project>]`.
    bucket: options.commit ? `${options.commit}.${bucket}` : bucket,
    prefix: checkPrefix(prefix ?? '', location),
    description: options.commit ? `${location} at commit ${options.commit}` : location,
    endpoint: options.s3Endpoint ?? process.env.PACHD_S3_ENDPOINT ?? PFS_DEFAULT_ENDPOINT,
    // With auth off, the gateway takes any equal, non-empty pair.
    credentials: { accessKeyId: token || 'pgtape', secretAccessKey: token || 'pgtape' },
  });
}

/** A prefix whose keys Pachyderm accepts: ASCII, none of * ? [ ] { } ! ( ) @ + ^, no . or .. parts. */
function checkPrefix(prefix: string, location: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  if (!trimmed) return '';
  const bad =
    /[^\x20-\x7e]/.test(trimmed) ||
    FORBIDDEN_KEY_CHARS.test(trimmed) ||
    trimmed.split('/').some((part) => part === '' || part === '.' || part === '..');
  if (bad) {
    throw new UserError(
      `--store ${location}: the prefix ${JSON.stringify(prefix)} breaks Pachyderm's key rules`,
      'use printable ASCII without * ? [ ] { } ! ( ) @ + ^, and no empty, . or .. path parts',
    );
  }
  return trimmed + '/';
}
