import { Command } from 'commander';
import { requireSource, sourceOption } from './options.js';
import { UserError } from '../core/errors.js';
import { connect } from '../source/connection.js';
import { emitMark } from '../source/logical-messages.js';

export function markCommand(): Command {
  return new Command('mark')
    .description('write a named mark into the history (like pg_create_restore_point, for logical archives)')
    .argument('<name>', 'the mark; replay --to name:<name> stops there')
    .addOption(sourceOption())
    .addHelpText('after', '\nExample:\n  pgtape mark --source postgres://archiver@db:5432/shop end-of-day-2026-11-24')
    .action(async (name: string, opts) => {
      if (!name.trim()) throw new UserError('a mark needs a name');
      const client = await connect(requireSource(opts.source));
      try {
        process.stdout.write(`${name} ${await emitMark(client, name)}\n`);
      } finally {
        await client.end();
      }
    });
}
