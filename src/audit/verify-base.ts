import { missingKmsKey } from '../log/kms-keys.js';
import { basePrefix, encryptionProblem, isReadableBaseFormat, readBase, readBaseTable, type BaseManifest } from '../log/bases.js';
import { keysOf, kmsRefusal } from '../log/keys.js';
import { decodeWrappedKey, opensKey } from '../core/key-wrap.js';
import { errorMessage } from '../core/errors.js';
import { formatLsn, tryParseLsn } from '../core/lsn.js';
import { readAll, sha256Of } from '../store/read.js';
import { throwIfUnreadable, type Store } from '../store/store.js';
import type { Finding, Status } from './verify.js';

// verify's check of one base (src/audit/verify.ts walks the archive): its files against its
// manifest, and with the key every sealed file opened.

/** A file stored in the clear after `since` was stored encrypted. */
export function downgrade(object: string, start: bigint, end: bigint, since: string): Finding {
  return {
    status: 'DOWNGRADE',
    object,
    start: formatLsn(start),
    end: formatLsn(end),
    detail: `stored in the clear, though ${since} before it is encrypted: written by an archiver without --encrypt, or put there by someone else (it replays, and whoever reads the store can read it)`,
  };
}

export async function checkBase(store: Store, lsn: bigint, keys: Map<string, number>): Promise<{ finding: Finding; encrypted: boolean }> {
  let encrypted = false;
  const finding = await checkBaseFiles(store, lsn, keys, (manifest) => (encrypted = Boolean(manifest.schemaKey)));
  return { finding, encrypted };
}

async function checkBaseFiles(store: Store, lsn: bigint, keys: Map<string, number>, read: (m: BaseManifest) => void): Promise<Finding> {
  const prefix = basePrefix(lsn);
  const at = formatLsn(lsn);
  const finding = (status: Status, detail: string): Finding => ({ status, object: prefix, start: at, end: at, detail });
  if (!keys.has('manifest.json')) return finding('MISSING', 'manifest.json is missing: the base was never finished and replay ignores it');
  let manifest: BaseManifest;
  try {
    manifest = JSON.parse((await readAll(store, `${prefix}manifest.json`)).toString('utf8')) as BaseManifest;
  } catch (err) {
    throwIfUnreadable(err);
    return finding('CORRUPT', `manifest.json cannot be read: ${errorMessage(err)}`);
  }
  if (!isReadableBaseFormat(manifest.formatVersion) || tryParseLsn(manifest.lsn) !== lsn)
    return finding('CORRUPT', `manifest.json describes another base (${manifest.lsn}, format ${manifest.formatVersion})`);
  const encryption = encryptionProblem(manifest);
  if (encryption) return finding('CORRUPT', `manifest.json ${encryption}`);
  read(manifest);
  const lostKey = await missingKmsKey(store, manifest.schemaKey);
  if (lostKey) return finding('MISSING', `schema.json and the table files: ${lostKey}`);
  const sha = (key: string) => sha256Of(store, key, keys.get(key.slice(prefix.length)));
  if (!keys.has('schema.json')) return finding('MISSING', 'schema.json is missing');
  if ((await sha(`${prefix}schema.json`)) !== manifest.schemaSha256)
    return finding('CORRUPT', 'schema.json does not match the checksum in the manifest');
  // An encrypted base's clear manifest could have been forged with its files: with the key, every file is opened too.
  const opens = (id: string | undefined) => opensKey(keysOf(store), id);
  const base = { lsn, prefix };
  // A clear schema is read too: a manifest whose schema key was taken away says it is clear.
  if (!manifest.schemaKey || opens(manifest.schemaKey.keyId)) {
    try {
      await readBase(store, base);
    } catch (err) {
      throwIfUnreadable(err);
      return finding('CORRUPT', errorMessage(err).replace(`${store.description}/${prefix}`, ''));
    }
  }
  let rows = 0;
  for (const t of manifest.tables) {
    // An encrypted base names its tables only inside its sealed schema.
    const what = t.name ? `${t.file} (${t.schema}.${t.name})` : t.file;
    if (!keys.has(t.file)) return finding('MISSING', `${what} is missing`);
    if (keys.get(t.file) !== t.bytes) return finding('CORRUPT', `${what} is ${keys.get(t.file)} bytes, the manifest says ${t.bytes}`);
    if ((await sha(`${prefix}${t.file}`)) !== t.sha256) return finding('CORRUPT', `${what} does not match the checksum in the manifest`);
    if (opens(t.key?.keyId)) {
      const { text } = readBaseTable(store, base, t, t);
      try {
        for await (const chunk of text) void chunk;
      } catch (err) {
        throwIfUnreadable(err);
        return finding('CORRUPT', errorMessage(err).replace(`${store.description}/${prefix}`, ''));
      }
    }
    rows += t.rows;
  }
  const id = manifest.schemaKey?.keyId;
  const refused =
    manifest.schemaKey &&
    !opens(id) &&
    kmsRefusal(store, decodeWrappedKey(manifest.schemaKey), `${store.description}/${prefix}schema.json`);
  if (refused) throw refused;
  const sealed =
    id === undefined
      ? ''
      : opens(id)
        ? `, encrypted for key ${id}`
        : `, encrypted for key ${id}, not given: checksums checked, not content`;
  const result = finding('OK', `${manifest.tables.length} tables, ${rows} rows${sealed}`);
  return id !== undefined && !opens(id) ? { ...result, keyNotGiven: id } : result;
}
