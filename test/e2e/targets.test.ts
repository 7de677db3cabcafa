import { cpSync, existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { archiveArgs, pgtape } from '../support/cli.js';
import { sleep, useSource } from '../support/fixture.js';
import { replayIntoFresh } from '../support/replay-into.js';
import { transaction } from '../support/tape.js';
import { formatLsn } from '../../src/core/lsn.js';
import { listBases } from '../../src/log/bases.js';
import { listSegments, readSegmentHeader } from '../../src/log/segments.js';
import { openStore } from '../../src/store/open.js';

// Targets resolved against an archive that ends with segments holding no transaction (an idle
// database in a busy cluster: positions the walsender passed, stored so they can be acknowledged).
// A segment whose commits lie after the target, followed by such a segment, once made every
// name:, xid: and time: target fail with a gap that is not there.

describe('targets before segments that only mark a position', () => {
  const source = useSource('create table t (id int primary key)');
  const store = () => source.store.dir;
  const at = { xid: 0, time: '', lsn: '' };

  it('records a mark, a transaction, a later one, then WAL of another database only', async () => {
    const setup = await pgtape(archiveArgs(source.db.url(), store(), '--create-publication', '--until', 'now'));
    expect(setup.code, setup.stderr).toBe(0);
    const client = await source.db.client();
    try {
      await client.query(`select pg_logical_emit_message(true, 'pgtape', 'before')`);
      at.xid = (await transaction(client, (q) => q.query('insert into t values (1)').then(() => undefined)))!;
      const { rows } = await client.query<{ t: string }>(
        `select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as t`,
      );
      at.time = rows[0]!.t;
      at.lsn = (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!.lsn;
      await sleep(5);
      await client.query('insert into t values (2)');
    } finally {
      await client.end();
    }
    // WAL the publication does not see: the archiver's last segment marks a position only.
    await source.admin.query('create database elsewhere');
    const other = new pg.Client({ connectionString: Object.assign(new URL(source.db.url()), { pathname: '/elsewhere' }).toString() });
    await other.connect();
    await other.query('create table churn as select g, md5(g::text) as v from generate_series(1, 20000) g');
    await other.end();
    const r = await pgtape(archiveArgs(source.db.url(), store(), '--until', 'now', '--segment-bytes', '1'));
    expect(r.code, r.stderr).toBe(0);
    const s = openStore(store());
    const last = (await listSegments(s)).at(-1)!;
    expect((await readSegmentHeader(s, last.key)).transactions, 'the archive ends with a position marker').toBe(0);
  });

  it.each([
    ['name:before', []],
    [`xid`, [1]],
    ['time', [1]],
    ['lsn', [1]],
    ['latest', [1, 2]],
  ])('replays, lists and compares up to %s', async (kind, ids) => {
    const target = kind === 'xid' ? `xid:${at.xid}` : kind === 'time' ? `time:${at.time}` : kind === 'lsn' ? `lsn:${at.lsn}` : kind;
    const { r, seen } = await replayIntoFresh(source, ['--store', store(), '--to', target], async (c) =>
      (await c.query<{ id: number }>('select id from t order by id')).rows.map((x) => x.id),
    );
    expect(r.code, r.stderr).toBe(0);
    expect(seen).toEqual(ids);
    const log = await pgtape(['log', '--store', store(), '--to', target, '--json']);
    expect(log.code, log.stderr).toBe(0);
    // The log lists exactly the inserts the replay holds (after the base, up to the target).
    const inserts = log.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { tables?: Record<string, unknown> });
    expect(inserts.filter((t) => t.tables && 'public.t' in t.tables)).toHaveLength(ids.length);
    const base = formatLsn((await listBases(openStore(store())))[0]!.lsn);
    const diff = await pgtape(['diff', '--store', store(), '--from', `lsn:${base}`, '--to', target, '--format', 'jsonl']);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout.trim().split('\n').filter(Boolean)).toHaveLength(ids.length);
  });

  it.each([
    ['cut short inside its header', (file: string) => truncateSync(file, 20)],
    [
      'with a flipped byte in its body',
      (file: string) => {
        const bytes = readFileSync(file);
        bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0xff;
        writeFileSync(file, bytes);
      },
    ],
  ])('with its last segment %s, every target verify says works works', async (_how, damage) => {
    const copy = join(store(), '..', `damaged-${_how.length}`);
    cpSync(store(), copy, { recursive: true });
    const segments = readdirSync(join(copy, 'segments')).sort();
    damage(join(copy, 'segments', segments.at(-2)!));
    const verify = await pgtape(['verify', '--store', copy, '--json']);
    expect(verify.code, verify.stderr).toBe(4);
    const summary = (JSON.parse(verify.stdout.trim().split('\n').at(-1)!) as { summary: { replayable: { from: string; to: string }[] } })
      .summary;
    expect(summary.replayable.length).toBeGreaterThan(0);
    for (const { to } of summary.replayable) {
      const { r } = await replayIntoFresh(source, ['--store', copy, '--to', `lsn:${to}`], async () => undefined);
      expect(r.code, `replay --to lsn:${to}: ${r.stderr}`).toBe(0);
      const log = await pgtape(['log', '--store', copy, '--to', `lsn:${to}`]);
      expect(log.code, `log --to lsn:${to}: ${log.stderr}`).toBe(0);
    }
    // Past the damage, replay refuses, naming it (exit 4).
    const { r } = await replayIntoFresh(source, ['--store', copy], async () => undefined);
    expect(r.code, r.stderr).toBe(4);
  });

  it.each([
    [['--tables', 'public.nosuch'], /neither the base at \S+ nor the log up to the target has a table public\.nosuch/],
    [['--tables', ','], /--table\/--tables names no table/],
    [['--exclusive'], /--exclusive with --to latest says nothing/],
    [['--to', 'commit:0123456789abcdef'], /is a directory, read as it is, and no <input>_COMMIT variable names that commit/],
  ])('refuses a replay that would silently do nothing or something else: %j', async (args, message) => {
    const dir = join(store(), '..', 'never');
    const r = await pgtape(['replay', '--store', store(), '--csv', dir, ...(args as string[])]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
    expect(existsSync(dir)).toBe(false);
  });

  it('refuses --table naming a table the archive never held, and verify --from after --to', async () => {
    const base = formatLsn((await listBases(openStore(store())))[0]!.lsn);
    const cases: [string[], RegExp][] = [
      [['log', '--table', 'public.nosuch'], /--table: the archive has no table public\.nosuch/],
      [['diff', '--from', `lsn:${base}`, '--table', 'public.nosuch'], /--table: the archive has no table public\.nosuch/],
      [['verify', '--from', `xid:${at.xid}`, '--to', `lsn:${base}`], /--from xid:\d+ is after --to/],
    ];
    for (const [args, message] of cases) {
      const r = await pgtape([...args, '--store', store()]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const known = await pgtape(['log', '--store', store(), '--table', 't', '--json']);
    expect(known.code, known.stderr).toBe(0);
    expect(known.stdout.trim().split('\n')).toHaveLength(2);
  });
});
