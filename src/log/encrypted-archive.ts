import { ExitCode, UserError } from '../core/errors.js';
import { decodeWrappedKey, type WrappedKey, type WrappingKey } from '../core/key-wrap.js';
import type { Store } from '../store/store.js';
import { listBases, readBaseManifest } from './bases.js';
import { keysOf } from './keys.js';
import { lastCommittedHeader, listSegments } from './segments.js';

/**
 * The key the archive's newest files are encrypted for (its newest readable segment with
 * transactions, else its newest base), or undefined when both are stored in the clear. Read from
 * the clear parts only: a writer holding a public key can ask. A damaged newest segment is passed
 * over to the one before it, never taken for one in the clear.
 */
export async function newestEncryption(store: Store): Promise<WrappedKey | undefined> {
  const segment = (await lastCommittedHeader(store, await listSegments(store)))?.encryption?.dataKey;
  if (segment) return segment;
  const base = (await listBases(store)).at(-1);
  const key = base && (await readBaseManifest(store, base)).schemaKey;
  return key && decodeWrappedKey(key);
}

/**
 * The key a writer encrypts new files for: `given` (--encrypt), or — where the archive is
 * encrypted already and the writer holds that key to read with — that one. An encrypted archive
 * is never continued in the clear (a downgrade): without a key, the writer is refused.
 */
export async function keyForNewFiles(
  store: Store,
  given: WrappingKey | undefined,
  what: string,
  /** newestEncryption(store), when the caller read it already. */
  newest?: WrappedKey,
): Promise<WrappingKey | undefined> {
  if (given) return given;
  newest ??= await newestEncryption(store);
  if (!newest) return undefined;
  const id = newest.keyId;
  const held = keysOf(store)?.find((k) => k.id === id && (k.kind !== 'kms' || k.secret !== undefined));
  if (held) return held;
  throw new UserError(
    `${store.description} is encrypted (its newest files are for key ${id}), and ${what} was given no key to encrypt for: it would store in the clear`,
    newest.mode === 'kms'
      ? `pass --encrypt kms:<the KMS key> (or --key-file kms: to go on under ${id}), or a newer key`
      : `pass --encrypt with the key file of ${id}${newest.mode === 'x25519' ? ' (its public half is enough)' : ''}, or a newer key`,
    ExitCode.BAD_INPUT,
  );
}
