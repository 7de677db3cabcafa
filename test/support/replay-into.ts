import pg from 'pg';
import { pgtape, type CliResult } from './cli.js';
import type { SourceFixture } from './fixture.js';

let fresh = 0;

/**
 * `pgtape replay --into` a fresh database of the source's cluster; `inspect` reads it (when the
 * replay succeeded) before it is dropped.
 */
export async function replayIntoFresh<T>(
  source: SourceFixture,
  args: string[],
  inspect: (client: pg.Client) => Promise<T>,
  env: NodeJS.ProcessEnv = {},
): Promise<{ r: CliResult; seen?: T }> {
  const db = `replayed_${process.pid}_${fresh++}`;
  await source.admin.query(`create database ${db}`);
  const url = new URL(source.db.url());
  url.pathname = `/${db}`;
  try {
    const r = await pgtape(['replay', ...args, '--into', url.toString()], env);
    if (r.code !== 0) return { r };
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      return { r, seen: await inspect(client) };
    } finally {
      await client.end();
    }
  } finally {
    await source.admin.query(`drop database ${db}`);
  }
}
