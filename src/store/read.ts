import { createHash } from 'node:crypto';
import type { Store } from './store.js';

/** A whole object in memory (manifests, schemas, segments read ahead); `size` when known sizes the reads. */
export async function readAll(store: Store, key: string, size?: number): Promise<Buffer> {
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
