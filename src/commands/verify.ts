import { keyFileOption, useKeyFiles } from './keys.js';
import { Command } from 'commander';
import { s3EndpointOption, storeOption } from './options.js';
import { ExitCode, UserError } from '../core/errors.js';
import { parseLsn } from '../core/lsn.js';
import { writeLine } from '../core/output.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/store.js';
import type { Finding, VerifySummary } from '../audit/verify.js';
import { indexArchive } from '../log/archive-index.js';
import { refuseReversed, resolvePoint } from '../log/resolve.js';
import { parseTarget } from '../log/target.js';
import { SEGMENTS_DIR } from '../segment/name.js';

/** LSN targets need nothing from the store; the others are found through the segments' headers. */
async function point(store: Store, text: string | undefined, option: string): Promise<bigint | undefined> {
  if (text === undefined) return undefined;
  const target = parseTarget(text, option);
  if (target.kind === 'lsn') return target.lsn;
  if (target.kind === 'latest') return undefined;
  return resolvePoint(await indexArchive(store, { requireBase: false, skipUnreadable: true, lostTail: true }), target, false);
}

export function verifyCommand(): Command {
  return new Command('verify')
    .description('check that the archive is whole: every base and segment readable, checksums right, no gap or overlap')
    .addOption(storeOption())
    .addOption(keyFileOption())
    .addOption(s3EndpointOption())
    .option('--from <target>', 'check only what replays from this point on need')
    .option('--to <target>', 'check only what replays up to this point need')
    .option('--json', 'one JSON object per line: each object checked, then a summary', false)
    .option(
      '--require-keys',
      'every encrypted file must be opened with the keys given: one under a key not given fails the run (exit 2) instead of passing on its checksum',
      false,
    )
    .addHelpText(
      'after',
      `\nExit status: 0 when everything checked is sound, ${ExitCode.ATTENTION} when something is damaged or missing.\n\nExamples:\n  pgtape verify --store ./tape\n  pgtape verify --store pfs://changelog@master --to name:end-of-day --json`,
    )
    .action(async (opts) => {
      const { verifyArchive } = await import('../audit/verify.js');
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      await useKeyFiles(store, opts);
      const range = { from: await point(store, opts.from, '--from'), to: await point(store, opts.to, '--to') };
      refuseReversed(range.from, range.to, opts.from, opts.to);
      const run = verifyArchive(store, range);
      const broken: Finding[] = [];
      const unopened = new Set<string>();
      let next = await run.next();
      while (!next.done) {
        const f = next.value;
        if (f.keyNotGiven) unopened.add(f.keyNotGiven);
        if (f.status !== 'OK' && f.status !== 'DISCONTINUITY') broken.push(f);
        await writeLine(opts.json ? JSON.stringify(f) : `${f.status.padEnd(8)} ${f.object}  ${f.detail}`);
        next = await run.next();
      }
      const summary: VerifySummary = next.value;
      if (opts.json) await writeLine(JSON.stringify({ summary }));
      else {
        const counts =
          Object.entries(summary.counts)
            .map(([s, n]) => `${n} ${s}`)
            .join(', ') || 'nothing';
        await writeLine(
          `verified ${summary.bases} bases and ${summary.segments} segments (${summary.from ?? '-'} to ${summary.to ?? '-'}): ${counts}`,
        );
        await writeLine(`replayable: ${summary.replayable.map((r) => stretch(r)).join('; ') || 'nothing'}`);
      }
      if (summary.bases + summary.segments === 0)
        throw new UserError(
          `${store.description} holds no archive (no base, no segments)`,
          'check --store; pgtape archive writes there',
          ExitCode.BAD_INPUT,
        );
      // Damage first: it matters more than what was not opened.
      if (summary.sound && opts.requireKeys && unopened.size)
        throw new UserError(
          `--require-keys: encrypted files under keys not given were checked only against their checksums (keys ${[...unopened].join(', ')})`,
          'pass their key files with --key-file (or kms:); a key id no one holds may also be a forged header: restore those files from a copy',
        );
      if (!summary.sound) {
        const names =
          broken
            .slice(0, 5)
            .map((f) => `${f.object} (${f.status})`)
            .join(', ') + (broken.length > 5 ? `, and ${broken.length - 5} more` : '');
        if (broken.every((f) => f.status === 'DOWNGRADE'))
          throw new UserError(
            `the archive holds files stored in the clear after it was encrypted: ${names}`,
            'find out who wrote them (an archiver, base or compact without --encrypt, or someone else); they replay, but whoever reads the store can read them: take a new encrypted base (pgtape base --encrypt) and expire what precedes it',
            ExitCode.ATTENTION,
          );
        const strays = broken.filter((f) => f.status === 'STRAY');
        if (strays.length === broken.length)
          throw new UserError(
            `${SEGMENTS_DIR} holds files that are no segments: ${names}; replay, log and diff refuse the store while they are there`,
            `move them out of ${SEGMENTS_DIR} (pgtape owns that folder); the archive itself verified sound`,
            ExitCode.ATTENTION,
          );
        const reach = summary.replayable.length
          ? `replay targets ${summary.replayable.map((r) => stretch(r, 'from ')).join(' and ')} still work`
          : 'no stretch of the archive is replayable';
        throw new UserError(
          `the archive is damaged: ${names}`,
          `${strays.length ? `move the files that are no segments out of ${SEGMENTS_DIR}; then ` : ''}${reach}; restore the damaged objects from a copy (a PFS commit's history keeps earlier versions), or take a new base with pgtape base to replay from it on`,
          ExitCode.ATTENTION,
        );
      }
    });
}

/** A stretch replay can reach, as said: from a base to a point, or the base alone (a break at its LSN). */
function stretch(r: VerifySummary['replayable'][number], from = ''): string {
  if (parseLsn(r.to) < parseLsn(r.from)) return `up to ${r.to} (the base at ${r.from} alone)`;
  return from ? `${from}${r.from} to ${r.to}` : `${r.from} (base) to ${r.to}`;
}
