import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/**
 * A psql script as the statements psql would send, for SQL written by others (PostgreSQL's
 * regression files, test/fixtures/postgres-regress) run without psql, which CI machines may
 * lack. A statement ends at a `;` outside quotes, dollar quotes, comments and parentheses, as
 * psql's lexer ends it; a meta-command (`\d`, `\gset`, `\set` …) ends the statement before it
 * and is dropped, so statements that use its variables fail, as a failing statement of such a
 * script may. A `COPY … FROM stdin` carries its rows, up to `\.`. SQL parsers on npm know
 * nothing of psql's meta-commands or COPY data, which is why this is written here.
 */

const WORD = /[A-Za-z0-9_$]/;

/** The statement that starts at or after `from` and where the script goes on after it; undefined at the end. */
export function nextStatement(script: string, from: number): { sql: string; end: number } | undefined {
  const n = script.length;
  const lineEnd = (at: number) => {
    const e = script.indexOf('\n', at);
    return e < 0 ? n : e;
  };
  let start = from;
  let parens = 0;
  for (let i = from; i < n;) {
    const c = script[i]!;
    const next = script[i + 1];
    if (c === '-' && next === '-') i = lineEnd(i);
    else if (c === '/' && next === '*') {
      let depth = 1;
      for (i += 2; i < n && depth;) {
        if (script.startsWith('/*', i)) (depth++, (i += 2));
        else if (script.startsWith('*/', i)) (depth--, (i += 2));
        else i++;
      }
    } else if (c === "'" || c === '"') {
      // E'…' lets a backslash escape; '' (or "") is the quote itself.
      const escapes = c === "'" && /[eE]/.test(script[i - 1] ?? '') && !WORD.test(script[i - 2] ?? '');
      for (i++; i < n; i++) {
        if (escapes && script[i] === '\\') i++;
        else if (script[i] === c) {
          if (script[i + 1] !== c) break;
          i++;
        }
      }
      i++;
    } else if (c === '$' && !WORD.test(script[i - 1] ?? '')) {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(script.slice(i, i + 64))?.[0];
      if (tag) {
        const close = script.indexOf(tag, i + tag.length);
        i = close < 0 ? n : close + tag.length;
      } else i++;
    } else if (c === '(') (parens++, i++);
    else if (c === ')') ((parens = Math.max(0, parens - 1)), i++);
    else if (c === ';' && parens === 0) {
      const sql = script.slice(start, i + 1).trim();
      if (sql !== ';') return { sql, end: i + 1 };
      start = i + 1;
      i++;
    } else if (c === '\\') {
      // A meta-command: psql sends what came before it; the rest of the line is the command.
      const sql = script.slice(start, i).trim();
      if (sql) return { sql, end: lineEnd(i) };
      i = lineEnd(i);
      start = i;
    } else i++;
  }
  const sql = script.slice(start).trim();
  return sql && !/^(--[^\n]*\s*)+$/.test(sql) ? { sql, end: n } : undefined;
}

export const isCopyFromStdin = (sql: string): boolean => /^(\s*--[^\n]*\n)*\s*copy\s[\s\S]*\sfrom\s+stdin\b/i.test(sql);

/**
 * The rows of a COPY FROM stdin, from the line after its statement up to a line `\.`, and where
 * the script goes on after them. Taken only when the server accepted the COPY: psql reads a
 * refused COPY's lines as SQL (a regression file tests such a refusal with no rows after it).
 */
export function copyData(script: string, from: number): { rows: string[]; end: number } {
  const rows: string[] = [];
  let i = script.indexOf('\n', from);
  i = i < 0 ? script.length : i + 1;
  while (i < script.length) {
    let e = script.indexOf('\n', i);
    if (e < 0) e = script.length;
    const row = script.slice(i, e);
    i = e + 1;
    if (row === '\\.') break;
    rows.push(row + '\n');
  }
  return { rows, end: Math.min(i, script.length) };
}

/** Runs a psql script on a connection as psql would without ON_ERROR_STOP: a statement that fails is passed over. */
export async function runPsqlScript(
  client: pg.Client,
  script: string,
  /** After each statement, with how many ran so far. */
  after?: (ran: number) => Promise<void>,
): Promise<{ ran: number; failed: number }> {
  let ran = 0;
  let failed = 0;
  for (let pos = 0; ;) {
    const stmt = nextStatement(script, pos);
    if (!stmt) break;
    pos = stmt.end;
    try {
      if (isCopyFromStdin(stmt.sql)) {
        const data = copyData(script, pos);
        try {
          await pipeline(Readable.from(data.rows), client.query(copyFrom(stmt.sql)));
          pos = data.end;
        } catch (err) {
          // A row refused: the server had taken the COPY, and psql sent its rows (up to `\.`).
          if (/\bCOPY\b.*\bline \d+/.test((err as { where?: string }).where ?? '')) pos = data.end;
          throw err;
        }
      } else await client.query(stmt.sql);
    } catch {
      failed++;
    }
    ran++;
    await after?.(ran);
  }
  return { ran, failed };
}
