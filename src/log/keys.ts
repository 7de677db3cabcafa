import { KMS_ASKED, notReadable, type WrappedKey, type WrappingKey } from '../core/key-wrap.js';
import type { Store } from '../store/store.js';

// The keys a command reads an encrypted archive with (--key-file), kept beside its store rather
// than in it: a store moves bytes and knows nothing of segments. Every reader of segments and
// bases in src/log takes them from here, so that a command gives them once.

const keysByStore = new WeakMap<Store, WrappingKey[]>();

/** The keys to open this store's encrypted files with. */
export function useKeys(store: Store, keys: WrappingKey[]): void {
  keysByStore.set(store, keys);
}

/** The keys given for this store (none: an encrypted file is refused naming the key it needs). */
export function keysOf(store: Store): WrappingKey[] | undefined {
  return keysByStore.get(store);
}

/**
 * For a file that was not opened: where KMS was asked (--key-file kms:) for the key it is under
 * and would not give it, the error saying so — a check asked for and not done is no pass (verify).
 */
export function kmsRefusal(store: Store, w: WrappedKey, what: string): Error | undefined {
  const keys = keysOf(store);
  return w.mode === 'kms' && keys?.includes(KMS_ASKED) ? notReadable(keys, w, what) : undefined;
}
