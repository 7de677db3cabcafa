import { lsnKey, parseLsnKey } from '../core/lsn.js';
import { readAll } from '../store/read.js';
import type { Store, StoredObject } from '../store/store.js';

// A discontinuity: the archive lost its slot (or the slot moved past it) and went on with a new
// slot and a new base (`pgtape archive --rebase`). Nothing between `from` (the end of the archive
// then) and `to` (the new base) was recorded; replay works on either side, never across.
//   discontinuities/<fromLSN16>-<toLSN16>.json

export const DISCONTINUITIES_DIR = 'discontinuities/';

export interface Discontinuity {
  /** Its record in the store. */
  record: StoredObject;
  from: bigint;
  to: bigint;
  reason: string;
  at: string;
}

export async function listDiscontinuities(store: Store): Promise<Discontinuity[]> {
  const out: Discontinuity[] = [];
  for (const o of await store.list(DISCONTINUITIES_DIR)) {
    const m = /^discontinuities\/([0-9A-F]{16})-([0-9A-F]{16})\.json$/.exec(o.key);
    if (!m) continue;
    const body = JSON.parse((await readAll(store, o.key)).toString('utf8')) as { reason?: string; at?: string };
    out.push({ record: o, from: parseLsnKey(m[1]!)!, to: parseLsnKey(m[2]!)!, reason: body.reason ?? 'unknown', at: body.at ?? '' });
  }
  return out.sort((a, b) => (a.from < b.from ? -1 : 1));
}

export async function recordDiscontinuity(store: Store, d: Omit<Discontinuity, 'at' | 'record'>): Promise<void> {
  const body = { from: d.from.toString(16), to: d.to.toString(16), reason: d.reason, at: new Date().toISOString() };
  await store.putBytes(`${DISCONTINUITIES_DIR}${lsnKey(d.from)}-${lsnKey(d.to)}.json`, Buffer.from(JSON.stringify(body, null, 2)));
}
