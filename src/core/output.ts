import { once } from 'node:events';

/**
 * Writes a line to stdout, waiting when the pipe is full: a slow reader (`| less`, `| jq`) must
 * not make output pile up in memory.
 */
export async function writeLine(line: string): Promise<void> {
  if (!process.stdout.write(line + '\n')) await once(process.stdout, 'drain');
}

/** ANSI emphasis on a terminal, nothing in a pipe or with NO_COLOR. */
export function emphasis(stream: NodeJS.WriteStream = process.stdout): (text: string) => string {
  const on = stream.isTTY === true && !process.env.NO_COLOR;
  return on ? (text) => `\u001b[1;33m${text}\u001b[0m` : (text) => text;
}
