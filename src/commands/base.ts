import { keyForNewFiles } from '../log/encrypted-archive.js';
import { encryptionKey, encryptOption, keyFileOption, useKeyFiles } from './keys.js';
import { Command } from 'commander';
import { exitOnSignal } from '../core/interrupt.js';
import { requireSource, sourceOption, s3EndpointOption, storeOption } from './options.js';
import { UserError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { formatLsn } from '../core/lsn.js';
import { openStore } from '../store/open.js';
import { quoteIdent } from '../core/sql.js';

export function baseCommand(): Command {
  return new Command('base')
    .description('take a new base now, so replays need not start from the first one (the archiving slot is left alone)')
    .addOption(sourceOption())
    .addOption(storeOption())
    .addOption(s3EndpointOption())
    .addOption(encryptOption())
    .addOption(keyFileOption())
    .option('--publication <name>', 'publication whose tables the base copies', 'pgtape')
    .addHelpText('after', '\nExample:\n  pgtape base --source postgres://archiver@db:5432/shop --store ./tape')
    .action(async (opts) => {
      exitOnSignal();
      const [{ takeBase }, { connect }, { checkSource }, { checkStream }] = await Promise.all([
        import('../base/take.js'),
        import('../source/connection.js'),
        import('../source/preflight.js'),
        import('../log/stream.js'),
      ]);
      const log = createLogger();
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      await store.checkWritable();
      const given = await encryptionKey(opts, store);
      await useKeyFiles(store, opts, given);
      const encryptFor = await keyForNewFiles(store, given, 'pgtape base');
      const client = await connect(requireSource(opts.source));
      let facts;
      try {
        facts = await checkSource(client);
        await checkStream(store, { ...facts, publication: opts.publication });
        const { rowCount } = await client.query('select 1 from pg_publication where pubname = $1', [opts.publication]);
        if (rowCount === 0) {
          throw new UserError(
            `publication ${quoteIdent(opts.publication)} does not exist on the source`,
            'pass the --publication that pgtape archive uses',
          );
        }
      } finally {
        await client.end().catch(() => {});
      }
      const lsn = await takeBase({ source: opts.source, store, publication: opts.publication, facts, log, encryptFor });
      process.stdout.write(`${formatLsn(lsn)}\n`);
    });
}
