import { formatLsn } from '../core/lsn.js';
import { displayQualified } from '../core/sql.js';
import { tupleText, type RowValues } from './row-text.js';
import { formatMicros } from '../core/units.js';
import type { Tuple } from '../pgoutput/messages.js';
import { UNCHANGED } from '../pgoutput/tuple.js';
import type { RelationDef } from '../segment/format.js';
import { readLog } from '../log/change-log.js';
import type { Discontinuity } from '../log/discontinuities.js';
import type { SegmentRef } from '../log/segments.js';
import type { Store } from '../store/store.js';
import { parseCapturedDdl, type CapturedDdl } from '../source/ddl-capture.js';
import { DDL_PREFIX, MARK_PREFIX } from '../source/logical-messages.js';
import { inRange, type LogRange } from '../log/resolve.js';

export interface ChangeCounts {
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
  /** DDL captured by `archive --capture-ddl`: the command tag and the tables it touched. */
  ddl?: string[];
  tables: Record<string, ChangeCounts>;
}

/** One change with its values, for `log --rows`. */
export interface LoggedChange {
  change: 'insert' | 'update' | 'delete' | 'truncate';
  table: string;
  xid: number;
  commitLsn: string;
  /** The replica identity's key columns (absent for tables matched on the whole row). */
  key?: RowValues;
  /** The row before: given by REPLICA IDENTITY FULL, or the old key when an update changed it. */
  old?: RowValues;
  new?: RowValues;
  /** Columns whose TOASTed value the update left as it was (not sent). */
  unchanged?: string[];
  /** Columns whose value changed, where the old values are known. */
  changed?: string[];
}

export type LogEvent =
  | { type: 'discontinuity'; from: string; to: string; reason: string; at: string }
  | { type: 'begin'; transaction: LoggedTransaction }
  | { type: 'change'; change: LoggedChange; transaction: LoggedTransaction }
  | { type: 'commit'; transaction: LoggedTransaction };

export interface LogOptions {
  /** Only transactions that touched these tables (`schema.table`); every one when undefined. */
  tables?: Set<string>;
  /** Emit each change with its values. */
  rows: boolean;
  /** Rebases of the archive, reported where the log crosses them. */
  discontinuities?: Discontinuity[];
}

const names = new WeakMap<object, string>();
/** `schema.table` as --table names it, made once per relation definition (a million changes, one string). */
export function tableName(rel: Pick<RelationDef, 'schema' | 'name'>): string {
  let n = names.get(rel);
  if (n === undefined) names.set(rel, (n = `${rel.schema}.${rel.name}`));
  return n;
}

const shownNames = new WeakMap<object, string>();
/** The name printed: quoted where Postgres would quote it. */
function shownName(rel: Pick<RelationDef, 'schema' | 'name'>): string {
  let n = shownNames.get(rel);
  if (n === undefined) shownNames.set(rel, (n = displayQualified(rel.schema, rel.name)));
  return n;
}

/** A tuple as column name → text (unchanged TOAST values left out and listed apart). */
export function tupleValues(rel: RelationDef, t: Tuple): { values: RowValues; unchanged: string[] } {
  const values: RowValues = {};
  const unchanged: string[] = [];
  tupleText(t).forEach((value, i) => {
    const name = rel.columns[i]?.name ?? `#${i + 1}`;
    if (value === UNCHANGED) unchanged.push(name);
    else values[name] = value;
  });
  return { values, unchanged };
}

function keyValues(rel: RelationDef, row: RowValues): RowValues | undefined {
  if (rel.replicaIdentity === 'f') return undefined;
  const keys = rel.columns.filter((c) => c.key);
  if (!keys.length) return undefined;
  return Object.fromEntries(keys.map((c) => [c.name, row[c.name] ?? null]));
}

/**
 * The transactions of a range in commit order, with counts per table and, with `rows`, each
 * change: streamed, so memory does not grow with a transaction's size. Events come in batches
 * (those of one chunk of the log), as readLog's entries do.
 */
export async function* readTransactions(store: Store, range: LogRange, options: LogOptions): AsyncGenerator<LogEvent[]> {
  let tx: LoggedTransaction | undefined;
  let include = false;
  let touched = false;
  const wanted = (rel: RelationDef) => !options.tables || options.tables.has(tableName(rel));
  const count = (rel: RelationDef, field: keyof ChangeCounts) => {
    if (wanted(rel)) touched = true;
    const t = (tx!.tables[shownName(rel)] ??= { inserts: 0, updates: 0, deletes: 0, truncates: 0 });
    t[field]++;
  };
  // Field order is the JSON's: change, table, then the values.
  const change = (rel: RelationDef, kind: LoggedChange['change'], c: Partial<LoggedChange>): LogEvent => {
    const out: LoggedChange = { change: kind, table: shownName(rel), xid: tx!.xid, commitLsn: tx!.commitLsn };
    if (c.key) out.key = c.key;
    if (c.old) out.old = c.old;
    if (c.new) out.new = c.new;
    if (c.unchanged) out.unchanged = c.unchanged;
    if (c.changed) out.changed = c.changed;
    return { type: 'change', transaction: tx!, change: out };
  };
  const rowsOf = (rel: RelationDef) => options.rows && wanted(rel);

  let crossed: Discontinuity | undefined;
  let previousEnd: bigint | undefined;
  const onSegment = (ref: SegmentRef) => {
    if (previousEnd !== undefined && ref.startLsn > previousEnd)
      crossed = options.discontinuities?.find((d) => d.from <= previousEnd! && d.to >= ref.startLsn);
    previousEnd = ref.endLsn;
  };
  for await (const entries of readLog(store, range.segments(), onSegment, { values: options.rows })) {
    const events: LogEvent[] = [];
    // A batch is within one segment: one that starts after a discontinuity says so first.
    if (crossed) {
      events.push({
        type: 'discontinuity',
        from: formatLsn(crossed.from),
        to: formatLsn(crossed.to),
        reason: crossed.reason,
        at: crossed.at,
      });
      crossed = undefined;
    }
    for (const e of entries) {
      if (e.kind === 'begin') {
        include = inRange(range, e.commitLsn);
        touched = false;
        tx = { commitLsn: formatLsn(e.commitLsn), endLsn: '', xid: e.xid, commitTime: formatMicros(e.commitTime), marks: [], tables: {} };
        if (include) events.push({ type: 'begin', transaction: tx });
        continue;
      }
      if (!include) continue;
      if ('head' in e) {
        // Without --rows, changes come without their values: counted, not decoded.
        count(e.relation, e.kind === 'insert' ? 'inserts' : e.kind === 'update' ? 'updates' : 'deletes');
        continue;
      }
      let event: LogEvent | undefined;
      switch (e.kind) {
        case 'origin':
          tx!.origin = e.name;
          break;
        case 'insert': {
          count(e.relation, 'inserts');
          if (!rowsOf(e.relation)) break;
          const row = tupleValues(e.relation, e.new);
          event = change(e.relation, 'insert', { key: keyValues(e.relation, row.values), new: row.values });
          break;
        }
        case 'update': {
          count(e.relation, 'updates');
          if (!rowsOf(e.relation)) break;
          const next = tupleValues(e.relation, e.new);
          // A key tuple (the update changed the key) holds the key columns only; the rest are sent as NULL.
          const old = e.old
            ? tupleValues(e.relation, e.old).values
            : e.key
              ? keyValues(e.relation, tupleValues(e.relation, e.key).values)
              : undefined;
          // The key that found the row: the old one when the update changed it.
          const key = keyValues(e.relation, old ?? next.values);
          let changed: string[] | undefined;
          if (old) changed = Object.keys(e.old ? next.values : old).filter((c) => next.values[c] !== old[c]);
          event = change(e.relation, 'update', {
            key,
            old,
            new: next.values,
            unchanged: next.unchanged.length ? next.unchanged : undefined,
            changed,
          });
          break;
        }
        case 'delete': {
          count(e.relation, 'deletes');
          if (!rowsOf(e.relation)) break;
          const old = tupleValues(e.relation, (e.old ?? e.key)!).values;
          event = change(e.relation, 'delete', { key: keyValues(e.relation, old), old: e.old ? old : undefined });
          break;
        }
        case 'truncate':
          for (const rel of e.relations) {
            count(rel, 'truncates');
            if (rowsOf(rel)) events.push(change(rel, 'truncate', {}));
          }
          break;
        case 'message':
          if (e.prefix === MARK_PREFIX) tx!.marks.push(e.content.toString('utf8'));
          if (e.prefix === DDL_PREFIX) {
            const said = describeDdl(parseCapturedDdl(e.content));
            if (said) (tx!.ddl ??= []).push(said);
          }
          break;
        case 'commit':
          tx!.endLsn = formatLsn(e.endLsn);
          if (touched || !options.tables) events.push({ type: 'commit', transaction: tx! });
          include = false;
          break;
      }
      if (event) events.push(event);
    }
    if (events.length) yield events;
  }
}

/**
 * A captured DDL command as log shows it: its tag and what it made, altered or dropped, each
 * named (`ALTER TABLE public.t`, `DROP SCHEMA dropped table doomed.t, schema doomed`). The rows
 * of a rewritten table (images) are said once, with their first chunk.
 */
export function describeDdl(c: CapturedDdl): string | undefined {
  if (c.image) return c.image.first ? `rows of ${shownName(c.image)} after its rewrite` : undefined;
  const objects = [
    ...(c.types ?? []).map((t) => `type ${shownName(t)}${t.was ? ` (was ${shownName(t.was)})` : ''}`),
    ...(c.tables ?? []).map((t) => shownName(t)),
    ...(c.dropped ?? []).map((t) => `dropped table ${shownName(t)}`),
    ...(c.droppedObjects ?? []).map((o) => `dropped ${o.type} ${o.identity}`),
    ...(c.unknown ?? []).map((u) => `${shownName(u)} unknown from here on`),
    ...(c.schemas ?? []).map((name) => `schema ${name}`),
    ...(c.renamedSchemas ?? []).map((r) => `schema ${r.identity} (was ${r.from})`),
    ...(c.objects ?? []).map((o) => `${o.kind} ${o.identity}${o.renamed ? ` (was ${o.renamed.from})` : ''}`),
    ...(c.unfollowed ?? []).map((u) => `${u.kind} ${u.identity} (not replayed)`),
  ];
  return `${c.tag} ${objects.join(', ')}`.trim();
}
