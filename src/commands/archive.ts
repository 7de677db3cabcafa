import { checkKeyOptions, encryptionKey, encryptOption, keyFileOption, useKeyFiles } from './keys.js';
import { signalExitCode } from '../core/interrupt.js';
import { Command, Option } from 'commander';
import { parseSlotName, requireSource, sourceOption, s3EndpointOption, storeOption } from './options.js';
import { resolvedConfig } from './config.js';
import { UserError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { parseLsn, tryParseLsn } from '../core/lsn.js';
import { parseBytes, parseDuration, parsePort, parsePositive } from '../core/units.js';
import { DEFAULT_COMPRESSION } from '../core/compression.js';
import { DEFAULT_INDEX_GROUP } from '../log/segment-index.js';
import { openStore } from '../store/open.js';

export function archiveCommand(): Command {
  return new Command('archive')
    .description('record every committed change of the source into the store, until stopped')
    .addOption(sourceOption('the database to archive'))
    .addOption(storeOption('where bases and segments are written'))
    .addOption(s3EndpointOption())
    .option('--slot <name>', 'logical replication slot (created if missing)', 'pgtape')
    .option('--publication <name>', 'publication whose tables are archived', 'pgtape')
    .option('--create-publication', 'create the publication FOR ALL TABLES if missing', false)
    .option(
      '--capture-ddl',
      'install event triggers (superuser, once) that record DDL for replay: new tables with defaults and indexes, renames, drops',
      false,
    )
    .option(
      '--rebase',
      'when the slot is lost or has moved past the archive: a new slot and base, the gap recorded as a discontinuity',
      false,
    )
    .option('--force', 'create the publication even if some tables have no usable replica identity', false)
    .option('--segment-bytes <size>', 'seal a segment once its uncompressed body reaches this size', '64MiB')
    .addOption(new Option('--segment-seconds <n>', 'seal a segment once it is this old').default(60))
    .option('--until <now|lsn>', "store everything committed up to this point ('now': when the command started), then exit")
    .addOption(new Option('--compression <algorithm>', 'segment body compression').choices(['br', 'gzip']).default(DEFAULT_COMPRESSION))
    .addOption(new Option('--upload-queue <n>', 'sealed segments waiting for the store before reading pauses').default(2))
    .option(
      '--max-idle-wal <size>',
      'with nothing of ours pending, acknowledge the walsender position (storing an empty segment) once the slot holds this much WAL',
      '64MiB',
    )
    .option('--max-retained-wal <size>', 'warn (log and metric) when the slot retains more WAL than this', '1GB')
    .option('--metrics-port <port>', 'serve Prometheus /metrics, /healthz and /readyz on this port')
    .option('--metrics-host <address>', 'address for --metrics-port', '0.0.0.0')
    .option(
      '--heartbeat-sql <statement>',
      "run this on the source every --heartbeat-seconds (e.g. select pg_logical_emit_message(true, 'heartbeat', now()::text))",
    )
    .addOption(new Option('--heartbeat-seconds <n>', 'interval of --heartbeat-sql').default(60))
    .option(
      '--base-every <duration>',
      'make a new base from the archive (pgtape compact, in the background) once the newest is this old: 6h, 1d',
    )
    .option('--base-after <size>', 'make a new base from the archive once this much of segments follows the newest: 1GiB')
    .addOption(
      new Option(
        '--index-every <n>',
        'write an index object for every n segments stored (targets are then found without reading every header); 0: never',
      ).default(DEFAULT_INDEX_GROUP),
    )
    .addOption(encryptOption())
    .addOption(keyFileOption())
    .option('--print-config', 'print the resolved configuration (secrets masked) and exit', false)
    .addHelpText(
      'after',
      '\nEvery option can also be set with PGTAPE_<OPTION> (PGTAPE_SOURCE, PGTAPE_SEGMENT_SECONDS, ...) or in a --config JSON file; flags win.\n' +
        '\nExample:\n  pgtape archive --source postgres://archiver@db:5432/shop --store ./tape --create-publication\n' +
        '  pgtape archive --source "$PGTAPE_SOURCE" --store ./tape --until now',
    )
    .action(async (opts, command: Command) => {
      // Every value checked before anything runs, --print-config included: a configuration it
      // prints is one the archiver would accept.
      let until: 'now' | bigint | undefined;
      if (opts.until === 'now') until = 'now';
      else if (opts.until !== undefined) {
        if (tryParseLsn(opts.until) === undefined)
          throw new UserError(`--until: ${JSON.stringify(opts.until)} is neither 'now' nor an LSN`, 'use --until now or --until 0/16B3748');
        until = parseLsn(opts.until);
      }
      const settings = {
        source: requireSource(opts.source),
        slot: parseSlotName(opts.slot),
        segmentBytes: parseBytes(opts.segmentBytes, '--segment-bytes', 1),
        segmentSeconds: parsePositive(opts.segmentSeconds, '--segment-seconds'),
        queueLimit: parsePositive(opts.uploadQueue, '--upload-queue', true),
        maxIdleWal: parseBytes(opts.maxIdleWal, '--max-idle-wal', 1),
        maxRetainedWal: parseBytes(opts.maxRetainedWal, '--max-retained-wal', 1),
        heartbeat: opts.heartbeatSql
          ? { sql: opts.heartbeatSql as string, seconds: parsePositive(opts.heartbeatSeconds, '--heartbeat-seconds') }
          : undefined,
        metricsPort: opts.metricsPort !== undefined ? parsePort(opts.metricsPort) : undefined,
        baseEveryMs: opts.baseEvery !== undefined ? parseDuration(opts.baseEvery, '--base-every') : undefined,
        indexEvery: String(opts.indexEvery) === '0' ? 0 : parsePositive(opts.indexEvery, '--index-every', true),
        baseAfterBytes: opts.baseAfter !== undefined ? parseBytes(opts.baseAfter, '--base-after', 1) : undefined,
      };
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      checkKeyOptions(opts);
      if (opts.printConfig) {
        process.stdout.write(JSON.stringify(resolvedConfig(command), null, 2) + '\n');
        return;
      }
      const keepsBases = settings.baseEveryMs !== undefined || settings.baseAfterBytes !== undefined;
      const encryptFor = await encryptionKey(opts, store, keepsBases ? '--base-every and --base-after' : undefined);
      const readKeys = await useKeyFiles(store, opts, encryptFor);
      if (keepsBases && encryptFor && !readKeys.length)
        throw new UserError(
          `--base-every and --base-after make bases from the archive, which an archiver holding only the public key ${encryptFor.id} cannot read`,
          'run pgtape compact (with the private key file) where the private key is, on a schedule of its own; or leave them out',
        );
      const log = createLogger();
      const controller = new AbortController();
      // The first signal stores what is whole and stops; a second one stops at once (what is
      // stored and acknowledged stays consistent: the next archiver resumes from it).
      const stop = (signal: NodeJS.Signals) => {
        if (controller.signal.aborted) {
          log.warn({ signal }, 'received a second signal: stopping at once, storing nothing more');
          process.exit(signalExitCode(signal));
        }
        log.info({ signal }, 'received signal');
        controller.abort();
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      // Loaded here: the replication client and the metrics library are for this command only.
      const [{ Archiver }, { startObserveServer }] = await Promise.all([import('../archive/archiver.js'), import('../observe/server.js')]);
      const archiver = new Archiver({
        ...settings,
        store,
        publication: opts.publication,
        createPublication: opts.createPublication,
        force: opts.force,
        rebase: opts.rebase,
        captureDdl: opts.captureDdl,
        until,
        compression: opts.compression,
        encryptFor,
        log,
        signal: controller.signal,
      });
      const server =
        settings.metricsPort !== undefined
          ? await startObserveServer(settings.metricsPort, opts.metricsHost, archiver.metrics, archiver, log)
          : undefined;
      // Bases kept fresh, index objects written and the archive's metrics kept, beside it
      // (src/archive/base-keeper.ts, index-keeper.ts, archive-gauges.ts); they stop with the archiver.
      const keeping = new AbortController();
      controller.signal.addEventListener('abort', () => keeping.abort(), { once: true });
      const keeper =
        settings.baseEveryMs !== undefined || settings.baseAfterBytes !== undefined
          ? new (await import('../archive/base-keeper.js')).BaseKeeper({
              store,
              storeArgs: ['--store', opts.store, ...(opts.s3Endpoint ? ['--s3-endpoint', opts.s3Endpoint] : [])],
              // Paths only, never keys, on the child's command line.
              keyArgs: [
                ...(opts.encrypt !== undefined ? ['--encrypt', opts.encrypt] : []),
                ...((opts.keyFile as string[] | undefined) ?? []).flatMap((f) => ['--key-file', f]),
              ],
              everyMs: settings.baseEveryMs,
              afterBytes: settings.baseAfterBytes,
              log,
              signal: keeping.signal,
            })
          : undefined;
      const kept = Promise.all([
        keeper?.run(),
        settings.indexEvery > 0
          ? (await import('../archive/index-keeper.js')).keepIndex({ store, group: settings.indexEvery, log, signal: keeping.signal })
          : undefined,
        // Only where someone scrapes them.
        server
          ? (await import('../archive/archive-gauges.js')).keepArchiveGauges({
              store,
              metrics: archiver.metrics,
              log,
              signal: keeping.signal,
            })
          : undefined,
      ]);
      try {
        await archiver.run();
      } finally {
        keeping.abort();
        await kept;
        server?.close();
      }
    });
}
