import { expect } from 'vitest';
import type pg from 'pg';

/**
 * What a PGDATA written by `replay --pgdata` must be once handed over (it was loaded without WAL
 * or fsync): a normal cluster — durable settings back — whose tables and indexes amcheck finds
 * sound (every btree index checked against its heap; every table's pages, where verify_heapam exists).
 * Call it last: it creates the amcheck extension.
 */
export async function expectSoundHandedOver(client: pg.Client): Promise<void> {
  const show = async (name: string) => (await client.query<{ v: string }>(`select current_setting($1) as v`, [name])).rows[0]!.v;
  expect(await show('wal_level')).not.toBe('minimal');
  expect(await show('fsync')).toBe('on');
  expect(await show('full_page_writes')).toBe('on');
  expect(await show('synchronous_commit')).toBe('on');
  await client.query('create extension if not exists amcheck');
  const { rows: indexes } = await client.query<{ name: string }>(
    `select c.oid::regclass::text as name, bt_index_check(c.oid, true) as checked
       from pg_index i join pg_class c on c.oid = i.indexrelid join pg_am am on am.oid = c.relam
      where am.amname = 'btree' and c.relkind = 'i' and c.relpersistence = 'p' and i.indisready and i.indisvalid`,
  );
  expect(indexes.length).toBeGreaterThan(0);
  const major = Number(await show('server_version_num')) / 10000;
  if (major >= 14) {
    const { rows: damaged } = await client.query<{ rel: string; msg: string }>(
      `select c.oid::regclass::text as rel, v.msg
         from pg_class c cross join lateral verify_heapam(c.oid) v
        where c.relkind in ('r', 'm', 't') and c.relpersistence = 'p'`,
    );
    expect(damaged).toEqual([]);
  }
}
