import { randomBytes } from 'node:crypto';
import type { Logger } from '../core/log.js';
import { formatLsn } from '../core/lsn.js';
import type { SourceFacts } from '../source/preflight.js';
import { createSlotWithSnapshot } from '../source/slot.js';
import type { Store } from '../store/store.js';
import { captureBase } from './capture.js';

/**
 * Takes a base in the snapshot of a new slot: the archiving slot itself when `slot` is given
 * (so the change log starts exactly where the base ends), or else a temporary slot that lives
 * only as long as the copy. Returns the base's LSN.
 */
export async function takeBase(options: {
  source: string;
  store: Store;
  publication: string;
  facts: SourceFacts;
  log: Logger;
  slot?: string;
}): Promise<bigint> {
  const name = options.slot ?? `pgtape_base_${randomBytes(4).toString('hex')}`;
  const exported = await createSlotWithSnapshot(options.source, name, { temporary: !options.slot });
  options.log.info(
    { slot: name, temporary: !options.slot, lsn: formatLsn(exported.lsn) },
    'created replication slot with an exported snapshot',
  );
  try {
    await captureBase({ ...options, lsn: exported.lsn, snapshot: exported.snapshot });
  } finally {
    await exported.release();
  }
  return exported.lsn;
}
