#!/usr/bin/env node
// The one CLI: src/ holds the archive, base, log, diff, verify, status and mark commands; replay/
// is a tool of its own over src/ (which never imports it) and brings `replay` and `compact`.
import module from 'node:module';

// Node 22.1 and later keep V8's compiled code of pgtape's modules between runs (in the OS's
// temporary directory, or NODE_COMPILE_CACHE's): most of a short command's start is compiling
// them. Older Node has no such cache and starts as before. Hence the imports after it.
module.enableCompileCache?.();
const { main } = await import('../dist/src/cli.js');
const { compactCommand, replayCommand } = await import('../dist/replay/command.js');

const code = await main(process.argv, [compactCommand(), replayCommand()]);
// Writes to a pipe are asynchronous: let them all reach it (`pgtape log | jq` must get every
// line), then exit explicitly so that a lingering socket cannot keep a finished command alive.
await new Promise((resolve) => process.stdout.write('', resolve));
await new Promise((resolve) => process.stderr.write('', resolve));
process.exit(code);
