import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { archiveUntilNow } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { runPsqlScript } from '../support/psql-script.js';
import { replayIntoFresh } from '../support/replay-into.js';
import { betweenTransactions, differences, sourceNow, type SourceState, rowsAndSchema } from '../support/script-points.js';

// SQL written by others, and written to find the corners: PostgreSQL's own regression scripts
// for identity and generated columns, sequences, replica identity, enums, domains, hash
// partitions, collations, text search dictionaries, access methods, foreign keys, partitioned indexes,
// constraints, materialized views and triggers, the statements that change rows (INSERT … ON
// CONFLICT, data-modifying WITH, savepoints, TOASTed and compressed values) and the values of the
// built-in types (test/fixtures/postgres-regress), run after a base of an empty database as psql
// would run them (failing statements included), archived with --capture-ddl, and replayed to
// points along the way: the rows and the whole schema equal at each.

const REGRESS = join(import.meta.dirname, '..', 'fixtures', 'postgres-regress');
// The scripts whose every point the replay matches; the others are below, with what differs.
// Each group runs on a source of its own: a point replays everything before it in its group,
// so one long history would make each later script's replays the slower.
// REGRESS_ONLY=identity,domain runs those alone (any script of the fixture, a to-do one too).
const LISTED: string[][] = process.env.REGRESS_ONLY
  ? [process.env.REGRESS_ONLY.split(',')]
  : [
      [
        'identity',
        'replica_identity',
        'enum',
        'create_table_like',
        'domain',
        'sequence',
        'generated',
        'typed_table',
        'truncate',
        'fast_default',
        'inherit',
        'collate',
        'collate.icu.utf8',
        'tsdicts',
        'create_am',
        'foreign_key',
      ],
      ['indexing', 'constraints', 'matview'],
      ['triggers'],
      ['update', 'insert', 'insert_conflict', 'with', 'transactions', 'indirect_toast', 'compression', 'returning', 'delete'],
      [
        'rangetypes',
        'multirangetypes',
        'arrays',
        'rowtypes',
        'numeric',
        'float4',
        'float8',
        'money',
        'bit',
        'strings',
        'interval',
        'timestamptz',
        'timetz',
        'date',
        'inet',
        'jsonb',
        'tstypes',
        'xml',
        'uuid',
      ],
      [
        'namespace',
        'reloptions',
        'create_function_sql',
        'comments',
        'dependency',
        'select_into',
        'create_misc',
        'copy2',
        'cluster',
        'vacuum',
        'event_trigger',
      ],
    ];
/**
 * A point is recorded after this many statements, and at each file's end: every 60 in the first
 * three groups, every 200 in the later ones: each point replays its group's whole history so far,
 * and at 60 this file took 21 of a 70-minute CI run (2 cores; CI has 90).
 */
const GROUPS = LISTED.map((files, i) => ({ files, every: i < 3 ? 60 : 200 }));

interface Point extends SourceState {
  label: string;
}

describe.each(GROUPS)(
  "PostgreSQL's regression scripts archived with --capture-ddl and replayed at points along them: $files.0, …",
  ({ files: FILES, every: EVERY }) => {
    const source = useSource();
    const points: Point[] = [];

    it('runs the scripts while the archive records them', async () => {
      const archive = (...more: string[]) => archiveUntilNow(source, more);
      const first = await archive('--capture-ddl');
      expect(first.code, first.stderr).toBe(0);
      const worker = await source.db.client();
      const recorder = await source.db.client();
      const record = async (label: string) => points.push({ label, ...(await sourceNow(recorder)) });
      try {
        for (const file of FILES) {
          const { ran, failed } = await runPsqlScript(worker, readFileSync(join(REGRESS, `${file}.sql`), 'utf8'), async (n) => {
            if (n % EVERY === 0 && betweenTransactions(worker)) await record(`${file}.sql, statement ${n}`);
          });
          expect(ran - failed, `${file}.sql: most statements run`).toBeGreaterThan(ran / 2);
          await worker.query('rollback').catch(() => {});
          await worker.query('reset all; reset role');
          await record(`${file}.sql, end`);
        }
      } finally {
        await worker.end();
        await recorder.end();
      }
      const rest = await archive();
      expect(rest.code, rest.stderr).toBe(0);
    });

    // One test per script: each has its own time (a replay per point), and a failure names its script.
    it.each(FILES)('replays each point of %s.sql to the source as it was: rows and schema', async (file) => {
      const mine = points.filter((p) => p.label.startsWith(`${file}.sql,`));
      expect(mine.length, `${file}.sql: its end at least`).toBeGreaterThanOrEqual(1);
      const wrong: string[] = [];
      for (const p of mine) {
        const { r, seen } = await replayIntoFresh(source, ['--store', source.store.dir, '--to', `lsn:${p.lsn}`], rowsAndSchema, {
          PGTAPE_DEBUG: '1',
        });
        if (r.code !== 0) wrong.push(`${p.label}: exit ${r.code}: ${r.stderr.slice(-1500)}`);
        else {
          const differ = differences(p, seen!);
          if (differ.length) wrong.push(`${p.label}:\n  ${differ.join('\n  ')}`);
        }
      }
      expect(wrong).toEqual([]);
    });
  },
);

// Not followed yet (each found by these scripts; the fixtures hold them for when they are):
it.todo(
  'create_table.sql (its operator class in a partition key replays since session 45): after the other scripts, its CREATE TABLE … AS SELECT * FROM pg_class copies pg_node_tree values, which no replay can write: refused with exit 2 naming the table (catalog-details shows it), where the script wants every point replayed',
);
