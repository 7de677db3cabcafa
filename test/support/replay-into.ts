import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { LocalCluster } from '../../src/local-pg/local-cluster.js';
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

/**
 * `pgtape replay --pgdata` a new data directory (with `args`); `inspect` reads the handed-over
 * cluster (when the replay succeeded), started as any cluster would be, before it is removed.
 */
export async function replayIntoNewPgdata<T>(
  args: string[],
  inspect: (client: pg.Client, pgdata: string) => Promise<T>,
): Promise<{ r: CliResult; seen?: T }> {
  // As root, the server runs as an unprivileged user: the data directory's parent must let it in.
  const parent = mkdtempSync(join(tmpdir(), 'pgtape-pgdata-'));
  chmodSync(parent, 0o755);
  const out = join(parent, 'pgdata');
  try {
    const r = await pgtape(['replay', ...args, '--pgdata', out]);
    if (r.code !== 0) return { r };
    const cluster = await LocalCluster.open(out);
    try {
      const client = new pg.Client({ connectionString: cluster.url() });
      await client.connect();
      try {
        return { r, seen: await inspect(client, out) };
      } finally {
        await client.end();
      }
    } finally {
      await cluster.stop();
    }
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
}

/**
 * A `diff --format sql` patch applied as psql -f applies it, statement by statement: the enum
 * labels before `begin;` are committed before the rows use them (one query of it all would be one
 * transaction). A failure names `what` and the text near where it failed.
 */
export async function applyPatch(client: pg.Client, patch: string, what: string): Promise<void> {
  const split = patch.indexOf('\nbegin;\n');
  for (const part of split < 0 ? [patch] : [patch.slice(0, split + 1), patch.slice(split + 1)])
    await client.query(part).catch((err: Error & { position?: string; where?: string }) => {
      const at = Number(err.position ?? 0);
      throw new Error(`${what}: ${err.message} (${err.where ?? ''}) near: ${part.slice(Math.max(0, at - 300), at + 100)}`);
    });
}

/** `pgtape diff --format sql` between two marks of a store: the patch from one to the other. */
export function patchBetween(store: string, fromMark: string, toMark: string): Promise<CliResult> {
  return pgtape(['diff', '--store', store, '--from', `name:${fromMark}`, '--to', `name:${toMark}`, '--format', 'sql']);
}
