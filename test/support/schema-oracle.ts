import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { archiveArgs, pgtape } from './cli.js';
import { useSource } from './fixture.js';
import { checksums } from './oracle.js';
import { TEST_PG_MAJOR } from './postgres.js';
import { seededRandom, TEST_SEED } from './random.js';
import { replayIntoFresh, replayIntoNewPgdata } from './replay-into.js';
import { describeSchema, sequenceValues, type SchemaDescription } from './schema.js';
import { dropSlotWhenFree, tempStore } from './tape.js';
import { rowsAndSchema } from './script-points.js';

// The schema oracle (docs/ARCHITECTURE.md, How correctness and speed are shown): a schema with
// every kind of object is archived through three publications — leaves, the partition root, a
// row filter and column list — while a workload runs; every recorded point replays to the
// source's rows and schema, and the replay takes writes as the source does.

const SCHEMA = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'schema', 'every-kind.sql'), 'utf8');

interface Point {
  lsn: string;
  sums: Record<string, string>;
  schema: SchemaDescription;
  sequences: Record<string, bigint | null>;
  tickets: unknown[];
}

async function insertLsn(client: pg.Client): Promise<string> {
  return (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!.lsn;
}

/** One batch of the workload: rows through defaults, updates, deletes, rows moving between partitions. */
async function batch(client: pg.Client, n: number, random: () => number): Promise<void> {
  const moods = ['sad', 'ok', 'happy'];
  await client.query('begin');
  for (let i = 0; i < 5; i++) {
    const { rows } = await client.query<{ id: number }>(
      `insert into shop.customers (email, name, mood, address) values ($1, $2, $3, row($4, 'Springfield', $5)) returning id`,
      [`c${n}-${i}@example.org`, `Customer ${n} ${i}!`, moods[Math.floor(random() * 3)], `${i} Main St`, 1000 + i],
    );
    const customer = rows[0]!.id;
    await client.query(
      `insert into shop.orders (customer, qty, unit_price, during) values ($1, $2, $3, tstzrange(now() + $4 * interval '1 day', null))`,
      [customer, 1 + Math.floor(random() * 9), (random() * 50).toFixed(2), n * 10 + i],
    );
    await client.query(`insert into shop.events values ($1, $2, $3)`, [n * 10 + i, i % 2 ? '2025-06-01' : '2026-03-01', i % 3 ? 'a' : 'b']);
  }
  await client.query(`update shop.customers set mood = 'happy', email = email || '.uk' where id % 3 = $1`, [n % 3]);
  // A row moving to another partition (and another level of the tree).
  await client.query(`update shop.events set at = '2026-02-02', kind = 'a' where id = $1`, [n * 10 + 1]);
  await client.query(`delete from shop.orders where id in (select id from shop.orders order by id limit 1)`);
  await client.query(`insert into shop.ranged values ($1, shop.floatrange($2::float8, $3::float8), 'r')`, [n, n, n + 0.5]);
  await client.query(`insert into shop.tickets values ($1, 'open', 'shh', 'b'), ($2, 'hidden', 'no', 'x')`, [n + 1, -n - 1]);
  await client.query(`update shop.tickets set status = 'done', secret = 'new' where id = $1`, [n]);
  await client.query(`insert into notes values ('note ' || $1::text), ('note ' || $1::text)`, [n]);
  // Keyed on a collated column's neighbour, its words made through the user's text search configuration.
  await client.query(
    `insert into shop.articles (id, title, code, body) values ($1::int, 'Batch ' || $1::int, 'b-' || $1::int, 'nuts and more nuts')`,
    [100 + n],
  );
  await client.query(`update shop.articles set body = body || ' again', code = upper(code) where id = 1`);
  await client.query('commit');
  await client.query(`select setval('shop.invoice_no', nextval('shop.invoice_no') + 100)`);
  await client.query('refresh materialized view shop.mood_counts');
}

/** The schema oracle on one Postgres major (the suite's by default). Row filters and column lists need 15. */
export function schemaOracle(options: { major?: number } = {}): void {
  const filters = (options.major ?? TEST_PG_MAJOR) >= 15;
  describe(`schema fidelity: every base holds the whole schema, and replay restores it (Postgres ${options.major ?? TEST_PG_MAJOR})`, () => {
    const source = useSource(SCHEMA, options.major ? { major: options.major } : {});
    const stores = { leaf: tempStore(), root: tempStore(), filtered: tempStore() };
    afterAll(() => Object.values(stores).forEach((s) => s.cleanup()));
    const points: Point[] = [];
    const archive = (which: keyof typeof stores) =>
      pgtape(archiveArgs(source.db.url(), stores[which].dir, '--slot', which, '--publication', `${which}pub`, '--until', 'now'));

    it('archives three publications of the same source while a workload runs', async () => {
      await source.admin.query(`
      insert into shop.customers (email, name) values ('first@example.org', 'First One');
      insert into shop.orders (customer, qty, unit_price) select id, 2, 60 from shop.customers;
      insert into shop.events values (1, '2025-01-05', 'a'), (2, '2026-05-05', 'z');
      insert into shop.tickets values (1, 'open', 's1', 'first'), (-1, 'filtered out', 's2', 'never');
      create publication leafpub for all tables;
      create publication rootpub for all tables with (publish_via_partition_root = true);
    `);
      await source.admin.query(
        filters
          ? 'create publication filteredpub for table shop.tickets (id, status, body) where (id > 0)'
          : 'create publication filteredpub for table shop.tickets',
      );
      for (const which of ['leaf', 'root', 'filtered'] as const) {
        const r = await archive(which);
        expect(r.code, r.stderr).toBe(0);
      }
      // A store holding a base and nothing else replays to the base's point. A session meanwhile
      // holds a temporary table and a function in shop over its row type, which Postgres drops
      // with the session: no part of the database, so none of the base (no replay could make it).
      const session = await source.db.client();
      await session.query(
        'create temp table scratch (a int); create function shop.over_scratch(s scratch) returns int language sql as $$select $1.a$$',
      );
      const alone = tempStore();
      const base = await pgtape(['base', '--source', source.db.url(), '--store', alone.dir, '--publication', 'leafpub']);
      await session.end();
      expect(base.code, base.stderr).toBe(0);
      const before = { sums: await checksums(source.admin), schema: await describeSchema(source.admin) };
      const { r: replayed, seen } = await replayIntoFresh(source, ['--store', alone.dir], rowsAndSchema);
      alone.cleanup();
      expect(replayed.code, replayed.stderr).toBe(0);
      expect(replayed.stdout + replayed.stderr).not.toContain('over_scratch');
      expect(seen).toEqual(before);
      const client = await source.db.client();
      const random = seededRandom(TEST_SEED);
      try {
        for (let n = 1; n <= 4; n++) {
          await batch(client, n, random);
          points.push({
            lsn: await insertLsn(client),
            sums: await checksums(client),
            schema: await describeSchema(client),
            sequences: await sequenceValues(client),
            tickets: (await client.query('select id, status, body from shop.tickets where id > 0 order by id')).rows,
          });
        }
      } finally {
        await client.end();
      }
      for (const which of ['leaf', 'root', 'filtered'] as const) {
        const r = await archive(which);
        expect(r.code, r.stderr).toBe(0);
      }
      // The description is not empty: every kind of object is in it.
      const described = points[0]!.schema;
      for (const kind of ['types', 'relations', 'constraints', 'indexes', 'triggers', 'routines', 'sequences', 'comments', 'statistics']) {
        expect(described[kind]!.length, kind).toBeGreaterThan(0);
      }
    });

    for (const which of ['leaf', 'root'] as const) {
      it(`replays every point with the source's rows and schema (publish_via_partition_root ${which === 'root'})`, async () => {
        for (const [i, p] of points.entries()) {
          const { r, seen } = await replayIntoFresh(source, ['--store', stores[which].dir, '--to', `lsn:${p.lsn}`], async (c) => {
            const sums = await checksums(c);
            const schema = await describeSchema(c);
            const sequences = await sequenceValues(c);
            // Writable as the source is: defaults, serials and identities give keys no row has.
            const customer = await c.query<{ id: number; fresh: boolean }>(
              `insert into shop.customers (email, name) values ('new@example.org', 'New') returning id, id > (select max(id) from shop.customers where name <> 'New') as fresh`,
            );
            const order = await c.query<{ id: string; fresh: boolean }>(
              `insert into shop.orders (customer, qty, unit_price) values ($1, 1, 1) returning id, id > (select max(id) from shop.orders where unit_price <> 1) as fresh`,
              [customer.rows[0]!.id],
            );
            const audited = await c.query<{ n: number }>(`select count(*)::int as n from shop.audit where what = 'INSERT ' || $1`, [
              order.rows[0]!.id,
            ]);
            return { sums, schema, sequences, fresh: [customer.rows[0]!.fresh, order.rows[0]!.fresh], audited: audited.rows[0]!.n };
          });
          expect(r.code, `point ${i}: ${r.stderr}`).toBe(0);
          expect(seen!.sums, `rows at point ${i}`).toEqual(p.sums);
          expect(seen!.schema, `schema at point ${i}`).toEqual(p.schema);
          expect(seen!.fresh, `keys from defaults at point ${i}`).toEqual([true, true]);
          // The trigger is there and fires for new rows (it did not fire again for replayed ones: the checksums say so).
          expect(seen!.audited).toBe(1);
          for (const [name, value] of Object.entries(p.sequences)) {
            if (value === null) continue;
            expect(seen!.sequences[name], `sequence ${name} at point ${i}`).not.toBeNull();
            expect(seen!.sequences[name]! <= value, `sequence ${name} at point ${i}: ${seen!.sequences[name]} > ${value}`).toBe(true);
          }
        }
      });
    }

    // Parallel jobs on both publications: through the root, a partitioned table is a base table
    // of its own (its rows routed to its partitions by the load).
    it('replays the last point of each publication into a new PGDATA on parallel jobs (--jobs 3)', async () => {
      const p = points.at(-1)!;
      for (const which of ['leaf', 'root'] as const) {
        const { r, seen } = await replayIntoNewPgdata(['--store', stores[which].dir, '--to', `lsn:${p.lsn}`, '--jobs', '3'], rowsAndSchema);
        expect(r.code, `${which}: ${r.stderr}`).toBe(0);
        expect(seen!.sums, `rows (${which})`).toEqual(p.sums);
        expect(seen!.schema, `schema (${which})`).toEqual(p.schema);
      }
    });

    (filters ? it : it.skip)('warns at start of a row filter on columns outside the replica identity', async () => {
      await source.admin.query(`create publication badfilter for table shop.tickets where (status <> 'x')`);
      const store = tempStore();
      try {
        const r = await pgtape(
          archiveArgs(source.db.url(), store.dir, '--slot', 'badfilter', '--publication', 'badfilter', '--until', 'now'),
        );
        expect(r.code, r.stderr).toBe(0);
        expect(r.stderr).toMatch(/row filter uses columns outside the table's replica identity/);
        expect(r.stderr).toMatch(/"columns":\["status"\]/);
      } finally {
        store.cleanup();
        await dropSlotWhenFree(source.admin, 'badfilter');
      }
    });

    (filters ? it : it.skip)('replays only what a publication with a row filter and a column list publishes', async () => {
      for (const [i, p] of points.entries()) {
        const { r, seen } = await replayIntoFresh(source, ['--store', stores.filtered.dir, '--to', `lsn:${p.lsn}`], async (c) => ({
          tickets: (await c.query('select * from shop.tickets order by id')).rows,
          tables: (
            await c.query(`select relname from pg_class where relkind in ('r', 'p') and relnamespace = 'shop'::regnamespace order by 1`)
          ).rows,
        }));
        expect(r.code, `point ${i}: ${r.stderr}`).toBe(0);
        expect(seen!.tickets, `tickets at point ${i}`).toEqual(p.tickets);
        expect(seen!.tables).toEqual([{ relname: 'tickets' }]);
        expect(r.stderr).toMatch(/not in the replay/);
      }
    });

    it('writes generated columns into CSV files', async () => {
      const csv = join(stores.leaf.dir, '..', 'csv');
      const r = await pgtape(['replay', '--store', stores.leaf.dir, '--csv', csv]);
      expect(r.code, r.stderr).toBe(0);
      const header = readFileSync(join(csv, 'shop.customers.csv'), 'utf8').split('\n')[0];
      expect(header).toBe('id,email,name,slug,mood,address,created');
    });
  });
}
