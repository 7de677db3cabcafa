import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'pgtape-spool-';

/**
 * A private directory for open and sealed segments waiting for the store. Its name carries the
 * pid, so spool directories left behind by a killed archiver are removed by the next one.
 */
export async function createSpoolDir(parent = process.env.PGTAPE_SPOOL_DIR ?? tmpdir()): Promise<string> {
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    const pid = Number(/^pgtape-spool-(\d+)-/.exec(name)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) await rm(join(parent, name), { recursive: true, force: true });
  }
  return mkdtemp(join(parent, `${PREFIX}${process.pid}-`));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
