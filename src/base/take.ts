import { randomBytes } from 'node:crypto';
import type { WrappingKey } from '../core/key-wrap.js';
import type { Logger } from '../core/log.js';
import { formatLsn } from '../core/lsn.js';
import type { SourceFacts } from '../source/preflight.js';
import { createSlotWithSnapshot, dropSlot } from '../source/slot.js';
import type { Store } from '../store/store.js';
import { ensureStream } from '../log/stream.js';
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
  /** Encrypts the base for this key. */
  encryptFor?: WrappingKey;
}): Promise<bigint> {
  // Nothing is written for a source or publication that is not the archive's.
  await ensureStream(options.store, { ...options.facts, publication: options.publication, slot: options.slot });
  const name = options.slot ?? `pgtape_base_${randomBytes(4).toString('hex')}`;
  const exported = await createSlotWithSnapshot(options.source, name, { temporary: !options.slot });
  options.log.info(
    { slot: name, temporary: !options.slot, lsn: formatLsn(exported.lsn) },
    'created replication slot with an exported snapshot',
  );
  try {
    await captureBase({ ...options, lsn: exported.lsn, snapshot: exported.snapshot });
  } catch (err) {
    await exported.release();
    // A permanent slot made for a base that failed would hold WAL on the source forever.
    if (options.slot) await dropSlot(options.source, name, options.log);
    throw err;
  }
  await exported.release();
  return exported.lsn;
}
