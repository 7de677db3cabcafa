import { createHash, randomBytes } from 'node:crypto';
import {
  chownSync,
  closeSync,
  cpSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { ownerTag, sweepStale, usableTempDir } from '../core/spool-dir.js';
import { interruptedBy } from '../core/interrupt.js';
import { ownedPrivately, serverBuild } from './binaries.js';

/** Templates: one data directory initdb made, per installation, initdb arguments and password. */
const TEMPLATE_PREFIX = 'pgtape-initdb-';
/** A template being made: the pid and namespace in its name, so that one a killed process left is swept. */
const PARTIAL_PREFIX = 'pgtape-initdb-partial-';

type Ids = { uid: number; gid: number } | undefined;

/**
 * A new data directory for a cluster nobody needs made durably (initdb --no-sync: replay
 * --pgdata's and --csv's, synced whole when handed over, compact's, the demo's) with pgtape's own
 * password: a copy of one initdb made before, given an identity of its own. initdb takes 1.3–1.6 s
 * on a 2-core VM, most of what replay --pgdata waited for its server; the copy takes a tenth of that.
 *
 * The copy gets a new system identifier, as initdb would give it: two clusters must never share
 * one (the archive tells its source from another by it, and so do backup tools). It is written
 * into pg_control (whose CRC is computed again) and into the first page header of each WAL
 * segment, where the server checks it when it starts (the embedded binaries have no
 * pg_resetwal). Anything unexpected there, or a template this user did not make: the caller's
 * initdb is run instead, as it always was. See docs/ARCHITECTURE.md, "Outputs".
 */
export async function initdbFromTemplate(
  bin: string,
  ids: Ids,
  dataDir: string,
  /** initdb's arguments but -D and the password file: part of what the template is made with. */
  args: string[],
  password: string,
  /** Runs initdb into a directory (as the server user, with the password file). */
  initdb: (dir: string) => Promise<void>,
  /** A file of the caller's in `dataDir`: the directory counts as empty with it, and it stays. */
  keep?: string,
): Promise<void> {
  const others = () => readdirSync(dataDir).filter((entry) => entry !== keep);
  // initdb refuses a directory that is not empty; a copy into one would mix.
  if (others().length === 0) {
    try {
      const template = await templateFor(bin, ids, args, password, initdb);
      if (template) {
        cpSync(join(template, 'data'), dataDir, { recursive: true });
        if (ids) chownTree(dataDir, ids);
        newSystemIdentifier(dataDir);
        return;
      }
    } catch (err) {
      // Whatever the copy left goes; initdb makes the directory as it always did — unless a
      // signal stopped the template's initdb: the clean-up waits for this to fail, not to go on.
      for (const entry of others()) rmSync(join(dataDir, entry), { recursive: true, force: true });
      if (interruptedBy()) throw err;
    }
  }
  // initdb may trap the signal and fail before this process's handler runs: no second one then.
  if (interruptedBy()) throw new Error('interrupted while the cluster was being made');
  await initdb(dataDir);
}

/** The template for these binaries, arguments and password, made now if there is none; undefined if it cannot be trusted. */
async function templateFor(bin: string, ids: Ids, args: string[], password: string, initdb: (dir: string) => Promise<void>) {
  const key = createHash('sha256')
    .update(JSON.stringify([serverBuild(join(bin, 'postgres')), args, password, ids?.uid ?? null]))
    .digest('hex')
    .slice(0, 16);
  const parent = usableTempDir();
  const template = join(parent, `${TEMPLATE_PREFIX}${key}`);
  if (existsSync(template) && trusted(template, ids)) {
    if (whole(template)) return template;
    // Some of its files went (a cleaner of old files in /tmp, say): made again.
    rmSync(template, { recursive: true, force: true });
  }
  if (!existsSync(template)) {
    await sweepStale(parent, PARTIAL_PREFIX);
    // Made under a name nobody can guess and renamed: a concurrent start never sees half a template.
    const partial = mkdtempSync(join(parent, `${PARTIAL_PREFIX}${ownerTag()}`));
    try {
      if (ids) chownSync(partial, ids.uid, ids.gid);
      await initdb(join(partial, 'data'));
      writeFileSync(join(partial, FILES), JSON.stringify(filesOf(join(partial, 'data'))));
      renameSync(partial, template);
    } catch (err) {
      // Another process got there first (its template is checked below), or initdb failed (the
      // caller's says why), or a signal stopped it (nothing more is to be made).
      if (interruptedBy()) throw err;
    } finally {
      rmSync(partial, { recursive: true, force: true });
    }
  }
  return trusted(template, ids) && whole(template) ? template : undefined;
}

/** Beside a template's data directory: every file initdb made in it, and its size. */
const FILES = 'files.json';

function filesOf(dir: string, under = ''): [string, number][] {
  return readdirSync(join(dir, under), { withFileTypes: true }).flatMap((e) => {
    const path = join(under, e.name);
    return e.isDirectory() ? filesOf(dir, path) : [[path, statSync(join(dir, path)).size] as [string, number]];
  });
}

/** Whether every file initdb made is still there, as large as it was. */
function whole(template: string): boolean {
  try {
    const files = JSON.parse(readFileSync(join(template, FILES), 'utf8')) as [string, number][];
    return files.length > 0 && files.every(([path, size]) => statSync(join(template, 'data', path)).size === size);
  } catch {
    return false;
  }
}

/**
 * Made by this user (or, as root, by the server user, who owns every cluster anyway), and nobody
 * else can write to it. Its name is predictable and TMPDIR often writable by all: a
 * directory someone else put there would be copied into the new cluster.
 */
function trusted(template: string, ids: Ids): boolean {
  return ownedPrivately(template, ids?.uid ?? process.getuid?.(), 0o077);
}

function chownTree(dir: string, ids: NonNullable<Ids>): void {
  chownSync(dir, ids.uid, ids.gid);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) chownTree(path, ids);
    else chownSync(path, ids.uid, ids.gid);
  }
}

/** XLogLongPageHeaderData: xlp_info's XLP_LONG_HEADER bit, and where xlp_sysid is. */
const XLP_LONG_HEADER = 0x0002;
const WAL_SYSID_AT = 24;

/** A system identifier of its own for a copied data directory: in pg_control and in each WAL segment's first page. */
export function newSystemIdentifier(dataDir: string): bigint {
  const controlPath = join(dataDir, 'global', 'pg_control');
  const control = readFileSync(controlPath);
  const old = control.readBigUInt64LE(0);
  // ControlFileData's CRC covers the struct up to itself, whose size differs between majors: it
  // is where the CRC of what precedes it is found.
  let crcAt = -1;
  for (let at = 8; at + 4 <= Math.min(control.length, 1024); at += 4) {
    if (crc32c(control.subarray(0, at)) === control.readUInt32LE(at)) {
      crcAt = at;
      break;
    }
  }
  if (crcAt < 0) throw new Error(`${controlPath}: its CRC was not found (not a pg_control this code knows)`);
  // As initdb makes one: the time in the high half; the low half random (initdb: microseconds and pid).
  const id = (BigInt(Math.floor(Date.now() / 1000)) << 32n) | BigInt(randomBytes(4).readUInt32LE(0));
  const segments = readdirSync(join(dataDir, 'pg_wal')).filter((f) => /^[0-9A-F]{24}$/.test(f));
  const header = Buffer.alloc(WAL_SYSID_AT + 8);
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(id);
  for (const segment of segments) {
    const fd = openSync(join(dataDir, 'pg_wal', segment), 'r+');
    try {
      readSync(fd, header, 0, header.length, 0);
      if (!(header.readUInt16LE(2) & XLP_LONG_HEADER) || header.readBigUInt64LE(WAL_SYSID_AT) !== old)
        throw new Error(`${segment}: its first page header does not carry the cluster's system identifier`);
      writeSync(fd, bytes, 0, 8, WAL_SYSID_AT);
    } finally {
      closeSync(fd);
    }
  }
  control.writeBigUInt64LE(id, 0);
  control.writeUInt32LE(crc32c(control.subarray(0, crcAt)), crcAt);
  writeFileSync(controlPath, control);
  return id;
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli), as Postgres computes pg_control's. */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
