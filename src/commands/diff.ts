import { keyFileOption, useKeyFiles } from './keys.js';
import { Command, Option } from 'commander';
import { exitOnSignal } from '../core/interrupt.js';
import { s3EndpointOption, storeOption, selectedTables, tableOption, tablesOption } from './options.js';
import { UserError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { parseBytes } from '../core/units.js';
import { emphasis, LineWriter } from '../core/output.js';
import { openStore } from '../store/open.js';
import type { DiffFormat } from '../audit/diff/format.js';
import { sayWarning } from '../core/output.js';
import { parseTarget } from '../log/target.js';

export function diffCommand(): Command {
  return new Command('diff')
    .description('the net difference between two points, row by row')
    .addOption(storeOption())
    .addOption(keyFileOption())
    .addOption(s3EndpointOption())
    .option('--from <target>', 'the earlier point')
    .option('--to <target>', 'the later point', 'latest')
    .addOption(tableOption('only this table'))
    .addOption(tablesOption())
    .addOption(
      new Option('--format <format>', 'table (for people), jsonl, sql (a patch from --from to --to), csv')
        .choices(['table', 'jsonl', 'sql', 'csv'])
        .default('table'),
    )
    .addOption(new Option('--json', 'the same as --format jsonl (as log, verify and status name it)').default(false))
    .option('--summary', 'per table: rows added, deleted, modified and cells modified', false)
    .option('--memory <size>', 'memory for comparing; a table whose difference needs more is compared in parts spilled to disk', '512MiB')
    .addHelpText(
      'after',
      '\nTargets: latest, lsn:<X/Y>, xid:<n>, time:<ISO 8601>, name:<mark>.\n' +
        '\nExamples:\n  pgtape diff --store ./tape --from name:day-1 --to name:day-2 --summary\n' +
        '  pgtape diff --store ./tape --from name:day-1 --to name:day-2 --format sql > day-2.patch.sql',
    )
    .action(async (opts, command: Command) => {
      const [{ diffPoints }, { formatDiff }] = await Promise.all([import('../audit/diff/diff.js'), import('../audit/diff/format.js')]);
      const tables = selectedTables(opts);
      exitOnSignal();
      if (opts.from === undefined) throw new UserError('diff needs --from', 'pass --from <target> (and --to, default latest)');
      const format = outputFormat(command);
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      await useKeyFiles(store, opts);
      const result = await diffPoints({
        store,
        from: parseTarget(opts.from, '--from'),
        to: parseTarget(opts.to),
        tables,
        memoryBytes: parseBytes(opts.memory, '--memory', 1),
        keepRows: !opts.summary,
        schemaPatch: format === 'sql' && !opts.summary,
        log: createLogger(),
      });
      // Where the answer may be incomplete, said on stderr (never silently).
      for (const table of result.rewritten)
        sayWarning(
          `DDL rewrote the rows of ${table} in the range (captured as whole images, which diff does not read): rows the rewrite changed and nothing else did are not shown as modified; replay both points and compare them for this table`,
        );
      const unfollowed = result.schemaPatch?.unfollowed ?? [];
      if (unfollowed.length)
        sayWarning(
          `${unfollowed.length} schema changes in the range are not written in the patch (named in its comments): ${unfollowed.slice(0, 3).join('; ')}${unfollowed.length > 3 ? ' …' : ''}`,
        );
      try {
        const out = new LineWriter();
        for (const line of formatDiff(result, format, opts.summary, emphasis())) await out.line(line);
        await out.flush();
      } finally {
        await result.close();
      }
    });
}

/** Where an option's value came from, strongest first (src/commands/config.ts: flags, then PGTAPE_*, then --config). */
const SOURCES = ['cli', 'env', 'config', 'default'];

/**
 * --json or --format, whichever was given the stronger way: a flag beats PGTAPE_FORMAT, as any
 * flag beats its variable. Only two given the same way (both flags, say) and saying different
 * things are refused; commander's own check also counted PGTAPE_JSON=0 against a --format flag.
 */
function outputFormat(command: Command): DiffFormat {
  const { json, format } = command.opts<{ json: boolean; format: DiffFormat }>();
  if (!json || format === 'jsonl') return json ? 'jsonl' : format;
  const rank = (name: string) => SOURCES.indexOf(command.getOptionValueSource(name) ?? 'default');
  if (rank('format') < rank('json')) return format;
  if (rank('json') < rank('format')) return 'jsonl';
  const how = (name: string) => {
    const source = command.getOptionValueSource(name);
    return source === 'cli' ? `--${name}` : source === 'env' ? `PGTAPE_${name.toUpperCase()}` : `"${name}" in --config`;
  };
  throw new UserError(
    `${how('json')} and ${how('format')} ${format} ask for different formats`,
    'give one of them: --json is --format jsonl',
  );
}
