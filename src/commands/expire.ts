import { keyFileOption, useKeyFiles } from './keys.js';
import { Command } from 'commander';
import { s3EndpointOption, storeOption } from './options.js';
import { UserError } from '../core/errors.js';
import { writeLine } from '../core/output.js';
import { formatBytes, parseDuration, parsePositive } from '../core/units.js';
import { describeExpiry, expire, planExpiry, type ExpiryRule } from '../log/expire.js';
import { parseTimeMicros } from '../log/target.js';
import { openStore } from '../store/open.js';

/** `--keep-since`: an ISO 8601 time, or a duration back from now (`30d`). */
function parseKeepSince(text: string): bigint {
  const at = parseTimeMicros(text);
  if (at !== undefined) return at;
  try {
    return BigInt(Date.now() - parseDuration(text, '--keep-since')) * 1000n;
  } catch {
    throw new UserError(
      `--keep-since: ${JSON.stringify(text)} is neither a time nor a duration`,
      'give an ISO 8601 time with its zone (2026-11-01T00:00:00Z) or a duration back from now (30d, 12h)',
    );
  }
}

export function expireCommand(): Command {
  return new Command('expire')
    .description('remove the bases and segments that no kept point needs (a dry run unless --confirm)')
    .addOption(storeOption())
    .addOption(keyFileOption())
    .addOption(s3EndpointOption())
    .option('--keep-bases <n>', 'keep the newest n bases, and every point since the oldest of them')
    .option('--keep-since <time|duration>', 'keep every point since this time (ISO 8601), or this long back from now (30d)')
    .option('--confirm', 'remove them; without it, only say what would go', false)
    .option('--json', 'one JSON object', false)
    .addHelpText(
      'after',
      '\nWith both options, what either keeps is kept. The oldest base kept becomes the start of the archive: replays\n' +
        'and logs reach every point from it on. pgtape compact makes new bases from the archive, so that older ones can go.\n' +
        'On Pachyderm (pfs://), removing is a new commit: older commits still hold the files until the repo is squashed.\n' +
        '\nExamples:\n  pgtape expire --store ./tape --keep-since 30d\n  pgtape expire --store s3://tapes/shop --keep-bases 7 --confirm',
    )
    .action(async (opts) => {
      const rule: ExpiryRule = {};
      if (opts.keepBases !== undefined) rule.keepBases = parsePositive(opts.keepBases, '--keep-bases', true);
      if (opts.keepSince !== undefined) rule.keepSinceMicros = parseKeepSince(opts.keepSince);
      if (rule.keepBases === undefined && rule.keepSinceMicros === undefined) {
        throw new UserError('expire needs to know what to keep', 'pass --keep-bases <n> or --keep-since <time|duration> (or both)');
      }
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      await useKeyFiles(store, opts);
      if (opts.confirm) await store.checkWritable();
      const plan = await planExpiry(store, rule);
      const counts = {
        bases: plan.bases.length,
        segments: plan.segments.count,
        objects: plan.objects.length + plan.segments.count,
        bytes: plan.bytes,
        keep: { lsn: plan.keep.prefix, snapshotTime: plan.keepSnapshotTime },
      };
      const what = `${counts.bases} base(s), ${counts.segments} segment(s), ${counts.objects} object(s) in all, ${formatBytes(counts.bytes)}`;
      if (!opts.confirm) {
        if (opts.json) await writeLine(JSON.stringify({ dryRun: true, ...counts }));
        else await writeLine(`would remove ${what}; ${describeExpiry(plan)}\n(a dry run: pass --confirm to remove them)`);
        return;
      }
      const removed = await expire(store, plan);
      if (opts.json) await writeLine(JSON.stringify({ dryRun: false, ...counts, objects: removed }));
      else await writeLine(`removed ${what}; ${describeExpiry(plan)}`);
    });
}
