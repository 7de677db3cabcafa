import { cpSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { brotliCompressSync, brotliDecompressSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { archiveArgs, pgtape, startPgtape, type CliResult } from '../support/cli.js';
import { until, useSource } from '../support/fixture.js';
import { transaction } from '../support/tape.js';
import { tempStore } from '../support/tape.js';

const SCHEMA = `
  create schema shop;
  create table shop.orders (id int primary key, item text not null, qty int);
  create table notes (at text, what text);
  alter table notes replica identity full;
  create table docs (id int primary key, title text, body text);
  alter table docs alter column body set storage external;
  insert into shop.orders values (100, 'before the base', 1);
  insert into docs values (1, 'doc', repeat('long body ', 20000));
  create table wiki (id int primary key, body text);
  alter table wiki alter column body set storage external;
  insert into wiki select g, repeat('page ' || g || ' ', 5000) from generate_series(1, 3) g;
`;

const lines = (r: CliResult) => r.stdout.trim().split('\n').filter(Boolean);
const json = <T = Record<string, unknown>>(r: CliResult) => lines(r).map((l) => JSON.parse(l) as T);

describe('audit: log, diff, verify and status', () => {
  const source = useSource(SCHEMA);
  const store = () => source.store.dir;
  /** One big segment of the same history, archived by a second slot: an overlap for verify. */
  const second = tempStore();
  afterAll(() => second.cleanup());
  const xids: Record<string, number> = {};

  const archive = async (...extra: string[]) => {
    const r = await pgtape(
      archiveArgs(source.db.url(), store(), '--until', 'now', '--create-publication', '--segment-bytes', '1kB', ...extra),
    );
    expect(r.code, r.stderr).toBe(0);
  };

  it('records a known history', async () => {
    await archive();
    const other = await pgtape(['archive', '--source', source.db.url(), '--store', second.dir, '--slot', 'second', '--until', 'now']);
    expect(other.code, other.stderr).toBe(0);
    const c = await source.db.client();
    xids.insert = (await transaction(c, async (q) => {
      await q.query(`insert into shop.orders values (1, 'walnuts', 2), (2, 'pecans', 1)`);
      await q.query(`insert into notes values ('t1', 'hello'), ('t1', 'hello')`);
    }))!;
    xids.update = (await transaction(c, async (q) => {
      await q.query(`update shop.orders set qty = 5 where id = 1`);
      await q.query(`update shop.orders set qty = 9, item = 'old stock' where id = 100`);
      await q.query(`update notes set what = 'bye' where ctid = (select ctid from notes limit 1)`);
    }))!;
    await c.query(`select pg_logical_emit_message(true, 'pgtape', 'm1')`);
    xids.delete = (await transaction(c, async (q) => {
      await q.query(`delete from shop.orders where id = 2`);
      await q.query(`update docs set title = 'doc 2' where id = 1`);
    }))!;
    xids.rekey = (await transaction(c, async (q) => {
      await q.query(`update shop.orders set id = 3 where id = 1`);
      // New keys whose unchanged TOAST bodies come from the old keys' rows, which are in the base.
      await q.query(`update wiki set id = id + 1000`);
    }))!;
    await c.query(`select pg_logical_emit_message(true, 'pgtape', 'm2')`);
    xids.back = (await transaction(c, async (q) => {
      await q.query(`insert into shop.orders values (7, 'cashews', 1)`);
      await q.query(`update shop.orders set qty = 2 where id = 7`);
      await q.query(`update shop.orders set qty = 1 where id = 7`);
      await q.query(`delete from shop.orders where id = 7`);
      await q.query(`update shop.orders set qty = 10 where id = 100`);
      await q.query(`update shop.orders set qty = 9 where id = 100`);
    }))!;
    // Incompressible fillers: the 1 kB segments roll often.
    for (let i = 0; i < 60; i++)
      await c.query(`insert into notes values ($1, (select string_agg(md5(random()::text), '') from generate_series(1, 10)))`, [`f${i}`]);
    await c.end();
    await archive();
    const again = await pgtape(archiveArgs(source.db.url(), second.dir, '--slot', 'second', '--until', 'now', '--segment-bytes', '64MB'));
    expect(again.code, again.stderr).toBe(0);
  });

  it('log lists transactions in commit order, with --table and --rows', async () => {
    const all = json<{ xid: number; marks: string[]; tables: Record<string, { inserts: number; updates: number; deletes: number }> }>(
      await pgtape(['log', '--store', store(), '--json']),
    );
    const ours = all.filter((t) => Object.values(xids).includes(t.xid));
    expect(ours.map((t) => t.xid)).toEqual([xids.insert, xids.update, xids.delete, xids.rekey, xids.back]);
    expect(ours[1]!.tables).toEqual({
      'shop.orders': { inserts: 0, updates: 2, deletes: 0, truncates: 0 },
      'public.notes': { inserts: 0, updates: 1, deletes: 0, truncates: 0 },
    });
    expect(all.flatMap((t) => t.marks)).toEqual(['m1', 'm2']);

    // Only the transactions that touched shop.orders, from mark m1 (excluded) to m2 (included).
    const ranged = json<{ xid: number }>(
      await pgtape(['log', '--store', store(), '--json', '--table', 'shop.orders', '--from', 'name:m1', '--to', 'name:m2']),
    );
    expect(ranged.map((t) => t.xid)).toEqual([xids.delete, xids.rekey]);

    const rows = json<Record<string, unknown>>(
      await pgtape(['log', '--store', store(), '--json', '--rows', '--table', 'shop.orders', '--to', 'name:m2']),
    );
    const changes = rows.filter((r) => 'change' in r).map(({ xid: _x, commitLsn: _c, ...rest }) => rest);
    expect(changes).toEqual([
      { change: 'insert', table: 'shop.orders', key: { id: '1' }, new: { id: '1', item: 'walnuts', qty: '2' } },
      { change: 'insert', table: 'shop.orders', key: { id: '2' }, new: { id: '2', item: 'pecans', qty: '1' } },
      { change: 'update', table: 'shop.orders', key: { id: '1' }, new: { id: '1', item: 'walnuts', qty: '5' } },
      { change: 'update', table: 'shop.orders', key: { id: '100' }, new: { id: '100', item: 'old stock', qty: '9' } },
      { change: 'delete', table: 'shop.orders', key: { id: '2' } },
      {
        change: 'update',
        table: 'shop.orders',
        key: { id: '1' },
        old: { id: '1' },
        new: { id: '3', item: 'walnuts', qty: '5' },
        changed: ['id'],
      },
    ]);
    // REPLICA IDENTITY FULL gives the old row: the changed column is named.
    const notes = json<Record<string, unknown>>(
      await pgtape(['log', '--store', store(), '--json', '--rows', '--table', 'notes', '--to', `xid:${xids.update}`]),
    );
    expect(notes.find((r) => r.change === 'update')).toMatchObject({
      old: { at: 't1', what: 'hello' },
      new: { at: 't1', what: 'bye' },
      changed: ['what'],
    });
    // An untouched TOASTed column is said to be unchanged, not NULL.
    const docs = json<Record<string, unknown>>(await pgtape(['log', '--store', store(), '--json', '--rows', '--table', 'docs']));
    expect(docs.find((r) => r.change === 'update')).toMatchObject({ new: { id: '1', title: 'doc 2' }, unchanged: ['body'] });

    const text = await pgtape([
      'log',
      '--store',
      store(),
      '--rows',
      '--table',
      'shop.orders',
      '--from',
      `xid:${xids.insert}`,
      '--to',
      `xid:${xids.update}`,
    ]);
    expect(text.code, text.stderr).toBe(0);
    expect(lines(text)).toEqual([
      expect.stringMatching(new RegExp(`^\\S+ +xid ${xids.update} +\\S+$`)),
      '  ~ shop.orders (id="1") id="1" item="walnuts" qty="5"',
      '  ~ shop.orders (id="100") id="100" item="old stock" qty="9"',
    ]);
  });

  it('diff shows the net difference, from the change log alone when it can', async () => {
    const inserts = await pgtape(['diff', '--store', store(), '--from', `xid:${xids.insert}`, '--to', `xid:${xids.insert}`]);
    expect(inserts.code, inserts.stderr).toBe(0);
    expect(lines(inserts)).toContain('(no differences)');

    const onlyLog = await pgtape([
      'diff',
      '--store',
      store(),
      '--from',
      `xid:${xids.update}`,
      '--to',
      'name:m1',
      '--format',
      'jsonl',
      '--table',
      'shop.orders',
    ]);
    expect(onlyLog.code, onlyLog.stderr).toBe(0);
    expect(onlyLog.stdout).toBe('');

    const r = await pgtape(['diff', '--store', store(), '--from', `xid:${xids.insert}`, '--to', 'latest', '--format', 'jsonl']);
    expect(r.code, r.stderr).toBe(0);
    const rows = json<Record<string, unknown>>(r);
    const orders = rows.filter((x) => x.table === 'shop.orders');
    // 1 became 3 (a key change), 2 was deleted, 100 changed (and 7 came and went: no difference).
    expect(orders).toEqual(
      expect.arrayContaining([
        { table: 'shop.orders', change: 'deleted', key: { id: '1' }, before: { id: '1', item: 'walnuts', qty: '2' } },
        { table: 'shop.orders', change: 'deleted', key: { id: '2' }, before: { id: '2', item: 'pecans', qty: '1' } },
        { table: 'shop.orders', change: 'added', key: { id: '3' }, after: { id: '3', item: 'walnuts', qty: '5' } },
        {
          table: 'shop.orders',
          change: 'modified',
          key: { id: '100' },
          before: { id: '100', item: 'before the base', qty: '1' },
          after: { id: '100', item: 'old stock', qty: '9' },
          cells: ['item', 'qty'],
        },
      ]),
    );
    expect(orders).toHaveLength(4);
    // The row of id 100 as it was at --from comes from the base's file: the log says so.
    expect(r.stderr).toMatch(/read the rows at --from from the base/);
    const docs = rows.find((x) => x.table === 'public.docs')!;
    expect(docs).toMatchObject({ change: 'modified', cells: ['title'] });
    expect((docs.before as { body: string }).body).toBe('long body '.repeat(20000));

    const wiki = rows.filter((x) => x.table === 'public.wiki');
    expect(wiki).toEqual(
      expect.arrayContaining(
        [1, 2, 3].flatMap((id) => [
          {
            table: 'public.wiki',
            change: 'deleted',
            key: { id: String(id) },
            before: { id: String(id), body: `page ${id} `.repeat(5000) },
          },
          {
            table: 'public.wiki',
            change: 'added',
            key: { id: String(1000 + id) },
            after: { id: String(1000 + id), body: `page ${id} `.repeat(5000) },
          },
        ]),
      ),
    );
    expect(wiki).toHaveLength(6);

    const summary = await pgtape(['diff', '--store', store(), '--from', `xid:${xids.insert}`, '--summary']);
    expect(lines(summary).slice(1)).toEqual(
      expect.arrayContaining([
        'shop.orders: 1 added, 2 deleted, 1 modified (2 cells)',
        'public.notes: 61 added, 1 deleted, 0 modified (0 cells)',
        'public.docs: 0 added, 0 deleted, 1 modified (1 cells)',
      ]),
    );
    const csv = await pgtape(['diff', '--store', store(), '--from', `xid:${xids.insert}`, '--table', 'shop.orders', '--format', 'csv']);
    expect(lines(csv)).toContain('shop.orders,modified,"{""id"":""100""}",1,qty,1,9');

    // Compared in parts spilled to disk (a tiny --memory), every format says the same, in another
    // order; wiki's key changes take their bodies from other parts' keys: it is compared whole.
    const sorted = (x: CliResult) => lines(x).sort();
    for (const format of [['--format', 'jsonl'], ['--format', 'sql'], ['--summary']]) {
      const args = ['diff', '--store', store(), '--from', `xid:${xids.insert}`, ...format];
      const [whole, parted] = [await pgtape(args), await pgtape([...args, '--memory', '1kB'])];
      expect(parted.code, parted.stderr).toBe(0);
      expect(sorted(parted), format.join(' ')).toEqual(sorted(whole));
      expect(parted.stderr).toMatch(/"spilled":[1-9]/);
      expect(parted.stderr).toMatch(/diff compares a table whole/);
    }

    const bad = await pgtape(['diff', '--store', store(), '--from', 'latest', '--to', `xid:${xids.insert}`]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--from latest is after --to/);
  });

  it('ends quietly when its reader stops reading (| head -1), with exit 0', async () => {
    for (const args of [['verify'], ['log', '--rows'], ['log', '--json'], ['diff', '--from', 'name:m1', '--format', 'jsonl']]) {
      const child = startPgtape([...args, '--store', store()]);
      // The first line read, the pipe is closed: what the command writes next meets EPIPE.
      await until(() => child.output.stdout.includes('\n'));
      child.stdout!.destroy();
      const r = await child.done;
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stderr).not.toMatch(/EPIPE|\n\s+at /);
    }
  });

  it('verify passes a sound archive and names each kind of damage', async () => {
    const ok = await pgtape(['verify', '--store', store()]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^verified 1 bases and \d+ segments .*: \d+ OK$/m);

    const segments = readdirSync(join(store(), 'segments')).sort();
    expect(segments.length).toBeGreaterThan(4);
    const base = join('base', readdirSync(join(store(), 'base'))[0]!);
    const table = readdirSync(join(store(), base, 'tables'))[0]!;
    const middle = segments[Math.floor(segments.length / 2)]!;
    const big = readdirSync(join(second.dir, 'segments'))
      .filter((s) => readFileSync(join(second.dir, 'segments', s)).length > 1000)
      .at(-1)!;
    const damages: [string, (dir: string) => void, string, RegExp][] = [
      [
        'a truncated segment',
        (d) => truncateSync(join(d, 'segments', middle), readFileSync(join(d, 'segments', middle)).length - 7),
        'CORRUPT',
        /truncated|header says|cannot be decoded|checksum/,
      ],
      // Wherever the byte is, the body's checksum names the damage (a flipped byte may still
      // decompress into entries that make no sense: that is not what to report).
      ...[0.1, 0.5, 0.95].map((at): [string, (dir: string) => void, string, RegExp] => [
        `a flipped byte in a body, at ${at * 100}% of it`,
        (d) => {
          const f = join(d, 'segments', middle);
          const b = readFileSync(f);
          // The body starts after the magic, the header's length and the header.
          const body = 12 + b.readUInt32BE(8);
          const i = body + Math.floor((b.length - body) * at);
          b[i] = b[i]! ^ 0x40;
          writeFileSync(f, b);
        },
        'CORRUPT',
        /checksum|cannot be decoded/,
      ]),
      ['a missing segment', (d) => rmSync(join(d, 'segments', middle)), 'GAP', /no segment covers/],
      ['two overlapping segments', (d) => cpSync(join(second.dir, 'segments', big), join(d, 'segments', big)), 'OVERLAP', /stored twice/],
      ['a base without its manifest', (d) => rmSync(join(d, base, 'manifest.json')), 'MISSING', /manifest.json is missing/],
      ['a base missing a table file', (d) => rmSync(join(d, base, 'tables', table)), 'MISSING', /is missing/],
    ];
    for (const [what, damage, status, detail] of damages) {
      const dir = join(store(), '..', `damaged-${status}-${Math.random().toString(36).slice(2)}`);
      cpSync(store(), dir, { recursive: true });
      damage(dir);
      const before = readdirSync(join(dir, 'segments')).map((s) => readFileSync(join(dir, 'segments', s)).length);
      const r = await pgtape(['verify', '--store', dir]);
      expect(r.code, what).toBe(4);
      const line = lines(r).find((l) => l.startsWith(status));
      expect(line, `${what}: ${r.stdout}`).toMatch(detail);
      expect(r.stderr, what).toMatch(/pgtape: the archive is damaged: /);
      expect(r.stderr).toMatch(/what to do: (replay targets from|no stretch)/);
      const asJson = json<{ status?: string; summary?: { sound: boolean } }>(await pgtape(['verify', '--store', dir, '--json']));
      expect(
        asJson.some((f) => f.status === status),
        what,
      ).toBe(true);
      expect(asJson.at(-1)!.summary!.sound).toBe(false);
      // Verify only reads.
      expect(readdirSync(join(dir, 'segments')).map((s) => readFileSync(join(dir, 'segments', s)).length)).toEqual(before);
      rmSync(dir, { recursive: true, force: true });
    }
    // Damage after the range asked for does not fail a verify of the range before it.
    const dir = join(store(), '..', 'damaged-late');
    cpSync(store(), dir, { recursive: true });
    renameSync(join(dir, 'segments', segments.at(-1)!), join(dir, 'stray'));
    writeFileSync(join(dir, 'segments', segments.at(-1)!), 'not a segment');
    const early = await pgtape(['verify', '--store', dir, '--to', 'name:m1']);
    expect(early.code, early.stdout).toBe(0);
    const whole = await pgtape(['verify', '--store', dir]);
    expect(whole.code).toBe(4);
    expect(whole.stderr).toMatch(/replay targets from \S+ to \S+ still work/);
  });

  it('a damaged base table file: replay and diff say which, with exit 4, instead of using its rows', async () => {
    const base = join('base', readdirSync(join(store(), 'base'))[0]!);
    const tables = readdirSync(join(store(), base, 'tables')).sort();
    const damages: [string, (file: string) => void, RegExp][] = [
      // Bytes the codec refuses, and bytes it decodes into other rows: the manifest's checksum tells.
      [
        'garbage inside',
        (f) => writeFileSync(f, Buffer.concat([readFileSync(f).subarray(0, 3), Buffer.alloc(40, 0x78)])),
        /cannot be decompressed|does not match the checksum/,
      ],
      [
        'a flipped byte',
        (f) => {
          const b = readFileSync(f);
          b[b.length >> 1] = b[b.length >> 1]! ^ 0x40;
          writeFileSync(f, b);
        },
        /cannot be decompressed|does not match the checksum|ends inside a row/,
      ],
      [
        'cut short',
        (f) => truncateSync(f, readFileSync(f).length >> 1),
        /cannot be decompressed|does not match the checksum|ends inside a row/,
      ],
      // Compressed well, but a row with a column too many: the server refuses it before the
      // file's end, where the checksum is compared — still the archive's damage, not exit 1.
      [
        'a row changed inside a valid compressed stream',
        (f) => {
          const text = brotliDecompressSync(readFileSync(f)).toString('utf8');
          writeFileSync(
            f,
            brotliCompressSync(Buffer.from(text.includes('\n') ? text.replace('\n', '\textra\n') : 'extra\textra\textra\n')),
          );
        },
        /does not match the checksum/,
      ],
    ];
    for (const [what, damage, says] of damages) {
      for (const table of tables) {
        const dir = join(store(), '..', `damaged-base-${Math.random().toString(36).slice(2)}`);
        cpSync(store(), dir, { recursive: true });
        damage(join(dir, base, 'tables', table));
        const file = new RegExp(`${base}/tables/${table}`.replace(/[.]/g, '\\.'));
        const replayed = await pgtape(['replay', '--store', dir, '--to', 'latest', '--csv', join(dir, 'out')]);
        expect(replayed.code, `${what} ${table}: ${replayed.stderr}`).toBe(4);
        expect(replayed.stderr).toMatch(says);
        expect(replayed.stderr).toMatch(file);
        expect(statSync(join(dir, 'out'), { throwIfNoEntry: false }), 'no output').toBeUndefined();
        rmSync(dir, { recursive: true, force: true });
      }
    }
    // diff reads a base's rows only for the tables whose rows at --from it needs: a table the range updates.
    const dir = join(store(), '..', `damaged-base-diff`);
    cpSync(store(), dir, { recursive: true });
    for (const table of tables) damages[0]![1](join(dir, base, 'tables', table));
    const lsn = readdirSync(join(dir, 'base'))[0]!;
    const from = `lsn:${parseInt(lsn.slice(0, 8), 16).toString(16).toUpperCase()}/${parseInt(lsn.slice(8), 16).toString(16).toUpperCase()}`;
    const diffed = await pgtape(['diff', '--store', dir, '--from', from, '--to', 'latest', '--summary']);
    expect(diffed.code, diffed.stderr + diffed.stdout).toBe(4);
    expect(diffed.stderr).toMatch(/the archive is damaged: .*tables\/\d{4}\.copy\.br/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('status reports the slot, the lag, too much retained WAL, and a dropped slot', async () => {
    const status = (...extra: string[]) => pgtape(['status', '--source', source.db.url(), '--store', store(), '--json', ...extra]);
    const healthy = await status();
    const s = JSON.parse(healthy.stdout) as {
      slot: { exists: boolean; active: boolean };
      archive: {
        bases: number;
        segments: number;
        bytes: number;
        newestBase: { lsn: string; ageSeconds: number; segmentsSince: number; bytesSince: number };
      };
      behind: { bytes: number };
      warnings: string[];
    };
    expect(s.slot.exists).toBe(true);
    expect(s.archive.bases).toBe(1);
    // The archive's size and what a replay of latest costs: the base and every segment after it.
    const stored = readdirSync(store(), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && /^(base|segments)/.test(relative(store(), e.parentPath)))
      .reduce((n, e) => n + statSync(join(e.parentPath, e.name)).size, 0);
    expect(s.archive.bytes).toBe(stored);
    expect(s.archive.newestBase.segmentsSince).toBe(s.archive.segments);
    expect(s.archive.newestBase.ageSeconds).toBeGreaterThan(0);
    const text = await pgtape(['status', '--source', source.db.url(), '--store', store()]);
    // Its age in the units status prints it in: the base was taken at the file's start, over two minutes ago on a slow machine.
    expect(text.stdout).toMatch(/^size +[\d.]+ KiB; newest base \S+, [\d.]+ (s|min) old, followed by \d+ segments/m);
    // No archiver runs between the tests: that alone is worth a warning.
    expect(s.warnings).toEqual([expect.stringMatching(/not in use/)]);

    // The archiver is stopped while the workload goes on: the slot holds the WAL.
    await source.admin.query(`insert into notes select g::text, repeat('w', 200) from generate_series(1, 20000) g`);
    const behind = await status('--max-retained-wal', '1MB');
    expect(behind.code).toBe(4);
    const b = JSON.parse(behind.stdout) as typeof s;
    expect(b.behind.bytes).toBeGreaterThan(1 << 20);
    expect(b.warnings.join('\n')).toMatch(/retains [\d.]+ MiB of WAL, more than --max-retained-wal \(976\.6 KiB\)/);
    expect(behind.stderr).toMatch(/the stream needs attention/);

    await source.admin.query(`select pg_drop_replication_slot('pgtape')`);
    const dropped = await pgtape(['status', '--source', source.db.url(), '--store', store()]);
    expect(dropped.code).toBe(4);
    expect(dropped.stdout).toMatch(/slot +pgtape does not exist/);
    expect(dropped.stdout).toMatch(/warning +slot pgtape does not exist: nothing after \S+ is being recorded/);
  });
});
