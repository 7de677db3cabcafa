import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// A stand-in for AWS KMS, for tests: no KMS server installs from this machine's registries (no
// Docker engine, no Go toolchain for local-kms, PyPI unreachable for moto). It speaks the wire
// protocol the real SDK sends (JSON 1.1 over HTTP, `X-Amz-Target: TrentService.<Operation>`), so
// pgtape's KMS client code runs unchanged, and it keeps the rules pgtape relies on: a blob decrypts
// only under its own key and with the same encryption context, a KeyId given to Decrypt must be
// the blob's key (IncorrectKeyException), aliases resolve, and a denied operation answers
// AccessDeniedException. It does not check signatures: credentials are not what is under test.

export interface TestKms {
  /** Environment for a pgtape process: the endpoint, a region and dummy credentials. */
  env: NodeJS.ProcessEnv;
  /** Creates a key and its alias (`alias/<name>`); returns its ARN. */
  createKey(alias: string): string;
  /** Operations refused with AccessDeniedException, e.g. Decrypt for a write-only archiver. */
  deny: Set<string>;
  /** How many times each operation was called. */
  calls: Map<string, number>;
  stop(): Promise<void>;
}

const REGION = 'us-east-1';
const ACCOUNT = '111122223333';

export async function startKms(): Promise<TestKms> {
  const keys = new Map<string, { arn: string; material: Buffer }>();
  const aliases = new Map<string, string>();
  const deny = new Set<string>();
  const calls = new Map<string, number>();
  /** A key by its id, ARN, alias or alias ARN. */
  const resolve = (keyId: string) => {
    const name = keyId.replace(/^arn:aws:kms:[^:]+:\d+:/, '');
    const id = name.startsWith('alias/') ? aliases.get(name) : name.replace(/^key\//, '');
    return id === undefined ? undefined : keys.get(id);
  };
  const aad = (context: unknown) =>
    Buffer.from(JSON.stringify(Object.entries((context ?? {}) as Record<string, string>).sort(([a], [b]) => a.localeCompare(b))));

  const operations: Record<string, (input: Record<string, unknown>) => Record<string, unknown>> = {
    GenerateDataKey(input) {
      const key = resolve(String(input.KeyId));
      if (!key) throw error('NotFoundException', `Key '${String(input.KeyId)}' does not exist`);
      if (input.KeySpec !== 'AES_256') throw error('ValidationException', 'this stand-in makes AES_256 keys only');
      const plain = randomBytes(32);
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key.material, nonce);
      cipher.setAAD(aad(input.EncryptionContext));
      const id = Buffer.from(key.arn.split('/').at(-1)!, 'ascii');
      const blob = Buffer.concat([id, nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return { KeyId: key.arn, Plaintext: plain.toString('base64'), CiphertextBlob: blob.toString('base64') };
    },
    Decrypt(input) {
      const blob = Buffer.from(String(input.CiphertextBlob), 'base64');
      const key = keys.get(blob.subarray(0, 36).toString('ascii'));
      if (!key || blob.length !== 36 + 12 + 32 + 16) throw error('InvalidCiphertextException', '');
      if (input.KeyId !== undefined && resolve(String(input.KeyId))?.arn !== key.arn)
        throw error('IncorrectKeyException', 'The key ID in the request does not identify a KMS key that can perform this operation.');
      const decipher = createDecipheriv('aes-256-gcm', key.material, blob.subarray(36, 48));
      decipher.setAAD(aad(input.EncryptionContext));
      decipher.setAuthTag(blob.subarray(80));
      try {
        const plain = Buffer.concat([decipher.update(blob.subarray(48, 80)), decipher.final()]);
        return { KeyId: key.arn, Plaintext: plain.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      } catch {
        throw error('InvalidCiphertextException', '');
      }
    },
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const operation = String(req.headers['x-amz-target'] ?? '').replace(/^TrentService\./, '');
      calls.set(operation, (calls.get(operation) ?? 0) + 1);
      let status = 200;
      let body: Record<string, unknown>;
      try {
        const run = operations[operation];
        if (!run) throw error('UnsupportedOperationException', `${operation} is not in this stand-in`);
        if (deny.has(operation))
          throw error('AccessDeniedException', `User: arn:aws:iam::${ACCOUNT}:user/test is not authorized to perform: kms:${operation}`);
        body = run(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>);
      } catch (err) {
        status = 400;
        body = { __type: (err as Error).name, message: (err as Error).message };
      }
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    // The same dummy credentials as the S3 server's (test/support/s3rver.ts): one environment serves both.
    env: { AWS_ENDPOINT_URL_KMS: endpoint, AWS_REGION: REGION, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
    createKey(alias) {
      const id = randomUUID();
      const arn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`;
      keys.set(id, { arn, material: randomBytes(32) });
      aliases.set(`alias/${alias}`, id);
      return arn;
    },
    deny,
    calls,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function error(name: string, message: string): Error {
  const err = new Error(message);
  err.name = name;
  return err;
}
