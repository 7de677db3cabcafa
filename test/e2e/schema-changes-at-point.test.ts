import { schemaChangesOracle } from '../support/schema-changes-oracle.js';

schemaChangesOracle();
