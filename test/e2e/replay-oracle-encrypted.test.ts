import { replayOracle } from '../support/replay-oracle.js';

// Archived with a key pair's public half, read with its private half (issue 17).
replayOracle('directory', { encrypt: 'pair' });
