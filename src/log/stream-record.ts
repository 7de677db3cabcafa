import { UserError } from '../core/errors.js';
import type { Store } from '../store/store.js';
import { readAll } from '../store/read.js';
import { quoteIdent } from '../core/sql.js';

// The stream record alone (docs/ARCHITECTURE.md, Store layout), below bases and segments: the
// writers check a candidate against it (stream.ts), and readers check each base they use.

export const STREAM_KEY = 'stream.json';

export interface StreamRecord {
  formatVersion: 1;
  /** pg_control_system().system_identifier: the cluster, kept across restarts and physical failover. */
  systemIdentifier: string;
  database: string;
  publication: string;
  /** The slot the archive streams from (a rebase makes it anew under the same name). */
  slot: string;
  createdAt: string;
}

export async function readStreamRecord(store: Store): Promise<StreamRecord | undefined> {
  if (!(await store.stat(STREAM_KEY))) return undefined;
  const text = (await readAll(store, STREAM_KEY)).toString('utf8');
  try {
    return JSON.parse(text) as StreamRecord;
  } catch (err) {
    throw new UserError(`${store.description}/${STREAM_KEY} is not valid JSON: ${(err as Error).message}`, 'run pgtape verify');
  }
}

/**
 * How a source, or a base found in the store, differs from the stream, in words (nothing: it
 * belongs to it). What `other` does not say (a base names no publication or slot) is not compared.
 */
export function streamDifferences(
  record: StreamRecord,
  other: { systemIdentifier: string; database?: string; publication?: string; slot?: string; newSlot?: boolean },
): string[] {
  const differences: string[] = [];
  if (record.systemIdentifier !== other.systemIdentifier) {
    differences.push(`the source is another Postgres system (${other.systemIdentifier}, the archive's is ${record.systemIdentifier})`);
  }
  if (other.database !== undefined && record.database !== other.database) {
    differences.push(`the source is database ${quoteIdent(other.database)}, the archive's is ${quoteIdent(record.database)}`);
  }
  if (other.publication !== undefined && record.publication !== other.publication) {
    differences.push(`the publication is ${quoteIdent(other.publication)}, the archive's is ${quoteIdent(record.publication)}`);
  }
  if (record.slot && other.slot && record.slot !== other.slot && !other.newSlot) {
    differences.push(`the slot is ${quoteIdent(other.slot)}, the archive's is ${quoteIdent(record.slot)}`);
  }
  return differences;
}
