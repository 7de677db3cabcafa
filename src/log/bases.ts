import { createHash } from 'node:crypto';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecompressor, type Compression } from '../core/compression.js';
import { UserError } from '../core/errors.js';
import { formatLsn, lsnKey, parseLsn, parseLsnKey } from '../core/lsn.js';
import { quoteQualified } from '../core/sql.js';
import type { Store } from '../store/store.js';
import { readAll } from '../store/read.js';
import { DecryptionError, decryptBuffer, decryptingStream } from '../core/chunked-aead.js';
import { decodeWrappedKey, unwrapDataKey, type StoredWrappedKey } from '../core/key-wrap.js';
import { keysOf } from './keys.js';
import { readStreamRecord, STREAM_KEY, streamDifferences, type StreamRecord } from './stream-record.js';

// A base: a consistent copy of the published tables, taken in the snapshot a replication slot
// exported, so that it holds every transaction whose commit LSN is below `lsn` and none other.
//   base/<LSN16>/schema.json         what the tables look like (from the catalog, in the snapshot)
//   base/<LSN16>/tables/<n>.copy.br  one COPY text file per table, brotli-compressed (baseTableFile)
//   base/<LSN16>/manifest.json       written last: without it the base does not exist

/** Format 2 adds the whole schema as statements (`ddl`); format 1 bases are still read. */
export const BASE_FORMAT_VERSION = 2;
export const isReadableBaseFormat = (version: number) => version === 1 || version === 2;
export const BASES_DIR = 'base/';

export interface BaseColumn {
  name: string;
  /** The column's number in the source table: renames are recognized by it (absent in older bases). */
  attnum?: number;
  /** format_type(): the type with its modifiers, qualified where needed. */
  type: string;
  typeOid: number;
  typmod: number;
  notNull: boolean;
  /** Only constant defaults are kept: sequences and functions do not exist where replay goes. */
  default?: string;
}

export interface BaseTable {
  schema: string;
  name: string;
  oid: number;
  replicaIdentity: string;
  columns: BaseColumn[];
  primaryKey: string[];
  /** Key under `base/<LSN16>/` of its COPY file. */
  file: string;
  /** A partitioned table published through its root: its rows are its partitions'. */
  partitioned?: boolean;
  /** The publication's row filter (15+): the base holds only the rows it publishes. */
  rowFilter?: string;
  /** The publication's column list (15+) left these columns out: the archive holds none of their values. */
  unpublishedColumns?: string[];
  /**
   * Its stored generated columns (bases since 2026-12): not in the base's rows, nor in `columns`,
   * but a Postgres 18 publication may send their values (`publish_generated_columns`), which
   * readers then leave out. Undefined in older bases: none known.
   */
  generatedColumns?: string[];
}

export interface BaseSchema {
  formatVersion: number;
  lsn: string;
  /** When the snapshot was taken (the start of the copying transaction), ISO 8601. */
  snapshotTime: string;
  database: string;
  systemIdentifier: string;
  serverVersion: number;
  schemas: string[];
  enums: { schema: string; name: string; labels: string[] }[];
  domains: { schema: string; name: string; baseType: string; notNull: boolean; default?: string }[];
  tables: BaseTable[];
  /** Format 2: the whole schema, to run around the rows. */
  ddl?: BaseDdl;
  /**
   * A base compacted from the archive (pgtape compact): the base it was folded from, and what the
   * replay that made it warned of — a replay from this base inherits those differences.
   */
  compactedFrom?: { lsn: string; warnings: { message: string; [field: string]: unknown }[] };
}

// The schema as statements (format 2): what base/ddl/ reads from the catalog and replay runs,
// in the order pg_restore runs a dump's: pre-data, the rows, post-data.

/** One object of the schema, as the statements that recreate it. */
export interface SchemaObject {
  /** What it is, as a person would say it: `table`, `view`, `function`, `index`… */
  kind: string;
  /** Its name, qualified where it has a schema, for messages. */
  name: string;
  /** The statements, in order. */
  sql: string[];
  /** The table it belongs to (`schema.table`): left out with the table (`replay --tables`). */
  table?: string;
  /** Other published tables it needs (a foreign key's referenced table, a view's tables). */
  needs?: string[];
}

/** A sequence, with where the base saw it and the columns that draw from it. */
export interface BaseSequence {
  schema: string;
  name: string;
  /** The value nextval() last returned (null: never called), as text: sequences are bigint. */
  lastValue: string | null;
  /** Columns whose default or identity draws from it: the value never ends below their largest. */
  columns: { schema: string; table: string; column: string }[];
}

/** The whole schema of a base (format 2 and later). */
export interface BaseDdl {
  /** Before the rows: objects in dependency order. */
  pre: SchemaObject[];
  /** After the rows. */
  post: SchemaObject[];
  /** Last, once every change is applied: materialized views filled, triggers set to fire as on the source. */
  final: SchemaObject[];
  sequences: BaseSequence[];
  /** Identity columns GENERATED ALWAYS: replay writes their values as the source had them. */
  alwaysIdentity: { schema: string; table: string; column: string }[];
  /** Extensions the schema uses, with their versions. */
  extensions: { name: string; schema: string; version: string }[];
  /** Objects a replay cannot recreate, and why: said at every base and replay, never dropped silently. */
  notRestored: string[];
}

export interface BaseManifest {
  formatVersion: number;
  lsn: string;
  takenAt: string;
  /** As schema.json says (absent in older bases): what planning needs without opening an encrypted schema. */
  snapshotTime?: string;
  systemIdentifier?: string;
  database?: string;
  schemaSha256: string;
  /** An encrypted base's table files have no names here (schema.json, sealed, has them), and a key each. */
  tables: BaseFileEntry[];
  /** An encrypted base: schema.json's data key, wrapped (docs/ARCHITECTURE.md, "Encryption at rest"). */
  schemaKey?: StoredWrappedKey;
}

/** A table file's manifest entry. */
export interface BaseFileEntry {
  schema: string;
  name: string;
  file: string;
  rows: number;
  bytes: number;
  sha256: string;
  /** Encrypted: its data key, wrapped. */
  key?: StoredWrappedKey;
}

/** What a base's stored file is bound to when encrypted: its key in the store (base LSN and file). */
export const baseFileContext = (key: string) => Buffer.from(`pgtape base file\0${key}`);

export interface BaseRef {
  lsn: bigint;
  prefix: string;
}

export function basePrefix(lsn: bigint): string {
  return `${BASES_DIR}${lsnKey(lsn)}/`;
}

/** How a base's table files are compressed. */
export const BASE_TABLE_COMPRESSION: Compression = 'br';

/** The key under `base/<LSN16>/` of the `n`-th table's COPY file (from 1). */
export function baseTableFile(n: number): string {
  return `tables/${String(n).padStart(4, '0')}.copy.br`;
}

/** The manifest's entry for a table's file (its rows and checksum); a manifest without it is refused. */
export function manifestEntry(
  store: Store,
  base: BaseRef,
  manifest: BaseManifest,
  table: { file: string; schema: string; name: string },
): BaseManifest['tables'][number] {
  const entry = manifest.tables.find((m) => m.file === table.file);
  if (!entry)
    throw new UserError(
      `${store.description}/${base.prefix}manifest.json lists no file for ${quoteQualified(table.schema, table.name)}`,
      'run pgtape verify',
    );
  return entry;
}

/** A base's stored file is not what it should be (undecodable, cut short, another checksum): damage, exit 4. */
export class DamagedBaseError extends Error {}

/** Decompressed chunks (of up to 1 MiB) a base table's reader may have waiting. */
const BUFFERED_CHUNKS = 8;

/** A base table's file that is not what its manifest says (its checksum differs): the archive's damage. */
export function baseTableDamaged(store: Store, base: BaseRef, table: { file: string; schema: string; name: string }): DamagedBaseError {
  return new DamagedBaseError(
    `${store.description}/${base.prefix}${table.file} (${table.schema}.${table.name}) does not match the checksum in its manifest`,
  );
}

/**
 * A base table's rows as COPY text, decompressed while read from the store, and the SHA-256 of
 * the stored bytes (what the manifest records), known once `text` has ended. A read that fails
 * or stops early closes the stored object (its descriptor or HTTP body). Bytes that do not
 * decompress are reported as damage naming the file, not as the codec's bare error.
 */
export function readBaseTable(
  store: Store,
  base: BaseRef,
  table: { file: string },
  /** The file's manifest entry: its key, when the base is encrypted. */
  entry?: { key?: StoredWrappedKey },
): { text: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  const decompressor = createDecompressor(BASE_TABLE_COMPRESSION);
  // One decompressed chunk per read: a byte stream's reader gets everything buffered joined
  // into one new buffer (up to the decompressor's 8 MiB), a copy of every byte of the base.
  const text = new PassThrough({ readableObjectMode: true, readableHighWaterMark: BUFFERED_CHUNKS });
  const what = `${store.description}/${base.prefix}${table.file}`;
  // A failure anywhere destroys `text` with the error: its reader sees it. The codec's own
  // errors carry a numeric errno; the store's (a missing object) pass as they are.
  const fail = (err: Error) => {
    if (text.destroyed) return;
    const codec = typeof (err as NodeJS.ErrnoException).errno === 'number' && !(err as NodeJS.ErrnoException).syscall;
    text.destroy(codec ? new DamagedBaseError(`${what} cannot be decompressed (${err.message})`) : err);
  };
  decompressor.on('error', fail);
  const key = base.prefix + table.file;
  let decryptor: Transform | undefined;
  try {
    if (entry?.key) decryptor = decryptingStream(openBaseKey(store, entry.key, key), baseFileContext(key));
  } catch (err) {
    text.destroy(err as Error);
    return { text, sha256: () => hash.digest('hex') };
  }
  decryptor?.on('error', (err) =>
    fail(err instanceof DecryptionError ? new DamagedBaseError(`${what} does not decrypt (${err.message})`) : err),
  );
  (decryptor ? pipeline(store.read(key), tap, decryptor, decompressor) : pipeline(store.read(key), tap, decompressor)).catch(fail);
  decompressor.pipe(text);
  // The reader stopped early: the read of the stored object is closed with it.
  text.once('close', () => decompressor.destroy());
  return { text, sha256: () => hash.digest('hex') };
}

/** Bases whose manifest is stored, oldest first. A base without its manifest does not exist. */
export async function listBases(store: Store): Promise<BaseRef[]> {
  const objects = await store.list(BASES_DIR);
  const bases: BaseRef[] = [];
  for (const o of objects) {
    const m = /^base\/([0-9A-F]{16})\/manifest\.json$/.exec(o.key);
    const lsn = m ? parseLsnKey(m[1]!) : undefined;
    if (lsn !== undefined) bases.push({ lsn, prefix: basePrefix(lsn) });
  }
  return bases.sort((a, b) => (a.lsn < b.lsn ? -1 : a.lsn > b.lsn ? 1 : 0));
}

/** The bases begun and never finished (a folder without manifest.json), as `base/<lsn>/`: replay ignores them. */
export async function unfinishedBases(store: Store): Promise<string[]> {
  const folders = new Map<string, boolean>();
  for (const o of await store.list(BASES_DIR)) {
    const m = /^(base\/[0-9A-F]{16}\/)(.*)$/.exec(o.key);
    if (m) folders.set(m[1]!, folders.get(m[1]!) === true || m[2] === 'manifest.json');
  }
  return [...folders].filter(([, finished]) => !finished).map(([prefix]) => prefix);
}

/** An encrypted base file's data key, with the store's keys (a key not given: UserError naming it, exit 2). */
function openBaseKey(store: Store, stored: StoredWrappedKey, key: string): Buffer {
  return unwrapDataKey(keysOf(store) ?? [], decodeWrappedKey(stored), baseFileContext(key), `${store.description}/${key}`);
}

async function readJson<T>(store: Store, key: string): Promise<T> {
  return parseJson<T>(store, key, await readAll(store, key));
}

/** A stored JSON file's content, opened first when it is sealed. */
function parseJson<T>(store: Store, key: string, bytes: Buffer, sealedWith?: StoredWrappedKey): T {
  if (sealedWith) {
    try {
      bytes = decryptBuffer(openBaseKey(store, sealedWith, key), baseFileContext(key), bytes);
    } catch (err) {
      if (err instanceof DecryptionError) throw new DamagedBaseError(`${store.description}/${key} does not decrypt (${err.message})`);
      throw err;
    }
  }
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    // A stored file that does not parse is the archive's damage (exit 4), as a segment's would be.
    throw new DamagedBaseError(`${store.description}/${key} is not valid JSON (${(err as Error).message})`);
  }
}

export async function readBase(store: Store, base: BaseRef): Promise<{ manifest: BaseManifest; schema: BaseSchema }> {
  // Both at once (one round trip on an object store); the manifest's verdict comes first.
  const schemaBytes = readAll(store, `${base.prefix}schema.json`);
  schemaBytes.catch(() => {}); // awaited below, once the manifest is known good
  const manifest = await readBaseManifest(store, base);
  return { manifest, schema: parseJson<BaseSchema>(store, `${base.prefix}schema.json`, await schemaBytes, manifest.schemaKey) };
}

/** A base's snapshot time, from its manifest where it says it (an encrypted base's schema needs a key). */
export async function baseSnapshotTime(store: Store, base: BaseRef): Promise<string> {
  const manifest = await readBaseManifest(store, base);
  return manifest.snapshotTime ?? (await readBase(store, base)).schema.snapshotTime;
}

/** A base's manifest, checked to describe it. */
export async function readBaseManifest(store: Store, base: BaseRef): Promise<BaseManifest> {
  const manifest = await readJson<BaseManifest>(store, `${base.prefix}manifest.json`);
  if (manifest.formatVersion > BASE_FORMAT_VERSION) {
    throw new UserError(
      `${store.description}/${base.prefix}manifest.json is of base format ${manifest.formatVersion}, newer than this pgtape reads (${BASE_FORMAT_VERSION})`,
      'use a newer pgtape for this archive',
    );
  }
  if (!isReadableBaseFormat(manifest.formatVersion) || parseLsn(manifest.lsn) !== base.lsn) {
    throw new UserError(
      `${store.description}/${base.prefix}manifest.json does not describe the base at ${formatLsn(base.lsn)}`,
      'run pgtape verify',
    );
  }
  const problem = encryptionProblem(manifest);
  if (problem) throw new DamagedBaseError(`${store.description}/${base.prefix}manifest.json ${problem}`);
  await refuseOtherStream(store, base, manifest);
  return manifest;
}

/** Each store's stream record, read once per process: every base a reader uses must be of it. */
const streamRecords = new WeakMap<Store, Promise<StreamRecord | undefined>>();

/**
 * A base of another source system or database (copied in by hand, or a store shared by mistake)
 * is never read as this archive's: its rows would be replayed, diffed and verified as if they
 * were. Writers refuse such a base (stream.ts); this is the readers' side. Bases older than the
 * manifest's identity fields are not checked here.
 */
async function refuseOtherStream(store: Store, base: BaseRef, manifest: BaseManifest): Promise<void> {
  if (manifest.systemIdentifier === undefined) return;
  let pending = streamRecords.get(store);
  if (!pending) {
    pending = readStreamRecord(store);
    streamRecords.set(store, pending);
  }
  const record = await pending;
  const differences = record ? streamDifferences(record, { systemIdentifier: manifest.systemIdentifier, database: manifest.database }) : [];
  if (differences.length)
    throw new DamagedBaseError(
      `${store.description}/${base.prefix} is a base of another stream (${differences.join('; ')}; ${STREAM_KEY} says which stream the archive holds): it is not read as this archive's`,
    );
}

const isWrappedKey = (k: unknown): boolean =>
  typeof k === 'object' &&
  k !== null &&
  ['secret', 'x25519', 'kms'].includes((k as StoredWrappedKey).mode) &&
  typeof (k as StoredWrappedKey).keyId === 'string' &&
  typeof (k as StoredWrappedKey).wrapped === 'string';

/**
 * What is wrong with a manifest's encryption, if anything: an encrypted base (a schema key) has a
 * key for every file, a clear one for none, and every key is one pgtape writes. A file in the
 * clear in an encrypted base was put there by someone without the key: never read as the base's.
 */
export function encryptionProblem(manifest: BaseManifest): string | undefined {
  const sealed = manifest.schemaKey !== undefined;
  if (sealed && !isWrappedKey(manifest.schemaKey)) return 'holds a schema key pgtape did not write';
  for (const t of manifest.tables) {
    if (t.key === undefined && sealed) return `lists ${t.file} without a key, though the base is encrypted`;
    if (t.key !== undefined && !sealed) return `lists ${t.file} with a key, though the base is not encrypted`;
    if (t.key !== undefined && !isWrappedKey(t.key)) return `holds a key for ${t.file} pgtape did not write`;
  }
  return undefined;
}
