import { StringDecoder } from 'node:string_decoder';
import { basePartPath } from './compare-part.js';
import { hashText } from './ops.js';
import { lineKey } from './rows.js';
import { SpillFile } from './spill-file.js';

/** A base table read ahead into the parts of a spilled table (base-prefetch.ts). */
export interface BaseSplit {
  oid: number;
  dir: string;
  parts: number;
  /** Where the key's columns are in the base's lines. */
  positions: number[];
}

/**
 * A base table's COPY text, fed a decompressed chunk at a time, split by its key's hash into its
 * parts' files (key, then line, per record), as TableDiffer routes its changes: on the helper
 * thread, while the main thread folds the range. Lines end at each `\n` (COPY escapes every
 * newline inside a value); the end marker `\.` ends the rows.
 */
export class BaseSplitter {
  private readonly files: SpillFile[];
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';
  private ended = false;

  constructor(private readonly split: BaseSplit) {
    this.files = Array.from({ length: split.parts }, (_, i) => new SpillFile(basePartPath(split.dir, split.oid, i)));
  }

  chunk(bytes: Uint8Array): void {
    if (this.ended) return;
    const lines = (this.rest + this.decoder.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))).split('\n');
    this.rest = lines.pop()!;
    for (const line of lines) {
      if (line === '\\.') {
        this.ended = true;
        this.rest = '';
        return;
      }
      this.line(line);
    }
  }

  private line(line: string): void {
    const key = lineKey(line, this.split.positions);
    const f = this.files[hashText(key) % this.split.parts]!;
    f.begin();
    f.text(key);
    f.text(line);
    f.end();
  }

  /** The last line, and the files closed; the records each part's file holds. */
  end(): number[] {
    if (!this.ended) {
      this.rest += this.decoder.end();
      if (this.rest && this.rest !== '\\.') this.line(this.rest);
    }
    for (const f of this.files) f.close();
    return this.files.map((f) => f.count);
  }
}
