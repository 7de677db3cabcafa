import type pg from 'pg';
import { UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { formatLsn, parseLsn } from '../core/lsn.js';
import { quoteIdent } from '../core/sql.js';
import { NotASegmentError } from '../segment/format.js';
import type { StreamIdentity } from '../segment/writer.js';
import type { Store } from '../store/store.js';
import { listBases } from '../log/bases.js';
import { listDiscontinuities, recordDiscontinuity } from '../log/discontinuities.js';
import { readSegmentHeader } from '../log/segments.js';
import { lastSegment } from '../log/archive-index.js';
import { WriterLease } from '../log/lease.js';
import { checkStream, ensureStream } from '../log/stream.js';
import { storeWrappingKey } from '../log/kms-keys.js';
import { connect, connectQuietly } from '../source/connection.js';
import { installDdlCapture } from '../source/ddl-capture.js';
import { recordsSequences } from '../source/logical-messages.js';
import { checkSource, ensurePublication, publicationProblem, warnOfEmptyPublication, warnOfRowFilters } from '../source/preflight.js';
import { findSlot, refuseForeignSlot, type SlotState } from '../source/slot.js';
import { takeBase } from '../base/take.js';
import type { WrappingKey } from '../core/key-wrap.js';
import { keyForNewFiles, newestEncryption } from '../log/encrypted-archive.js';

// Where an archiver starts (docs/ARCHITECTURE.md, "Resume"): the end of what the store holds,
// checked against the slot, so that a slot that lost or skipped changes is never streamed into
// the archive as if nothing were missing.

const REBASE_HINT =
  'pgtape archive --rebase goes on with a new slot and a new base, and records the discontinuity (replay works on either side of it, never across); or pass the --slot this archive was made with';

/** What deciding where to start needs to know of the archiver's options. */
export interface ResumeOptions {
  source: string;
  store: Store;
  slot: string;
  publication: string;
  createPublication: boolean;
  force: boolean;
  /** Store everything committed up to this point, then stop: 'now' is the source's WAL position at start. */
  until?: 'now' | bigint;
  /** Install event triggers that record DDL as logical messages replay executes at their point. */
  captureDdl?: boolean;
  /** A lost slot, or one that moved past the archive: go on with a new slot and base, recording the discontinuity. */
  rebase?: boolean;
  /** --encrypt: segments and bases are encrypted for this key. */
  encryptFor?: WrappingKey;
  log: Logger;
}

export interface StartPoint {
  identity: StreamIdentity;
  /** The store's writer lease, held from here on. */
  lease: WriterLease;
  /** Transactions whose commit starts before this are stored already. */
  resumeFrom: bigint;
  /** Stop once everything committed up to here is stored. */
  until?: bigint;
  /** The source has --capture-ddl installed: the archiver records the sequences' values every minute. */
  recordSequences: boolean;
  /** What segments are encrypted for: --encrypt, or the key of an encrypted archive the archiver holds. */
  encryptFor?: WrappingKey;
}

/** Why the slot can no longer continue an archive that ends at `end` (a hole), if it cannot. */
function slotProblem(name: string, slot: SlotState | undefined, end: bigint): string | undefined {
  if (!slot)
    return `replication slot ${quoteIdent(name)} does not exist, but the store holds an archive up to ${formatLsn(end)}: changes since then can no longer be archived into it`;
  if (slot.confirmedFlushLsn > end) {
    return `replication slot ${quoteIdent(slot.name)} has confirmed up to ${formatLsn(slot.confirmedFlushLsn)}, but the archive ends at ${formatLsn(end)}: changes between the two are not in the archive and Postgres will not send them again`;
  }
  return undefined;
}

/**
 * Before streaming: the source checked, the publication (and DDL capture) in place, and the
 * point to resume from — the end of the stored archive, or a new slot with its base, or (with
 * --rebase, when the slot cannot continue the archive) a new slot and base after a recorded
 * discontinuity.
 */
export async function prepareStart(options: ResumeOptions): Promise<StartPoint> {
  const { log, store } = options;
  await store.checkWritable();
  const storedEnd = await lastStoredEnd(store);
  const client = await connect(options.source);
  let lease: WriterLease | undefined;
  // A start refused before its stream began leaves the source as it found it.
  let createdPublication = false;
  let streamBegun = false;
  try {
    const facts = await checkSource(client);
    // Before anything is written, to the store or to the source (a publication, a slot): one
    // archiver at a time, and only of the store's stream.
    const candidate = { ...facts, publication: options.publication, slot: options.slot, newSlot: options.rebase };
    await checkStream(store, candidate);
    const newest = await newestEncryption(store);
    const encryptFor = await keyForNewFiles(store, options.encryptFor, 'pgtape archive', newest);
    const problem = await publicationProblem(client, options.publication, { create: options.createPublication, force: options.force });
    if (problem) throw problem;
    await refuseForeignSlot(client, options.slot, facts.database);
    lease = await WriterLease.acquire(store, options.slot, log);
    await ensureStream(store, candidate);
    await storeWrappingKey(store, encryptFor);
    if (encryptFor) {
      // Said at every start: a wrong key file would otherwise go unnoticed until a reader needs it.
      const before = newest?.keyId;
      log.info(
        {
          key: encryptFor.id,
          mode: encryptFor.kind === 'public' ? 'x25519' : encryptFor.kind,
          ...(encryptFor.kms ? { kmsKey: encryptFor.kms.keyArn } : {}),
          ...(before && before !== encryptFor.id ? { previousKey: before } : {}),
        },
        before && before !== encryptFor.id
          ? 'encrypting for a new key: files stored before stay under the previous one'
          : 'encrypting what is stored',
      );
    }
    createdPublication = await ensurePublication(client, options.publication, log);
    await warnOfRowFilters(client, options.publication, facts.serverVersion, log);
    await warnOfEmptyPublication(client, options.publication, log);
    if (options.captureDdl) await installCapture(client, options.publication, log);
    const identity = { ...facts, slot: options.slot };
    const slot = await findSlot(client, options.slot, facts.database, log);
    const baseOptions = { source: options.source, store, publication: options.publication, facts, log, encryptFor };
    const why = storedEnd !== undefined ? slotProblem(options.slot, slot, storedEnd) : undefined;
    let resumeFrom: bigint;
    if (storedEnd !== undefined && why) {
      if (!options.rebase) throw new UserError(why, REBASE_HINT);
      streamBegun = true;
      if (slot) {
        log.warn({ slot: slot.name }, 'dropping the slot that moved past the archive (--rebase)');
        await client.query('select pg_drop_replication_slot($1)', [slot.name]);
      }
      resumeFrom = await takeBase({ ...baseOptions, slot: options.slot });
      await recordDiscontinuity(store, {
        from: storedEnd,
        to: resumeFrom,
        reason: slot ? 'the slot had moved past the archive' : 'the slot was lost',
      });
      log.warn(
        { from: formatLsn(storedEnd), to: formatLsn(resumeFrom) },
        'rebased: a new slot and base; the changes between are not in the archive (recorded as a discontinuity)',
      );
    } else if (!slot) {
      // A new stream: the slot's exported snapshot gives the base, and the log starts where it ends.
      resumeFrom = await takeBase({ ...baseOptions, slot: options.slot });
      streamBegun = true;
    } else {
      streamBegun = true;
      if ((await listBases(store)).length === 0) {
        log.warn('the store holds no base, without which nothing can be replayed: taking one now');
        await takeBase(baseOptions);
      }
      resumeFrom = storedEnd ?? slot.confirmedFlushLsn;
    }
    const r = await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
    const current = parseLsn(r.rows[0]!.lsn);
    const until = options.until === 'now' ? current : options.until;
    if (until !== undefined && options.until !== 'now') {
      // Said, so that neither an instant exit nor a long wait leaves the operator guessing.
      if (until <= resumeFrom) {
        log.warn(
          { until: formatLsn(until), archiveEnd: formatLsn(resumeFrom) },
          'nothing to wait for: everything up to --until is already stored (the archive ends past it)',
        );
      } else if (until > current) {
        log.info(
          { until: formatLsn(until), sourceAt: formatLsn(current) },
          'waiting for the source to write WAL up to --until, then storing everything committed before it',
        );
      }
    }
    return { identity, lease, resumeFrom, until, recordSequences: await recordsSequences(client), encryptFor };
  } catch (err) {
    if (createdPublication && !streamBegun) {
      await client.query(`drop publication if exists ${quoteIdent(options.publication)}`).catch(() => {});
      log.info({ publication: options.publication }, 'dropped the publication this refused start had created');
    }
    await lease?.release();
    throw err;
  } finally {
    await client.end().catch(() => {});
  }
}

async function installCapture(client: pg.Client, publication: string, log: Logger): Promise<void> {
  await installDdlCapture(client, publication, log).catch((err: { code?: string; message?: string }) => {
    throw err.code === '42501'
      ? new UserError(
          `--capture-ddl: ${err.message}`,
          'event triggers need a superuser: install once as one (pgtape archive --capture-ddl --until now), then archive as the usual role',
        )
      : err;
  });
}

/** Before streaming again after an outage: the slot must still exist and must not have moved past `end`. */
export async function checkSlotStillOurs(
  options: Pick<ResumeOptions, 'source' | 'slot' | 'log'>,
  database: string,
  end: bigint,
): Promise<void> {
  const client = await connectQuietly(options.source);
  try {
    const why = slotProblem(options.slot, await findSlot(client, options.slot, database, options.log), end);
    if (why) throw new UserError(why, REBASE_HINT);
  } finally {
    await client.end().catch(() => {});
  }
}

/** The end of the archive as stored: read from the last segment's header, which also proves it is ours. */
async function lastStoredEnd(store: Store): Promise<bigint | undefined> {
  const last = await lastSegment(store);
  // After a rebase, the archive goes on from the new base, before its first segment is stored.
  const rebased = (await listDiscontinuities(store)).at(-1);
  if (rebased && (!last || rebased.to >= last.endLsn)) return rebased.to;
  if (!last) return undefined;
  try {
    const header = await readSegmentHeader(store, last.key);
    if (header.endLsn !== last.endLsn) {
      throw new UserError(
        `${store.description}/${last.key} says it ends at ${formatLsn(header.endLsn)}, unlike its name`,
        'run pgtape verify',
      );
    }
    return header.endLsn;
  } catch (err) {
    if (err instanceof NotASegmentError) {
      throw new UserError(err.message, "the store holds something that is not pgtape's: move it away, or choose another --store");
    }
    throw err;
  }
}
