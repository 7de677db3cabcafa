import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { to as copyTo } from 'pg-copy-streams';
import type pg from 'pg';
import { UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { formatLsn } from '../core/lsn.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../core/sql.js';
import { createSpoolDir } from '../core/spool-dir.js';
import { createCompressor } from '../core/compression.js';
import { digestTap } from '../core/digest-tap.js';
import { DATA_KEY_BYTES, encryptBuffer, encryptingStream } from '../core/chunked-aead.js';
import { encodeWrappedKey, wrapDataKey, type StoredWrappedKey, type WrappingKey } from '../core/key-wrap.js';
import { connect, OUTPUT_SETTINGS } from '../source/connection.js';
import type { SourceFacts } from '../source/preflight.js';
import type { Store } from '../store/store.js';
import { storeWrappingKey } from '../log/kms-keys.js';
import { readBaseDdl } from './ddl/read.js';
import { readPublishedSchema } from './published-schema.js';
import {
  BASE_FORMAT_VERSION,
  BASE_TABLE_COMPRESSION,
  baseFileContext,
  basePrefix,
  type BaseManifest,
  type BaseSchema,
  type BaseTable,
} from '../log/bases.js';

/**
 * Copies the published tables, as of an exported snapshot, into `base/<LSN16>/`: the schema,
 * one compressed COPY file per table, and the manifest last.
 */
export async function captureBase(options: {
  source: string;
  store: Store;
  publication: string;
  lsn: bigint;
  snapshot: string;
  facts: SourceFacts;
  log: Logger;
  /**
   * Changes the schema read before anything is stored (a base compacted from the archive keeps
   * the source's table oids and facts); throwing here stores nothing.
   */
  amend?: (schema: BaseSchema) => void;
  /** Encrypts the table files and schema.json for this key (docs/ARCHITECTURE.md, "Encryption at rest"). */
  encryptFor?: WrappingKey;
}): Promise<BaseManifest> {
  const { store, log } = options;
  const prefix = basePrefix(options.lsn);
  const started = Date.now();
  const client = await connect(options.source);
  const spool = await createSpoolDir();
  try {
    await client.query(OUTPUT_SETTINGS);
    await client.query('begin transaction isolation level repeatable read, read only');
    await client.query(`set transaction snapshot ${quoteLiteral(options.snapshot)}`);
    const { rows } = await client.query<{ now: Date }>('select now()');
    const schema: BaseSchema = {
      formatVersion: BASE_FORMAT_VERSION,
      lsn: formatLsn(options.lsn),
      snapshotTime: rows[0]!.now.toISOString(),
      database: options.facts.database,
      systemIdentifier: options.facts.systemIdentifier,
      serverVersion: options.facts.serverVersion,
      ...(await readPublishedSchema(client, options.publication, options.facts.serverVersion)),
      ddl: await readBaseDdl(client, options.publication),
    };
    options.amend?.(schema);
    // The first file this writer stores may be the first wrapped for its KMS wrapping key.
    await storeWrappingKey(store, options.encryptFor);
    for (const what of schema.ddl!.notRestored) log.warn({ object: what }, 'the base cannot recreate this object: replays will lack it');
    await warnOfLargeObjects(client, log);
    const manifest: BaseManifest = {
      formatVersion: BASE_FORMAT_VERSION,
      lsn: schema.lsn,
      takenAt: '',
      snapshotTime: schema.snapshotTime,
      systemIdentifier: schema.systemIdentifier,
      database: schema.database,
      schemaSha256: '',
      tables: [],
    };
    const sealing = options.encryptFor;
    for (const table of schema.tables) {
      const local = join(spool, 'table');
      let rows = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, callback) {
          for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) rows++;
          callback(null, chunk);
        },
      });
      const { tap, bytes, sha256 } = digestTap();
      const copy = client.query(copyTo(copyOut(table)));
      const sealed = sealing && sealFile(sealing, prefix + table.file);
      const compressed = [copy, counter, createCompressor(BASE_TABLE_COMPRESSION)] as const;
      await (
        sealed
          ? pipeline(...compressed, encryptingStream(sealed.dataKey, sealed.context), tap, createWriteStream(local))
          : pipeline(...compressed, tap, createWriteStream(local))
      ).catch((err: { code?: string }) => {
        throw err.code === '42501'
          ? new UserError(
              `the base cannot read ${table.schema}.${table.name}: ${(err as Error).message}`,
              `GRANT SELECT ON ${quoteQualified(table.schema, table.name)} TO the archiving role (or on all tables of its schema), then start again`,
            )
          : err;
      });
      await store.putFile(prefix + table.file, local);
      await rm(local, { force: true });
      const entry = { schema: table.schema, name: table.name, file: table.file, rows, bytes: bytes(), sha256: sha256().toString('hex') };
      // An encrypted base names its tables only in its sealed schema.json.
      manifest.tables.push(sealed ? { ...entry, schema: '', name: '', key: sealed.key } : entry);
      log.debug({ table: `${table.schema}.${table.name}`, rows }, 'copied table into the base');
    }
    await client.query('commit');
    let schemaBytes: Buffer = Buffer.from(JSON.stringify(schema, null, 2));
    if (sealing) {
      const sealed = sealFile(sealing, `${prefix}schema.json`);
      schemaBytes = encryptBuffer(sealed.dataKey, sealed.context, schemaBytes);
      manifest.schemaKey = sealed.key;
    }
    await store.putBytes(`${prefix}schema.json`, schemaBytes);
    manifest.schemaSha256 = createHash('sha256').update(schemaBytes).digest('hex');
    manifest.takenAt = new Date().toISOString();
    // Last: the base exists from this moment on.
    await store.putBytes(`${prefix}manifest.json`, Buffer.from(JSON.stringify(manifest, null, 2)));
    log.info(
      {
        base: prefix,
        lsn: schema.lsn,
        tables: manifest.tables.length,
        rows: manifest.tables.reduce((n, t) => n + t.rows, 0),
        ms: Date.now() - started,
      },
      'stored base',
    );
    return manifest;
  } finally {
    await client.end().catch(() => {});
    await rm(spool, { recursive: true, force: true });
  }
}

/** A new data key for a base's file, wrapped for `key` and bound to the file's key in the store. */
function sealFile(key: WrappingKey, file: string): { dataKey: Buffer; context: Buffer; key: StoredWrappedKey } {
  const dataKey = randomBytes(DATA_KEY_BYTES);
  const context = baseFileContext(file);
  return { dataKey, context, key: encodeWrappedKey(wrapDataKey(key, dataKey, context)) };
}

/**
 * The COPY that writes a table's rows into the base: the published columns, and only the rows a
 * row filter publishes. A partitioned table published through its root is read as a query
 * (COPY refuses a partitioned table), which reads its partitions.
 */
function copyOut(table: BaseTable): string {
  const columns = table.columns.map((c) => quoteIdent(c.name)).join(', ');
  const name = quoteQualified(table.schema, table.name);
  if (!table.partitioned && !table.rowFilter) return `copy ${name} (${columns}) to stdout`;
  return `copy (select ${columns} from ${name}${table.rowFilter ? ` where ${table.rowFilter}` : ''}) to stdout`;
}

/** Large objects are not replicated by logical decoding: a replay holds their OIDs, never their data. */
async function warnOfLargeObjects(client: pg.Client, log: Logger): Promise<void> {
  const { rows } = await client.query<{ count: string; columns: string[] | null }>(
    `select (select count(*) from pg_largeobject_metadata)::text as count,
            (select array_agg(quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(a.attname))
               from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
               join pg_type t on t.oid = a.atttypid
              where c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped and t.typname in ('oid', 'lo')
                and n.nspname not in ('pg_catalog', 'information_schema')) as columns`,
  );
  const { count, columns } = rows[0]!;
  if (count !== '0') {
    log.warn(
      { largeObjects: Number(count), columns: columns ?? [] },
      'the database has large objects: logical replication does not carry them, so replays hold their OIDs but not their contents',
    );
  }
}
