import { replayOracle } from '../support/replay-oracle.js';
import { schemaOracle } from '../support/schema-oracle.js';
import { TEST_PG_MAJOR } from '../support/postgres.js';

// The record → replay oracle on every supported Postgres major (14–18) besides the one the whole
// suite runs on: 16 batches (a column added, a truncate, a second base, a column dropped),
// replayed to each recorded point by LSN; and the schema oracle (every kind of object). External and container servers have one version only.
const embedded = !process.env.PGTAPE_TEST_PG_URL && process.env.PGTAPE_TEST_PG !== 'container';
for (const major of [14, 15, 16, 17, 18]) {
  if (embedded && major !== TEST_PG_MAJOR) {
    replayOracle('directory', { major, batches: 16, full: false });
    schemaOracle({ major });
  }
}
