import { parentPort } from 'node:worker_threads';
import { BaseSplitter, type BaseSplit } from './base-parts.js';
import { comparePart, nextPart, type PartResult, type SpilledTable } from './compare-part.js';
import { ColumnLists } from './ops.js';

/**
 * What diff's helper thread is asked (diff-helper.ts), one request at a time, each answered in
 * order: a base table's rows split into parts as they are read, then parts compared.
 */
export type HelperRequest =
  | { kind: 'base-start'; split: BaseSplit }
  | { kind: 'base-chunk'; chunk: Uint8Array }
  | { kind: 'base-end' }
  /** A table's parts, claimed one at a time beside the main thread. */
  | { kind: 'compare'; table: SpilledTable; lists: string[][]; claims: SharedArrayBuffer };

export type HelperReply = { ok: null | number[] | PartResult[] } | { error: string };

let splitter: BaseSplitter | undefined;

function answer(request: HelperRequest): null | number[] | PartResult[] {
  switch (request.kind) {
    case 'base-start':
      // One read ahead and given up on (the diff stopped it) leaves its files to the spool's removal.
      splitter = new BaseSplitter(request.split);
      return null;
    case 'base-chunk':
      splitter!.chunk(request.chunk);
      return null;
    case 'base-end': {
      const counts = splitter!.end();
      splitter = undefined;
      return counts;
    }
    case 'compare': {
      const lists = ColumnLists.of(request.lists);
      const claims = new Int32Array(request.claims);
      const n = request.table.parts.length;
      const results: PartResult[] = [];
      for (let i = nextPart(claims, n); i !== undefined; i = nextPart(claims, n)) results.push(comparePart(request.table, i, lists));
      return results;
    }
  }
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
