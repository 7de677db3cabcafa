// What every bench shares: its numeric options, and running the built CLI as a user would, with
// its wall time and peak RSS (the kernel's high-water mark, read until the process exits).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/core/paths.js';

export const bin = join(packageRoot(), 'bin', 'pgtape.js');

/** The machine a bench's table was measured on, for the table's reader: cores, Node, the date. */
export function machine(): string {
  return `${cpus().length} cores, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

/** `--name <number>` from the bench's command line, or `fallback`. */
export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

export interface Measured {
  seconds: number;
  peakMiB: number;
  /** Lines it wrote to stdout (read and dropped). */
  lines: number;
  /** When its first byte of output came, from its start (the whole run when it wrote nothing). */
  firstOutputSeconds: number;
}

/**
 * Runs pgtape to its end (or to its first line of output, `firstLineOnly`); throws with its last words when it fails. Asynchronously: an S3
 * server a bench runs lives in the bench's own process. PGTAPE_BENCH_PROFILE profiles replays
 * into that folder; PGTAPE_BENCH_LOG passes every run's log through.
 */
export async function measured(args: string[], env: NodeJS.ProcessEnv = {}, options: { firstLineOnly?: boolean } = {}): Promise<Measured> {
  const started = process.hrtime.bigint();
  const flags =
    args[0] === 'replay' && process.env.PGTAPE_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PGTAPE_BENCH_PROFILE}`] : [];
  const child = spawn(process.execPath, [...flags, bin, ...args], {
    env: { ...process.env, PGTAPE_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let lines = 0;
  let peak = 0;
  let first: bigint | undefined;
  let stopped = false;
  child.stdout.on('data', (d: Buffer) => {
    first ??= process.hrtime.bigint();
    // How long a reader waits for the first line: the rest is not waited for.
    if (options.firstLineOnly && !stopped) {
      stopped = true;
      child.kill();
    }
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const poll = setInterval(() => {
    try {
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (hwm) peak = Math.max(peak, Number(hwm[1]) / 1024);
    } catch {
      // exited
    }
  }, 25);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearInterval(poll);
  if (code !== 0 && !stopped) throw new Error(`pgtape ${args.join(' ')} failed: ${stderr.slice(-2000)}`);
  if (process.env.PGTAPE_BENCH_LOG) process.stderr.write(stderr);
  const ended = process.hrtime.bigint();
  return { seconds: Number(ended - started) / 1e9, peakMiB: peak, lines, firstOutputSeconds: Number((first ?? ended) - started) / 1e9 };
}
