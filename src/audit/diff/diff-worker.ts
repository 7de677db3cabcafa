import { parentPort } from 'node:worker_threads';
import { comparePart, nextPart, type PartResult, type SpilledTable } from './compare-part.js';
import { ColumnLists } from './ops.js';

/**
 * What diff's helper thread is asked (diff-helper.ts), one table at a time: its parts to compare,
 * claimed one at a time beside the main thread.
 */
export interface HelperRequest {
  table: SpilledTable;
  lists: string[][];
  claims: SharedArrayBuffer;
}

export type HelperReply = { ok: PartResult[] } | { error: string };

function answer(request: HelperRequest): PartResult[] {
  const lists = ColumnLists.of(request.lists);
  const claims = new Int32Array(request.claims);
  const n = request.table.parts.length;
  const results: PartResult[] = [];
  for (let i = nextPart(claims, n); i !== undefined; i = nextPart(claims, n)) results.push(comparePart(request.table, i, lists));
  return results;
}

parentPort!.on('message', (request: HelperRequest) => {
  let reply: HelperReply;
  try {
    reply = { ok: answer(request) };
  } catch (err) {
    reply = { error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
  parentPort!.postMessage(reply);
});
