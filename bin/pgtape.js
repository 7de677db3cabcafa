#!/usr/bin/env node
import { main } from '../dist/src/cli.js';

// Exit explicitly: a lingering socket must not keep a finished command alive.
process.exit(await main(process.argv));
