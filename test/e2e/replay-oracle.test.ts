import { replayOracle } from '../support/replay-oracle.js';

replayOracle('directory');
