import { once } from 'node:events';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/** `COPY … FROM STDIN`, fed buffers with back-pressure; a refusal by the server surfaces from write() or end(). */
export class CopyIn {
  private readonly stream: ReturnType<typeof copyFrom>;
  private readonly done: Promise<void>;

  constructor(client: pg.Client, sql: string) {
    this.stream = client.query(copyFrom(sql));
    this.done = new Promise<void>((resolve, reject) => {
      this.stream.on('finish', resolve);
      this.stream.on('error', reject);
    });
    // Observed by write() or end(); no unhandled rejection meanwhile.
    this.done.catch(() => {});
  }

  async write(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    if (!this.stream.write(chunk)) await Promise.race([once(this.stream, 'drain'), this.done]);
  }

  async end(): Promise<void> {
    this.stream.end();
    await this.done;
  }
}
