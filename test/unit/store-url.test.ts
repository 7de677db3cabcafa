import { resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode, UserError } from '../../src/core/errors.js';
import { DirectoryStore } from '../../src/store/directory.js';
import { openStore, type StoreOptions } from '../../src/store/open.js';
import { S3Store, type S3Location } from '../../src/store/s3.js';

// Only constructors run here: an S3Store makes no client (and no request) until a method is called.

const ENV = ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'PACHD_S3_ENDPOINT', 'PACH_TOKEN'] as const;
let saved: Record<string, string | undefined>;
beforeEach(() => {
  saved = Object.fromEntries(ENV.map((name) => [name, process.env[name]]));
  for (const name of ENV) delete process.env[name];
});
afterEach(() => {
  for (const name of ENV) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

function s3(location: string, options?: StoreOptions): { store: S3Store; location: S3Location } {
  const store = openStore(location, options);
  expect(store).toBeInstanceOf(S3Store);
  return { store: store as S3Store, location: (store as unknown as { location: S3Location }).location };
}

function refusal(location: string | undefined, options?: StoreOptions): UserError {
  try {
    openStore(location, options);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).exitCode).toBe(ExitCode.BAD_INPUT);
    return err as UserError;
  }
  throw new Error(`openStore(${JSON.stringify(location)}) did not throw`);
}

describe('openStore: directories', () => {
  it.each(['tape', './a/../tape', '/tmp/pgtape-archive', '/tmp/pgtape-archive/', 'pfs/out'])(
    'opens the path %j as a directory at its resolved root',
    (path) => {
      const store = openStore(path);
      expect(store).toBeInstanceOf(DirectoryStore);
      expect((store as DirectoryStore).root).toBe(resolve(path));
      expect(store.description).toBe(resolve(path));
    },
  );

  it.each([
    ['file:///tmp/pgtape-archive', '/tmp/pgtape-archive'],
    ['file:///tmp/with%20space', '/tmp/with space'],
    ['file://localhost/pfs/out', '/pfs/out'],
  ])('opens %j as the directory %j', (url, root) => {
    const store = openStore(url);
    expect(store).toBeInstanceOf(DirectoryStore);
    expect((store as DirectoryStore).root).toBe(root);
  });

  // `file://tape` names a host, not a path: Node's TypeError must not escape as an unexpected error.
  it('refuses file://tape (a relative path written as a URL) with a UserError', () => {
    expect(() => openStore('file://tape')).toThrow(UserError);
  });
});

describe('openStore: s3://', () => {
  it.each([
    ['s3://bucket/prefix/', 'bucket', 'prefix/'],
    ['s3://bucket/prefix', 'bucket', 'prefix/'],
    ['s3://bucket/a/b/c///', 'bucket', 'a/b/c/'],
    ['s3://bucket', 'bucket', ''],
    ['s3://bucket/', 'bucket', ''],
    ['s3://bucket//', 'bucket', ''],
    ['s3://my.bucket-1/archive 2026/', 'my.bucket-1', 'archive 2026/'],
  ])('maps %j to bucket %j and prefix %j', (url, bucket, prefix) => {
    const { store, location } = s3(url);
    expect(location).toEqual({ bucket, prefix, description: url, endpoint: undefined });
    expect(store.description).toBe(url);
  });

  it('uses no static credentials, leaving them to the SDK chain', () => {
    expect(s3('s3://bucket/p').location.credentials).toBeUndefined();
  });

  it('takes the endpoint from the option before AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL', () => {
    process.env.AWS_ENDPOINT_URL_S3 = 'http://s3-specific:9000';
    process.env.AWS_ENDPOINT_URL = 'http://generic:9000';
    expect(s3('s3://b/p', { s3Endpoint: 'http://option:9000' }).location.endpoint).toBe('http://option:9000');
  });

  it('takes AWS_ENDPOINT_URL_S3 before AWS_ENDPOINT_URL', () => {
    process.env.AWS_ENDPOINT_URL_S3 = 'http://s3-specific:9000';
    process.env.AWS_ENDPOINT_URL = 'http://generic:9000';
    expect(s3('s3://b/p').location.endpoint).toBe('http://s3-specific:9000');
  });

  it('falls back to AWS_ENDPOINT_URL', () => {
    process.env.AWS_ENDPOINT_URL = 'http://generic:9000';
    expect(s3('s3://b/p').location.endpoint).toBe('http://generic:9000');
  });

  it('ignores the Pachyderm variables', () => {
    process.env.PACHD_S3_ENDPOINT = 'http://pachd:30600';
    process.env.PACH_TOKEN = 'secret';
    const { location } = s3('s3://b/p');
    expect(location.endpoint).toBeUndefined();
    expect(location.credentials).toBeUndefined();
  });

  it.each(['s3://', 's3:///prefix'])('refuses %j as not an S3 URL', (url) => {
    const err = refusal(url);
    expect(err.message).toBe(`--store ${url} is not an S3 URL`);
    expect(err.hint).toBe('use s3://<bucket>/<prefix>');
  });
});

describe('openStore: pfs://', () => {
  it.each([
    ['pfs://repo@branch', 'branch.repo', ''],
    ['pfs://repo@branch/', 'branch.repo', ''],
    ['pfs://repo@master/some/prefix', 'master.repo', 'some/prefix/'],
    ['pfs://project/repo@branch/some/prefix', 'branch.repo.project', 'some/prefix/'],
    ['pfs://my_project/raw-data@dev_2/a b/c/', 'dev_2.raw-data.my_project', 'a b/c/'],
  ])('maps %j to bucket %j and prefix %j', (url, bucket, prefix) => {
    const { store, location } = s3(url);
    expect(location.bucket).toBe(bucket);
    expect(location.prefix).toBe(prefix);
    expect(location.description).toBe(url);
    expect(store.description).toBe(url);
  });

  it('uses the local gateway and the pgtape/pgtape pair by default', () => {
    const { location } = s3('pfs://repo@master');
    expect(location.endpoint).toBe('http://localhost:30600');
    expect(location.credentials).toEqual({ accessKeyId: 'pgtape', secretAccessKey: 'pgtape' });
  });

  it('takes the endpoint from PACHD_S3_ENDPOINT, and the option before it', () => {
    process.env.PACHD_S3_ENDPOINT = 'http://pachd:30600';
    process.env.AWS_ENDPOINT_URL = 'http://aws:9000';
    expect(s3('pfs://repo@master').location.endpoint).toBe('http://pachd:30600');
    expect(s3('pfs://repo@master', { s3Endpoint: 'http://option:1' }).location.endpoint).toBe('http://option:1');
  });

  it('ignores the AWS endpoint variables', () => {
    process.env.AWS_ENDPOINT_URL_S3 = 'http://aws-s3:9000';
    process.env.AWS_ENDPOINT_URL = 'http://aws:9000';
    expect(s3('pfs://repo@master').location.endpoint).toBe('http://localhost:30600');
  });

  it('sends PACH_TOKEN as both keys, and keeps it out of the description', () => {
    process.env.PACH_TOKEN = 'tok-123';
    const { store, location } = s3('pfs://repo@master/p');
    expect(location.credentials).toEqual({ accessKeyId: 'tok-123', secretAccessKey: 'tok-123' });
    expect(store.description).not.toContain('tok-123');
  });

  it('treats an empty PACH_TOKEN as no token', () => {
    process.env.PACH_TOKEN = '';
    expect(s3('pfs://repo@master').location.credentials).toEqual({ accessKeyId: 'pgtape', secretAccessKey: 'pgtape' });
  });

  it.each([
    ['pfs://repo@master/p', 'c0ffee12', 'c0ffee12.master.repo'],
    ['pfs://proj/repo@master/p', 'c0ffee12', 'c0ffee12.master.repo.proj'],
  ])('reads %j at commit %j from the bucket %j', (url, commit, bucket) => {
    const { store, location } = s3(url, { commit });
    expect(location.bucket).toBe(bucket);
    expect(location.prefix).toBe('p/');
    expect(store.description).toBe(`${url} at commit ${commit}`);
  });

  it.each(['pfs://repo', 'pfs://repo@', 'pfs://@branch', 'pfs://a/b/c@master', 'pfs://', 'pfs://proj/@master', 'pfs://repo/@master'])(
    'refuses %j as not a pfs:// URL',
    (url) => {
      const err = refusal(url);
      expect(err.message).toBe(`--store ${url} is not a pfs:// URL`);
      expect(err.hint).toBe('use pfs://[<project>/]<repo>@<branch>[/<prefix>]');
    },
  );

  it.each([
    ['pfs://re.po@master', 'repo', 're.po'],
    ['pfs://repo@br@nch', 'branch', 'br@nch'],
    ['pfs://repo@mäster', 'branch', 'mäster'],
    ['pfs://pro ject/repo@master', 'project', 'pro ject'],
    ['pfs://proj/re+po@master/p', 'repo', 're+po'],
  ])('refuses %j: the %s name %j is not a Pachyderm name', (url, what, name) => {
    const err = refusal(url);
    expect(err.message).toBe(`--store ${url}: the ${what} name ${JSON.stringify(name)} is not a valid Pachyderm name`);
    expect(err.hint).toBe('Pachyderm names use letters, digits, _ and - only');
  });
});

describe('openStore: prefixes breaking Pachyderm key rules', () => {
  const forbidden = ['*', '?', '[', ']', '{', '}', '!', '(', ')', '@', '+', '^'];

  it.each(forbidden)('refuses a prefix holding %j, for pfs:// and s3:// alike', (char) => {
    for (const url of [`pfs://repo@master/a${char}b`, `s3://bucket/a${char}b/`]) {
      const err = refusal(url);
      expect(err.message).toBe(
        `--store ${url}: the prefix ${JSON.stringify(url.slice(url.indexOf('/a') + 1))} breaks Pachyderm's key rules`,
      );
      expect(err.hint).toBe('use printable ASCII without * ? [ ] { } ! ( ) @ + ^, and no empty, . or .. path parts');
    }
  });

  it.each(['é', 'dat\u00e4', '\u2603', 'tab\there', 'nul\u0000', 'a/./b', 'a/../b', '.', '..', 'a//b', '/a', './a'])(
    'refuses the prefix %j',
    (prefix) => {
      expect(refusal(`pfs://repo@master/${prefix}`).message).toMatch(/breaks Pachyderm's key rules$/);
    },
  );

  it.each(['a.b/c..d/.hidden', "with space/it's fine", 'a-b_c~d=e,f;g#h%i&j$k'])('accepts the prefix %j', (prefix) => {
    expect(s3(`pfs://repo@master/${prefix}`).location.prefix).toBe(`${prefix}/`);
  });
});

describe('openStore: refusals', () => {
  it.each([undefined, ''])('refuses no location (%j)', (location) => {
    const err = refusal(location);
    expect(err.message).toBe('no store given');
    expect(err.hint).toBe('pass --store <dir|s3://bucket/prefix|pfs://repo@branch> or set PGTAPE_STORE');
  });

  it.each([
    ['ftp://host/dir', 'ftp'],
    ['gs://bucket/prefix', 'gs'],
    ['https://example.com/tape', 'https'],
    ['S3://bucket/prefix', 'S3'],
  ])('refuses the scheme of %j', (url, scheme) => {
    const err = refusal(url);
    expect(err.message).toBe(`unsupported store URL scheme ${JSON.stringify(scheme)} in --store ${url}`);
    expect(err.hint).toBe('use a directory path, file://, s3://<bucket>/<prefix> or pfs://<repo>@<branch>');
  });
});

describe('DirectoryStore: a file it may not open', () => {
  // As root no permission refuses an open: the errno a non-root reader gets is given here.
  it.each(['EACCES', 'EPERM'])('says %s as a file this user cannot read, exit 2 (the raw errno was exit 1)', (code) => {
    const store = new DirectoryStore('/tmp/pgtape-archive');
    const err = store.openError(Object.assign(new Error(`${code}: permission denied`), { code }), 'segments/x.seg');
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).exitCode).toBe(ExitCode.BAD_INPUT);
    expect(err.message).toBe(`/tmp/pgtape-archive/segments/x.seg cannot be read by this user (${code})`);
  });
});
