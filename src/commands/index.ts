import { keyFileOption, useKeyFiles } from './keys.js';
import { Command, Option } from 'commander';
import { s3EndpointOption, storeOption } from './options.js';
import { writeLine } from '../core/output.js';
import { parsePositive } from '../core/units.js';
import { buildIndex, DEFAULT_INDEX_GROUP } from '../log/segment-index.js';
import { openStore } from '../store/open.js';
import { indexArchive } from '../log/archive-index.js';

export function indexCommand(): Command {
  return new Command('index')
    .description('write index objects for the segments not indexed yet, so targets are found without reading every header')
    .addOption(storeOption())
    .addOption(keyFileOption())
    .addOption(s3EndpointOption())
    .addOption(new Option('--group <n>', 'segments per index object').default(DEFAULT_INDEX_GROUP))
    .addHelpText(
      'after',
      '\nThe archiver writes them as it goes; this is for archives written before it did. Index objects are written\n' +
        "once and never changed (pgtape rekey wraps an encrypted archive's keys in them again); the segments after the last whole group go into a partial object, and the last\n" +
        'segment is read from its header.\n' +
        '\nExample:\n  pgtape index --store s3://tapes/shop',
    )
    .action(async (opts) => {
      const group = parsePositive(opts.group, '--group', true);
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      await useKeyFiles(store, opts);
      await store.checkWritable();
      // A store that holds no archive (a mistyped --store) is said as such, not "nothing to index".
      await indexArchive(store, { requireBase: false });
      // Every segment but the last (which may still be on its way) into an object, the rest in a partial one.
      const written = await buildIndex(store, group, 1);
      await writeLine(
        written.length
          ? `wrote ${written.length} index object(s): ${written.join(', ')}`
          : 'nothing to index: every segment but the last is in an index object',
      );
    });
}
