import { TEST_PG_MAJOR } from './postgres.js';
import { replayOracle } from './replay-oracle.js';
import { schemaChangesOracle } from './schema-changes-oracle.js';
import { schemaOracle } from './schema-oracle.js';

// The record → replay oracle (16 batches: a column added, a truncate, a second base, a column
// dropped, replayed to each recorded point by LSN), the schema oracle and the schema-change oracle, on Postgres majors
// besides the one the whole suite runs on. External and container servers have one version only.
// Two files share the majors, so that the two test workers run them side by side.
export function onOtherMajors(majors: number[]): void {
  const embedded = !process.env.PGTAPE_TEST_PG_URL && process.env.PGTAPE_TEST_PG !== 'container';
  for (const major of majors) {
    if (!embedded || major === TEST_PG_MAJOR) continue;
    replayOracle('directory', { major, batches: 16, full: false });
    schemaOracle({ major });
    schemaChangesOracle({ major });
  }
}
