import type { Store } from './store.js';

/** A whole (small) object in memory: manifests and schemas. */
export async function readAll(store: Store, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of store.read(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
