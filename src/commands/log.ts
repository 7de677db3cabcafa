import { once } from 'node:events';
import { Command } from 'commander';
import { s3EndpointOption, storeOption } from './options.js';
import { formatLsn } from '../core/lsn.js';
import { formatMicros } from '../core/units.js';
import type { RelationDef } from '../segment/format.js';
import { readLog } from '../store/change-log.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/store.js';
import { MARK_PREFIX } from './mark.js';

interface TableCounts {
  inserts: number;
  updates: number;
  deletes: number;
  truncates: number;
}

export interface LoggedTransaction {
  commitLsn: string;
  endLsn: string;
  xid: number;
  commitTime: string;
  origin?: string;
  marks: string[];
  tables: Record<string, TableCounts>;
}

/** Every stored transaction in commit order, with its counts per table, streamed. */
export async function* readTransactions(store: Store): AsyncGenerator<LoggedTransaction> {
  let tx: LoggedTransaction | undefined;
  const count = (rel: RelationDef, field: keyof TableCounts) => {
    const t = (tx!.tables[`${rel.schema}.${rel.name}`] ??= { inserts: 0, updates: 0, deletes: 0, truncates: 0 });
    t[field]++;
  };
  for await (const e of readLog(store)) {
    switch (e.kind) {
      case 'begin':
        tx = { commitLsn: formatLsn(e.commitLsn), endLsn: '', xid: e.xid, commitTime: formatMicros(e.commitTime), marks: [], tables: {} };
        break;
      case 'origin':
        tx!.origin = e.name;
        break;
      case 'insert':
        count(e.relation, 'inserts');
        break;
      case 'update':
        count(e.relation, 'updates');
        break;
      case 'delete':
        count(e.relation, 'deletes');
        break;
      case 'truncate':
        for (const rel of e.relations) count(rel, 'truncates');
        break;
      case 'message':
        if (e.prefix === MARK_PREFIX) tx!.marks.push(e.content.toString('utf8'));
        break;
      case 'commit':
        tx!.endLsn = formatLsn(e.endLsn);
        yield tx!;
        tx = undefined;
        break;
    }
  }
}

function describe(t: LoggedTransaction): string {
  const tables = Object.entries(t.tables).map(([name, c]) => {
    const parts = [c.inserts && `+${c.inserts}`, c.updates && `~${c.updates}`, c.deletes && `-${c.deletes}`, c.truncates && 'truncated'].filter(Boolean);
    return `${name} ${parts.join(' ')}`;
  });
  const marks = t.marks.map((m) => `mark ${JSON.stringify(m)}`);
  return `${t.commitLsn.padEnd(12)} xid ${String(t.xid).padEnd(10)} ${t.commitTime}  ${[...tables, ...marks].join(', ') || '(no changes)'}`;
}

export function logCommand(): Command {
  return new Command('log')
    .description('list the stored transactions in commit order')
    .addOption(storeOption())
    .addOption(s3EndpointOption())
    .option('--json', 'one JSON object per line', false)
    .addHelpText('after', '\nExample:\n  pgtape log --store ./tape\n  pgtape log --store ./tape --json | jq .xid')
    .action(async (opts) => {
      for await (const t of readTransactions(openStore(opts.store, { s3Endpoint: opts.s3Endpoint }))) {
        // Back-pressure: a slow reader of the pipe must not make the log pile up in memory.
        if (!process.stdout.write((opts.json ? JSON.stringify(t) : describe(t)) + '\n')) await once(process.stdout, 'drain');
      }
    });
}
