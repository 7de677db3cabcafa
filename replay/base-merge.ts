import type pg from 'pg';
import { baseTableDamaged, DamagedBaseError, readBaseTable, type BaseFileEntry, type BaseRef, type BaseTable } from '../src/log/bases.js';
import { sha256Of } from '../src/store/read.js';
import { quoteIdent, quoteQualified } from '../src/core/sql.js';
import { TupleView } from '../src/segment/entry-scanner.js';
import type { Store } from '../src/store/store.js';
import { CopyIn } from './copy-in.js';
import { unwritable } from './unwritable.js';
import { CopyText, LineFields } from './copy-text.js';
import { DONE, EXISTED, HAS_ROW, type TableEffect } from './net-effect.js';

const NEWLINE = 0x0a;
/** Output is handed to COPY in pieces of about this size. */
const PIECE = 1 << 20;
/** Unchanged base lines of at least this many bytes are handed to COPY without being copied. */
const LONG_RUN = 64 << 10;

/**
 * Loads one base table, with the first batch's net effect merged into the stream when given:
 * a base row whose key the batch deleted is left out, one it updated is replaced by its new
 * version, and the rows the batch inserted follow the base's. The table gets its final rows in
 * one COPY, as fast as loading them would be, instead of a load followed by set-based updates.
 *
 * Rows are matched on their key's COPY text: the base was written by COPY TO and the batch's
 * values are escaped the same way. Entries that found no base row (a value printed differently,
 * in a time zone say) are left without DONE for the set-based statements, which compare typed
 * values. Returns how many rows the table holds.
 */
export async function loadBaseTable(
  client: pg.Client,
  store: Store,
  base: BaseRef,
  table: BaseTable,
  /** Its manifest entry: the stored file's checksum, and its key when encrypted. */
  entry: BaseFileEntry,
  effect?: TableEffect,
): Promise<number> {
  const damaged = () => baseTableDamaged(store, base, table);
  const columns = table.columns.map((c) => quoteIdent(c.name)).join(', ');
  const copy = new CopyIn(client, `copy ${quoteQualified(table.schema, table.name)} (${columns}) from stdin`);
  const { text, sha256: stored } = readBaseTable(store, base, table, entry);
  const merge = effect ? new Merge(effect) : undefined;
  let rows = 0;
  let partial: Buffer = Buffer.alloc(0);
  try {
    const lines = async (data: Buffer, end: number): Promise<void> => {
      if (merge) {
        rows += merge.lines(data, end);
        for (const piece of merge.pieces.splice(0)) await copy.write(piece);
        // What is left in `out` waits for the next chunk's lines unless it is a piece already.
        if (merge.out.length >= PIECE >> 2) await copy.write(merge.out.take());
      } else {
        for (let i = data.indexOf(NEWLINE); i >= 0 && i < end; i = data.indexOf(NEWLINE, i + 1)) rows++;
        await copy.write(data.subarray(0, end));
      }
    };
    for await (const chunk of text) {
      let data = chunk as Buffer;
      // The line split between two chunks is made whole by itself: the chunk is not copied for it.
      if (partial.length) {
        const nl = data.indexOf(NEWLINE);
        if (nl < 0) {
          partial = Buffer.concat([partial, data]);
          continue;
        }
        const line = Buffer.concat([partial, data.subarray(0, nl + 1)]);
        await lines(line, line.length);
        data = data.subarray(nl + 1);
      }
      const end = data.lastIndexOf(NEWLINE) + 1;
      partial = data.subarray(end);
      if (end > 0) await lines(data, end);
    }
    if (partial.length) throw new DamagedBaseError(`${store.description}/${base.prefix}${table.file} ends inside a row`);
    if (merge) rows += await merge.inserts(copy);
    await copy.end();
  } catch (err) {
    // The COPY is abandoned with the replay's transaction; end it so the connection is usable for the rollback.
    await copy.end().catch(() => {});
    // The server refused a row (extra data, a bad value) before the file's end, where its
    // checksum is compared: a file that is not what its manifest says is the archive's damage.
    if (!(err instanceof DamagedBaseError) && (err as { severity?: string }).severity) {
      const actual = await sha256Of(store, base.prefix + table.file).catch(() => undefined);
      if (actual !== undefined && actual !== entry.sha256) throw damaged();
    }
    throw unwritable(err, table);
  }
  if (stored() !== entry.sha256) throw damaged();
  return rows;
}

/**
 * The rows an effect inserted, appended to a table whose base rows are loaded already (and that
 * the effect changed nothing else of: the planner's append-only tables). Returns how many.
 */
export async function appendInserts(client: pg.Client, table: BaseTable, effect: TableEffect): Promise<number> {
  const columns = table.columns.map((c) => quoteIdent(c.name)).join(', ');
  const copy = new CopyIn(client, `copy ${quoteQualified(table.schema, table.name)} (${columns}) from stdin`);
  try {
    const rows = await new Merge(effect).inserts(copy);
    await copy.end();
    return rows;
  } catch (err) {
    await copy.end().catch(() => {});
    throw unwritable(err, table);
  }
}

/** The merge of base lines with one table's effect. */
class Merge {
  readonly out = new CopyText(PIECE + (PIECE >> 2));
  /** Output taken from `out` whenever it reached a piece's size, to be written in order before what `out` holds. */
  readonly pieces: Buffer[] = [];
  private readonly fields = new LineFields();
  private readonly view = new TupleView();
  private readonly scratch = new CopyText(256);
  private readonly keyColumns: number[];
  /** The key columns are adjacent and in order: their fields joined by tabs are one range of the line. */
  private readonly contiguous: boolean;
  private readonly lastKeyColumn: number;

  constructor(private readonly effect: TableEffect) {
    this.keyColumns = effect.keyColumns;
    this.contiguous = this.keyColumns.every((c, i) => i === 0 || c === this.keyColumns[i - 1]! + 1);
    this.lastKeyColumn = Math.max(-1, ...this.keyColumns);
  }

  /** Writes the lines of data[0, end) to `out`, merged; returns how many rows went out. */
  lines(data: Buffer, end: number): number {
    const effect = this.effect;
    const keys = effect.keys;
    const keyed = effect.keyed;
    let rows = 0;
    let run = 0;
    for (let start = 0; start < end;) {
      const nl = data.indexOf(NEWLINE, start);
      let e: number;
      if (keyed) {
        const f = this.fields.split(data, start, nl, this.lastKeyColumn + 1);
        if (this.contiguous) e = keys.find(data, f.start[this.keyColumns[0]!]!, f.end[this.lastKeyColumn]!);
        else {
          const s = this.scratch;
          s.pos = 0;
          this.keyColumns.forEach((c, i) => {
            if (i > 0) s.tab();
            s.raw(data, f.start[c]!, f.end[c]!);
          });
          e = keys.find(s.buf, 0, s.pos);
        }
        if (e >= 0 && effect.state[e]! & EXISTED && !(effect.state[e]! & DONE)) {
          this.run(data, run, start);
          const state = effect.state[e]!;
          if (state & HAS_ROW) {
            const row = effect.rowOf(e, this.view);
            this.out.tuple(row, row.hasUnchanged() ? this.fields.split(data, start, nl) : undefined);
            this.out.newline();
            rows++;
          }
          effect.state[e] = state | DONE;
          run = nl + 1;
          // Taken as it fills, not grown: growing copies all of it again, a chunk being up to a MiB of lines.
          if (this.out.length >= PIECE) this.pieces.push(this.out.take());
        } else rows++;
      } else {
        e = keys.find(data, start, nl);
        if (e >= 0 && effect.delta[e]! < 0) {
          // One of the copies the batch removed.
          this.run(data, run, start);
          effect.delta[e] = effect.delta[e]! + 1;
          run = nl + 1;
        } else rows++;
      }
      start = nl + 1;
    }
    this.run(data, run, end);
    return rows;
  }

  /**
   * Base lines kept as they are. A long run (few rows of the table changed) goes out as a view
   * of the chunk, not copied; a short one is copied between the rows the batch replaced.
   */
  private run(data: Buffer, start: number, end: number): void {
    if (end - start < LONG_RUN) {
      this.out.raw(data, start, end);
      return;
    }
    if (this.out.length > 0) this.pieces.push(this.out.take());
    this.pieces.push(data.subarray(start, end));
  }

  /** After the base's rows: the rows the batch inserted. */
  async inserts(copy: CopyIn): Promise<number> {
    const effect = this.effect;
    let rows = 0;
    for (let e = 0; e < effect.size; e++) {
      if (effect.rowEntries) {
        const state = effect.state[e]!;
        if (state & EXISTED || !(state & HAS_ROW)) continue;
        this.out.tuple(effect.rowOf(e, this.view));
        this.out.newline();
        effect.state[e] = state | DONE;
        rows++;
      } else {
        for (; effect.delta[e]! > 0; effect.delta[e] = effect.delta[e]! - 1) {
          this.out.raw(effect.keys.keyBuffer(e), effect.keys.keyStart(e), effect.keys.keyEnd(e));
          this.out.newline();
          rows++;
        }
      }
      if (this.out.length >= PIECE) await copy.write(this.out.take());
    }
    await copy.write(this.out.take());
    return rows;
  }
}
