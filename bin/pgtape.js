#!/usr/bin/env node
// The one CLI: src/ holds the archive, base, log, diff, verify, status and mark commands; replay/
// is a tool of its own over src/ (which never imports it) and brings `replay` and `compact`.
import { main } from '../dist/src/cli.js';
import { compactCommand, replayCommand } from '../dist/replay/command.js';

const code = await main(process.argv, [compactCommand(), replayCommand()]);
// Writes to a pipe are asynchronous: let them all reach it (`pgtape log | jq` must get every
// line), then exit explicitly so that a lingering socket cannot keep a finished command alive.
await new Promise((resolve) => process.stdout.write('', resolve));
await new Promise((resolve) => process.stderr.write('', resolve));
process.exit(code);
