import { keyFileOption, useKeyFiles } from './keys.js';
import { Command } from 'commander';
import { parseSlotName, requireSource, s3EndpointOption, sourceOption, storeOption } from './options.js';
import { ExitCode, UserError } from '../core/errors.js';
import { writeLine } from '../core/output.js';
import { formatBytes, parseBytes } from '../core/units.js';
import { openStore } from '../store/open.js';

export function statusCommand(): Command {
  return new Command('status')
    .description("the stream's health: the slot, the WAL it retains, how far the archive is behind the source")
    .addOption(sourceOption())
    .addOption(storeOption())
    .addOption(keyFileOption())
    .addOption(s3EndpointOption())
    .option('--slot <name>', 'logical replication slot', 'pgtape')
    .option('--max-retained-wal <size>', 'warn when the slot retains more WAL than this', '1GB')
    .option('--json', 'one JSON object', false)
    .addHelpText(
      'after',
      `\nExit status: 0 when healthy, ${ExitCode.ATTENTION} when a warning is printed.\n\nExample:\n  pgtape status --source postgres://archiver@db/shop --store s3://tapes/shop`,
    )
    .action(async (opts) => {
      const [{ connect }, { streamStatus }] = await Promise.all([import('../source/connection.js'), import('../audit/status.js')]);
      const source = requireSource(opts.source);
      const slot = parseSlotName(opts.slot);
      const maxRetained = parseBytes(opts.maxRetainedWal, '--max-retained-wal');
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      await useKeyFiles(store, opts);
      const client = await connect(source);
      let s;
      try {
        s = await streamStatus(client, store, slot, maxRetained);
      } finally {
        await client.end().catch(() => {});
      }
      if (opts.json) await writeLine(JSON.stringify(s));
      else {
        const slotLine = s.slot.exists
          ? `${s.slot.name}, ${s.slot.active ? 'active' : 'inactive'}, confirmed ${s.slot.confirmedFlushLsn ?? '-'}, retains ${s.slot.retainedWalBytes === null ? '-' : formatBytes(s.slot.retainedWalBytes)} of WAL`
          : `${s.slot.name} does not exist`;
        await writeLine(`slot      ${slotLine}`);
        await writeLine(`source    current LSN ${s.source.currentLsn} at ${s.source.time}`);
        await writeLine(
          `archive   ${s.archive.bases} bases (first ${s.archive.firstBase ?? '-'}), ${s.archive.segments} segments, last commit ${s.archive.lastCommitLsn ?? '-'} at ${s.archive.lastCommitTime ?? '-'}, ends at ${s.archive.endLsn ?? '-'}`,
        );
        const b = s.archive.newestBase;
        await writeLine(
          `size      ${formatBytes(s.archive.bytes)}; newest base ${b ? `${b.lsn}, ${formatAge(b.ageSeconds)} old, followed by ${b.segmentsSince} segments (${formatBytes(b.bytesSince)})` : '-'}`,
        );
        const age = s.behind.lastCommitAgeSeconds === null ? '-' : `${s.behind.lastCommitAgeSeconds.toFixed(1)} s`;
        await writeLine(
          `behind    ${s.behind.bytes === null ? '-' : `${formatBytes(s.behind.bytes)} of WAL`}; the last archived commit is ${age} old`,
        );
        for (const w of s.warnings) await writeLine(`warning   ${w}`);
      }
      if (s.warnings.length)
        throw new UserError(
          `the stream needs attention: ${s.warnings[0]}`,
          s.warnings.length > 1 ? `${s.warnings.length} warnings in all, listed above` : undefined,
          ExitCode.ATTENTION,
        );
    });
}

/** `42 s`, `17 min`, `5.2 h`, `3.1 d`. */
function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}
