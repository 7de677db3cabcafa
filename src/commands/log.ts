import { keyFileOption, useKeyFiles } from './keys.js';
import { Command } from 'commander';
import { s3EndpointOption, storeOption, selectedTables, tableOption, tablesOption } from './options.js';
import { emphasis, LineWriter, sayWarning } from '../core/output.js';
import { openStore } from '../store/open.js';
import { pairs } from '../audit/row-text.js';
import { readTransactions, type LoggedChange, type LoggedTransaction } from '../audit/transactions.js';
import { indexArchive, refuseUnknownTables } from '../log/archive-index.js';
import { beforeFirstBase, firstBaseDescription, resolveRange } from '../log/resolve.js';
import { parseTarget, type Target } from '../log/target.js';

/** A transaction's line; with --rows its marks follow as lines of their own (known only at its commit). */
function describe(t: LoggedTransaction, withCounts: boolean): string {
  const tables = withCounts
    ? Object.entries(t.tables).map(([name, c]) => {
        const parts = [
          c.inserts && `+${c.inserts}`,
          c.updates && `~${c.updates}`,
          c.deletes && `-${c.deletes}`,
          c.truncates && 'truncated',
        ].filter(Boolean);
        return `${name} ${parts.join(' ')}`;
      })
    : [];
  const marks = withCounts ? [...t.marks.map((m) => `mark ${JSON.stringify(m)}`), ...(t.ddl ?? []).map((d) => `ddl ${d}`)] : [];
  const origin = t.origin ? `  origin ${JSON.stringify(t.origin)}` : '';
  const what = [...tables, ...marks].join(', ') || (withCounts ? '(no changes)' : '');
  return `${t.commitLsn.padEnd(12)} xid ${String(t.xid).padEnd(10)} ${t.commitTime}${origin}  ${what}`.trimEnd();
}

function describeChange(c: LoggedChange, mark: (s: string) => string): string {
  const key = c.key ? ` (${pairs(c.key, ', ')})` : '';
  switch (c.change) {
    case 'insert':
      return `  + ${c.table}${key} ${pairs(c.new)}`;
    case 'update': {
      const changed = new Set(c.changed ?? []);
      const old = c.old && !c.key ? `  was ${pairs(c.old, ' ', (col) => changed.has(col), mark)}` : '';
      const kept = c.unchanged?.length ? `  (unchanged: ${c.unchanged.join(', ')})` : '';
      return `  ~ ${c.table}${key} ${pairs(c.new, ' ', (col) => changed.has(col), mark)}${old}${kept}`;
    }
    case 'delete':
      return `  - ${c.table}${key}${c.old ? ` ${pairs(c.old)}` : ''}`;
    case 'truncate':
      return `  truncate ${c.table}`;
  }
}

export function logCommand(): Command {
  return new Command('log')
    .description('list the stored transactions in commit order: what changed, when')
    .addOption(storeOption())
    .addOption(keyFileOption())
    .addOption(s3EndpointOption())
    .option('--from <target>', 'start after this point (its own transaction excluded, as in git log A..B)')
    .option('--to <target>', 'stop after this point (included)')
    .addOption(tableOption('only transactions that touched this table'))
    .addOption(tablesOption())
    .option('--rows', 'every change with its key and, where the replica identity gives them, old and new values', false)
    .option('--json', 'one JSON object per line (with --rows, changes come before their transaction)', false)
    .addHelpText(
      'after',
      '\nTargets: latest, lsn:<X/Y>, xid:<n>, time:<ISO 8601>, name:<mark>.\n' +
        '\nExamples:\n  pgtape log --store ./tape\n  pgtape log --store ./tape --from name:day-1 --to name:day-2 --table shop.orders --rows\n  pgtape log --store ./tape --json | jq .xid',
    )
    .action(async (opts) => {
      const tables = selectedTables(opts);
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      await useKeyFiles(store, opts);
      const index = await indexArchive(store, { requireBase: false, walksFromStart: !opts.from, lostTail: true });
      const asked = opts.from !== undefined ? parseTarget(opts.from, '--from') : undefined;
      const early = await beforeFirstBase(index, asked);
      // Listed from the first recorded transaction, as said: from the first base, where the log begins.
      const from: Target | undefined = early ? { kind: 'lsn', lsn: index.bases[0]!.lsn - 1n } : asked;
      const to = opts.to !== undefined ? parseTarget(opts.to) : undefined;
      const toEarly = await beforeFirstBase(index, to);
      // Both before the archive: the range would start at the first base, after --to, and be
      // refused naming a point the user never gave. Otherwise it is resolved (and checked) as given.
      const range = early && toEarly ? undefined : await resolveRange(index, from, to, true);
      if (toEarly || !range) {
        // A table the archive never held is refused here too, not answered with an empty log.
        await refuseUnknownTables(index, tables, { upTo: index.bases[0]?.lsn ?? index.firstLsn });
        sayWarning(
          `--to ${opts.to} is before the archive begins (${await firstBaseDescription(index)}): nothing was recorded up to it, so nothing is listed`,
        );
        return;
      }
      if (early) {
        sayWarning(
          `--from ${opts.from} is before the archive begins (${await firstBaseDescription(index)}): ` +
            'what changed before it was never recorded; listing from the first recorded transaction',
        );
      }
      await refuseUnknownTables(index, tables, range);
      const mark = emphasis();
      const out = new LineWriter();
      let shown: LoggedTransaction | undefined;
      for await (const events of readTransactions(store, range, {
        tables,
        rows: opts.rows,
        discontinuities: index.discontinuities,
      })) {
        for (const e of events) {
          if (e.type === 'discontinuity') {
            const { type: _t, ...d } = e;
            out.push(
              opts.json
                ? JSON.stringify({ discontinuity: d })
                : `-- discontinuity: nothing was recorded from ${d.from} to ${d.to} (${d.reason}; rebased ${d.at})`,
            );
            continue;
          }
          if (opts.json) {
            if (e.type === 'change') out.push(JSON.stringify(e.change));
            else if (e.type === 'commit') out.push(JSON.stringify(e.transaction));
            continue;
          }
          if (!opts.rows) {
            if (e.type === 'commit') out.push(describe(e.transaction, true));
            continue;
          }
          // With --rows: a transaction's line comes with its first change (or its commit), then its changes.
          if (e.type === 'begin') continue;
          if (shown !== e.transaction) {
            shown = e.transaction;
            out.push(describe(e.transaction, false));
          }
          if (e.type === 'change') out.push(describeChange(e.change, mark));
          else {
            for (const m of e.transaction.marks) out.push(`  mark ${JSON.stringify(m)}`);
            for (const d of e.transaction.ddl ?? []) out.push(`  ddl ${d}`);
          }
        }
        // Written a batch at a time: a reader that stops (head) holds the log back here.
        await out.ready();
      }
      await out.flush();
    });
}
