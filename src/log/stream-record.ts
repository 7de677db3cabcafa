import { UserError } from '../core/errors.js';
import type { Store } from '../store/store.js';
import { readAll } from '../store/read.js';

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
