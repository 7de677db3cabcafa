import { schemaChangesOracle } from '../support/schema-changes-oracle.js';

// On the suite's version, compacted bases too (pgtape compact).
schemaChangesOracle({ compact: true });
