import type pg from 'pg';
import { BASES_DIR } from '../log/bases.js';
import { indexArchive, segmentTotals } from '../log/archive-index.js';
import { newestBaseFacts } from '../log/newest-base.js';
import { formatLsn, parseLsn } from '../core/lsn.js';
import { formatBytes, formatMicros } from '../core/units.js';
import type { Store } from '../store/store.js';
import { readStreamRecord } from '../log/stream-record.js';

export interface StreamStatus {
  slot:
    | { name: string; exists: false }
    | {
        name: string;
        exists: true;
        active: boolean;
        confirmedFlushLsn: string | null;
        restartLsn: string | null;
        retainedWalBytes: number | null;
        walStatus: string | null;
      };
  source: { currentLsn: string; time: string };
  archive: {
    firstBase: string | null;
    bases: number;
    segments: number;
    endLsn: string | null;
    lastCommitLsn: string | null;
    lastCommitTime: string | null;
    /** What the store holds, bases and segments. */
    bytes: number;
    /** The base a replay of latest starts from, and the changes it then applies (pgtape compact makes a newer one). */
    newestBase: { lsn: string; snapshotTime: string; ageSeconds: number; segmentsSince: number; bytesSince: number } | null;
  };
  /** WAL written on the source since the end of the archive, and how old its last commit is. */
  behind: { bytes: number | null; lastCommitAgeSeconds: number | null };
  warnings: string[];
}

/**
 * The health of a stream, from the source's catalog and the store alone: the slot, what it
 * retains, how far the archive is behind, and what would lose data if left alone.
 */
export async function streamStatus(client: pg.Client, store: Store, slotName: string, maxRetainedWal: number): Promise<StreamStatus> {
  const { rows: now } = await client.query<{ lsn: string; time: Date }>(
    'select pg_current_wal_lsn()::text as lsn, clock_timestamp() as time',
  );
  const currentLsn = parseLsn(now[0]!.lsn);
  const { rows } = await client.query<{
    active: boolean;
    confirmed: string | null;
    restart: string | null;
    retained: string | null;
    wal_status: string | null;
    database: string | null;
    here: string;
  }>(
    `select active, confirmed_flush_lsn::text as confirmed, restart_lsn::text as restart,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text as retained, wal_status, database, current_database() as here
       from pg_replication_slots where slot_name = $1`,
    [slotName],
  );
  // Through the index objects: a few reads, not a listing of every segment (docs/ARCHITECTURE.md, "Index objects").
  const index = await indexArchive(store, { requireBase: false, allowEmpty: true });
  const { bases } = index;
  const totals = await segmentTotals(index);
  const baseBytes = (await store.list(BASES_DIR)).reduce((n, o) => n + o.size, 0);
  const newest = await newestBaseFacts(store);
  const end = index.endLsn ?? bases.at(-1)?.lsn;
  const lastCommit = index.lastCommit;

  const warnings: string[] = [];
  const stream = await readStreamRecord(store);
  const { rows: here } = await client.query<{ database: string }>('select current_database() as database');
  if (end === undefined) warnings.push(`${store.description} holds no archive (no base, no segment): check --store`);
  if (stream && stream.database !== here[0]!.database) {
    warnings.push(`${store.description} archives database ${stream.database}, not ${here[0]!.database}: check --source and --store`);
  }
  const row = rows[0];
  if (row && row.database !== row.here) {
    warnings.push(`slot ${slotName} decodes database ${row.database}, not ${row.here}: it records nothing of this database (check --slot)`);
  }
  const slot: StreamStatus['slot'] = row
    ? {
        name: slotName,
        exists: true,
        active: row.active,
        confirmedFlushLsn: row.confirmed,
        restartLsn: row.restart,
        retainedWalBytes: row.retained === null ? null : Number(row.retained),
        walStatus: row.wal_status,
      }
    : { name: slotName, exists: false };
  if (!slot.exists) {
    warnings.push(
      end === undefined
        ? `slot ${slotName} does not exist and the archive is empty: nothing is being recorded (start pgtape archive)`
        : `slot ${slotName} does not exist: nothing after ${formatLsn(end)} is being recorded, and the archive will have a hole there (pgtape archive refuses to continue; take a new base)`,
    );
  } else {
    if (slot.confirmedFlushLsn && end !== undefined && parseLsn(slot.confirmedFlushLsn) > end) {
      warnings.push(
        `slot ${slotName} has confirmed ${slot.confirmedFlushLsn}, beyond the end of the archive (${formatLsn(end)}): the transactions between are lost to the archive (a hole)`,
      );
    }
    if (slot.retainedWalBytes !== null && slot.retainedWalBytes > maxRetainedWal) {
      warnings.push(
        `slot ${slotName} retains ${formatBytes(slot.retainedWalBytes)} of WAL, more than --max-retained-wal (${formatBytes(maxRetainedWal)}): ${slot.active ? 'the archiver is falling behind' : 'no archiver is connected'}, and the source's disk fills`,
      );
    }
    if (slot.walStatus === 'lost')
      warnings.push(`slot ${slotName} has lost WAL it needed (wal_status lost): the archive cannot continue from it`);
    if (!slot.active) warnings.push(`slot ${slotName} is not in use: no archiver is connected`);
  }
  const lastCommitMicros = lastCommit?.time;
  return {
    slot,
    source: { currentLsn: formatLsn(currentLsn), time: now[0]!.time.toISOString() },
    archive: {
      firstBase: bases[0] ? formatLsn(bases[0].lsn) : null,
      bases: bases.length,
      segments: totals.segments,
      endLsn: end === undefined ? null : formatLsn(end),
      lastCommitLsn: lastCommit ? formatLsn(lastCommit.lsn) : null,
      lastCommitTime: lastCommitMicros === undefined ? null : formatMicros(lastCommitMicros),
      bytes: baseBytes + totals.bytes,
      newestBase: newest
        ? {
            lsn: formatLsn(newest.base.lsn),
            snapshotTime: newest.snapshotTime,
            ageSeconds: Math.max(0, (now[0]!.time.getTime() - Date.parse(newest.snapshotTime)) / 1000),
            segmentsSince: newest.segmentsSince,
            bytesSince: newest.bytesSince,
          }
        : null,
    },
    behind: {
      bytes: end === undefined ? null : Math.max(0, Number(currentLsn - end)),
      lastCommitAgeSeconds:
        lastCommitMicros === undefined ? null : Math.max(0, (now[0]!.time.getTime() * 1000 - Number(lastCommitMicros)) / 1e6),
    },
    warnings,
  };
}
