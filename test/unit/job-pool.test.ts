import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { JobPool } from '../../replay/jobs.js';

// The pool's scheduling alone (no server: its connections are stand-ins that record what they
// are asked). What the jobs do to a real cluster is tested end to end (pagila, the schema-change
// oracle with --jobs 3).

interface StandIn {
  id: number;
  queries: string[];
  ended: boolean;
}

function pool(size: number): { pool: JobPool; clients: StandIn[] } {
  const clients: StandIn[] = [];
  const connect = async () => {
    const c: StandIn = { id: clients.length, queries: [], ended: false };
    clients.push(c);
    return {
      query: async (sql: string) => void c.queries.push(sql),
      end: async () => void (c.ended = true),
      standIn: c,
    } as unknown as pg.Client;
  };
  return { pool: new JobPool(connect, size), clients };
}

const tick = () => new Promise((r) => setTimeout(r, 1));
const standIn = (client: pg.Client) => (client as unknown as { standIn: StandIn }).standIn;

describe('JobPool', () => {
  it('runs at most `size` jobs at once, reuses its connections, and keeps the results in order', async () => {
    const { pool: p, clients } = pool(3);
    let running = 0;
    let most = 0;
    const out = await p.each([5, 1, 4, 2, 3, 0, 6], async (_client, n) => {
      most = Math.max(most, ++running);
      for (let i = 0; i < n; i++) await tick();
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30, 0, 60]);
    expect(most).toBe(3);
    expect(clients).toHaveLength(3);
    // Every connection reads values as the base wrote them.
    for (const c of clients) expect(c.queries[0]).toMatch(/datestyle/);
    await p.end();
    expect(clients.every((c) => c.ended)).toBe(true);
  });

  it('after a failure starts nothing more, and throws it only once the jobs started have ended', async () => {
    const { pool: p, clients } = pool(2);
    const started: number[] = [];
    const ended: number[] = [];
    const failing = p.each([0, 1, 2, 3, 4], async (_client, n) => {
      started.push(n);
      if (n === 0) {
        await tick();
        throw new Error('job 0 failed');
      }
      for (let i = 0; i < 5; i++) await tick();
      ended.push(n);
    });
    await expect(failing).rejects.toThrow('job 0 failed');
    // Job 1 was running when job 0 failed: it ended before the failure was thrown; nothing after it started.
    expect(started).toEqual([0, 1]);
    expect(ended).toEqual([1]);
    // The failed job's connection is closed, not handed to another job (it may be mid-transaction).
    expect(clients.filter((c) => c.ended)).toHaveLength(1);
    await p.end();
  });

  it('opens a new connection in place of a failed one', async () => {
    const { pool: p, clients } = pool(1);
    await expect(
      p.run(async () => {
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    const used = await p.run(async (client) => standIn(client).id);
    expect(used).toBe(1);
    expect(clients.map((c) => c.ended)).toEqual([true, false]);
    await p.end();
  });
});
