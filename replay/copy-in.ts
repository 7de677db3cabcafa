import { once } from 'node:events';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/** `COPY … FROM STDIN`, fed buffers with back-pressure; a refusal by the server surfaces from write() or end(). */
export class CopyIn {
  private readonly stream: ReturnType<typeof copyFrom>;
  private readonly done: Promise<void>;
  /** The server's refusal, once it came: the stream has let go of its connection and takes no more. */
  private failure: Error | undefined;

  constructor(client: pg.Client, sql: string) {
    this.stream = client.query(copyFrom(sql));
    this.done = new Promise<void>((resolve, reject) => {
      this.stream.on('finish', resolve);
      this.stream.on('error', (err: Error) => {
        this.failure ??= err;
        reject(err);
      });
    });
    // Observed by write() or end(); no unhandled rejection meanwhile.
    this.done.catch(() => {});
  }

  async write(chunk: Buffer): Promise<void> {
    // Written to after a refusal, the stream fails on its missing connection (a TypeError): the refusal is what happened.
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    if (!this.stream.write(chunk)) await Promise.race([once(this.stream, 'drain'), this.done]);
  }

  async end(): Promise<void> {
    if (this.failure) throw this.failure;
    this.stream.end();
    await this.done;
  }
}
