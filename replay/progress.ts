import { createRequire } from 'node:module';
import type cliProgress from 'cli-progress';
import type { Logger } from '../src/core/log.js';

// Loaded only when a terminal shows the bar: pipelines do not pay for it.
const require = createRequire(import.meta.url);

const LOG_EVERY_MS = 2000;

/**
 * Replay progress: a bar on stderr when a person watches a terminal, a structured log line
 * every two seconds otherwise (a pipeline's logs).
 */
export class ReplayProgress {
  private readonly bar: cliProgress.SingleBar | undefined;
  private segments = 0;
  private lastLog = Date.now();

  constructor(
    private readonly totalSegments: number,
    private readonly log: Logger,
    terminal = process.stderr.isTTY === true,
  ) {
    if (terminal) {
      const bars = require('cli-progress') as typeof cliProgress;
      this.bar = new bars.SingleBar(
        { format: 'replay |{bar}| {value}/{total} segments | {changes} changes read', stream: process.stderr, hideCursor: true },
        bars.Presets.shades_classic,
      );
      this.bar.start(totalSegments, 0, { changes: 0 });
    }
  }

  segmentStarted(changes: number): void {
    this.segments++;
    this.update(changes);
  }

  update(changes: number): void {
    if (this.bar) {
      this.bar.update(Math.max(0, this.segments - 1), { changes });
    } else if (Date.now() - this.lastLog > LOG_EVERY_MS) {
      this.lastLog = Date.now();
      this.log.info({ changes, segmentsLeft: this.totalSegments - this.segments }, 'replay progress');
    }
  }

  stop(changes: number): void {
    if (!this.bar) return;
    this.bar.update(this.totalSegments, { changes });
    this.bar.stop();
  }
}
