import { ExitCode, UserError } from '../core/errors.js';
import type { WrappingKey } from '../core/key-wrap.js';
import type { Store } from '../store/store.js';
import { listBases, readBaseManifest } from './bases.js';
import { keysOf } from './keys.js';
import { listSegments, readSegmentHeader } from './segments.js';

/**
 * The key id the archive's newest files are encrypted for (its newest segment's, else its newest
 * base's), or undefined when they are stored in the clear. Read from the clear parts only: a
 * writer holding a public key can ask.
 */
export async function newestEncryption(store: Store): Promise<string | undefined> {
  const last = (await listSegments(store)).at(-1);
  if (last) {
    const id = (await readSegmentHeader(store, last.key).catch(() => undefined))?.encryption?.dataKey.keyId;
    if (id !== undefined) return id;
  }
  const base = (await listBases(store)).at(-1);
  return base ? (await readBaseManifest(store, base)).schemaKey?.keyId : undefined;
}

/**
 * The key a writer encrypts new files for: `given` (--encrypt), or — where the archive is
 * encrypted already and the writer holds that key to read with — that one. An encrypted archive
 * is never continued in the clear (a downgrade): without a key, the writer is refused.
 */
export async function keyForNewFiles(store: Store, given: WrappingKey | undefined, what: string): Promise<WrappingKey | undefined> {
  if (given) return given;
  const id = await newestEncryption(store);
  if (id === undefined) return undefined;
  const held = keysOf(store)?.find((k) => k.id === id);
  if (held) return held;
  throw new UserError(
    `${store.description} is encrypted (its newest files are for key ${id}), and ${what} was given no key to encrypt for: it would store in the clear`,
    `pass --encrypt with the key file of ${id} (its public half is enough), or a newer key`,
    ExitCode.BAD_INPUT,
  );
}
