/**
 * SIGINT, SIGTERM and SIGHUP (a closed terminal or ssh session), for every command that has something to undo when stopped (an output
 * directory, a scratch cluster, an unfinished base, a spool): the first signal runs the clean-ups
 * registered, newest first, then exits 130, 143 or 129 (the README's table). Every later signal is
 * caught until then — a second Ctrl-C must not end the process halfway through its clean-up.
 *
 * The clean-up itself makes the command's own work fail (its server stops under it). That failure
 * is not the command's answer: the CLI asks `interruptedBy()` and waits for the exit instead of
 * reporting it (docs/ARCHITECTURE.md, "Invariants": Interrupts).
 */
const cleanups = new Set<() => Promise<unknown>>();
let caught: NodeJS.Signals | undefined;

/** The signals that stop a command, and what it then exits with (128 + the signal's number, as a shell reports it). */
const STOPPING: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

export function signalExitCode(signal: NodeJS.Signals): number {
  return STOPPING[signal] ?? 143;
}

function interrupted(signal: NodeJS.Signals): void {
  if (caught) return;
  caught = signal;
  // Said at once: the clean-up may take a moment (a scratch server stopping), and an exit code
  // alone says nothing to whoever pressed Ctrl-C. Not after SIGHUP: its terminal is gone, and a
  // failed write (EIO, EPIPE) must not stand in the clean-up's way.
  if (signal !== 'SIGHUP') {
    process.stderr.once('error', () => {});
    try {
      process.stderr.write(`pgtape: stopped by ${signal}: cleaning up, then exiting ${signalExitCode(signal)}\n`);
    } catch {
      // Nowhere to say it.
    }
  }
  const steps = [...cleanups].reverse();
  void (async () => {
    for (const step of steps) await step().catch(() => {});
  })().finally(() => process.exit(signalExitCode(signal)));
}

/**
 * Runs `cleanup` if the process is interrupted before the returned function is called. Call that
 * once the command has undone or kept what it made itself.
 */
export function onInterrupt(cleanup: () => Promise<unknown>): () => void {
  if (cleanups.size === 0 && !caught) for (const signal of Object.keys(STOPPING)) process.on(signal, interrupted);
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
    if (cleanups.size === 0 && !caught) for (const signal of Object.keys(STOPPING)) process.removeListener(signal, interrupted);
  };
}

/** For commands with nothing to undo but their spool (removed at exit): a signal just exits. */
export function exitOnSignal(): void {
  onInterrupt(async () => {});
}

/** The signal being handled, if any: whatever fails meanwhile fails because of the clean-up. */
export function interruptedBy(): NodeJS.Signals | undefined {
  return caught;
}

/**
 * For a child process that failed: one killed by SIGINT or SIGTERM most likely died of the
 * signal this process got too (Ctrl-C signals the whole process group), which Node may handle a
 * turn of the event loop after the child's exit. Gives that handler a moment, then returns either
 * way: the caller's failure must still settle what waits on it, since the clean-ups the handler
 * runs may wait on the same work (a cluster being made). Once the handler has run, the CLI sees
 * `interruptedBy()` and waits for the exit (130/143) instead of reporting that failure.
 */
export async function awaitSharedSignal(err: { signal?: NodeJS.Signals | null }): Promise<void> {
  if (!err.signal || !(err.signal in STOPPING)) return;
  for (let waited = 0; waited < 500 && !caught; waited += 10) await new Promise((r) => setTimeout(r, 10));
}
