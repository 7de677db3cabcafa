import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { archiveArgs, archiveUntilNow, pgtape } from '../support/cli.js';
import { runDump } from '../support/dump.js';
import { useSource } from '../support/fixture.js';
import { expectSoundHandedOver } from '../support/handed-over.js';
import { checksums } from '../support/oracle.js';
import { seededRandom, TEST_SEED } from '../support/random.js';
import { replayIntoFresh, replayIntoNewPgdata } from '../support/replay-into.js';
import { expectNothingInTheClear } from '../support/replay-oracle.js';
import { openStore } from '../../src/store/open.js';
import { describeSchema, type SchemaDescription } from '../support/schema.js';
import { rowsAndSchema } from '../support/script-points.js';

// SQL written by others (test/fixtures/pagila): the pagila sample database, loaded from its own
// files, archived while a workload of ours runs, replayed to every recorded point — the rows and
// the schema (partitions attached pg_dump-style, domains, triggers, views, an aggregate) equal.

const PAGILA = join(import.meta.dirname, '..', 'fixtures', 'pagila');

interface Point {
  lsn: string;
  sums: Record<string, string>;
  schema: SchemaDescription;
}

/** Rentals and payments (into a partition, and one moved to another), films and customers changed, a row deleted. */
async function business(client: pg.Client, n: number, random: () => number): Promise<void> {
  const pick = (max: number) => 1 + Math.floor(random() * max);
  await client.query('begin');
  for (let i = 0; i < 10; i++) {
    const customer = pick(599);
    const { rows } = await client.query<{ rental_id: number }>(
      `insert into rental (rental_date, inventory_id, customer_id, staff_id) values (now() + $1 * interval '1 second', $2, $3, 1) returning rental_id`,
      [n * 100 + i, pick(4581), customer],
    );
    await client.query(`insert into payment (customer_id, staff_id, rental_id, amount, payment_date) values ($1, 1, $2, $3, $4)`, [
      customer,
      rows[0]!.rental_id,
      (random() * 10).toFixed(2),
      `2022-0${1 + (i % 7)}-15 12:00:00+00`,
    ]);
  }
  await client.query(`update film set description = description || ' (remastered ' || $1 || ')' where film_id = $2`, [n, pick(1000)]);
  await client.query(`update customer set active = 0, activebool = false where customer_id = $1`, [pick(599)]);
  await client.query(`insert into actor (first_name, last_name) values ($1, 'NEWCOMER')`, [`ACTOR${n}`]);
  await client.query(
    `delete from film_actor where (actor_id, film_id) in (select actor_id, film_id from film_actor order by film_id, actor_id offset $1 limit 1)`,
    [n],
  );
  await client.query(
    `update payment set payment_date = '2022-06-10 10:00:00+00' where payment_id = (select min(payment_id) from payment_p2022_01)`,
  );
  await client.query('commit');
}

describe('pagila: a public sample database archived and replayed, rows and schema', () => {
  const source = useSource();
  const points: Point[] = [];

  it('loads pagila from its own files and archives it while a workload runs', async () => {
    await runDump(source.admin, readFileSync(join(PAGILA, 'pagila-schema.sql'), 'utf8'));
    await runDump(source.admin, readFileSync(join(PAGILA, 'pagila-data.sql'), 'utf8'));
    // Made WITH NO DATA by the schema file; a refresh after the base would be a schema change (not carried yet).
    await source.admin.query('refresh materialized view public.rental_by_category');
    const archive = () => pgtape(archiveArgs(source.db.url(), source.store.dir, '--create-publication', '--until', 'now'));
    const first = await archive();
    expect(first.code, first.stderr).toBe(0);
    const client = await source.db.client();
    const random = seededRandom(TEST_SEED);
    try {
      for (let n = 1; n <= 3; n++) {
        await business(client, n, random);
        points.push({
          lsn: (await client.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')).rows[0]!.lsn,
          sums: await checksums(client),
          schema: await describeSchema(client),
        });
      }
    } finally {
      await client.end();
    }
    const rest = await archive();
    expect(rest.code, rest.stderr).toBe(0);
    expect(Object.keys(points[0]!.sums).length).toBeGreaterThan(20);
  });

  it('replays every point to the source as it was', async () => {
    for (const [i, p] of points.entries()) {
      const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `lsn:${p.lsn}`], rowsAndSchema);
      expect(r.code, `point ${i}: ${r.stderr}`).toBe(0);
      expect(r.stderr, 'nothing left out').not.toMatch(/not in the replay/);
      expect(seen!.sums, `rows at point ${i}`).toEqual(p.sums);
      expect(seen!.schema, `schema at point ${i}`).toEqual(p.schema);
    }
  });
  // Pagila's 20-odd tables, partitions and indexes loaded and built on parallel jobs, and on one.
  for (const jobs of ['3', '1']) {
    it(`replays into a new PGDATA with --jobs ${jobs} (loaded without WAL, handed over durable): rows, schema and amcheck sound`, async () => {
      const last = points.at(-1)!;
      const { r, seen } = await replayIntoNewPgdata(
        ['--store', source.store.dir, '--to', `lsn:${last.lsn}`, '--jobs', jobs],
        async (client) => {
          const seen = { sums: await checksums(client), schema: await describeSchema(client) };
          await expectSoundHandedOver(client);
          return seen;
        },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(seen!.sums, 'rows').toEqual(last.sums);
      expect(seen!.schema, 'schema').toEqual(last.schema);
    });
  }
});

describe('pagila loaded after the base, with --capture-ddl, encrypted: schema changes of SQL written by others', () => {
  const source = useSource();
  const keyDir = mkdtempSync(join(tmpdir(), 'pgtape-pagila-keys-'));
  const keys = { pub: join(keyDir, 'a.pub'), priv: join(keyDir, 'a.private') };
  // Archived for a public key, read with its private half: captured DDL, marks and rows sealed.
  const env = { PGTAPE_ENCRYPT: keys.pub, PGTAPE_KEY_FILE: keys.priv };
  afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

  it('replays the rows and the whole schema made after the base', async () => {
    expect((await pgtape(['keygen', '--public', keys.pub, '--private', keys.priv])).code).toBe(0);
    // The base is of an empty database: every object of pagila is a schema change after it.
    const archive = (...more: string[]) => archiveUntilNow(source, more, env);
    const first = await archive('--capture-ddl');
    expect(first.code, first.stderr).toBe(0);
    await runDump(source.admin, readFileSync(join(PAGILA, 'pagila-schema.sql'), 'utf8'));
    await runDump(source.admin, readFileSync(join(PAGILA, 'pagila-data.sql'), 'utf8'));
    await source.admin.query('reset search_path');
    const rest = await archive();
    expect(rest.code, rest.stderr).toBe(0);
    const want = { sums: await checksums(source.admin), schema: await describeSchema(source.admin) };
    expect(Object.keys(want.sums).length).toBeGreaterThan(20);

    // Neither pagila's rows nor its DDL is stored in the clear.
    await expectNothingInTheClear(openStore(source.store.dir), ['rental_by_category', 'PENELOPE', 'last_updated']);
    const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir], rowsAndSchema, env);
    expect(r.code, r.stderr).toBe(0);
    expect(seen!.sums, 'rows').toEqual(want.sums);
    // Captured DDL follows the whole schema: types, tables and partitions, constraints, indexes,
    // views, the materialized view and its index, functions, the aggregate, triggers, sequences
    // and comments.
    expect(seen!.schema, 'schema').toEqual(want.schema);
    // Nothing is named as not replayed.
    const warned = (JSON.parse(r.stdout) as { warnings: { object?: string }[] }).warnings.map((w) => w.object).filter(Boolean);
    expect(warned, 'objects not replayed').toEqual([]);
  });
});
