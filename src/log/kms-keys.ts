import type { KMSClient } from '@aws-sdk/client-kms';
import { UserError, errorMessage } from '../core/errors.js';
import { keyId, type WrappingKey } from '../core/key-wrap.js';
import { readAll } from '../store/read.js';
import type { Store } from '../store/store.js';

// Wrapping keys from AWS KMS (docs/ARCHITECTURE.md, "Encryption at rest", KMS). A writer asks KMS
// once per process for a wrapping key (GenerateDataKey) and stores KMS's encrypted copy of it as
// keys/kms/<id>.json once its own checks pass, before it wraps anything with it (storeWrappingKey;
// wrapDataKey refuses a key not stored yet); each file's data key is then wrapped with
// it as with a secret key, so KMS is asked nothing per file and an archiver that runs for months
// never waits on KMS. A reader lists keys/kms/ and asks KMS to decrypt each (kms:Decrypt) once,
// at its start. A writer allowed kms:Decrypt goes on under the newest wrapping key of the same
// KMS key rather than adding one per start.

export const KMS_KEYS_DIR = 'keys/kms/';
/** What every wrapping key is bound to at KMS: a KMS key's data keys for other uses never pass for one. */
const ENCRYPTION_CONTEXT = { purpose: 'pgtape wrapping key v1' };

/** keys/kms/<id>.json: KMS's encrypted copy of one wrapping key. */
interface StoredKmsKey {
  keyArn: string;
  blob: string;
  created: string;
}

export const kmsKeyObject = (id: string) => `${KMS_KEYS_DIR}${id}.json`;

/** How long one KMS request may take (KMS answers in milliseconds); tests shorten it. */
export const kmsTimeouts = { requestMs: 10_000 };

type Sdk = typeof import('@aws-sdk/client-kms');
let sdk: Promise<Sdk> | undefined;

async function client(regionOf?: string): Promise<{ kms: KMSClient; sdk: Sdk }> {
  const m = await (sdk ??= import('@aws-sdk/client-kms'));
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // A key's ARN names its region; an alias or bare id takes the environment's.
  const region =
    /^arn:[^:]+:kms:([^:]+):/.exec(regionOf ?? '')?.[1] ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
  // A KMS that accepts connections and never answers fails the command instead of hanging it:
  // without throwOnRequestTimeout the SDK only warns when requestTimeout passes.
  const timeout = kmsTimeouts.requestMs;
  const kms = new m.KMSClient({
    region,
    maxAttempts: 3,
    requestHandler: { connectionTimeout: timeout, requestTimeout: timeout, throwOnRequestTimeout: true, socketTimeout: timeout },
  });
  return { kms, sdk: m };
}

/** What KMS said, for a message: its error's name and text (never a key: KMS errors hold none). */
const kmsReason = (err: unknown) => {
  const name = (err as { name?: string }).name;
  const text = errorMessage(err);
  return name && name !== 'Error' && !text.startsWith(name) ? `${name}: ${text}` : text;
};

const kmsHint = 'check the key, AWS_REGION (or the key as an ARN), AWS_ENDPOINT_URL_KMS and the AWS credentials in the environment';

async function listKmsKeys(store: Store): Promise<{ id: string; stored?: StoredKmsKey; damaged?: string }[]> {
  const objects = await store.list(KMS_KEYS_DIR);
  const found: { id: string; stored?: StoredKmsKey; damaged?: string }[] = [];
  for (const o of objects) {
    const id = /^keys\/kms\/([0-9a-f]{16})\.json$/.exec(o.key)?.[1];
    if (!id) continue;
    try {
      const stored = JSON.parse((await readAll(store, o.key)).toString('utf8')) as StoredKmsKey;
      if (typeof stored.keyArn !== 'string' || typeof stored.blob !== 'string') throw new Error('it lacks keyArn or blob');
      if (keyId('kms', Buffer.from(stored.blob, 'base64')) !== id) throw new Error('its blob is not the one its name says');
      found.push({ id, stored });
    } catch (err) {
      found.push({ id, damaged: `${store.description}/${o.key} is damaged: ${errorMessage(err)}` });
    }
  }
  // Newest first: a writer goes on under the newest it can decrypt.
  return found.sort((a, b) => (b.stored?.created ?? '').localeCompare(a.stored?.created ?? ''));
}

/** Asks KMS to decrypt a stored wrapping key: the key, or why not (`unavailable`). */
async function decryptStored(id: string, stored: StoredKmsKey, expectKey?: string): Promise<WrappingKey> {
  const { kms, sdk } = await client(stored.keyArn);
  try {
    const out = await kms.send(
      new sdk.DecryptCommand({
        CiphertextBlob: Buffer.from(stored.blob, 'base64'),
        EncryptionContext: ENCRYPTION_CONTEXT,
        ...(expectKey ? { KeyId: expectKey } : {}),
      }),
    );
    if (!out.Plaintext || out.Plaintext.length !== 32) throw new Error('KMS returned no 32-byte key');
    return { kind: 'kms', id, secret: Buffer.from(out.Plaintext), kms: { keyArn: out.KeyId ?? stored.keyArn } };
  } catch (err) {
    return { kind: 'kms', id, kms: { keyArn: stored.keyArn, unavailable: `KMS did not decrypt it (${kmsReason(err)})` } };
  } finally {
    kms.destroy();
  }
}

/**
 * The wrapping keys of every keys/kms/ object, for reading (`--key-file kms:`). One KMS would not
 * decrypt, or one damaged, is kept with the reason, named only by a file that needs it.
 */
export async function kmsKeysForReading(store: Store): Promise<WrappingKey[]> {
  const listed = await listKmsKeys(store);
  return Promise.all(
    listed.map(({ id, stored, damaged }) =>
      stored ? decryptStored(id, stored) : { kind: 'kms' as const, id, kms: { keyArn: 'unknown', unavailable: damaged, damaged: true } },
    ),
  );
}

/**
 * The wrapping key new files are encrypted for (`--encrypt kms:<key>`): the newest stored one of
 * that KMS key that KMS decrypts for this process, else a new one from GenerateDataKey, to be
 * stored with storeWrappingKey before its first use. A new key that this process may not decrypt is marked unavailable for
 * reading (a writer allowed only kms:GenerateDataKey cannot read the archive's history); with
 * `mustRead` (what needs to read, for the message) it is refused instead, before anything is stored.
 */
export async function kmsKeyForWriting(store: Store, kmsKey: string, mustRead?: string): Promise<WrappingKey> {
  for (const { id, stored } of await listKmsKeys(store)) {
    if (!stored) continue;
    const key = await decryptStored(id, stored, kmsKey);
    if (key.secret) return key;
  }
  const { kms, sdk } = await client(kmsKey);
  let generated;
  try {
    generated = await kms.send(
      new sdk.GenerateDataKeyCommand({ KeyId: kmsKey, KeySpec: 'AES_256', EncryptionContext: ENCRYPTION_CONTEXT }),
    );
  } catch (err) {
    throw new UserError(`KMS gave no data key for ${kmsKey}: ${kmsReason(err)}`, `${kmsHint}; the writer needs kms:GenerateDataKey`);
  } finally {
    kms.destroy();
  }
  if (!generated.Plaintext || generated.Plaintext.length !== 32 || !generated.CiphertextBlob)
    throw new UserError(`KMS answered GenerateDataKey for ${kmsKey} without a 32-byte key`, kmsHint);
  const blob = Buffer.from(generated.CiphertextBlob);
  const id = keyId('kms', blob);
  const keyArn = generated.KeyId ?? kmsKey;
  const stored: StoredKmsKey = { keyArn, blob: blob.toString('base64'), created: new Date().toISOString() };
  // Asked once: whether this process reads what it writes decides what it may do (bases from the archive).
  const { unavailable } = (await decryptStored(id, stored, kmsKey)).kms!;
  if (unavailable && mustRead)
    throw new UserError(
      `${mustRead} read the archive, and KMS does not decrypt ${kmsKey}'s keys for this process: ${unavailable}`,
      'allow this process kms:Decrypt on the key, or run pgtape compact (with credentials allowed kms:Decrypt) on a schedule of its own; or leave them out',
    );
  const unstored = Buffer.from(JSON.stringify(stored, null, 2) + '\n');
  return { kind: 'kms', id, secret: Buffer.from(generated.Plaintext), kms: { keyArn, unavailable, unstored } };
}

/**
 * Stores a new wrapping key's KMS-encrypted copy (nothing for any other key): called by a writer
 * once its checks pass (the lease, the stream), before it stores a file wrapped with it, so that a
 * refused command leaves nothing in the store.
 */
export async function storeWrappingKey(store: Store, key: WrappingKey | undefined): Promise<void> {
  const unstored = key?.kms?.unstored;
  if (!unstored) return;
  await store.putBytes(kmsKeyObject(key.id), unstored);
  delete key.kms!.unstored;
}

const storedIds = new WeakMap<Store, Promise<Set<string>>>();

/**
 * Why a file under `key` is unreadable for want of its keys/kms/ object, if it is one under a KMS
 * key whose object the store does not hold (verify; the listing is read once per store).
 */
export async function missingKmsKey(store: Store, key: { mode: string; keyId: string } | undefined): Promise<string | undefined> {
  if (key?.mode !== 'kms') return undefined;
  let ids = storedIds.get(store);
  if (!ids) storedIds.set(store, (ids = listKmsKeys(store).then((all) => new Set(all.filter((k) => k.stored).map((k) => k.id)))));
  if ((await ids).has(key.keyId)) return undefined;
  return `its data key is wrapped by key ${key.keyId}, and the store does not hold that key's KMS-encrypted copy (${kmsKeyObject(key.keyId)}, missing or damaged): nobody can read it`;
}
