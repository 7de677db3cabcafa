import { mapLimit } from '../core/concurrency.js';
import {
  decodeWrappedKey,
  opensKey,
  encodeWrappedKey,
  unwrapDataKey,
  wrapDataKey,
  type StoredWrappedKey,
  type WrappedKey,
  type WrappingKey,
} from '../core/key-wrap.js';
import { decodeHead, encodeHead, type SegmentHeader } from '../segment/format.js';
import { rewrapSegmentHead, type Rewrap } from '../segment/encryption.js';
import { readAll } from '../store/read.js';
import type { Store } from '../store/store.js';
import { baseFileContext, listBases, readBaseManifest } from './bases.js';
import { keysOf } from './keys.js';
import { listIndexObjects, refreshIndexObject } from './segment-index.js';
import { streamSegments } from './segments.js';

// pgtape rekey (docs/ARCHITECTURE.md, "Encryption at rest"): every data key of an encrypted
// archive wrapped again for a new key, without touching a body — a segment's header, a base's
// manifest and the index objects that copy them are rewritten whole (each write is atomic), so an
// interrupted rekey leaves every file readable with the old key or the new one, and running it
// again finishes it.

export interface RekeyResult {
  /** Objects rewritten, by kind. */
  rewritten: { segments: number; bases: number; indexObjects: number };
  /** Encrypted objects already under the new key. */
  already: number;
  /** Key ids of files that no key given opens: those files are left as they are. */
  missing: string[];
}

/** Files read and rewritten at once (a remote store's latency overlaps). */
const CONCURRENCY = 4;

export async function rekeyArchive(store: Store, to: WrappingKey, onRewritten: (key: string) => void): Promise<RekeyResult> {
  const keys = keysOf(store) ?? [];
  const missing = new Set<string>();
  const result: RekeyResult = { rewritten: { segments: 0, bases: 0, indexObjects: 0 }, already: 0, missing: [] };
  let touched = false;
  // The same object when nothing is to be done: callers tell "changed" by identity.
  const rewrap: Rewrap = (w: WrappedKey, context: Buffer, what: string) => {
    if (w.keyId === to.id) return w;
    if (!opensKey(keys, w.keyId)) {
      missing.add(w.keyId);
      return w;
    }
    touched = true;
    return wrapDataKey(to, unwrapDataKey(keys, w, context, what), context);
  };
  /** Runs `rewrite` over one object; true when it wrapped a key again. */
  const changes = (rewrite: () => void): boolean => {
    touched = false;
    rewrite();
    return touched;
  };

  const segments: { key: string; size: number }[] = [];
  for await (const s of streamSegments(store)) segments.push({ key: s.key, size: s.size });
  // Every encrypted segment as it is stored now: the index objects that copy it are made to say so.
  const current = new Map<string, { size: number; header: SegmentHeader }>();
  await mapLimit(segments, CONCURRENCY, async (s) => {
    const file = await readAll(store, s.key, s.size);
    const what = `${store.description}/${s.key}`;
    const { header, bodyOffset } = decodeHead(file, what);
    if (!header.encryption) return;
    let next = header.encryption;
    if (!changes(() => (next = rewrapSegmentHead(header, rewrap, what)))) {
      if (header.encryption.dataKey.keyId === to.id) result.already++;
      current.set(s.key, { size: file.length, header });
      return;
    }
    const rewritten = Buffer.concat([encodeHead({ ...header, encryption: next }), file.subarray(bodyOffset)]);
    await store.putBytes(s.key, rewritten);
    current.set(s.key, { size: rewritten.length, header: { ...header, encryption: next } });
    result.rewritten.segments++;
    onRewritten(s.key);
  });

  for (const base of await listBases(store)) {
    const manifest = await readBaseManifest(store, base);
    if (!manifest.schemaKey) continue;
    const again = (stored: StoredWrappedKey, file: string) =>
      encodeWrappedKey(rewrap(decodeWrappedKey(stored), baseFileContext(base.prefix + file), `${store.description}/${base.prefix}${file}`));
    const rewritten = { ...manifest };
    if (
      !changes(() => {
        rewritten.schemaKey = again(manifest.schemaKey!, 'schema.json');
        rewritten.tables = manifest.tables.map((t) => (t.key ? { ...t, key: again(t.key, t.file) } : t));
      })
    ) {
      if (manifest.schemaKey.keyId === to.id) result.already++;
      continue;
    }
    await store.putBytes(`${base.prefix}manifest.json`, Buffer.from(JSON.stringify(rewritten, null, 2)));
    result.rewritten.bases++;
    onRewritten(`${base.prefix}manifest.json`);
  }

  // Index objects copy segment headers and marks, and name the smaller objects with their sizes:
  // rewritten after the segments they describe, smallest first.
  const objectSizes = new Map<string, number>();
  const objects = (await listIndexObjects(store)).sort((a, b) => a.group - b.group);
  for (const o of objects) {
    const size = await refreshIndexObject(store, o, current, objectSizes);
    if (size === undefined) continue;
    objectSizes.set(o.key, size);
    result.rewritten.indexObjects++;
    onRewritten(o.key);
  }
  result.missing = [...missing].sort();
  return result;
}
