import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/**
 * Runs a plain-format dump (pg_dump's SQL, as psql would run it) on a connection: SQL between
 * `COPY … FROM stdin;` blocks is sent as it is, each block's rows through COPY. Enough for the
 * public sample databases the tests load; psql's other meta-commands are not supported.
 */
export async function runDump(client: pg.Client, text: string): Promise<void> {
  let sql: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const copy = /^(COPY .* FROM stdin);$/.exec(line);
    if (!copy) {
      if (line.startsWith('\\')) throw new Error(`runDump: psql meta-command not supported: ${line}`);
      sql.push(line);
      continue;
    }
    if (sql.join('').trim()) await client.query(sql.join('\n'));
    sql = [];
    const rows: string[] = [];
    for (i++; lines[i] !== '\\.'; i++) rows.push(lines[i]! + '\n');
    await pipeline(Readable.from(rows), client.query(copyFrom(copy[1]!)));
  }
  if (sql.join('').trim()) await client.query(sql.join('\n'));
}
