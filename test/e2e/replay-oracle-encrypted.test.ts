import { replayOracle } from '../support/replay-oracle.js';

// Archived with a key pair's public half, read with its private half (issue 17): the whole
// oracle. Then with a secret key, recorded and replayed by LSN.
replayOracle('directory', { encrypt: 'pair' });
replayOracle('directory', { encrypt: 'secret', full: false, batches: 16 });
