import type { Logger } from '../../core/log.js';
import { errorMessage } from '../../core/errors.js';
import { baseTableDamaged, manifestEntry, readBaseTable, type BaseManifest, type BaseRef, type BaseTable } from '../../log/bases.js';
import type { Store } from '../../store/store.js';
import type { DiffHelper } from './diff-helper.js';

/** A base table read ahead into its parts: by which key, its columns, and the records each part got. */
export interface BaseReadAhead {
  keys: string[];
  columns: string[];
  counts: number[];
}

/** Decompressed chunks handed to the helper and not split yet: beyond, the read waits (memory stays bounded). */
const IN_FLIGHT = 4;

/**
 * The base's rows of large tables, split into their parts' files by the helper thread while the
 * main thread folds the range (docs/ARCHITECTURE.md, "diff on two cores"): reading the base
 * after the range was a quarter of a large diff. The keys whose rows are needed are known only
 * once the range is folded, so every row goes to its part (a temporary copy of the table on
 * disk), and the comparison skips those it does not need by their key alone. `tables` are those
 * keyed on their primary key in the base, each with its part count.
 *
 * A failure (a damaged file, the helper stopped) ends the reading ahead: the tables not read
 * ahead are read after the range as before, where a damaged file is said if its rows are needed.
 */
export function readBaseAhead(
  helper: DiffHelper,
  store: Store,
  base: BaseRef,
  manifest: BaseManifest,
  tables: { table: BaseTable; parts: number }[],
  dir: string,
  log: Logger,
): { done: Promise<Map<number, BaseReadAhead>>; stop: () => void } {
  let stopped = false;
  const done = (async () => {
    const out = new Map<number, BaseReadAhead>();
    try {
      for (const { table, parts } of tables) {
        if (stopped) break;
        const keys = table.columns.filter((c) => table.primaryKey.includes(c.name)).map((c) => c.name);
        const positions = keys.map((k) => table.columns.findIndex((c) => c.name === k));
        await helper.baseStart({ oid: table.oid, dir, parts, positions });
        const entry = manifestEntry(store, base, manifest, table);
        const { text, sha256 } = readBaseTable(store, base, table, entry);
        const pending: Promise<null>[] = [];
        try {
          for await (const chunk of text as AsyncIterable<Buffer>) {
            if (stopped) break;
            const split = helper.baseChunk(chunk);
            split.catch(() => {}); // awaited below
            pending.push(split);
            if (pending.length >= IN_FLIGHT) await pending.shift();
          }
        } finally {
          text.destroy();
        }
        await Promise.all(pending);
        if (stopped) break;
        if (sha256() !== entry.sha256) throw baseTableDamaged(store, base, table);
        out.set(table.oid, { keys, columns: table.columns.map((c) => c.name), counts: await helper.baseEnd() });
      }
    } catch (err) {
      log.debug({ err: errorMessage(err) }, 'diff stopped reading the base ahead: the tables left are read after the range');
    }
    return out;
  })();
  return {
    done,
    stop: () => {
      stopped = true;
    },
  };
}
