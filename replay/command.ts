import { Command } from 'commander';
import { s3EndpointOption, selectedTables, storeOption, tableOption, tablesOption } from '../src/commands/options.js';
import { UserError } from '../src/core/errors.js';
import { createLogger } from '../src/core/log.js';
import { parseBytes, parsePositive } from '../src/core/units.js';
import { openStore } from '../src/store/open.js';
import { encryptionKey, encryptOption, keyFileOption, useKeyFiles } from '../src/commands/keys.js';
import { parseTarget, type Target } from '../src/log/target.js';
import type { Store } from '../src/store/store.js';

/**
 * The least --memory a replay takes: below it every batch holds a handful of changes, each applied
 * by statements of its own (1 MiB is three times slower than the default; 1 byte never ends).
 */
const MIN_MEMORY = 16 * 2 ** 20;

/**
 * A commit: target reads a pfs:// store through the gateway's commit-prefixed bucket. A mounted
 * directory (/pfs/<input> in a pipeline) already is the state of its commit
 * (commit:$<input>_COMMIT), so it is read as it is and the id is recorded in replay.json.
 */
function openStoreAt(location: string | undefined, target: Target, s3Endpoint: string | undefined): Store {
  if (target.kind !== 'commit') return openStore(location, { s3Endpoint });
  if (location?.startsWith('pfs://')) return openStore(location, { s3Endpoint, commit: target.id });
  if (location?.startsWith('s3://')) {
    throw new UserError(
      `--to commit:${target.id} needs a pfs:// store or a mounted PFS directory, not ${location}`,
      'use --store pfs://<repo>@<branch>, or the /pfs/<input> mount',
    );
  }
  // A directory is the state of its commit only as a pipeline's input, whose commit is in
  // <input>_COMMIT: another id (a typo) would otherwise replay whatever is there.
  const inputs = Object.entries(process.env).filter(([k, v]) => k.endsWith('_COMMIT') && v);
  if (!inputs.some(([, v]) => v === target.id)) {
    throw new UserError(
      `--to commit:${target.id}: ${location ?? 'the store'} is a directory, read as it is, and no <input>_COMMIT variable names that commit${inputs.length ? ` (${inputs.map(([k, v]) => `${k}=${v}`).join(', ')})` : ''}`,
      'in a pipeline, pass commit:$<input>_COMMIT with the /pfs/<input> mount; elsewhere, a pfs:// store reads any commit',
    );
  }
  return openStore(location, { s3Endpoint });
}

export function replayCommand(): Command {
  return new Command('replay')
    .description('rebuild the database as it was at a point of the history')
    .addOption(storeOption())
    .addOption(keyFileOption())
    .addOption(s3EndpointOption())
    .option('--to <target>', 'latest, lsn:<X/Y> (or a bare X/Y), xid:<n>, time:<ISO 8601>, name:<mark>, commit:<pfs commit id>', 'latest')
    .option('--exclusive', 'stop just before the target instead of just after it', false)
    .option('--into <postgres-url>', 'an existing, empty database to replay into')
    .option('--pgdata <dir>', 'a new data directory, initialized, replayed into and shut down cleanly')
    .option('--csv <dir>', 'a directory of one CSV file per table')
    .addOption(tablesOption('replay only these tables (a comma-separated list)'))
    .addOption(tableOption('replay only this table'))
    .option(
      '--memory <size>',
      'memory for folding changes into their net effect before applying them; more means fewer, larger batches',
      '512MiB',
    )
    .option(
      '--jobs <n>',
      'with --pgdata or --csv: connections loading tables and building indexes at once (default: the number of cores); --into is one transaction, one connection',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  pgtape replay --store /pfs/changelog --to name:end-of-day --pgdata /pfs/out/pgdata\n' +
        '  pgtape replay --store ./tape --to time:2026-11-24T17:00:00Z --into postgres://me@localhost/analysis\n' +
        '  pgtape replay --store ./tape --to xid:12345 --exclusive --csv ./before-12345',
    )
    .action(async (opts) => {
      const outputs = [opts.into, opts.pgdata, opts.csv].filter((o) => o !== undefined);
      if (outputs.length !== 1)
        throw new UserError('replay needs exactly one output', 'pass one of --into <postgres-url>, --pgdata <dir>, --csv <dir>');
      const target = parseTarget(opts.to, '--to', true);
      if (opts.exclusive && (target.kind === 'latest' || target.kind === 'commit')) {
        throw new UserError(
          `--exclusive with --to ${opts.to} says nothing: there is no transaction to stop before`,
          'give --exclusive a lsn:, xid:, time: or name: target',
        );
      }
      // Loaded by the command that runs (as each of src/commands does): `pgtape log` loads no replay.
      const { defaultJobs, MAX_JOBS } = await import('./jobs.js');
      const { replayIntoCsv, replayIntoDatabase, replayIntoPgdata } = await import('./outputs.js');
      const jobs = opts.jobs === undefined ? defaultJobs() : parsePositive(opts.jobs, '--jobs', true);
      if (jobs > MAX_JOBS)
        throw new UserError(
          `--jobs ${jobs} is more than ${MAX_JOBS}`,
          `give --jobs ${MAX_JOBS} or fewer (about the number of cores is best)`,
        );
      if (opts.into && opts.jobs !== undefined && jobs > 1) {
        throw new UserError(
          `--jobs ${jobs} (from --jobs, PGTAPE_JOBS or the config file) applies to --pgdata and --csv: --into replays in one transaction, on one connection, so that a failed replay leaves the database empty`,
          'leave --jobs (and PGTAPE_JOBS) out with --into, or replay with --pgdata',
        );
      }
      const tables = selectedTables(opts);
      const store = openStoreAt(opts.store, target, opts.s3Endpoint);
      await useKeyFiles(store, opts);
      const options = {
        store,
        target,
        exclusive: opts.exclusive,
        tables,
        memoryBytes: parseBytes(opts.memory, '--memory', MIN_MEMORY),
        log: createLogger(),
      };
      if (opts.into) {
        const report = await replayIntoDatabase(opts.into, options);
        process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      } else if (opts.pgdata) {
        await replayIntoPgdata(opts.pgdata, { ...options, jobs });
      } else {
        await replayIntoCsv(opts.csv, { ...options, jobs });
      }
    });
}

export function compactCommand(): Command {
  return new Command('compact')
    .description(
      'make a new base from the archive alone (the newest base and the changes after it), so replays start closer to their target; the source is not touched',
    )
    .addOption(storeOption())
    .addOption(keyFileOption())
    .addOption(s3EndpointOption())
    .option('--to <target>', 'the point of the new base: latest, lsn:<X/Y>, xid:<n>, time:<ISO 8601>, name:<mark>', 'latest')
    .addOption(encryptOption())
    .option('--memory <size>', 'memory for folding changes, as for replay', '512MiB')
    .addHelpText(
      'after',
      "\nThe archive is replayed into a scratch cluster of the source's PostgreSQL version (its server binaries are\n" +
        'needed), which is then copied as a base at the end of the last transaction folded. Prints its LSN.\n' +
        '\nExample:\n  pgtape compact --store ./tape',
    )
    .action(async (opts) => {
      const { compactBase, sayCompacted } = await import('./compact.js');
      const target = parseTarget(opts.to, '--to', false);
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      const encryptFor = await encryptionKey(opts, store);
      await useKeyFiles(store, opts, encryptFor);
      const compacted = await compactBase({
        store,
        target,
        memoryBytes: parseBytes(opts.memory, '--memory', MIN_MEMORY),
        log: createLogger(),
        encryptFor,
      });
      sayCompacted(compacted, target);
    });
}
