#!/usr/bin/env node
import { main } from '../dist/src/cli.js';

const code = await main(process.argv);
// Writes to a pipe are asynchronous: let them all reach it (`pgtape log | jq` must get every
// line), then exit explicitly so that a lingering socket cannot keep a finished command alive.
await new Promise((resolve) => process.stdout.write('', resolve));
await new Promise((resolve) => process.stderr.write('', resolve));
process.exit(code);
