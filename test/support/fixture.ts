import { readdirSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import type pg from 'pg';
import type { LocalClusterOptions } from '../../src/local-pg/local-cluster.js';
import { startPostgres, type TestPostgres } from './postgres.js';
import { tempStore } from './tape.js';

export interface SourceFixture {
  db: TestPostgres;
  /** A connected superuser client on the source. */
  admin: pg.Client;
  store: { dir: string; cleanup: () => void };
}

/**
 * Gives the calling test file a throwaway source database (with `schema` applied) and a fresh
 * store directory; both are removed after the file, whether its tests passed or not.
 */
export function useSource(schema?: string, options: LocalClusterOptions = {}): SourceFixture {
  // The store is made when first used (a describe whose tests are all skipped makes none, and
  // runs no afterAll to remove it).
  let store: SourceFixture['store'] | undefined;
  const fixture = {} as SourceFixture;
  Object.defineProperty(fixture, 'store', { get: () => (store ??= tempStore()), enumerable: true });
  beforeAll(async () => {
    fixture.db = await startPostgres(options);
    fixture.admin = await fixture.db.client();
    if (schema) await fixture.admin.query(schema);
  });
  afterAll(async () => {
    await fixture.db?.close();
    store?.cleanup();
  });
  return fixture;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(50);
  }
}

/**
 * What a command left in a temporary directory, but for the caches pgtape keeps there on purpose:
 * as root, the Postgres binaries copied where the server user can run them
 * (`pgtape-postgres-<fingerprint>`, src/local-pg/binaries.ts) and the data directory initdb made
 * once, which clusters are copied from (`pgtape-initdb-<key>`, src/local-pg/initdb-template.ts).
 * A template half made (`pgtape-initdb-partial-*`) is a leftover.
 */
export function leftIn(dir: string, ...alsoKept: string[]): string[] {
  const kept = (f: string) =>
    f.startsWith('pgtape-postgres-') ||
    (f.startsWith('pgtape-initdb-') && !f.startsWith('pgtape-initdb-partial-')) ||
    alsoKept.some((k) => f.startsWith(k));
  return readdirSync(dir).filter((f) => !kept(f));
}
