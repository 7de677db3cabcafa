import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { archiveUntilNow, logLines, pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { runPsqlScript } from '../support/psql-script.js';
import { applyPatch, patchBetween, replayIntoFresh } from '../support/replay-into.js';
import { betweenTransactions, differences, sourceNow, type SourceState, rowsAndSchema } from '../support/script-points.js';

// A table swapped by an online schema-change tool, in the tool's own SQL: pg-osc's statements for
// ALTER TABLE books ADD COLUMN isbn text (test/fixtures/online-schema-change), with an
// application writing between its steps. An audit table and trigger, a shadow table made LIKE
// books INCLUDING ALL with a sequence of its own, the copy and the audit rows replayed, then
// books renamed away and the shadow renamed books in one transaction, a referencing table's key
// dropped and made again NOT VALID, then validated, and the old table dropped. Archived with
// --capture-ddl; every point along it replays to the source's rows and whole schema, and the
// patch from the first point to the last turns one replay into the other.

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'online-schema-change');
const TABLES = `
  create table authors (id int primary key, name text);
  create table books (id serial primary key, title text not null, author_id int references authors (id), price numeric(8,2) default 0, created_at timestamptz default now());
  create index books_title on books (title);
  create table reviews (id serial primary key, book_id int references books (id), stars int);
  comment on table books is 'what we sell';
`;
/** A point is recorded between transactions at least this many statements after the last, and at the end. */
const EVERY = 4;

interface Point extends SourceState {
  label: string;
  mark: string;
}

describe("an online schema change by pg-osc's own SQL, archived with --capture-ddl and replayed at points along it", () => {
  const source = useSource(TABLES);
  const points: Point[] = [];

  it('runs the swap while the archive records it', async () => {
    const first = await archiveUntilNow(source, ['--capture-ddl']);
    expect(first.code, first.stderr).toBe(0);
    const worker = await source.db.client();
    const recorder = await source.db.client();
    const record = async (label: string) => {
      const mark = `p${points.length}`;
      const marked = await pgtape(['mark', '--source', source.db.url(), mark]);
      expect(marked.code, marked.stderr).toBe(0);
      points.push({ label, mark, ...(await sourceNow(recorder)) });
    };
    try {
      await record('before');
      let last = 0;
      const { ran, failed } = await runPsqlScript(worker, readFileSync(join(FIXTURE, 'pg-osc.sql'), 'utf8'), async (n) => {
        if (n - last < EVERY || !betweenTransactions(worker)) return;
        last = n;
        await record(`statement ${n}`);
      });
      // pg-osc's own run sends none that fails.
      expect({ ran, failed }).toMatchObject({ failed: 0 });
      await record('end');
    } finally {
      await worker.end();
      await recorder.end();
    }
    const rest = await archiveUntilNow(source);
    expect(rest.code, rest.stderr).toBe(0);
    // The swap is in the history: the new books holds the added column, the old one is gone.
    const last = points.at(-1)!.schema;
    expect(JSON.stringify(last)).toContain('isbn');
    expect(JSON.stringify(last)).not.toContain('pgosc_op_table_books');
  });

  it('replays each point to the source as it was: rows and schema', async () => {
    expect(points.length).toBeGreaterThan(12);
    const wrong: string[] = [];
    for (const p of points) {
      const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `lsn:${p.lsn}`], rowsAndSchema);
      if (r.code !== 0) wrong.push(`${p.label}: exit ${r.code}: ${r.stderr.slice(-600)}`);
      else {
        const differ = differences(p, seen!);
        if (differ.length) wrong.push(`${p.label}:\n  ${differ.join('\n  ')}`);
        // Nothing the replay could not follow: every warning is a place it may differ.
        else {
          const warnings = logLines(r.stderr).filter((l) => l.level === 40);
          if (warnings.length) wrong.push(`${p.label}: warned: ${JSON.stringify(warnings).slice(0, 600)}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('diff --format sql turns the replay at each point into the next, and the first into the last', async () => {
    const pairs: [Point, Point][] = points.slice(1).map((b, i) => [points[i]!, b]);
    pairs.push([points[0]!, points.at(-1)!]);
    const wrong: string[] = [];
    for (const [a, b] of pairs) {
      const what = `patch from ${a.label} to ${b.label}`;
      const patch = await patchBetween(source.store.dir, a.mark, b.mark);
      expect(patch.code, `${what}: ${patch.stderr}`).toBe(0);
      expect(patch.stdout, what).not.toMatch(/not in this patch/);
      const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `name:${a.mark}`], async (c) => {
        await applyPatch(c, patch.stdout, what);
        return rowsAndSchema(c);
      });
      expect(r.code, `${what}: ${r.stderr}`).toBe(0);
      const differ = differences(b, seen!);
      if (differ.length) wrong.push(`${what}:\n  ${differ.join('\n  ')}`);
    }
    expect(wrong).toEqual([]);
  });
});
