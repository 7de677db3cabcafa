import { replayOracle } from '../support/replay-oracle.js';

// Archived and read with a secret key and with a key pair, on a real S3 server (issue 17),
// recorded and replayed by LSN: the whole oracle runs on S3 in the clear
// (replay-oracle-s3.test.ts) and encrypted on a directory (replay-oracle-encrypted.test.ts,
// replay-oracle-kms.test.ts).
replayOracle('s3', { encrypt: 'secret', full: false, batches: 16 });
replayOracle('s3', { encrypt: 'pair', full: false, batches: 16 });
