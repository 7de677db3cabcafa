import { describe, expect, it } from 'vitest';
import { archiveArgs, pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { applyPatch, patchBetween, replayIntoFresh } from '../support/replay-into.js';
import { differences, sourceNow, type SourceState, rowsAndSchema } from '../support/script-points.js';

// Postgres 18 publishes stored generated columns where the publication says
// `publish_generated_columns = stored` (or a column list names them): their values are then in
// the Relation and every row of the log. An auditor sees them there; the replay's tables compute
// their own, and must neither write into them (Postgres refuses) nor take the Relation's columns
// as a change of the table's shape — nor drop them when the publication stops publishing them.
// (Postgres then refuses updates and deletes of a REPLICA IDENTITY FULL table with generated
// columns: its identity would hold columns not published.)

const SCHEMA = `
  create table orders (id int primary key, qty int, price numeric, total numeric generated always as (qty * price) stored, note text);
  create table events (kind text, n int, twice int generated always as (n * 2) stored);
  alter table events replica identity full;
  create table shown (id int primary key, a int, thrice int generated always as (a * 3) virtual);
  insert into orders (id, qty, price) select g, g % 7, g * 1.5 from generate_series(1, 300) g;
  insert into events (kind, n) select 'k' || (g % 5), g from generate_series(1, 100) g;
  insert into shown (id, a) select g, g from generate_series(1, 50) g;
  create publication pgtape for all tables with (publish_generated_columns = stored);
`;

/** Steps after the base, each followed by a recorded point. */
const STEPS: [string, string][] = [
  [
    'rows written while the generated columns are published',
    `insert into orders (id, qty, price) values (301, 2, 10), (302, 3, 11);
     update orders set qty = qty + 1 where id % 10 = 0;
     update orders set note = 'only the note' where id % 13 = 0;
     delete from orders where id % 17 = 0;
     insert into events (kind, n) values ('new', 1000), ('new', 1001);
     update events set n = n + 100 where kind = 'k1';
     delete from events where kind = 'k2';
     update shown set a = a * 10 where id < 10;`,
  ],
  [
    'the publication stops publishing them',
    `alter publication pgtape set (publish_generated_columns = none);
     update orders set price = price * 2 where id % 11 = 0;
     insert into orders (id, qty, price) values (303, 4, 12);
     insert into events (kind, n) values ('while none', 5);`,
  ],
  [
    'and publishes them again',
    `alter publication pgtape set (publish_generated_columns = stored);
     update orders set qty = 0 where id % 9 = 0;
     delete from events where kind = 'k4';
     insert into events (kind, n) values ('again', 7);`,
  ],
];

/** With --capture-ddl: a column renamed after the table's rows came with its generated column (the rename is known by column number). */
const RENAMED: [string, string] = [
  'a column renamed',
  `alter table orders rename column note to remark;
   update orders set qty = qty + 5 where id = 5;`,
];

interface Point extends SourceState {
  mark: string;
}

for (const capture of [false, true]) {
  describe(`generated columns the publication publishes (Postgres 18${capture ? ', --capture-ddl' : ''})`, () => {
    const source = useSource(SCHEMA, { major: 18 });
    const points: Point[] = [];
    const steps = capture ? [...STEPS, RENAMED] : STEPS;
    const archive = () =>
      pgtape([...archiveArgs(source.db.url(), source.store.dir, ...(capture ? ['--capture-ddl'] : [])), '--until', 'now']);

    it('are in the log, and every point replays to the source: rows and schema', async () => {
      const first = await archive();
      expect(first.code, first.stderr).toBe(0);
      const record = async (mark: string) => {
        const marked = await pgtape(['mark', '--source', source.db.url(), mark]);
        expect(marked.code, marked.stderr).toBe(0);
        points.push({ mark, ...(await sourceNow(source.admin)) });
      };
      await record('p0');
      for (const [i, [, sql]] of steps.entries()) {
        await source.admin.query(sql);
        await record(`p${i + 1}`);
      }
      const rest = await archive();
      expect(rest.code, rest.stderr).toBe(0);

      // The auditor's view: the computed values, as the source sent them.
      const log = await pgtape(['log', '--store', source.store.dir, '--rows']);
      expect(log.code, log.stderr).toBe(0);
      expect(log.stdout).toContain('+ public.orders (id="301") id="301" qty="2" price="10" total="20"');
      expect(log.stdout).toMatch(/twice="2002"/);

      const wrong: string[] = [];
      for (const p of points) {
        const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `name:${p.mark}`], rowsAndSchema);
        expect(r.code, `${p.mark}: ${r.stderr}`).toBe(0);
        // Published columns are neither an added column nor anything else to warn of.
        expect(r.stderr, p.mark).not.toMatch(/"level":40/);
        wrong.push(...differences(p, seen!).map((d) => `${p.mark}: ${d}`));
      }
      expect(wrong).toEqual([]);
    });

    it('diff --format sql from each point to the next brings a replay of the one to the other', async () => {
      expect(points.length).toBe(steps.length + 1);
      const wrong: string[] = [];
      for (let i = 0; i + 1 < points.length; i++) {
        const [from, to] = [points[i]!, points[i + 1]!];
        const patch = await patchBetween(source.store.dir, from.mark, to.mark);
        expect(patch.code, patch.stderr).toBe(0);
        const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `name:${from.mark}`], async (c) => {
          await applyPatch(c, patch.stdout, `${from.mark} → ${to.mark}`);
          return rowsAndSchema(c);
        });
        expect(r.code, r.stderr).toBe(0);
        wrong.push(...differences(to, seen!).map((d) => `${from.mark} → ${to.mark}: ${d}`));
      }
      expect(wrong).toEqual([]);
    });

    it('diff reports no change of shape where only the publication changed, and compares rows without the computed values', async () => {
      expect(points.length).toBe(steps.length + 1);
      for (const [from, to] of [
        ['p0', 'p1'],
        ['p1', 'p2'],
        ['p0', 'p3'],
      ]) {
        const d = await pgtape(['diff', '--store', source.store.dir, '--from', `name:${from}`, '--to', `name:${to}`, '--format', 'jsonl']);
        expect(d.code, d.stderr).toBe(0);
        const lines = d.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { change: string; after?: Record<string, unknown> });
        expect(lines.filter((l) => l.change === 'schema')).toEqual([]);
        expect(d.stdout).not.toMatch(/"(total|twice)"/);
      }
    });
  });
}
