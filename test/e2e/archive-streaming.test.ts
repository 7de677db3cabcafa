import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { archiveArgs, finished, pgtape, startPgtape } from '../support/cli.js';
import { sleep, until, useSource } from '../support/fixture.js';
import { ArchiveModel, sourceChecksum } from '../support/model.js';
import { userTables } from '../support/oracle.js';

/** Streaming statistics of the slot: how many transactions Postgres sent while in progress. */
async function streamedTransactions(admin: pg.Client): Promise<number> {
  const { rows } = await admin.query<{ n: string | null }>(
    `select stream_txns::text as n from pg_stat_replication_slots where slot_name = 'pgtape'`,
  );
  return Number(rows[0]?.n ?? 0);
}

async function xid(c: pg.Client): Promise<number> {
  return Number(BigInt((await c.query<{ x: string }>('select txid_current()::text as x')).rows[0]!.x) & 0xffffffffn);
}

/**
 * Protocol version 2: a transaction larger than logical_decoding_work_mem (64 kB in the tests)
 * reaches pgtape while it is still in progress, in blocks interleaved with other transactions,
 * with its subtransactions' rollbacks and its own abort sent as they happen. What is stored must
 * be exactly what committed, whole, in commit order.
 */
describe('large transactions streamed while in progress', () => {
  const source = useSource(`
    create table big (id int primary key, v text, n int);
    create table side (id int primary key, note text);
    create table bag (a int, b text);
    alter table bag replica identity full;
    create table wide (id int primary key, v text, n int);
  `);
  const archive = (...extra: string[]) =>
    archiveArgs(source.db.url(), source.store.dir, '--create-publication', '--segment-seconds', '0.3', ...extra);
  const pad = `repeat('x', 200)`;

  async function checkArchive(xids: { committed: number[]; aborted: number[] }): Promise<void> {
    const model = await ArchiveModel.load(source.store.dir);
    for (const t of await userTables(source.admin)) {
      expect(model.checksum(t.schema, t.name, t.columns), `${t.schema}.${t.name}`).toBe(
        await sourceChecksum(source.admin, t.schema, t.name, t.columns),
      );
    }
    const stored = model.transactions.map((t) => t.xid);
    expect(new Set(stored).size, 'each transaction once').toBe(stored.length);
    for (const x of xids.committed) expect(stored, `committed ${x}`).toContain(x);
    for (const x of xids.aborted) expect(stored, `aborted ${x}`).not.toContain(x);
    // Commit order: commit LSNs only grow.
    const lsns = model.transactions.map((t) => t.commitLsn);
    expect(lsns.every((l, i) => i === 0 || l > lsns[i - 1]!)).toBe(true);
  }

  it('stores what committed, whole and in commit order; savepoints rolled back and aborted transactions leave nothing', async () => {
    const archiver = startPgtape(archive());
    await until(() => archiver.output.stderr.includes('"msg":"archiving"'));
    const [a, b, c] = await Promise.all([source.db.client(), source.db.client(), source.db.client()]);
    const committed: number[] = [];
    const aborted: number[] = [];
    const sideTx = async (id: number) => {
      await b.query('begin');
      committed.push(await xid(b));
      await b.query(`insert into side values ($1, 'between')`, [id]);
      await b.query('commit');
    };

    await a.query('begin');
    const big = await xid(a);
    await c.query('begin');
    aborted.push(await xid(c));
    await a.query(`insert into big select g, ${pad} || g, g from generate_series(1, 3000) g`);
    await sideTx(1);
    await c.query(`insert into big select g, ${pad}, 0 from generate_series(100001, 104000) g`);
    await a.query(`savepoint s1`);
    await a.query(`insert into big select g, ${pad}, -1 from generate_series(3001, 5000) g`);
    await a.query(`update big set n = -n where id <= 1000`);
    await a.query(`insert into bag select g % 7, ${pad} from generate_series(1, 1000) g`);
    await a.query(`rollback to savepoint s1`);
    await sideTx(2);
    await a.query(`savepoint s2`);
    await a.query(`update big set v = 'kept ' || id, n = n * 10 where id % 3 = 0`);
    await a.query(`release savepoint s2`);
    await a.query(`savepoint s3`);
    await a.query(`insert into big select g, ${pad}, 3 from generate_series(6001, 6500) g`);
    await a.query(`savepoint s4`);
    await a.query(`delete from big where id between 1 and 500`);
    await a.query(`rollback to savepoint s3`);
    await a.query(`insert into bag select g % 5, ${pad} from generate_series(1, 800) g`);
    await a.query(`delete from bag where a = 0`);
    await a.query(`update bag set b = 'updated' where a = 1`);
    await a.query(`delete from big where id between 2001 and 2400`);
    await a.query(`select pg_logical_emit_message(true, 'pgtape', 'inside-a-streamed-transaction')`);
    await sideTx(3);
    await c.query('rollback');
    await a.query('commit');
    committed.push(big);
    await sideTx(4);

    archiver.kill('SIGTERM');
    expect((await finished(archiver)).code).toBe(0);
    const rest = await pgtape([...archive(), '--until', 'now']);
    expect(rest.code, rest.stderr).toBe(0);
    expect(await streamedTransactions(source.admin)).toBeGreaterThanOrEqual(2);
    await checkArchive({ committed, aborted });
    // The big transaction is stored after the side transactions that committed before it.
    const model = await ArchiveModel.load(source.store.dir);
    const order = model.transactions.map((t) => t.xid).filter((x) => committed.includes(x));
    expect(order).toEqual(committed);
    expect(model.transactions.find((t) => t.xid === big)!.marks).toEqual(['inside-a-streamed-transaction']);
  });

  it('killed while a transaction is being streamed, then restarted: nothing lost, nothing stored twice', async () => {
    const archiver = startPgtape(archive());
    await until(() => archiver.output.stderr.includes('"msg":"archiving"'));
    const a = await source.db.client();
    const before = await streamedTransactions(source.admin);
    await a.query('begin');
    const big = await xid(a);
    await a.query(`insert into big select g, ${pad}, 7 from generate_series(200001, 206000) g`);
    await a.query(`update big set n = n + 1 where id > 200000 and id % 2 = 0`);
    // Streamed blocks are on their way: the archiver dies with part of the transaction spooled.
    await sleep(300);
    archiver.kill('SIGKILL');
    await finished(archiver);
    await a.query(`delete from big where id > 205000`);
    await a.query('commit');
    const again = await pgtape([...archive(), '--until', 'now']);
    expect(again.code, again.stderr).toBe(0);
    expect(await streamedTransactions(source.admin)).toBeGreaterThan(before);
    await checkArchive({ committed: [big], aborted: [] });
  });

  it('rows of megabytes, in one large transaction and in small ones: stored whole, byte for byte', async () => {
    // Larger than the spool's write buffer (1 MiB) and than a read of the socket: a row's bytes
    // are views into node-postgres's buffer that must stay intact while its handling waits.
    const archiver = startPgtape(archive());
    await until(() => archiver.output.stderr.includes('"msg":"archiving"'));
    const a = await source.db.client();
    await a.query('begin');
    const large = await xid(a);
    await a.query(`insert into wide select g, repeat(md5(g::text), 60000 * g), g from generate_series(1, 5) g`);
    await a.query(`update wide set n = -n where id % 2 = 1`);
    await a.query('commit');
    const small: number[] = [];
    for (let id = 6; id <= 9; id++) {
      await a.query('begin');
      small.push(await xid(a));
      await a.query(`insert into wide values ($1::int, repeat(md5($1::text), 50000 * ($1::int - 5)), 0)`, [id]);
      await a.query('commit');
    }
    await a.query(`update wide set v = v || 'tail' where id in (2, 7)`);
    await a.query(`delete from wide where id = 8`);
    archiver.kill('SIGTERM');
    expect((await finished(archiver)).code).toBe(0);
    const rest = await pgtape([...archive(), '--until', 'now']);
    expect(rest.code, rest.stderr).toBe(0);
    await checkArchive({ committed: [large, ...small], aborted: [] });
  });
});
