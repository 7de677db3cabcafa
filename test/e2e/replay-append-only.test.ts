import { describe, expect, it } from 'vitest';
import { archiveArgs, logLines, pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { checksums } from '../support/oracle.js';
import { replayIntoFresh } from '../support/replay-into.js';
import { describeSchema } from '../support/schema.js';
import { rowsAndSchema } from '../support/script-points.js';

// Tables the log after the base only inserts into (or does not change) are loaded while the log
// is folded (their base rows are final as they are) and get their inserts appended: replay must still equal the source,
// whatever else the history does — keyed and REPLICA IDENTITY FULL tables, partitions, a table
// whose shape changed before its inserts, and tables beside them that are updated and deleted.

const BEFORE = `
  create table events (id bigint primary key, at timestamptz not null, what text);
  insert into events select g, '2026-01-01'::timestamptz + g * interval '1 minute', 'e' || g from generate_series(1, 2000) g;
  create table readings (sensor int, v numeric);
  alter table readings replica identity full;
  insert into readings select g % 7, g / 3.0 from generate_series(1, 500) g;
  insert into readings values (1, 1), (1, 1);
  create table logged (id int, day date, line text, primary key (id, day)) partition by range (day);
  create table logged_2026 partition of logged for values from ('2026-01-01') to ('2027-01-01');
  insert into logged select g, '2026-03-01', 'l' || g from generate_series(1, 300) g;
  create table widened (id int primary key, a text);
  insert into widened select g, 'w' || g from generate_series(1, 100) g;
  create table accounts (id int primary key, balance int);
  insert into accounts select g, 100 from generate_series(1, 1000) g;
  create table untouched (id int primary key, note text);
  insert into untouched select g, 'u' || g from generate_series(1, 50) g;
`;

const AFTER = [
  `insert into events select g, '2026-06-01'::timestamptz + g * interval '1 minute', 'later' || g from generate_series(2001, 5000) g`,
  `insert into readings values (1, 1), (2, 2.5)`,
  `insert into logged select g, '2026-04-01', 'm' || g from generate_series(301, 400) g`,
  `alter table widened add column b int`,
  `insert into widened values (101, 'new', 7)`,
  `update accounts set balance = balance - 10 where id % 3 = 0`,
  `delete from accounts where id > 990`,
  `insert into events values (5001, now(), 'last')`,
];

describe('replay of tables the log only inserts into (loaded while the log is folded)', () => {
  const source = useSource(BEFORE);

  it('equals the source, and says which tables it loaded early', async () => {
    const base = await pgtape(archiveArgs(source.db.url(), source.store.dir, '--create-publication', '--until', 'now'));
    expect(base.code, base.stderr).toBe(0);
    const client = await source.db.client();
    for (const sql of AFTER) await client.query(sql);
    const r = await pgtape(archiveArgs(source.db.url(), source.store.dir, '--until', 'now'));
    expect(r.code, r.stderr).toBe(0);
    const want = { sums: await checksums(client), schema: await describeSchema(client) };

    const { r: replayed, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', 'latest'], rowsAndSchema, {
      PGTAPE_LOG_LEVEL: 'debug',
    });
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(seen!.sums).toEqual(want.sums);
    expect(seen!.schema).toEqual(want.schema);
    const early = logLines(replayed.stderr)
      .filter((l) => l.msg === 'base table loaded while the log is folded')
      .map((l) => l.table)
      .sort();
    // Not accounts (updated and deleted); widened too: its base rows are final, its insert comes
    // set-based in its new shape; untouched: no change at all.
    expect(early).toEqual(['public.events', 'public.logged_2026', 'public.readings', 'public.untouched', 'public.widened']);
  });
});
