import { createHash } from 'node:crypto';
import type { Store } from './store.js';

/** A whole object in memory (manifests, schemas, segments read ahead); `size` when known sizes the reads. */
export async function readAll(store: Store, key: string, size?: number): Promise<Buffer> {
  // A local file of known size is read straight into one buffer: read in chunks and joined, each
  // byte is copied once more into memory the process touches for the first time (a replay reads
  // its segments ahead this way). A byte more is asked for, so that a file larger than said is
  // read whole as it is.
  if (size !== undefined && !store.remote) {
    const buf = await store.readRange(key, 0, size + 1);
    if (buf.length <= size) return buf;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of store.read(key, { size })) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** The SHA-256 (hex) of an object as stored, streamed: a base table file can be far larger than memory. */
export async function sha256Of(store: Store, key: string, size?: number): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of store.read(key, { size })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
