import { Command } from 'commander';
import { parseSlotName, requireSource, sourceOption } from './options.js';
import { UserError } from '../core/errors.js';

export function markCommand(): Command {
  return new Command('mark')
    .description('write a named mark into the history (like pg_create_restore_point, for logical archives)')
    .argument('<name>', 'the mark; replay --to name:<name> stops there')
    .addOption(sourceOption())
    .option('--slot <name>', 'the slot of the archive that is to record the mark (it must decode this database)', 'pgtape')
    .addHelpText('after', '\nExample:\n  pgtape mark --source postgres://archiver@db:5432/shop end-of-day-2026-11-24')
    .action(async (name: string, opts) => {
      // Each command loads what it runs when it runs: `pgtape log` loads no Postgres client.
      const [{ connect }, { emitMark, markNameProblem, markProblem }] = await Promise.all([
        import('../source/connection.js'),
        import('../source/logical-messages.js'),
      ]);
      const bad = markNameProblem(name);
      if (bad) throw new UserError(bad, 'name it as you will type it after --to name: (printable, at most 200 characters)');
      const slot = parseSlotName(opts.slot);
      const client = await connect(requireSource(opts.source));
      try {
        const unheard = await markProblem(client, slot);
        if (unheard)
          throw new UserError(
            unheard,
            'mark the database pgtape archives (--source), naming its --slot; marks are recorded by the archive of that slot',
          );
        process.stdout.write(`${name} ${await emitMark(client, name)}\n`);
      } finally {
        await client.end();
      }
    });
}
