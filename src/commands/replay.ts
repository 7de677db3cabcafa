import { Command } from 'commander';
import { s3EndpointOption, storeOption } from './options.js';
import { UserError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { openStore } from '../store/open.js';
import { replayIntoCsv, replayIntoDatabase, replayIntoPgdata } from '../../replay/outputs.js';
import { parseTarget } from '../../replay/target.js';

export function replayCommand(): Command {
  return new Command('replay')
    .description('rebuild the database as it was at a point of the history')
    .addOption(storeOption())
    .addOption(s3EndpointOption())
    .option('--to <target>', 'latest, lsn:<X/Y> (or a bare X/Y), xid:<n>, time:<ISO 8601>, name:<mark>', 'latest')
    .option('--exclusive', 'stop just before the target instead of just after it', false)
    .option('--into <postgres-url>', 'an existing, empty database to replay into')
    .option('--pgdata <dir>', 'a new data directory, initialized, replayed into and shut down cleanly')
    .option('--csv <dir>', 'a directory of one CSV file per table')
    .option('--tables <schema.table,...>', 'replay only these tables')
    .addHelpText(
      'after',
      '\nExamples:\n  pgtape replay --store /pfs/changelog --to name:end-of-day --pgdata /pfs/out/pgdata\n' +
        '  pgtape replay --store ./tape --to time:2026-11-24T17:00:00Z --into postgres://me@localhost/analysis\n' +
        '  pgtape replay --store ./tape --to xid:12345 --exclusive --csv ./before-12345',
    )
    .action(async (opts) => {
      const outputs = [opts.into, opts.pgdata, opts.csv].filter((o) => o !== undefined);
      if (outputs.length !== 1) throw new UserError('replay needs exactly one output', 'pass one of --into <postgres-url>, --pgdata <dir>, --csv <dir>');
      const options = {
        store: openStore(opts.store, { s3Endpoint: opts.s3Endpoint }),
        target: parseTarget(opts.to),
        exclusive: opts.exclusive,
        tables: opts.tables ? new Set<string>(String(opts.tables).split(',').map((t) => (t.includes('.') ? t.trim() : `public.${t.trim()}`))) : undefined,
        log: createLogger(),
      };
      if (opts.into) {
        const report = await replayIntoDatabase(opts.into, options);
        process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      } else if (opts.pgdata) {
        await replayIntoPgdata(opts.pgdata, options);
      } else {
        await replayIntoCsv(opts.csv, options);
      }
    });
}
