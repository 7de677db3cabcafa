import { ExitCode, UserError } from '../core/errors.js';
import type { Store } from '../store/store.js';
import { listBases, readBase, readBaseManifest } from './bases.js';
import { listSegments, readSegmentHeader } from './segments.js';
import { readStreamRecord, STREAM_KEY, streamDifferences as differences, type StreamRecord } from './stream-record.js';

// An archive holds one stream (docs/ARCHITECTURE.md, Store layout): one source system, one
// database, one publication, one slot name. Its identity is written once, before anything else,
// and every writer checks it before it writes: a base, archive or rebase of another database or
// publication is refused instead of being mixed in.
//   stream.json

/** Who wants to write: the source it connected to and what it archives. */
export interface StreamCandidate {
  systemIdentifier: string;
  database: string;
  publication: string;
  /** Absent for `pgtape base`, which uses a temporary slot of its own. */
  slot?: string;
  /** `archive --rebase` may go on under another slot name. */
  newSlot?: boolean;
}

/**
 * Checks that `candidate` belongs to the store's stream, recording the stream first when the
 * store has none: from the candidate for an empty store, or from the archive already there (its
 * first base and last segment; archives written before the record existed), which must agree.
 */
export async function ensureStream(store: Store, candidate: StreamCandidate): Promise<StreamRecord> {
  const { record, changed } = await streamFor(store, candidate);
  if (changed) await store.putBytes(STREAM_KEY, Buffer.from(JSON.stringify(record, null, 2) + '\n'));
  return record;
}

/**
 * The same refusals as ensureStream, writing nothing: checked before the writer's lease is
 * taken, so that a start refused for belonging to another stream leaves the store untouched.
 */
export async function checkStream(store: Store, candidate: StreamCandidate): Promise<void> {
  await streamFor(store, candidate);
}

/** The stream record the candidate continues (refusing one of another stream), and whether it is new or changed. */
async function streamFor(store: Store, candidate: StreamCandidate): Promise<{ record: StreamRecord; changed: boolean }> {
  const record = await readStreamRecord(store);
  if (record && !differences(record, candidate).length) {
    if (candidate.slot && record.slot !== candidate.slot) return { record: { ...record, slot: candidate.slot }, changed: true };
    return { record, changed: false };
  }
  // The store's history, read only when there is no record or it disagrees: a record alone
  // (its first base failed) holds no history yet, and the next writer may start anew.
  const found = await identityOfArchive(store);
  if (record && found) refuse(store, differences(record, candidate));
  const slot = candidate.slot ?? found?.slot;
  const fresh: StreamRecord = {
    formatVersion: 1,
    systemIdentifier: found?.systemIdentifier ?? candidate.systemIdentifier,
    database: found?.database ?? candidate.database,
    publication: candidate.publication,
    // A store whose first writer is `pgtape base` learns its slot from the first archiver.
    slot: slot ?? '',
    createdAt: new Date().toISOString(),
  };
  refuse(store, differences(fresh, candidate));
  return { record: fresh, changed: true };
}

function refuse(store: Store, differences: string[]): void {
  if (differences.length) {
    throw new UserError(
      `${store.description} archives another stream: ${differences.join('; ')}`,
      `an archive holds one stream: give this one a --store of its own (or pass the --source, --publication and --slot the archive was made with); ${STREAM_KEY} in the store says which stream it holds`,
      ExitCode.BAD_INPUT,
    );
  }
}

/** The identity an archive written before stream.json existed shows in its first base and last segment. */
async function identityOfArchive(store: Store): Promise<Partial<StreamRecord> | undefined> {
  const bases = await listBases(store);
  const segments = await listSegments(store);
  if (!bases.length && !segments.length) return undefined;
  const out: Partial<StreamRecord> = {};
  if (bases.length) {
    // A newer manifest says it (an encrypted base's schema needs a key); an older one's schema does.
    const manifest = await readBaseManifest(store, bases[0]!);
    const facts = manifest.systemIdentifier !== undefined ? manifest : (await readBase(store, bases[0]!)).schema;
    out.systemIdentifier = facts.systemIdentifier;
    out.database = facts.database;
  }
  const last = segments.at(-1);
  if (last) {
    const header = await readSegmentHeader(store, last.key);
    out.systemIdentifier ??= header.systemIdentifier;
    out.database ??= header.database;
    out.slot = header.slot;
  }
  return out;
}
