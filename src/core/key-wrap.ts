import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { ExitCode, UserError } from './errors.js';
import { DATA_KEY_BYTES, decryptBuffer, encryptBuffer } from './chunked-aead.js';

// Keys that wrap each file's random data key (docs/ARCHITECTURE.md, "Encryption at rest"): a
// secret key (32 random bytes), an X25519 key pair — the archiver holds only the public key and
// cannot unwrap what it wrapped, so a compromised sidecar leaks no history — or a wrapping key
// from AWS KMS (src/log/kms-keys.ts fetches it; here it wraps as a secret key does). A key's id (the
// start of a digest of its secret or public half) is stored beside each wrapped data key, so a
// reader holding several keys (rotation) takes the right one, and a missing key is named.
//
// Key files are one line of text: `pgtape-secret-key <base64url>`, `pgtape-public-key
// <base64url>` or `pgtape-private-key <base64url of the private half> <base64url of the public>`.

export type KeyKind = 'secret' | 'public' | 'private' | 'kms';

export interface WrappingKey {
  kind: KeyKind;
  /** 16 hex digits naming the key (both halves of a pair share it). */
  id: string;
  /** The secret key's bytes (kind secret; kind kms: the wrapping key KMS gave, unless it refused). */
  secret?: Buffer;
  /**
   * Kind kms: the KMS key its wrapping key is encrypted under (an ARN); why KMS gave no key to
   * read with (`damaged`: the store's copy of it is); `unstored`: the copy a writer must store
   * before it wraps anything (src/log/kms-keys.ts, storeWrappingKey).
   */
  kms?: { keyArn: string; unavailable?: string; damaged?: boolean; unstored?: Buffer };
  publicKey?: KeyObject;
  privateKey?: KeyObject;
  /** The public half as its 32 raw bytes (kinds public and private). */
  publicBytes?: Buffer;
}

/** A data key as stored beside a file: how it was wrapped, by which key, and the wrapped bytes. */
export interface WrappedKey {
  mode: 'secret' | 'x25519' | 'kms';
  keyId: string;
  wrapped: Buffer;
}

/** Whether `k` unwraps data keys (a secret key, a pair's private half, a wrapping key KMS gave). */
export const readsWith = (k: WrappingKey): boolean =>
  k.kind === 'private' || k.kind === 'secret' || (k.kind === 'kms' && k.secret !== undefined && !k.kms?.unavailable);

/** Whether `keys` hold a key that reads what is wrapped for key `id`. */
export function opensKey(keys: WrappingKey[] | undefined, id: string | undefined): boolean {
  return id !== undefined && Boolean(keys?.some((k) => k.id === id && readsWith(k)));
}

/** A wrapped key as JSON holds it (index objects, base manifests). */
export type StoredWrappedKey = { mode: WrappedKey['mode']; keyId: string; wrapped: string };
export const encodeWrappedKey = (w: WrappedKey): StoredWrappedKey => ({ ...w, wrapped: w.wrapped.toString('base64') });
export const decodeWrappedKey = (w: StoredWrappedKey): WrappedKey => ({ ...w, wrapped: Buffer.from(w.wrapped, 'base64') });

const PREFIX: Record<Exclude<KeyKind, 'kms'>, string> = {
  secret: 'pgtape-secret-key',
  public: 'pgtape-public-key',
  private: 'pgtape-private-key',
};
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const X25519_BYTES = 32;

export function keyId(kind: 'secret' | 'x25519' | 'kms', bytes: Buffer): string {
  return createHash('sha256').update(`pgtape key id ${kind}\0`).update(bytes).digest().subarray(0, 8).toString('hex');
}

const b64 = (b: Buffer) => b.toString('base64url');

function x25519Public(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64(raw) }, format: 'jwk' });
}

/** A new secret key, as its file's text. */
export function newSecretKeyFile(): string {
  return `${PREFIX.secret} ${b64(randomBytes(32))}\n`;
}

/** A new X25519 pair, as the texts of its two files. */
export function newKeyPairFiles(): { publicFile: string; privateFile: string } {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    publicFile: `${PREFIX.public} ${jwk.x}\n`,
    privateFile: `${PREFIX.private} ${jwk.d} ${publicKey.export({ format: 'jwk' }).x}\n`,
  };
}

/** A key from its file's text; `what` names the file in errors. */
export function parseKeyFile(text: string, what: string): WrappingKey {
  const [prefix, first, second, ...rest] = text.trim().split(/\s+/);
  const kind = (Object.keys(PREFIX) as (keyof typeof PREFIX)[]).find((k) => PREFIX[k] === prefix);
  const bad = (why: string) =>
    new UserError(
      `${what} is not a pgtape key file: ${why}`,
      'give a file written by pgtape keygen (one line: the kind of key, then the key)',
    );
  const bytes = (text: string | undefined) => {
    const b = Buffer.from(text ?? '', 'base64url');
    if (b.length !== 32 || b64(b) !== text) throw bad('the key is not 32 bytes of base64url');
    return b;
  };
  // Nothing of the file is repeated: a key pasted without its kind would end up in a log.
  if (!kind) throw bad(`it does not begin with ${Object.values(PREFIX).join(', ')}`);
  if (rest.length || (kind !== 'private' && second !== undefined)) throw bad('it holds more than one key');
  if (kind === 'secret') {
    const secret = bytes(first);
    return { kind, id: keyId('secret', secret), secret };
  }
  const publicBytes = bytes(kind === 'public' ? first : second);
  const publicKey = x25519Public(publicBytes);
  if (kind === 'public') return { kind, id: keyId('x25519', publicBytes), publicKey, publicBytes };
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', x: b64(publicBytes), d: b64(bytes(first)) }, format: 'jwk' });
  // The two halves must belong together: a private key with another's public half would wrap for one and unwrap for none.
  if (!x25519PublicOf(privateKey).equals(publicBytes)) throw bad('its private and public halves are not one pair');
  return { kind, id: keyId('x25519', publicBytes), publicKey, privateKey, publicBytes };
}

function x25519PublicOf(privateKey: KeyObject): Buffer {
  return Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url');
}

function kek(shared: Buffer, ephemeral: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), 'pgtape wrap x25519 v1', 32));
}

function seal(key: Buffer, plain: Buffer, aad: Buffer): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  return Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

function open(key: Buffer, sealed: Buffer, aad: Buffer): Buffer | undefined {
  if (sealed.length !== NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES) return undefined;
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** What a wrapped key is bound to: its key and the file it opens (`context`, e.g. the file's name). */
const wrapAad = (keyId: string, context: Buffer) => Buffer.concat([Buffer.from(`pgtape wrap v1 ${keyId}\0`), context]);

/** Wraps a file's data key for `key` (a secret key, or either half of a pair: the public one is used). */
export function wrapDataKey(key: WrappingKey, dataKey: Buffer, context: Buffer): WrappedKey {
  if (dataKey.length !== DATA_KEY_BYTES) throw new Error(`a data key is ${DATA_KEY_BYTES} bytes`);
  // A file wrapped for a KMS key whose copy the store does not hold would be unreadable by anyone.
  if (key.kms?.unstored) throw new Error(`wrapping key ${key.id} is used before it is stored (storeWrappingKey)`);
  const aad = wrapAad(key.id, context);
  if (key.kind === 'secret' || key.kind === 'kms') return { mode: key.kind, keyId: key.id, wrapped: seal(key.secret!, dataKey, aad) };
  const ephemeral = generateKeyPairSync('x25519');
  const ephemeralBytes = x25519PublicOf(ephemeral.privateKey);
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: key.publicKey! });
  const wrapped = seal(kek(shared, ephemeralBytes, key.publicBytes!), dataKey, aad);
  return { mode: 'x25519', keyId: key.id, wrapped: Buffer.concat([ephemeralBytes, wrapped]) };
}

/** The data key an X25519 wrap holds: its ephemeral public key, then the sealed key (undefined when it does not open). */
function openX25519(key: WrappingKey, wrapped: Buffer, aad: Buffer): Buffer | undefined {
  try {
    const ephemeral = wrapped.subarray(0, X25519_BYTES);
    const shared = diffieHellman({ privateKey: key.privateKey!, publicKey: x25519Public(ephemeral) });
    return open(kek(shared, ephemeral, key.publicBytes!), wrapped.subarray(X25519_BYTES), aad);
  } catch {
    // A changed ephemeral key may be no point of the curve, or one of small order.
    return undefined;
  }
}

/**
 * A file's data key, unwrapped with the one of `keys` it names. A key not given, a public key
 * alone, or a wrapped key that does not open (another key of the same id, or changed bytes) is
 * a UserError naming the key id the file needs (exit 2).
 */
export function unwrapDataKey(keys: WrappingKey[], w: WrappedKey, context: Buffer, what: string): Buffer {
  const fits = (k: WrappingKey) => (w.mode === 'x25519' ? k.kind === 'private' : k.kind === w.mode);
  const key = keys.find((k) => k.id === w.keyId && fits(k));
  // The key is held, but the file says it was wrapped another way: the file was changed.
  const held = keys.find((k) => k.id === w.keyId && k.kind !== 'public' && !fits(k));
  if (!key && held) {
    throw new UserError(
      `${what} is damaged: it says its data key was wrapped for a ${KIND_NAME[w.mode]} key ${w.keyId}, and the key ${w.keyId} given is a ${held.kind} key`,
      'run pgtape verify with the key; restore the file from a copy',
      ExitCode.ATTENTION,
    );
  }
  if (!key || !readsWith(key)) throw notReadable(keys, w, what);
  const aad = wrapAad(key.id, context);
  const dataKey = w.mode === 'x25519' ? openX25519(key, w.wrapped, aad) : open(key.secret!, w.wrapped, aad);
  if (!dataKey) {
    throw new UserError(
      `${what} is damaged: its data key does not open with key ${w.keyId} (the file was changed or moved under another name)`,
      'run pgtape verify with the key; restore the file from a copy',
      ExitCode.ATTENTION,
    );
  }
  return dataKey;
}

const KIND_NAME: Record<WrappedKey['mode'], string> = { secret: 'secret', x25519: 'public', kms: 'KMS' };

/**
 * Stands in `keys` for `--key-file kms:` itself: KMS was asked, whatever the store held. Its id
 * is no key's (ids are hex digits).
 */
export const KMS_ASKED: WrappingKey = { kind: 'kms', id: 'kms:', kms: { keyArn: '', unavailable: 'not a key' } };

/**
 * Why a file whose data key `w` is not read by `keys`: what it needs and how to give it (exit 2),
 * or, for a KMS key whose copy the store lost or holds damaged, damage (exit 4).
 */
export function notReadable(keys: WrappingKey[], w: WrappedKey, what: string): UserError {
  const id = w.keyId;
  if (w.mode === 'kms') {
    const kms = keys.find((k) => k.id === id && k.kind === 'kms')?.kms;
    const object = `keys/kms/${id}.json`;
    if (kms?.damaged || (!kms && keys.includes(KMS_ASKED)))
      return new UserError(
        `${what} is encrypted for key ${id}, wrapped by AWS KMS, and the store's KMS-encrypted copy of that key is ${kms ? `damaged (${kms.unavailable})` : `missing (${object})`}`,
        `run pgtape verify; restore ${object} from a copy of the store`,
        ExitCode.ATTENTION,
      );
    return new UserError(
      kms
        ? `${what} is encrypted for key ${id}, wrapped by the KMS key ${kms.keyArn}, and KMS gave no key to read it with: ${kms.unavailable ?? 'kms:Decrypt was not asked'}`
        : `${what} is encrypted for key ${id}, wrapped by AWS KMS, and KMS was not asked for it`,
      kms
        ? `run it with credentials allowed kms:Decrypt on ${kms.keyArn}, and KMS reachable (AWS_REGION, AWS_ENDPOINT_URL_KMS and the usual AWS credentials)`
        : 'pass --key-file kms: (with credentials allowed kms:Decrypt)',
    );
  }
  const publicOnly = keys.some((k) => k.id === id && k.kind === 'public');
  return new UserError(
    `${what} is encrypted for key ${id}, and ${publicOnly ? 'only its public half was given' : 'no key given has that id'}`,
    w.mode === 'secret'
      ? `pass its key file with --key-file (key id ${id})`
      : `pass the private key file of the pair ${id} with --key-file`,
  );
}

/** A short text sealed under a data key of its own, wrapped beside it: it opens without any other file. */
export interface SealedValue {
  key: WrappedKey;
  sealed: Buffer;
}

/** Seals `plain` (a mark's name) for `key`, bound to `context` (what it belongs to). */
export function sealValue(key: WrappingKey, plain: Buffer, context: Buffer): SealedValue {
  const dataKey = randomBytes(DATA_KEY_BYTES);
  return { key: wrapDataKey(key, dataKey, context), sealed: encryptBuffer(dataKey, context, plain) };
}

/** What sealValue sealed; a key not given is a UserError (exit 2), bytes that do not open a DecryptionError. */
export function openValue(keys: WrappingKey[], value: SealedValue, context: Buffer, what: string): Buffer {
  return decryptBuffer(unwrapDataKey(keys, value.key, context, what), context, value.sealed);
}
