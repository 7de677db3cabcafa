import { replayOracle } from '../support/replay-oracle.js';

// Archived and read with a secret key, on a real S3 server (issue 17).
replayOracle('s3', { encrypt: 'secret' });
