import { once } from 'node:events';

/** How long a line added waits for more before it is written. */
const STALE_MS = 100;

/**
 * Lines to stdout, gathered into chunks (one write per line costs a system call each: most of
 * `log --rows` time went there) and written with back-pressure: a slow reader (`| less`, `| jq`)
 * must not make output pile up in memory.
 */
export class LineWriter {
  private parts: string[] = [];
  private size = 0;

  constructor(
    private readonly stream: NodeJS.WritableStream = process.stdout,
    private readonly chunkBytes = 64 * 1024,
  ) {}

  async line(text: string): Promise<void> {
    this.push(text);
    await this.ready();
  }

  /** Adds a line without waiting: a caller adding many calls ready() after them. */
  push(text: string): void {
    this.parts.push(text, '\n');
    this.size += text.length + 1;
  }

  /** When lines were last written: the first ones go at once, later ones wait at most STALE_MS. */
  private flushed = 0;

  /**
   * Writes what was added once it is a chunk's worth, or has waited STALE_MS (a person reading
   * a log of small segments from an object store should not wait for 64 KiB of it), waiting
   * while the stream is full.
   */
  async ready(): Promise<void> {
    if (this.size >= this.chunkBytes || (this.size > 0 && Date.now() - this.flushed >= STALE_MS)) await this.flush();
  }

  async flush(): Promise<void> {
    this.flushed = Date.now();
    if (!this.parts.length) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }
}

/** One line at once (for output that trickles, where a person waits for each line). */
export async function writeLine(line: string): Promise<void> {
  if (!process.stdout.write(line + '\n')) await once(process.stdout, 'drain');
}

/** ANSI emphasis on a terminal, nothing in a pipe or with NO_COLOR. */
export function emphasis(stream: NodeJS.WriteStream = process.stdout): (text: string) => string {
  const on = stream.isTTY === true && !process.env.NO_COLOR;
  return on ? (text) => `\u001b[1;33m${text}\u001b[0m` : (text) => text;
}

/** A warning for the person at the terminal, beside the command's output (not a log line). */
export function sayWarning(message: string): void {
  process.stderr.write(`pgtape: warning: ${message}\n`);
}
