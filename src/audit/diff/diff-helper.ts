import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { onInterrupt } from '../../core/interrupt.js';
import type { PartResult, SpilledTable } from './compare-part.js';
import type { HelperReply, HelperRequest } from './diff-worker.js';

const SCRIPT = new URL('./diff-worker.js', import.meta.url);

/**
 * diff's second thread (docs/ARCHITECTURE.md, "diff on two cores"): it compares the parts of a
 * table split into parts beside the main thread, each claiming the next part from a shared
 * counter. Tables are asked one at a time; answers come in order.
 */
export class DiffHelper {
  private worker: Worker | undefined;
  private readonly waiting: { resolve: (r: PartResult[]) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | undefined;
  /** Stops the worker on SIGINT/SIGTERM before the spool is removed (at exit): it writes there. */
  private forgetInterrupt: (() => void) | undefined;

  /**
   * Whether a helper is worth starting: a second core, and the worker's compiled script (not
   * there when the sources run untranslated, as in unit tests: the main thread works alone).
   */
  static available(): boolean {
    return availableParallelism() > 1 && existsSync(fileURLToPath(SCRIPT));
  }

  private start(): Worker {
    const worker = new Worker(SCRIPT);
    this.forgetInterrupt = onInterrupt(() => this.close());
    worker.on('message', (reply: HelperReply) => {
      const w = this.waiting.shift();
      // Idle, it is no reason for the process to stay.
      if (!this.waiting.length) worker.unref();
      if ('error' in reply) w?.reject(new Error(`diff's helper thread failed: ${reply.error}`));
      else w?.resolve(reply.ok);
    });
    const failed = (err: Error) => {
      this.failure ??= err;
      this.worker = undefined;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    worker.on('error', failed);
    worker.on('exit', (code) => failed(new Error(`diff's helper thread stopped (exit ${code})`)));
    return worker;
  }

  /**
   * Starts the thread ahead of its first table (one is split into parts): its start (a V8
   * instance, its modules) overlaps the fold of the range instead of delaying the compare.
   */
  warm(): void {
    if (this.failure || this.worker) return;
    this.worker = this.start();
    this.worker.unref();
  }

  /** Compares parts of `table` claimed from `claims` until none is left; resolves with their results. */
  compare(table: SpilledTable, lists: string[][], claims: SharedArrayBuffer): Promise<PartResult[]> {
    if (this.failure) return Promise.reject(this.failure);
    const worker = (this.worker ??= this.start());
    // Held while it works: an unreferenced worker's answer would not keep the process waiting for it.
    worker.ref();
    const answered = new Promise<PartResult[]>((resolve, reject) => this.waiting.push({ resolve, reject }));
    worker.postMessage({ table, lists, claims } satisfies HelperRequest);
    return answered;
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.failure ??= new Error("diff's helper thread was closed");
    await worker?.terminate();
    this.forgetInterrupt?.();
    this.forgetInterrupt = undefined;
  }
}
