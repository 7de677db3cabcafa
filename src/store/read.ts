import type { Store } from './store.js';

/** A whole object in memory (manifests, schemas, segments read ahead); `size` when known sizes the reads. */
export async function readAll(store: Store, key: string, size?: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of store.read(key, { size })) chunks.push(chunk as Buffer);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}
