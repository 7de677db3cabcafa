import { replayOracle } from '../support/replay-oracle.js';

// Archived with a KMS key's wrapping key and read through KMS (issue 17), against the KMS
// stand-in (test/support/kms-server.ts): the whole oracle on a directory, and on S3 recorded and
// replayed by LSN.
replayOracle('directory', { encrypt: 'kms' });
replayOracle('s3', { encrypt: 'kms', full: false, batches: 16 });
