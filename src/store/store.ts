import type { Readable } from 'node:stream';
import { UserError } from '../core/errors.js';

export interface StoredObject {
  key: string;
  size: number;
}

export interface ListOptions {
  startAfter?: string;
  limit?: number;
}

/**
 * Where bases and segments live. One implementation per backend, in the manner of WAL-G's
 * storage interface; keys are `/`-separated paths under the store's root.
 */
export interface Store {
  /** The store's location for messages and logs, never with secrets. */
  readonly description: string;
  /** Over a network (S3): a write may take a while to land, and every request costs latency. */
  readonly remote: boolean;
  /**
   * Objects whose key starts with `prefix`, sorted by key; with `startAfter`, only those whose
   * key sorts after it (an S3 Marker: the listing starts there); with `limit`, the first that many.
   */
  list(prefix: string, options?: ListOptions): Promise<StoredObject[]>;
  /**
   * The same listing a page at a time (about 1,000 objects each, sorted within and across
   * pages): a reader of a long folder holds one page, not every key (`limit` is not used).
   */
  listPages(prefix: string, options?: ListOptions): AsyncGenerator<StoredObject[]>;
  /** Whole object, or undefined when there is none under that key. */
  stat(key: string): Promise<StoredObject | undefined>;
  /**
   * The whole object, streamed; `size`, when the caller knows it, sizes the read buffers to it.
   * Destroying the stream before its end releases what it holds (a descriptor, a connection):
   * a reader that stops early must destroy it.
   */
  read(key: string, options?: { size?: number }): Readable;
  /** Up to `length` bytes from `offset` (fewer at the object's end), read and released at once. */
  readRange(key: string, offset: number, length: number): Promise<Buffer>;
  /** Stores a local file under `key`, durably, all or nothing. Returns the backend's version id if it has one. */
  putFile(key: string, localPath: string): Promise<{ versionId?: string }>;
  /** The same for a small object held in memory (manifests, schemas). */
  putBytes(key: string, bytes: Buffer): Promise<{ versionId?: string }>;
  /**
   * Removes the object under `key`; a key with no object is no error (a delete retried after a
   * crash). Only `pgtape expire` deletes: nothing else in pgtape ever removes what it stored.
   */
  delete(key: string): Promise<void>;
  /** Throws a UserError when the store cannot be written. */
  checkWritable(): Promise<void>;
}

/**
 * An object a reader was sent to (by a listing, an index object or a manifest) that the store
 * does not hold: removed since, or lost. The archive's damage, not pgtape's (exit 4).
 */
export class ObjectMissingError extends Error {
  constructor(
    readonly description: string,
    readonly key: string,
    listedBy = 'the archive lists it',
  ) {
    super(`${description}/${key} is missing: ${listedBy}, the store does not hold it`);
    this.name = 'ObjectMissingError';
  }
}

/**
 * An object the user running pgtape may not read (a directory store's file permissions): the
 * archive is sound, the command cannot use it (exit 2). Never reported as damage.
 */
export class ObjectUnreadableError extends UserError {
  constructor(path: string, code: string) {
    super(
      `${path} cannot be read by this user (${code})`,
      'run pgtape as a user who can read the whole store, or grant this one read access to it',
    );
  }
}

/** For a check that names what it cannot read as damage: an unreadable object is not, and stops it. */
export function throwIfUnreadable(err: unknown): void {
  if (err instanceof ObjectUnreadableError) throw err;
}

/**
 * A store that cannot be reached now: its endpoint refuses or is unknown, or no credentials are
 * found. The archiver retries it (an endpoint comes back, a token is mounted); a command that
 * ends on it says what to check (exit 2) instead of the SDK's words.
 */
export class StoreUnavailableError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'StoreUnavailableError';
  }
}
