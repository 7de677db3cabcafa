import { sleepUnlessAborted } from '../core/concurrency.js';
import type { Logger } from '../core/log.js';
import { buildIndex } from '../log/segment-index.js';
import type { Store } from '../store/store.js';

/** How often the archiver looks for a whole group of segments to index: two listings, from the last index object on. */
const CHECK_MS = 15_000;

/**
 * Writes index objects as the archive grows (docs/ARCHITECTURE.md, "Index objects"): every
 * `group` segments stored, one object holding their headers and marks. Beside the archiver's
 * loop, never in it: a failure is logged and tried again, and costs the archiving nothing.
 */
export async function keepIndex(options: { store: Store; group: number; log: Logger; signal: AbortSignal }): Promise<void> {
  const { store, group, log, signal } = options;
  while (!signal.aborted) {
    await sleepUnlessAborted(CHECK_MS, signal);
    if (signal.aborted) break;
    try {
      const written = await buildIndex(store, group);
      if (written.length) log.info({ objects: written }, 'stored index objects');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'could not write index objects: trying again');
    }
  }
}
