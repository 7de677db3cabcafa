import { randomBytes } from 'node:crypto';
import { close, createReadStream, open as fsOpen, opendirSync, read, statSync, type Dir } from 'node:fs';
import { copyFile, mkdir, open, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { UserError } from '../core/errors.js';
import { unusableDirectory } from '../core/paths.js';
import { ObjectMissingError, ObjectUnreadableError, type ListOptions, type Store, type StoredObject } from './store.js';

/** What a whole-object read reads at once, at most. */
const READ_BYTES = 1 << 20;

/** Objects per page of listPages. */
const PAGE = 1000;

/** How long a listing of a directory is reused while its mtime stays (see DirectoryStore.listed). */
const LISTING_REUSE_MS = 5000;

/** A listing's first keys up to this many are picked in one pass over an unsorted directory. */
const FEW = 64;

/** A directory's files, by name under it, as read or sorted. */
interface Listing {
  names: string[];
  sorted: boolean;
}

/**
 * The first `limit` (at most FEW) of `keys` that are `wanted`, sorted: one pass, holding no more
 * than `limit` of them.
 */
function fewest(keys: string[], wanted: (key: string) => boolean, limit: number): string[] {
  const out: string[] = [];
  for (const k of keys) {
    if ((out.length === limit && k >= out[limit - 1]!) || !wanted(k)) continue;
    let i = out.length;
    while (i > 0 && out[i - 1]! > k) i--;
    out.splice(i, 0, k);
    if (out.length > limit) out.pop();
  }
  return out;
}

/** Temporary files start with this; listings skip them. */
const TEMP_PREFIX = '.pgtape-tmp-';

/**
 * A plain directory: `./tape`, or `/pfs/out` and `/pfs/<input>` inside a Pachyderm pipeline.
 * A put writes a temporary file, fsyncs it, renames it into place and fsyncs the directory, so
 * a crash leaves either the whole object or none.
 */
export class DirectoryStore implements Store {
  readonly remote = false;

  constructor(readonly root: string) {}

  get description(): string {
    return this.root;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<StoredObject[]> {
    return this.sized(await this.keys(prefix, options.startAfter, options.limit));
  }

  async *listPages(prefix: string, options: ListOptions = {}): AsyncGenerator<StoredObject[]> {
    // A directory is read whole (its order is not the keys'): only the names are held, and
    // each page is stat'ed as it is handed out.
    const keys = await this.keys(prefix, options.startAfter);
    for (let i = 0; i < keys.length; i += PAGE) {
      const page = await this.sized(keys.slice(i, i + PAGE));
      if (page.length) yield page;
    }
  }

  /**
   * Keys of the flat directories listed lately (`segments/`, `index/`): finding a target lists
   * `segments/` several times (its first key, the tail after the index objects…), and reading a
   * directory of 525,600 segments (a year of one-minute segments) takes half a second. Reused
   * while the directory's mtime is the one read, for a few seconds at most (a change in the same
   * clock tick as the one before leaves the mtime as it was); this store's own writes forget them.
   * Sorted only once a listing needs most of them: the first key, or the few after the index
   * objects, are picked in one pass (sorting half a million keys took a third of a second).
   */
  private readonly listed = new Map<string, { at: number; mtimeNs: bigint; listing: Listing }>();
  /** This store's writes and deletions so far: a listing read across one is not kept. */
  private writes = 0;

  /** The keys under `prefix` that sort after `startAfter`, sorted; the first `limit` of them. */
  private async keys(prefix: string, startAfter = '', limit = Infinity): Promise<string[]> {
    const base = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const listing = await this.listing(base);
    const from = startAfter > prefix ? startAfter : prefix;
    // Every key listed starts with `base`: a bound that does not sorts after them all.
    if (!from.startsWith(base)) return [];
    // Compared without `base`: names as the directory gave them, not half a million new strings.
    const [after, under, exclusive] = [from.slice(base.length), prefix.slice(base.length), from === startAfter];
    const names = listing.names;
    const keyed = (picked: string[]) => picked.map((n) => base + n);
    if (!listing.sorted) {
      const wanted = (n: string) => (n > after || (n === after && !exclusive)) && n.startsWith(under);
      if (limit <= FEW) return keyed(fewest(names, wanted, limit));
      const picked = names.filter(wanted);
      if (picked.length * 4 < names.length) return keyed(picked.sort().slice(0, limit));
      names.sort();
      listing.sorted = true;
    }
    // Sorted: the names with the prefix are one run, from the first after both bounds.
    let lo = 0;
    let hi = names.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (names[mid]! < after || (names[mid]! === after && exclusive)) lo = mid + 1;
      else hi = mid;
    }
    const out: string[] = [];
    for (let i = lo; i < names.length && out.length < limit && names[i]!.startsWith(under); i++) out.push(base + names[i]!);
    return out;
  }

  /** The files under the folder `base` (a key prefix ending in `/`, or the root), by name under it. */
  private async listing(base: string): Promise<Listing> {
    const dir = join(this.root, base);
    const mtimeNs = await stat(dir, { bigint: true }).then(
      (s) => s.mtimeNs,
      () => undefined,
    );
    const cached = this.listed.get(dir);
    if (cached && mtimeNs !== undefined && cached.mtimeNs === mtimeNs && Date.now() - cached.at < LISTING_REUSE_MS) return cached.listing;
    const listing: Listing = { names: [], sorted: false };
    const at = Date.now();
    const writes = this.writes;
    const flat = await this.walk(dir, '', listing.names);
    // Not kept when this store wrote meanwhile (the walk spans turns of the event loop): the
    // write may have missed it and left the folder's mtime as it was.
    if (flat && mtimeNs !== undefined && writes === this.writes) {
      const entry = { at, mtimeNs, listing };
      this.listed.set(dir, entry);
      // Not kept past its use: 150,000 keys weigh 18 MB for the rest of a long replay.
      setTimeout(() => this.listed.get(dir) === entry && this.listed.delete(dir), LISTING_REUSE_MS).unref();
    }
    return listing;
  }

  /** The keys with their sizes; a stat per file is what a long listing costs, so only these. */
  private async sized(keys: string[]): Promise<StoredObject[]> {
    // Synchronously, a page at a time between turns of the event loop: a stat through the thread
    // pool costs ten times the call itself (150,000 took 3.6 s, and hundreds of megabytes in flight).
    const objects: StoredObject[] = [];
    for (let i = 0; i < keys.length; i++) {
      if (i > 0 && i % PAGE === 0) await new Promise(setImmediate);
      // Removed since the directory was read (pgtape expire): not listed.
      const s = statSync(join(this.root, keys[i]!), { throwIfNoEntry: false });
      if (s) objects.push({ key: keys[i]!, size: s.size });
    }
    return objects;
  }

  /** The files under `dir`, by name under it (`under` before each); whether it holds no folder (its mtime then says when it changed). */
  private async walk(dir: string, under: string, out: string[]): Promise<boolean> {
    let entries: Dir;
    try {
      // Read in the directory's own order: readdir sorts every name before handing back any (a
      // year of one-minute segments: 0.9–1.3 s against 0.45 s). Synchronously, a page at a time
      // between turns of the event loop: a promise per entry took half as long again.
      entries = opendirSync(dir, { bufferSize: 1024 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return false;
      if (code === 'EACCES' || code === 'EPERM') throw new ObjectUnreadableError(dir, code);
      const why = unusableDirectory(this.root);
      if (why) throw new UserError(`store ${why}`, 'give --store a directory (pgtape archive creates it)');
      // A file inside the store where the prefix's folder would be (keys/kms a file): no key is under the prefix, as on S3.
      if (code === 'ENOTDIR') return false;
      throw err;
    }
    let flat = true;
    try {
      for (let n = 1, e = entries.readSync(); e !== null; n++, e = entries.readSync()) {
        if (n % (PAGE * 10) === 0) await new Promise(setImmediate);
        if (e.name.startsWith(TEMP_PREFIX)) continue;
        if (e.isDirectory()) {
          flat = false;
          await this.walk(join(dir, e.name), `${under}${e.name}/`, out);
        } else if (e.isFile()) out.push(under ? under + e.name : e.name);
      }
    } finally {
      entries.closeSync();
    }
    return flat;
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const s = await stat(this.path(key));
      return s.isFile() ? { key, size: s.size } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  read(key: string, options: { size?: number } = {}): Readable {
    // Large reads: segment and base files are read whole, each chunk then decompressed as one;
    // a small file gets a buffer of its size (a 1 MiB buffer per 400-byte segment is most of the
    // cost of reading thousands of them).
    const highWaterMark = options.size === undefined ? READ_BYTES : Math.max(1, Math.min(READ_BYTES, options.size));
    return createReadStream(this.path(key), { highWaterMark, fs: { open: this.opener(key), read, close } });
  }

  /** fs.open, with a file that is not there said as such (the stream's own error is a bare ENOENT). */
  private opener(key: string): typeof fsOpen {
    return ((path: string, flags: string, mode: number, callback: (err: Error | null, fd?: number) => void) =>
      fsOpen(path, flags, mode, (err, fd) => callback(err ? this.openError(err, key) : null, fd))) as typeof fsOpen;
  }

  async readRange(key: string, offset: number, length: number): Promise<Buffer> {
    const handle = await open(this.path(key), 'r').catch((err: NodeJS.ErrnoException) => {
      throw this.openError(err, key);
    });
    try {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await handle.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } finally {
      await handle.close();
    }
  }

  /** A file that cannot be opened for reading, said as what it is (the raw errno names no object). */
  openError(err: NodeJS.ErrnoException, key: string): Error {
    if (err.code === 'ENOENT') return new ObjectMissingError(this.description, key);
    if (err.code === 'EACCES' || err.code === 'EPERM') return new ObjectUnreadableError(`${this.description}/${key}`, err.code);
    return err;
  }

  putFile(key: string, localPath: string): Promise<{ versionId?: string }> {
    return this.putAtomically(key, (temp) => copyFile(localPath, temp));
  }

  putBytes(key: string, bytes: Buffer): Promise<{ versionId?: string }> {
    return this.putAtomically(key, (temp) => writeFile(temp, bytes));
  }

  private async putAtomically(key: string, write: (temp: string) => Promise<void>): Promise<{ versionId?: string }> {
    const target = this.path(key);
    const dir = dirname(target);
    await mkdir(dir, { recursive: true });
    const temp = join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
    try {
      await write(temp);
      await fsync(temp);
      await rename(temp, target);
      this.writes++;
      this.listed.clear();
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    await fsync(dir);
    return {};
  }

  async delete(key: string): Promise<void> {
    const target = this.path(key);
    await rm(target, { force: true });
    this.writes++;
    this.listed.clear();
    // Empty folders a deletion leaves (a base's tables/) go too, up to the store's root.
    for (let dir = dirname(target); dir.startsWith(this.root + sep); dir = dirname(dir)) {
      if ((await readdir(dir).catch(() => ['?'])).length > 0) break;
      await rmdir(dir).catch(() => {});
    }
  }

  /** Creates nothing: a command refused after this check leaves no directory behind. */
  async checkWritable(): Promise<void> {
    const why = unusableDirectory(this.root);
    if (why) throw new UserError(`store ${why}`, 'give --store a directory pgtape can write (it is created on the first write)');
  }

  private path(key: string): string {
    if (key.split('/').some((part) => part === '..' || part === '.' || part === ''))
      throw new Error(`invalid store key ${JSON.stringify(key)}`);
    return join(this.root, ...key.split('/'));
  }
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
