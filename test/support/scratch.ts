import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fresh directory under the system's temporary directory, removed by `remove` — and when the
 * test process exits, for a file or describe block whose tests -t filtered out: vitest then runs
 * neither its beforeAll nor its afterAll, but still runs the code that made the directory.
 */
export function scratchDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  leftAtExit.add(dir);
  return {
    dir,
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
      leftAtExit.delete(dir);
    },
  };
}

/** Directories not removed yet: removed when the test process exits. */
const leftAtExit = new Set<string>();
const removeLeft = () => leftAtExit.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
process.once('exit', removeLeft);
// vitest ends its worker processes with SIGTERM, which skips 'exit': remove them, then end as
// SIGTERM would have (once this listener is gone, the signal's default action applies).
process.once('SIGTERM', () => {
  removeLeft();
  if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM');
});
