import { schemaOracle } from '../support/schema-oracle.js';

schemaOracle();
