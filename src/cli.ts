import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { archiveCommand } from './commands/archive.js';
import { baseCommand } from './commands/base.js';
import { diffCommand } from './commands/diff.js';
import { expireCommand } from './commands/expire.js';
import { indexCommand } from './commands/index.js';
import { keygenCommand, rekeyCommand } from './commands/keys.js';
import { logCommand } from './commands/log.js';
import { markCommand } from './commands/mark.js';
import { statusCommand } from './commands/status.js';
import { verifyCommand } from './commands/verify.js';
import { configurable } from './commands/config.js';
import { ExitCode, UserError, errorMessage } from './core/errors.js';
import { interruptedBy } from './core/interrupt.js';
import { DamagedBaseError } from './log/bases.js';
import { isSegmentDamage } from './segment/reader.js';
import { ObjectMissingError, StoreUnavailableError } from './store/store.js';
import { packageRoot } from './core/paths.js';

function version(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * Runs the CLI; resolves to the exit code (documented in the README). `tools` are the commands
 * of tools built over src/ that src/ must not import (replay/'s `replay`): the entry point
 * (bin/pgtape.js) hands them in.
 */
export async function main(argv: string[], tools: Command[] = []): Promise<number> {
  const program = new Command('pgtape')
    .description('record every committed change of a PostgreSQL database, and rebuild it as of any point')
    .version(version())
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  pgtape archive --source postgres://archiver@db:5432/shop --store ./tape --create-publication\n' +
        '  pgtape replay --store ./tape --to name:end-of-day --pgdata ./as-of-end-of-day\n' +
        '  pgtape log --store ./tape --from time:2026-11-24T09:00:00Z --rows\n' +
        '\nExit status: 0 done; 1 an unexpected error; 2 bad input or environment (nothing stored was touched);\n' +
        '3 the store conflicts (another archiver, another body under a name); 4 the archive or stream needs\n' +
        'attention (damage, a warning); 130/143/129 interrupted. `pgtape <command> --help` for each command.',
    )
    .exitOverride();
  const commands = [
    archiveCommand(),
    baseCommand(),
    diffCommand(),
    expireCommand(),
    indexCommand(),
    keygenCommand(),
    rekeyCommand(),
    logCommand(),
    markCommand(),
    statusCommand(),
    verifyCommand(),
    ...tools,
  ];
  for (const c of commands.sort((a, b) => a.name().localeCompare(b.name()))) program.addCommand(c.exitOverride());
  configurable(program);
  // A reader that stops reading (`pgtape log | head`) ends the command quietly, as it does any
  // Unix tool: what it did not want is not an error.
  // Any other failure to write (a full disk, /dev/full) is said as such, not as a crash.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.DONE);
    process.stderr.write(
      `pgtape: cannot write to standard output (${err.message}): what it printed is incomplete\n` +
        `  what to do: free space where the output goes, or send it elsewhere (what the command did besides printing stands)\n`,
    );
    process.exit(ExitCode.BAD_INPUT);
  });
  try {
    await program.parseAsync(argv);
    return ExitCode.DONE;
  } catch (err) {
    // Failed because a signal's clean-up stopped what it used: the exit (130/143/129) is on its way.
    if (interruptedBy()) await new Promise<never>(() => {});
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return ExitCode.DONE;
    if (err instanceof CommanderError) return err.exitCode === 0 ? ExitCode.DONE : ExitCode.BAD_INPUT;
    if (isSegmentDamage(err) || err instanceof ObjectMissingError || err instanceof DamagedBaseError) {
      const hint = 'pgtape verify names the damaged objects and the stretches still readable';
      process.stderr.write(`pgtape: the archive is damaged: ${err.message}\n  what to do: ${hint}\n`);
      return ExitCode.ATTENTION;
    }
    if (noSpaceLeft(err)) {
      process.stderr.write(
        `pgtape: no space left on the device: ${errorMessage(err)}\n` +
          '  what to do: free space where the output (or a server it started) writes, or give another place; what the archive held before is unharmed\n',
      );
      return ExitCode.BAD_INPUT;
    }
    if (err instanceof UserError || err instanceof StoreUnavailableError) {
      process.stderr.write(`pgtape: ${err.message}\n${err.hint ? `  what to do: ${err.hint}\n` : ''}`);
      return err instanceof UserError ? err.exitCode : ExitCode.BAD_INPUT;
    }
    process.stderr.write(`pgtape: ${errorMessage(err)}\n`);
    if (process.env.PGTAPE_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return ExitCode.UNEXPECTED;
  }
}

/** A full disk, as Node (ENOSPC), Postgres (disk_full, 53100) or a server's tool (initdb) reports it. */
function noSpaceLeft(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === 'ENOSPC' || e?.code === '53100' || /no space left on device/i.test(e?.message ?? '');
}
