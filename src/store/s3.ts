import { createReadStream } from 'node:fs';
import { stat as statFile } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import type {
  AbortMultipartUploadCommandOutput,
  CompleteMultipartUploadCommandOutput,
  CreateMultipartUploadCommandOutput,
  GetObjectCommandOutput,
  HeadBucketCommandOutput,
  HeadObjectCommandOutput,
  ListObjectsCommandOutput,
  PutObjectCommandOutput,
  S3Client,
  UploadPartCommandOutput,
} from '@aws-sdk/client-s3';
import { UserError } from '../core/errors.js';
import { ObjectMissingError, StoreUnavailableError, type ListOptions, type Store, type StoredObject } from './store.js';

export interface S3Location {
  bucket: string;
  /** Key prefix inside the bucket, '' or ending with '/'. */
  prefix: string;
  /** How the location reads in messages: the URL the user gave, without secrets. */
  description: string;
  endpoint?: string;
  /** Static credentials (Pachyderm's token); otherwise the SDK's usual chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  region?: string;
}

/**
 * Any S3 store, and Pachyderm's S3 gateway, which differs from AWS S3 in ways that lose data
 * silently if ignored (docs/ARCHITECTURE.md, Facts the code respects): path-style addressing only; listing with ListObjects V1 and
 * Marker paging (a V2 listing stops after its first page); no aws-chunked bodies or trailing
 * checksums, so bodies are sent with a known length and checksums only when required. ETags are
 * not MD5s there: integrity is the segment's own checksum.
 */
type Sdk = typeof import('@aws-sdk/client-s3');

/** How long a connection may take, and a socket stay silent, before the request fails and is retried; tests shorten them. */
export const s3Timeouts = { connectMs: 10_000, idleMs: 120_000 };

/** The SDK takes a tenth of a second to load: only commands that use an S3 store pay for it. */
let sdk: Promise<Sdk> | undefined;

export class S3Store implements Store {
  private clientValue: Promise<{ client: S3Client; sdk: Sdk }> | undefined;
  readonly remote = true;

  constructor(private readonly location: S3Location) {}

  private client(): Promise<{ client: S3Client; sdk: Sdk }> {
    this.clientValue ??= (sdk ??= import('@aws-sdk/client-s3')).then((m) => ({ client: this.makeClient(m), sdk: m }));
    return this.clientValue;
  }

  private makeClient({ S3Client }: Sdk): S3Client {
    // The SDK warns on Node 20 about its future releases; the locked version runs here, and the
    // warning would break the JSON lines on stderr. Left on if the user sets the variable.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const location = this.location;
    return new S3Client({
      endpoint: location.endpoint,
      region: location.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      forcePathStyle: true,
      credentials: location.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 4,
      // A stalled request must fail and be retried, not hang; Pachyderm drops requests after ~4.5
      // minutes. A socket idle that long fails it: the SDK's requestTimeout alone only warns
      // (without throwOnRequestTimeout), and a whole request's time would also cut a slow large upload.
      requestHandler: { connectionTimeout: s3Timeouts.connectMs, socketTimeout: s3Timeouts.idleMs },
    });
  }

  /** Sends the command `make` builds from the SDK's classes. */
  private async send<T>(make: (sdk: Sdk) => { input: unknown }): Promise<T> {
    const { client, sdk } = await this.client();
    return (await client.send(make(sdk) as Parameters<S3Client['send']>[0])) as T;
  }

  get description(): string {
    return this.location.description;
  }

  private key(key: string): string {
    return this.location.prefix + key;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const limit = options.limit ?? Infinity;
    for await (const page of this.pages(prefix, options.startAfter, limit)) {
      out.push(...page);
      if (out.length >= limit) break;
    }
    return out.slice(0, limit);
  }

  listPages(prefix: string, options: ListOptions = {}): AsyncGenerator<StoredObject[]> {
    return this.pages(prefix, options.startAfter, Infinity);
  }

  /** ListObjects V1 pages, each sorted (the gateway's order is not relied on). */
  private async *pages(prefix: string, startAfter: string | undefined, limit: number): AsyncGenerator<StoredObject[]> {
    let listed = 0;
    // Keys sort by LSN: a listing of what comes after a point starts there instead of paging from the first key.
    let marker: string | undefined = startAfter !== undefined ? this.key(startAfter) : undefined;
    for (;;) {
      const page = await this.call('list', () =>
        this.send<ListObjectsCommandOutput>(
          (m) =>
            new m.ListObjectsCommand({
              Bucket: this.location.bucket,
              Prefix: this.key(prefix),
              Marker: marker,
              MaxKeys: Math.min(1000, limit - listed),
            }),
        ),
      );
      const objects = (page.Contents ?? []).map((o) => ({ key: o.Key!.slice(this.location.prefix.length), size: o.Size ?? 0 }));
      listed += objects.length;
      if (objects.length) yield objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      if (!page.IsTruncated || listed >= limit) return;
      // V1 paging: NextMarker when the server sends it, else the last key of the page.
      marker = page.NextMarker ?? page.Contents?.at(-1)?.Key;
      if (!marker) return;
    }
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const head = await this.send<HeadObjectCommandOutput>(
        (m) => new m.HeadObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }),
      );
      return { key, size: head.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.failure('stat', err);
    }
  }

  read(key: string): Readable {
    // The body arrives once the request answers; hand out a stream at once, as the directory store does.
    const out = new PassThrough();
    this.send<GetObjectCommandOutput>((m) => new m.GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }))
      .then((r) => {
        const body = r.Body as Readable;
        // A body left unread holds its connection, and the SDK has 50: a reader that stops early
        // (destroying `out`) releases it.
        if (out.destroyed) return body.destroy();
        out.once('close', () => body.destroy());
        body.on('error', (err) => out.destroy(err));
        body.pipe(out);
      })
      .catch((err) =>
        out.destroy(isNotFound(err) ? new ObjectMissingError(this.location.description, key) : this.failure(`read ${key}`, err)),
      );
    return out;
  }

  async readRange(key: string, offset: number, length: number): Promise<Buffer> {
    if (length <= 0) return Buffer.alloc(0);
    let r: GetObjectCommandOutput;
    try {
      r = await this.send<GetObjectCommandOutput>(
        (m) =>
          new m.GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key), Range: `bytes=${offset}-${offset + length - 1}` }),
      );
    } catch (err) {
      // A range that starts past the end of the object.
      if ((err as { name?: string }).name === 'InvalidRange') return Buffer.alloc(0);
      if (isNotFound(err)) throw new ObjectMissingError(this.location.description, key);
      throw this.failure(`read ${key}`, err);
    }
    // A server that ignores Range answers 200 with the whole object: the range is cut from it.
    const from = r.$metadata.httpStatusCode === 206 ? 0 : offset;
    const chunks: Buffer[] = [];
    let got = 0;
    const body = r.Body as Readable;
    try {
      for await (const chunk of body) {
        chunks.push(chunk as Buffer);
        got += (chunk as Buffer).length;
        if (got >= from + length) break;
      }
    } catch (err) {
      throw this.failure(`read ${key}`, err);
    } finally {
      // Read no further than needed, and release the connection either way.
      body.destroy();
    }
    return Buffer.concat(chunks).subarray(from, from + length);
  }

  async putFile(key: string, localPath: string): Promise<{ versionId?: string }> {
    const { size } = await statFile(localPath);
    if (size > multipartThreshold()) return this.putMultipart(key, localPath, size);
    const r = await this.call(`write ${key}`, () =>
      this.send<PutObjectCommandOutput>(
        (m) =>
          new m.PutObjectCommand({
            Bucket: this.location.bucket,
            Key: this.key(key),
            Body: createReadStream(localPath),
            ContentLength: size,
          }),
      ),
    );
    return r.VersionId ? { versionId: r.VersionId } : {};
  }

  /**
   * Large segments go up in parts: Pachyderm refuses single requests over 4 GiB or longer than
   * about 4.5 minutes. Parts are read from the file with known lengths; a failed upload is aborted.
   */
  private async putMultipart(key: string, localPath: string, size: number): Promise<{ versionId?: string }> {
    const Bucket = this.location.bucket;
    const Key = this.key(key);
    const { UploadId } = await this.call(`write ${key}`, () =>
      this.send<CreateMultipartUploadCommandOutput>((m) => new m.CreateMultipartUploadCommand({ Bucket, Key })),
    );
    try {
      const partSize = Math.max(MIN_PART_BYTES, Math.ceil(size / MAX_PARTS), multipartPartSize());
      const parts: { ETag?: string; PartNumber: number }[] = [];
      for (let start = 0, n = 1; start < size; start += partSize, n++) {
        const end = Math.min(size, start + partSize);
        const part = await this.call(`write ${key} (part ${n})`, () =>
          this.send<UploadPartCommandOutput>(
            (m) =>
              new m.UploadPartCommand({
                Bucket,
                Key,
                UploadId,
                PartNumber: n,
                Body: createReadStream(localPath, { start, end: end - 1 }),
                ContentLength: end - start,
              }),
          ),
        );
        parts.push({ ETag: part.ETag, PartNumber: n });
      }
      const done = await this.call(`write ${key}`, () =>
        this.send<CompleteMultipartUploadCommandOutput>(
          (m) => new m.CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }),
        ),
      );
      return done.VersionId ? { versionId: done.VersionId } : {};
    } catch (err) {
      await this.send<AbortMultipartUploadCommandOutput>((m) => new m.AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(
        () => {},
      );
      throw err;
    }
  }

  async putBytes(key: string, bytes: Buffer): Promise<{ versionId?: string }> {
    const r = await this.call(`write ${key}`, () =>
      this.send<PutObjectCommandOutput>(
        (m) => new m.PutObjectCommand({ Bucket: this.location.bucket, Key: this.key(key), Body: bytes, ContentLength: bytes.length }),
      ),
    );
    return r.VersionId ? { versionId: r.VersionId } : {};
  }

  async delete(key: string): Promise<void> {
    // S3 answers 204 for a key that does not exist: a retried delete is no error.
    await this.call(`delete ${key}`, () =>
      this.send<unknown>((m) => new m.DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) })),
    );
  }

  async checkWritable(): Promise<void> {
    try {
      await this.send<HeadBucketCommandOutput>((m) => new m.HeadBucketCommand({ Bucket: this.location.bucket }));
    } catch (err) {
      throw this.failure('open', err);
    }
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.failure(what, err);
    }
  }

  /** Errors the user can act on become UserErrors naming the store (never its secrets); others pass on for retrying. */
  private failure(what: string, err: unknown): Error {
    const where = this.location.description;
    const e = err as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const status = e.$metadata?.httpStatusCode;
    if (e.name === 'NoSuchBucket' || (status === 404 && what === 'open')) {
      return new UserError(
        `store ${where}: bucket ${JSON.stringify(this.location.bucket)} does not exist`,
        'create the bucket (or the Pachyderm repo and branch), or check --store',
      );
    }
    if (
      ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden'].includes(e.name ?? '') ||
      status === 403 ||
      status === 401
    ) {
      return new UserError(
        `store ${where}: access denied (${e.name ?? status})`,
        'check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or PACH_TOKEN for pfs://)',
      );
    }
    if (e.name === 'CredentialsProviderError' || /Could not load credentials/.test(e.message ?? '')) {
      return new StoreUnavailableError(
        `store ${where}: no S3 credentials were found`,
        'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or a role), or PACH_TOKEN for pfs://',
      );
    }
    const code = e.code ?? /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|ETIMEDOUT/.exec(e.message ?? '')?.[0];
    if (code && ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) {
      const endpoint = this.location.endpoint ?? 'the S3 endpoint';
      const why = code === 'ECONNREFUSED' ? 'connection refused' : 'host not found';
      const message = `store ${where}: cannot reach ${endpoint} (${why})`;
      const hint = 'check --s3-endpoint (or AWS_ENDPOINT_URL / PACHD_S3_ENDPOINT) and that the server runs';
      return what === 'open' ? new UserError(message, hint) : new StoreUnavailableError(message, hint);
    }
    if (err instanceof Error) {
      const wrapped = new Error(`store ${where}: ${what} failed: ${e.name ?? ''} ${e.message ?? ''}`.trim());
      (wrapped as { cause?: unknown }).cause = err;
      return wrapped;
    }
    return new Error(`store ${where}: ${what} failed: ${String(err)}`);
  }
}

const MIN_PART_BYTES = 5 << 20;
const MAX_PARTS = 10_000;
// Tunable for tests; the defaults keep each request well under Pachyderm's limits.
const multipartThreshold = () => Number(process.env.PGTAPE_S3_MULTIPART_BYTES ?? 512 << 20);
const multipartPartSize = () => Number(process.env.PGTAPE_S3_PART_BYTES ?? 64 << 20);

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
}
