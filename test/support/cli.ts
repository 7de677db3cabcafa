import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const BIN = join(import.meta.dirname, '..', '..', 'bin', 'pgtape.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (npm test builds first) as a user would, with JSON logs. */
export function pgtape(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  options: { cwd?: string; detached?: boolean } = {},
): Promise<CliResult> {
  return finished(startPgtape(args, env, options));
}

export type RunningPgtape = ChildProcess & { output: { stdout: string; stderr: string }; done: Promise<CliResult> };

/**
 * Starts the CLI. With PGTAPE_TEST_FD_LIMIT in `env`, it runs under that `ulimit -n`: a command
 * that leaks a descriptor per segment then fails as it would after hours of a real archive.
 */
export function startPgtape(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  options: { cwd?: string; detached?: boolean } = {},
): RunningPgtape {
  const limit = env.PGTAPE_TEST_FD_LIMIT;
  const [command, argv] = limit
    ? ['bash', ['-c', `ulimit -n ${Number(limit)} && exec "$0" "$@"`, process.execPath, BIN, ...args]]
    : [process.execPath, [BIN, ...args]];
  const child = spawn(command as string, argv as string[], {
    env: { ...process.env, PGTAPE_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: options.cwd,
    // Its own process group: a signal to the group reaches it and its children, as Ctrl-C does.
    detached: options.detached,
  }) as RunningPgtape;
  child.output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (child.output.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (child.output.stderr += d));
  // Listening from the start: a child that exits at once must not be missed.
  child.done = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, ...child.output }));
  });
  return child;
}

export function finished(child: RunningPgtape): Promise<CliResult> {
  return child.done;
}

/** The JSON log lines of a run's stderr. */
export function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `pgtape archive` arguments for a source and a store, then `more`. */
export function archiveArgs(source: string, store: string, ...more: string[]): string[] {
  return ['archive', '--source', source, '--store', store, ...more];
}

/**
 * One `pgtape archive` of a source fixture into its store, up to now, making the publication when
 * there is none: `more` (--capture-ddl, say) before --until.
 */
export function archiveUntilNow(
  source: { db: { url(): string }; store: { dir: string } },
  more: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<CliResult> {
  return pgtape(archiveArgs(source.db.url(), source.store.dir, '--create-publication', ...more, '--until', 'now'), env);
}
