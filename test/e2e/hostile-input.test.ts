import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveArgs, BIN, pgtape, startPgtape, type CliResult } from '../support/cli.js';
import { leftIn, useSource } from '../support/fixture.js';
import { confirmedFlush } from '../support/tape.js';

/**
 * Every command as a hostile or careless user runs it (issue 14): each case names the command,
 * the exit code the README's table gives it, a fragment of the message, and afterwards proves
 * that nothing stored changed (the store's files, the slot's confirmed position, the source's
 * publications and slots), that nothing was left on disk (each run has a temporary directory of
 * its own, which must be empty again; an output path named by the case must not exist) and that
 * nothing was left running (no process names the case's paths).
 */

const SCHEMA = `
  create table items (id int primary key, name text);
  insert into items select g, 'item ' || g from generate_series(1, 20) g;
  create table "we""ird, name" (id int primary key);
`;

interface Context {
  source: string;
  store: string;
  /** A copy of the store whose newest segment has a flipped byte in its body. */
  flipped: string;
  /** A copy of the store whose newest segment is cut short. */
  truncated: string;
  /** A copy of the store that lost its newest segment (the archiver recorded storing it). */
  lostTail: string;
  /** A copy of the store whose segments/ also holds a file that is no segment. */
  stray: string;
  /** A regular file, where a directory is expected. */
  file: string;
  /** A path that does not exist yet: a case that fails must not create it. */
  fresh: string;
  /** An empty database on the same server, for replay --into. */
  into: string;
  /** A server address where nothing listens. */
  nobody: string;
}

interface Case {
  name: string;
  args: (c: Context) => string[];
  exit: number;
  /** Fragments expected in stderr (or stdout where the command writes its verdict there). */
  says: (string | RegExp)[];
  env?: Record<string, string>;
  /** Paths the run must not leave behind. */
  leaves?: (c: Context) => string[];
  /** Runs on the source before the command, and after it (the source as it was for the next case). */
  before?: (c: Context, sql: (q: string) => Promise<unknown>) => Promise<void>;
  after?: (c: Context, sql: (q: string) => Promise<unknown>) => Promise<void>;
}

const CASES: Case[] = [
  // Damaged segments: every reader exits 4 naming the segment, as replay does.
  { name: 'log over a flipped segment', args: (c) => ['log', '--store', c.flipped], exit: 4, says: [/segment .* is damaged|checksum/] },
  { name: 'log --rows over a truncated segment', args: (c) => ['log', '--rows', '--store', c.truncated], exit: 4, says: [/segment/] },
  { name: 'diff over a flipped segment', args: (c) => ['diff', '--store', c.flipped, '--from', 'name:m1'], exit: 4, says: [/segment/] },
  // The newest segment lost: without the archiver's record, every reader would answer for an earlier end with exit 0.
  ...[['replay', '--csv'], ['log'], ['verify'], ['diff', '--from', 'name:m1']].map(([command, ...rest]) => ({
    name: `${command} of a store that lost its newest segment`,
    args: (c: Context) => [command!, '--store', c.lostTail, ...rest, ...(command === 'replay' ? [c.fresh] : [])],
    exit: 4,
    says: [/is missing|MISSING/, 'lease.json'],
    leaves: (c: Context) => [c.fresh],
  })),
  // Raw system and SDK errors become advice.
  {
    name: 'S3 without credentials',
    args: () => ['log', '--store', 's3://bucket/tape', '--s3-endpoint', 'http://127.0.0.1:9'],
    env: {
      AWS_ACCESS_KEY_ID: '',
      AWS_SECRET_ACCESS_KEY: '',
      AWS_PROFILE: '',
      AWS_CONFIG_FILE: '/nonexistent',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent',
    },
    exit: 2,
    says: ['credentials', 'AWS_ACCESS_KEY_ID'],
  },
  {
    name: 'S3 endpoint where nothing listens',
    args: () => ['log', '--store', 's3://bucket/tape', '--s3-endpoint', 'http://127.0.0.1:9'],
    env: { AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' },
    exit: 2,
    says: ['127.0.0.1:9', '--s3-endpoint'],
  },
  {
    name: 'source where nothing listens',
    args: (c) => ['status', '--source', c.nobody, '--store', c.store],
    exit: 2,
    says: ['connect', '--source'],
  },
  { name: 'source that is not a URL', args: (c) => ['status', '--source', 'http//what', '--store', c.store], exit: 2, says: ['--source'] },
  {
    name: 'source of another kind of database',
    args: (c) => ['status', '--source', 'mysql://u@localhost/db', '--store', c.store],
    exit: 2,
    says: ['postgres://'],
  },
  { name: 'store that is a file', args: (c) => ['log', '--store', c.file], exit: 2, says: ['not a directory'] },
  {
    name: 'archive into a store that is a file',
    args: (c) => archiveArgs(c.source, c.file, '--until', 'now'),
    exit: 2,
    says: ['not a directory'],
  },
  { name: 'store under a file', args: (c) => archiveArgs(c.source, join(c.file, 'tape'), '--until', 'now'), exit: 2, says: ['is a file'] },
  { name: 'relative file URL', args: () => ['log', '--store', 'file://tape'], exit: 2, says: ['file://'] },
  { name: 'malformed s3 URL', args: () => ['log', '--store', 's3://'], exit: 2, says: ['s3://<bucket>'] },
  { name: 'unknown store scheme', args: () => ['log', '--store', 'ftp://host/tape'], exit: 2, says: ['ftp'] },
  { name: 'csv into a file', args: (c) => ['replay', '--store', c.store, '--csv', c.file], exit: 2, says: ['--csv'] },
  { name: 'csv under a file', args: (c) => ['replay', '--store', c.store, '--csv', join(c.file, 'out')], exit: 2, says: ['--csv'] },
  { name: 'pgdata into a file', args: (c) => ['replay', '--store', c.store, '--pgdata', c.file], exit: 2, says: ['--pgdata'] },
  {
    name: 'csv with a TMPDIR that does not exist',
    args: (c) => ['replay', '--store', c.store, '--csv', c.fresh],
    env: { TMPDIR: '/nonexistent/pgtape-tmp' },
    exit: 2,
    says: ['cannot make a temporary directory', 'set TMPDIR'],
    // Not made on the way (as root, a copy of the server binaries into it once did).
    leaves: (c) => [c.fresh, '/nonexistent/pgtape-tmp'],
  },
  {
    name: 'pgdata with a TMPDIR that does not exist',
    args: (c) => ['replay', '--store', c.store, '--pgdata', c.fresh],
    env: { TMPDIR: '/nonexistent/pgtape-tmp' },
    exit: 2,
    says: ['cannot make a temporary directory', 'set TMPDIR'],
    // Not made on the way (as root, a copy of the server binaries into it once did).
    leaves: (c) => [c.fresh, '/nonexistent/pgtape-tmp'],
  },
  {
    name: 'slot name Postgres refuses',
    args: (c) => archiveArgs(c.source, c.fresh, '--slot', 'Bad-Slot!', '--until', 'now'),
    exit: 2,
    says: ['--slot'],
    leaves: (c) => [c.fresh],
  },
  // Misleading messages: the option at fault is the one named.
  { name: 'diff --from xid:-1', args: (c) => ['diff', '--store', c.store, '--from', 'xid:-1'], exit: 2, says: ['--from'] },
  { name: 'log --from yesterday', args: (c) => ['log', '--store', c.store, '--from', 'yesterday'], exit: 2, says: ['--from'] },
  {
    name: 'replay --to yesterday',
    args: (c) => ['replay', '--store', c.store, '--to', 'yesterday', '--csv', c.fresh],
    exit: 2,
    says: ['--to'],
    leaves: (c) => [c.fresh],
  },
  {
    name: 'diff --from before the first base',
    args: (c) => ['diff', '--store', c.store, '--from', 'time:2001-01-01T00:00:00Z'],
    exit: 2,
    says: ['--from', 'before the archive begins'],
  },
  {
    name: 'log --from before the first base lists all, and says so',
    args: (c) => ['log', '--store', c.store, '--from', 'time:2001-01-01T00:00:00Z'],
    exit: 0,
    says: ['before the archive begins', 'mark "m1"'],
  },
  {
    // The lsn: form once listed nothing and reported a gap before the first base (exit 4).
    name: 'log --from an LSN before the first base lists all, and says so',
    args: (c) => ['log', '--store', c.store, '--from', 'lsn:0/1'],
    exit: 0,
    says: ['before the archive begins', 'mark "m1"'],
  },
  {
    // The hint listed the tables unquoted: "we"ird, name" could not be pasted back.
    name: 'replay --tables naming no table of the archive',
    args: (c) => ['replay', '--store', c.store, '--tables', 'nope', '--csv', c.fresh],
    exit: 2,
    says: ['has a table public.nope', 'public."we""ird, name", public.items'],
    leaves: (c) => [c.fresh],
  },
  {
    // It printed nothing, exit 0, silently.
    name: 'log --to before the first base says so',
    args: (c) => ['log', '--store', c.store, '--to', 'time:2001-01-01T00:00:00Z'],
    exit: 0,
    says: ['--to', 'before the archive begins', 'nothing is listed'],
  },
  {
    // It was refused as "--from <the first base's LSN> is after --to", a point the user never gave.
    name: 'log --from and --to both before the first base says so',
    args: (c) => ['log', '--store', c.store, '--from', 'lsn:0/1', '--to', 'lsn:0/2'],
    exit: 0,
    says: ['--to lsn:0/2 is before the archive begins', 'nothing is listed'],
  },
  {
    // Refused with --to inside the archive, it was answered "nothing is listed", exit 0, before it.
    name: 'log --table naming no table, --to before the first base',
    args: (c) => ['log', '--store', c.store, '--to', 'lsn:0/2', '--table', 'public.nope'],
    exit: 2,
    says: ['--table', 'no table public.nope'],
  },
  // An empty value once read as no value at all (the whole log, or diff's "needs --from").
  { name: 'log --from ""', args: (c) => ['log', '--store', c.store, '--from', ''], exit: 2, says: ['--from is empty'] },
  { name: 'diff --from ""', args: (c) => ['diff', '--store', c.store, '--from', ''], exit: 2, says: ['--from is empty'] },
  {
    // jsonl was written as if --format had not been given.
    name: 'diff --format sql --json',
    args: (c) => ['diff', '--store', c.store, '--from', 'name:m1', '--format', 'sql', '--json'],
    exit: 2,
    says: ['--json', '--format'],
  },
  {
    // The link is the user's: it was once removed as if the replay had made the directory.
    name: 'replay --csv to a symbolic link to nothing: refused, the link kept',
    before: async (c) => symlinkSync(join(c.fresh, '..', 'nowhere'), c.fresh),
    args: (c) => ['replay', '--store', c.store, '--csv', c.fresh],
    exit: 2,
    says: ['--csv', 'is a symbolic link to', 'which does not exist'],
    after: async (c) => {
      expect(lstatSync(c.fresh).isSymbolicLink()).toBe(true);
      rmSync(c.fresh);
    },
  },
  {
    // Postgres refuses a data directory others can read: it failed after the whole replay.
    name: 'replay --pgdata into an empty directory of mode 0755 (made private, replayed)',
    before: async (c) => mkdirSync(c.fresh, { mode: 0o755 }),
    args: (c) => ['replay', '--store', c.store, '--pgdata', c.fresh],
    exit: 0,
    says: ['changesApplied'],
    after: async (c) => {
      expect(statSync(c.fresh).mode & 0o777).toBe(0o700);
      rmSync(c.fresh, { recursive: true, force: true });
    },
  },
  {
    // Node's recursive mkdir retried there forever, deaf to signals.
    name: 'replay --pgdata under /proc (as root: a directory that refuses directories)',
    args: (c) => ['replay', '--store', c.store, '--pgdata', '/proc/pgtape-hostile'],
    exit: 2,
    says: [/cannot make the directory \/proc\/pgtape-hostile|\/proc is not writable by this user/],
  },
  {
    name: 'replay into a database that does not exist',
    args: (c) => ['replay', '--store', c.store, '--into', c.into.replace(/\/[^/?]+(\?|$)/, '/nosuchdb$1')],
    exit: 2,
    says: ['--into', 'nosuchdb'],
  },
  {
    name: 'replay into a server where nothing listens',
    args: (c) => ['replay', '--store', c.store, '--into', c.nobody],
    exit: 2,
    says: ['--into'],
  },
  // Bad option values.
  {
    name: '--print-config checks values',
    args: (c) => archiveArgs(c.source, c.store, '--segment-bytes', 'lots', '--print-config'),
    exit: 2,
    says: ['--segment-bytes'],
  },
  {
    name: '--segment-bytes 0',
    args: (c) => archiveArgs(c.source, c.store, '--segment-bytes', '0'),
    exit: 2,
    says: ['--segment-bytes', /at least|greater/],
  },
  {
    name: '--segment-seconds 0',
    args: (c) => archiveArgs(c.source, c.store, '--segment-seconds', '0'),
    exit: 2,
    says: ['--segment-seconds', /at least|greater/],
  },
  { name: '--until garbage', args: (c) => archiveArgs(c.source, c.store, '--until', 'soon'), exit: 2, says: ['--until'] },
  {
    name: '--metrics-port 70000',
    args: (c) => archiveArgs(c.source, c.store, '--metrics-port', '70000'),
    exit: 2,
    says: ['--metrics-port'],
  },
  { name: '--compression zstd', args: (c) => archiveArgs(c.source, c.store, '--compression', 'zstd'), exit: 2, says: ['--compression'] },
  {
    name: '--memory nothing',
    args: (c) => ['replay', '--store', c.store, '--memory', '0', '--csv', c.fresh],
    exit: 2,
    says: ['--memory'],
    leaves: (c) => [c.fresh],
  },
  {
    name: '--memory too small to end (1 byte)',
    args: (c) => ['replay', '--store', c.store, '--memory', '1', '--csv', c.fresh],
    exit: 2,
    says: ['--memory', 'too small', '16.0 MiB'],
    leaves: (c) => [c.fresh],
  },
  {
    name: '--memory larger than any size',
    args: (c) => ['replay', '--store', c.store, '--memory', '99999999999999999999999GiB', '--csv', c.fresh],
    exit: 2,
    says: ['--memory', 'too large'],
    leaves: (c) => [c.fresh],
  },
  // An empty value is a mistake, never a path or a URL: said with where it came from.
  { name: 'replay --into=', args: (c) => ['replay', '--store', c.store, '--into='], exit: 2, says: ['--into is empty'] },
  {
    name: 'replay --pgdata with an empty value',
    args: (c) => ['replay', '--store', c.store, '--pgdata', ''],
    exit: 2,
    says: ['--pgdata is empty'],
  },
  {
    name: 'an empty PGTAPE_PGDATA beside --into',
    args: (c) => ['replay', '--store', c.store, '--into', c.into],
    env: { PGTAPE_PGDATA: '' },
    exit: 2,
    says: ['PGTAPE_PGDATA', 'unset it'],
  },
  ...[
    ['0', 'whole number'],
    ['two', 'whole number'],
    ['1.5', 'whole number'],
    ['65', 'or fewer'],
  ].map(([jobs, says]) => ({
    name: `--jobs ${jobs}`,
    args: (c: Context) => ['replay', '--store', c.store, '--jobs', jobs!, '--pgdata', c.fresh],
    exit: 2,
    says: ['--jobs', says!],
    leaves: (c: Context) => [c.fresh],
  })),
  {
    name: '--jobs with --into (one transaction)',
    args: (c) => ['replay', '--store', c.store, '--jobs', '2', '--into', c.into],
    exit: 2,
    says: ['--jobs 2', 'applies to --pgdata and --csv', 'one transaction'],
  },
  { name: 'unknown option', args: (c) => ['log', '--store', c.store, '--form', 'name:m1'], exit: 2, says: ['--form'] },
  { name: 'config file missing', args: () => ['log', '--config', '/nonexistent/pgtape.json'], exit: 2, says: ['/nonexistent/pgtape.json'] },
  { name: 'config file not JSON', args: (c) => ['log', '--config', c.file], exit: 2, says: ['JSON'] },
  {
    name: 'replay with two outputs',
    args: (c) => ['replay', '--store', c.store, '--csv', c.fresh, '--pgdata', c.fresh + '2'],
    exit: 2,
    says: ['one of'],
    leaves: (c) => [c.fresh, c.fresh + '2'],
  },
  { name: 'replay without a store', args: (c) => ['replay', '--csv', c.fresh], exit: 2, says: ['--store'], leaves: (c) => [c.fresh] },
  {
    name: 'replay of an empty store',
    args: (c) => ['replay', '--store', c.fresh, '--csv', c.fresh + 'out'],
    exit: 2,
    says: ['no base'],
    leaves: (c) => [c.fresh, c.fresh + 'out'],
  },
  { name: 'verify of an empty store', args: (c) => ['verify', '--store', c.fresh], exit: 2, says: ['no base'], leaves: (c) => [c.fresh] },
  // verify reports a file in segments/ that is no segment, and checks every segment all the same.
  {
    name: 'verify of a store whose segments/ holds a file that is no segment',
    args: (c) => ['verify', '--store', c.stray],
    exit: 4,
    says: [
      /STRAY +segments\/notes\.txt/,
      /OK +segments\/0/,
      /\d+ OK, 1 STRAY/,
      'move them out of segments/',
      'the archive itself verified sound',
    ],
  },
  // An output inside a directory store would be met by its listings: refused before anything is made.
  ...[
    ['--pgdata', 'segments'],
    ['--csv', 'base'],
  ].map(([option, under]) => ({
    name: `replay ${option} inside the store's folder ${under}/`,
    args: (c: Context) => ['replay', '--store', c.store, option!, join(c.store, under!, 'replayed')],
    exit: 2,
    says: [`is inside the store's folder`, `${under}/, which pgtape owns`, 'give a directory outside the store'],
    leaves: (c: Context) => [join(c.store, under!, 'replayed')],
  })),
  // compact and expire (issue 15): refused without touching the store.
  {
    name: 'compact of an empty store',
    args: (c) => ['compact', '--store', c.fresh],
    exit: 2,
    says: ['no archive'],
    leaves: (c) => [c.fresh],
  },
  {
    name: 'compact to a mark that does not exist',
    args: (c) => ['compact', '--store', c.store, '--to', 'name:nowhere'],
    exit: 2,
    says: ['nowhere'],
  },
  { name: 'compact to a damaged segment', args: (c) => ['compact', '--store', c.flipped], exit: 4, says: ['damaged'] },
  { name: 'compact of a store that is a file', args: (c) => ['compact', '--store', c.file], exit: 2, says: ['not a directory'] },
  { name: 'index of an empty store', args: (c) => ['index', '--store', c.fresh], exit: 2, says: ['no archive'], leaves: (c) => [c.fresh] },
  { name: 'index with --group 0', args: (c) => ['index', '--store', c.store, '--group', '0'], exit: 2, says: ['--group'] },
  { name: 'expire without a rule', args: (c) => ['expire', '--store', c.store, '--confirm'], exit: 2, says: ['--keep-bases'] },
  {
    name: 'expire keeping no base',
    args: (c) => ['expire', '--store', c.store, '--keep-bases', '0', '--confirm'],
    exit: 2,
    says: ['--keep-bases'],
  },
  {
    name: 'expire keeping since a time that is not one',
    args: (c) => ['expire', '--store', c.store, '--keep-since', 'yesterday', '--confirm'],
    exit: 2,
    says: ['--keep-since', 'duration'],
  },
  {
    name: 'expire of an empty store',
    args: (c) => ['expire', '--store', c.fresh, '--keep-bases', '1'],
    exit: 2,
    says: ['no base'],
    leaves: (c) => [c.fresh],
  },
  {
    name: 'expire, a dry run, removes nothing',
    args: (c) => ['expire', '--store', c.store, '--keep-since', '1s'],
    exit: 0,
    says: ['would remove', 'dry run'],
  },
  {
    name: 'archive with a base interval that is not a duration',
    args: (c) => archiveArgs(c.source, c.store, '--base-every', 'often', '--until', 'now'),
    exit: 2,
    says: ['--base-every'],
  },
  {
    name: 'archive with --base-after 0',
    args: (c) => archiveArgs(c.source, c.store, '--base-after', '0', '--until', 'now'),
    exit: 2,
    says: ['--base-after'],
  },
  {
    name: 'log of a store that does not exist',
    args: (c) => ['log', '--store', c.fresh],
    exit: 2,
    says: [/does not exist|no base|empty/],
    leaves: (c) => [c.fresh],
  },
  // Left behind: a refused start leaves no publication, no slot and no store.
  {
    name: 'refused start with --create-publication',
    args: (c) => archiveArgs(c.source, c.store, '--create-publication', '--publication', 'other', '--slot', 'other', '--until', 'now'),
    exit: 2,
    says: ['publication'],
  },
  {
    name: 'refused start: a table without replica identity, a fresh store',
    before: async (_c, sql) => void (await sql('create table no_identity (v text)')),
    after: async (_c, sql) => void (await sql('drop table no_identity')),
    args: (c) => archiveArgs(c.source, c.fresh, '--create-publication', '--publication', 'fresh', '--slot', 'fresh'),
    exit: 2,
    says: ['no usable replica identity', '--force'],
    leaves: (c) => [c.fresh],
  },
  {
    name: 'refused start: a slot of another database, a fresh store',
    before: async (c) => {
      const into = new pg.Client({ connectionString: c.into });
      await into.connect();
      await into.query(`select pg_create_logical_replication_slot('elsewhere', 'pgoutput')`);
      await into.end();
    },
    after: async (_c, sql) => void (await sql(`select pg_drop_replication_slot('elsewhere')`)),
    args: (c) => archiveArgs(c.source, c.fresh, '--create-publication', '--publication', 'fresh', '--slot', 'elsewhere'),
    exit: 2,
    says: ['elsewhere', 'hostile_into'],
    leaves: (c) => [c.fresh],
  },
  {
    name: 'archive of a source where nothing listens',
    args: (c) => archiveArgs(c.nobody, c.fresh, '--until', 'now'),
    exit: 2,
    says: ['--source'],
    leaves: (c) => [c.fresh],
  },
  {
    name: 'base of a source where nothing listens',
    args: (c) => ['base', '--source', c.nobody, '--store', c.fresh],
    exit: 2,
    says: ['--source'],
    leaves: (c) => [c.fresh],
  },
  {
    name: 'csv replay of a store that does not exist',
    args: (c) => ['replay', '--store', c.fresh, '--csv', c.fresh + 'out'],
    exit: 2,
    says: [/does not exist|no base|empty/],
    leaves: (c) => [c.fresh, c.fresh + 'out'],
  },
  // What a careful reader notices.
  {
    name: 'odd table names are quoted as Postgres quotes them',
    args: (c) => ['log', '--store', c.store],
    exit: 0,
    says: ['  public."we""ird, name" +1\n'],
  },
  {
    name: 'log takes --tables as replay does',
    args: (c) => ['log', '--store', c.store, '--tables', 'public.items,"we""ird, name"', '--json'],
    exit: 0,
    says: ['"public.items"'],
  },
  {
    name: 'replay takes --table as log does',
    args: (c) => ['replay', '--store', c.store, '--table', 'nosuch.t', '--csv', c.fresh],
    exit: 2,
    says: ['nosuch.t'],
    leaves: (c) => [c.fresh],
  },
  {
    // A variable is weaker than a flag: PGTAPE_JSON=0 was counted against --format as a second flag.
    name: 'diff --format csv with PGTAPE_JSON=0',
    args: (c) => ['diff', '--store', c.store, '--from', 'name:m1', '--format', 'csv'],
    env: { PGTAPE_JSON: '0' },
    exit: 0,
    says: [/^table,/m],
  },
  {
    name: 'diff --json with PGTAPE_FORMAT=sql: the flag wins',
    args: (c) => ['diff', '--store', c.store, '--from', 'name:m1', '--json'],
    env: { PGTAPE_FORMAT: 'sql' },
    exit: 0,
    says: [/^\{"table":"public\.items"/m],
  },
  {
    name: 'PGTAPE_JSON=1 and PGTAPE_FORMAT=sql disagree: refused',
    args: (c) => ['diff', '--store', c.store, '--from', 'name:m1'],
    env: { PGTAPE_JSON: '1', PGTAPE_FORMAT: 'sql' },
    exit: 2,
    says: ['PGTAPE_JSON and PGTAPE_FORMAT sql ask for different formats'],
  },
  {
    name: 'diff --json is --format jsonl',
    args: (c) => ['diff', '--store', c.store, '--from', 'name:m1', '--json'],
    exit: 0,
    says: [/^\{"table":"public\.items"/m],
  },
  {
    name: 'log --to commit: is refused, not read as latest',
    args: (c) => ['log', '--store', c.store, '--to', 'commit:abc123'],
    exit: 2,
    says: ['only replay takes commit: targets'],
  },
  {
    name: 'diff of an empty list of tables',
    args: (c) => ['diff', '--store', c.store, '--from', 'name:m1', '--tables', ','],
    exit: 2,
    says: ['names no table'],
  },
  // Marks.
  {
    name: 'a mark name given twice: said, with the one used',
    args: (c) => ['log', '--store', c.store, '--to', 'name:twice'],
    exit: 0,
    says: ['name:twice names 2 marks; the first', /public\.items ~4\n[^\n]*mark "twice"\n(?![^\n]*items)/],
  },
  { name: 'mark with a newline', args: (c) => ['mark', '--source', c.source, 'a\nb'], exit: 2, says: ['control'] },
  { name: 'mark of 10 kB', args: (c) => ['mark', '--source', c.source, 'x'.repeat(10_000)], exit: 2, says: ['200'] },
  { name: 'mark with an empty name', args: (c) => ['mark', '--source', c.source, ''], exit: 2, says: ['name'] },
];

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function filesOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[p.slice(dir.length)] = sha(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Processes whose command line names one of `paths` (a postgres left running in an output). */
function runningWith(paths: string[]): string[] {
  const all = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n');
  return all.filter((line) => paths.some((p) => line.includes(p)) && !line.startsWith('ps '));
}

describe('hostile input: every command, wrong values, nothing harmed or left behind', () => {
  const source = useSource(SCHEMA);
  const work = mkdtempSync(join(tmpdir(), 'pgtape-hostile-'));
  // As root, a scratch cluster's server runs as postgres, which must reach the private TMPDIRs.
  chmodSync(work, 0o755);
  const ctx = {} as Context;

  beforeAll(async () => {
    ctx.source = source.db.url();
    ctx.store = source.store.dir;
    let r = await pgtape(archiveArgs(ctx.source, ctx.store, '--until', 'now', '--create-publication'));
    expect(r.code, r.stderr).toBe(0);
    await source.admin.query(`insert into items values (100, 'after the base')`);
    await source.admin.query(`insert into "we""ird, name" values (1)`);
    await source.admin.query(`select pg_logical_emit_message(true, 'pgtape', 'm1')`);
    await source.admin.query(`update items set name = 'changed' where id < 5`);
    await source.admin.query(`select pg_logical_emit_message(true, 'pgtape', 'twice')`);
    await source.admin.query(`insert into items values (101, 'between two marks of one name')`);
    await source.admin.query(`select pg_logical_emit_message(true, 'pgtape', 'twice')`);
    r = await pgtape(archiveArgs(ctx.source, ctx.store, '--until', 'now'));
    expect(r.code, r.stderr).toBe(0);
    const newest = readdirSync(join(ctx.store, 'segments')).sort().at(-1)!;
    ctx.flipped = join(work, 'flipped');
    cpSync(ctx.store, ctx.flipped, { recursive: true });
    const f = join(ctx.flipped, 'segments', newest);
    const bytes = readFileSync(f);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 3) ^ 0xff, bytes.length - 3);
    writeFileSync(f, bytes);
    ctx.truncated = join(work, 'truncated');
    cpSync(ctx.store, ctx.truncated, { recursive: true });
    const t = join(ctx.truncated, 'segments', newest);
    truncateSync(t, statSync(t).size - 10);
    ctx.lostTail = join(work, 'lost-tail');
    cpSync(ctx.store, ctx.lostTail, { recursive: true });
    rmSync(join(ctx.lostTail, 'segments', newest));
    ctx.stray = join(work, 'stray');
    cpSync(ctx.store, ctx.stray, { recursive: true });
    writeFileSync(join(ctx.stray, 'segments', 'notes.txt'), 'not a segment\n');
    ctx.file = join(work, 'a-file');
    writeFileSync(ctx.file, 'not a directory\n');
    await source.admin.query('create database hostile_into');
    ctx.into = source.db.url().replace(/\/[^/?]+(\?|$)/, '/hostile_into$1');
    ctx.nobody = 'postgres://postgres@127.0.0.1:9/postgres';
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const state = async () => ({
    store: filesOf(ctx.store),
    flipped: filesOf(ctx.flipped),
    confirmed: String(await confirmedFlush(source.admin)),
    slots: (await source.admin.query('select slot_name from pg_replication_slots order by 1')).rows,
    publications: (await source.admin.query('select pubname from pg_publication order by 1')).rows,
    into: (await source.admin.query(`select count(*)::int as n from pg_database where datname = 'hostile_into'`)).rows,
  });

  let n = 0;
  it.each(CASES)('$name', async (c) => {
    const tmp = join(work, `tmp-${n}`);
    ctx.fresh = join(work, `fresh-${n++}`);
    mkdirSync(tmp, { mode: 0o755 });
    const sql = (q: string) => source.admin.query(q);
    await c.before?.(ctx, sql);
    const before = await state();
    // A case that hangs is a failure of its own, and must not leave a process writing the store.
    const child = startPgtape(c.args(ctx), { TMPDIR: tmp, ...c.env });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const r: CliResult = await child.done.finally(() => clearTimeout(timer));
    expect(r.signal, 'finished by itself').toBeNull();
    const said = r.stderr + r.stdout;
    expect(r.code, said).toBe(c.exit);
    for (const s of c.says) expect(said).toMatch(typeof s === 'string' ? new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : s);
    expect(said, 'no stack trace').not.toMatch(/\n\s+at .+:\d+:\d+\)?\n/);
    expect(said, 'no raw error class').not.toMatch(/TypeError|ReferenceError|CredentialsProviderError|ECONNREFUSED|ENOTDIR|EEXIST/);
    expect(await state(), 'nothing stored changed').toEqual(before);
    await c.after?.(ctx, sql);
    // Caches kept on purpose (leftIn) are not leftovers.
    expect(leftIn(tmp), 'nothing left in the temporary directory').toEqual([]);
    for (const p of c.leaves?.(ctx) ?? []) expect(existsSync(p), `${p} left behind`).toBe(false);
    expect(runningWith([work]), 'nothing left running').toEqual([]);
  });

  it('two replays started at once into one new --pgdata: one fills it, the other is refused (exit 2) and harms nothing', async () => {
    const dir = join(work, 'raced');
    const args = ['replay', '--store', ctx.store, '--pgdata', dir];
    const results = await Promise.all([startPgtape(args).done, startPgtape(args).done]);
    const said = results.map((r) => r.stderr).join('\n');
    expect(results.map((r) => r.code).sort(), said).toEqual([0, 2]);
    expect(results.find((r) => r.code === 2)!.stderr).toMatch(/--pgdata .*raced is being filled by another replay/);
    // The winner's output, whole, without its claim; no server left running on it.
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(['PG_VERSION', 'replay.json']));
    expect(existsSync(join(dir, '.pgtape-replay'))).toBe(false);
    expect(runningWith([dir])).toEqual([]);
    // Another replay into it now: not empty.
    const late = await pgtape(args);
    expect(late.code).toBe(2);
    expect(late.stderr).toMatch(/is not empty/);
  });

  it('a claim left by a killed replay is named as such, never waited for: empty and old, or holding the pid this run has (a container run again)', async () => {
    const stale = (name: string) => {
      const dir = join(work, name);
      mkdirSync(dir, { mode: 0o700 });
      return { dir, claim: join(dir, '.pgtape-replay') };
    };
    // Killed between creating its claim and writing its pid, a minute ago.
    const empty = stale('stale-empty');
    writeFileSync(empty.claim, '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(empty.claim, old, old);
    const r = await pgtape(['replay', '--store', ctx.store, '--csv', empty.dir]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/is not empty \(a replay was killed while filling it\)/);
    expect(r.stderr).toMatch(/remove the directory/);
    expect(readdirSync(empty.dir)).toEqual(['.pgtape-replay']);
    // The same pid as this run's, in this pid namespace: a shell writes its own pid, then
    // becomes the replay (exec). That pid cannot be another replay: a killed one's.
    const namespace = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))![1]!;
    const runAs = (claimText: string, dir: string) =>
      spawnSync(
        'sh',
        [
          '-c',
          `echo "${claimText}" > "$1"; exec "$2" "$3" replay --store "$4" --csv "$5"`,
          'sh',
          join(dir, '.pgtape-replay'),
          process.execPath,
          BIN,
          ctx.store,
          dir,
        ],
        { encoding: 'utf8' },
      );
    const ours = stale('stale-ours');
    const run = runAs(`$$ ${namespace}`, ours.dir);
    expect(run.status, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/is not empty \(a replay, pid \d+, was killed while filling it\)/);
    expect(readdirSync(ours.dir)).toEqual(['.pgtape-replay']);
    // Another pid namespace (a container sharing the volume), or a claim naming none that holds
    // this run's pid: nothing can be told; said so, never "wait", never "killed".
    for (const [name, text] of [
      ['stale-elsewhere', '1 4026531999'],
      ['stale-unnamed', '$$'],
    ] as const) {
      const other = stale(name);
      const r2 = runAs(text, other.dir);
      expect(r2.status, r2.stderr).toBe(2);
      expect(r2.stderr).toMatch(/is claimed by a replay \(pid \d+\) that cannot be seen from here/);
      expect(r2.stderr).toMatch(/make sure no replay is filling it/);
      expect(readdirSync(other.dir)).toEqual(['.pgtape-replay']);
    }
  });

  it('--csv makes its directory as the umask says (only --pgdata needs 0700); a failed replay removes the directories it made above its output', async () => {
    const csv = join(work, 'csv-mode', 'out');
    // A umask of its own, so that 0700 cannot pass for it.
    const made = spawnSync(
      'sh',
      ['-c', 'umask 022; exec "$@"', 'sh', process.execPath, BIN, 'replay', '--store', ctx.store, '--csv', csv],
      {
        encoding: 'utf8',
      },
    );
    expect(made.status, made.stderr).toBe(0);
    expect(statSync(csv).mode & 0o777).toBe(0o755);
    const pgdata = join(work, 'pgdata-mode');
    const pg = await pgtape(['replay', '--store', ctx.store, '--pgdata', pgdata]);
    expect(pg.code, pg.stderr).toBe(0);
    expect(statSync(pgdata).mode & 0o777).toBe(0o700);
    // Fails once the output is claimed: its parents, made for it, go with it.
    const deep = join(work, 'made-for-it');
    for (const output of ['--csv', '--pgdata']) {
      const r = await pgtape(['replay', '--store', ctx.store, '--to', 'name:no-such-mark', output, join(deep, 'a', 'b')]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/no-such-mark/);
      expect(existsSync(deep), output).toBe(false);
    }
  });

  it('a store that lost its newest segment: points before it replay as the whole store replays them; any later one is refused (exit 4) naming the last that works', async () => {
    const lost = readdirSync(join(ctx.store, 'segments')).sort().at(-1)!;
    const start = BigInt(`0x${lost.slice(0, 16)}`);
    const lsn = (n: bigint) => `${(n >> 32n).toString(16).toUpperCase()}/${(n & 0xffffffffn).toString(16).toUpperCase()}`;
    const before = `lsn:${lsn(start - 1n)}`;
    // The oracle: the intact store, to the same point.
    const csv = async (store: string, to: string) => {
      const dir = join(work, `lost-tail-${store === ctx.store ? 'whole' : 'lost'}-${to.replace(/\W/g, '_')}`);
      const r = await pgtape(['replay', '--store', store, '--to', to, '--csv', dir]);
      return {
        r,
        files:
          r.code === 0
            ? readdirSync(dir)
                .filter((f) => f.endsWith('.csv'))
                .map((f) => readFileSync(join(dir, f), 'utf8'))
            : [],
      };
    };
    const [whole, kept] = [await csv(ctx.store, before), await csv(ctx.lostTail, before)];
    expect(kept.r.code, kept.r.stderr).toBe(0);
    expect(kept.files).toEqual(whole.files);
    expect(kept.files.join('')).toMatch(/\n1,/);
    const log = await pgtape(['log', '--store', ctx.lostTail, '--rows', '--to', before]);
    expect(log.code, log.stderr).toBe(0);
    expect(log.stdout).toBe((await pgtape(['log', '--store', ctx.store, '--rows', '--to', before])).stdout);
    // At or after its start, or up to an end that is no longer known: refused, with the point that works.
    for (const args of [
      ['replay', '--to', `lsn:${lsn(start)}`, '--csv', join(work, 'lost-tail-refused')],
      ['replay', '--to', 'time:2999-01-01T00:00:00Z', '--csv', join(work, 'lost-tail-refused')],
      ['log'],
      ['log', '--from', before],
      ['diff', '--from', before, '--summary'],
    ]) {
      const r = await pgtape([args[0]!, '--store', ctx.lostTail, ...args.slice(1)]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(4);
      expect(r.stderr).toContain(`${lost} is missing`);
      expect(r.stderr).toContain(`targets before ${lsn(start)} still work (${before}`);
      expect(existsSync(join(work, 'lost-tail-refused'))).toBe(false);
    }
    // verify says the same point.
    const verify = await pgtape(['verify', '--store', ctx.lostTail]);
    expect(verify.code).toBe(4);
    expect(verify.stdout).toMatch(new RegExp(`replayable: .*${lsn(start - 1n).replace('/', '\\/')}`));
  });

  it('leaves verify passing on the store afterwards', async () => {
    const r = await pgtape(['verify', '--store', ctx.store]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
  });
});
