import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExitCode, UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { Store } from '../store/store.js';
import { readAll } from '../store/read.js';

// At most one archiver writes to a store (docs/ARCHITECTURE.md, Store layout): it holds the
// store's lease, an object it renews while it runs and checks before it writes. A second
// archiver (another slot, a rebase) is refused while the lease is held; a lease is taken over
// only once its holder is provably gone (its process no longer exists on this host) or has not
// renewed it for STALE_MS. Stores have no conditional create that every backend honours (S3
// gateways differ): a lease is written, then read back after a pause, and whoever reads back
// its own token holds it; a holder checks again at each renewal and before each write.
//   lease.json

export const LEASE_KEY = 'lease.json';

const RENEW_MS = 10_000;
const STALE_MS = 60_000;

interface LeaseBody {
  token: string;
  host: string;
  pid: number;
  slot: string;
  since: string;
  renewed: string;
  released?: boolean;
  /**
   * The newest segment this archiver has stored (its key), as of the last renewal: readers check
   * the store still lists it (a store that lost its newest segments must not read as an archive
   * that ends earlier). Absent before the first segment, and in archives from before it was kept.
   */
  lastSegment?: string;
}

export class WriterLease {
  private timer: NodeJS.Timeout | undefined;
  private verifiedAt = Date.now();
  private lost: UserError | undefined;

  private constructor(
    private readonly store: Store,
    private body: LeaseBody,
    private readonly log: Logger,
  ) {}

  /** Takes the store's lease for an archiver of `slot`; refuses (exit 3) while another holds it. */
  static async acquire(store: Store, slot: string, log: Logger): Promise<WriterLease> {
    // A lease that cannot be read is nobody's: whoever writes and reads back its own holds it.
    const held = await readLease(store).catch(() => undefined);
    if (held && !held.released && !gone(held)) throw heldBy(store, held);
    if (held && !held.released) log.warn({ holder: describe(held) }, 'taking over the lease of an archiver that is gone');
    const now = new Date().toISOString();
    // The newest segment stored so far stays recorded: a store that loses it is still found out.
    const body: LeaseBody = {
      token: randomBytes(12).toString('hex'),
      host: hostname(),
      pid: process.pid,
      slot,
      since: now,
      renewed: now,
      ...(held?.lastSegment ? { lastSegment: held.lastSegment } : {}),
    };
    await write(store, body);
    // Two archivers starting together both write: the one whose lease is read back holds it.
    await sleep(store.remote ? 1_000 : 100);
    const after = await readLease(store);
    if (after?.token !== body.token) throw heldBy(store, after ?? body);
    const lease = new WriterLease(store, body, log);
    lease.timer = setInterval(() => void lease.renew(), RENEW_MS);
    lease.timer.unref();
    return lease;
  }

  /**
   * Before a write: the lease is still ours. Read again when the last check is older than a
   * renewal period (the process may have been stalled long enough for the lease to be taken).
   */
  async check(): Promise<void> {
    if (this.lost) throw this.lost;
    if (Date.now() - this.verifiedAt < RENEW_MS) return;
    await this.serially(() => this.verify());
  }

  /** Checks and renewals one at a time: this process never reads its lease while it writes it. */
  private chain: Promise<void> = Promise.resolve();
  private serially(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => {});
    return next;
  }

  private async verify(): Promise<void> {
    const current = await readLease(this.store);
    // Gone (a store that lost it): nobody else holds it, and the next renewal writes it again.
    if (current && (current.token !== this.body.token || current.released)) {
      this.lost = new UserError(
        `${this.store.description}: this archiver's lease was taken over${current ? ` by ${describe(current)}` : ''}; it stops writing`,
        'two archivers were writing the same store: run one at a time (pgtape verify shows whether their segments overlap)',
        ExitCode.CONFLICT,
      );
      throw this.lost;
    }
    this.verifiedAt = Date.now();
  }

  private async renew(): Promise<void> {
    try {
      await this.serially(async () => {
        await this.verify();
        this.body = { ...this.body, renewed: new Date().toISOString() };
        await write(this.store, this.body);
      });
    } catch (err) {
      // A store that refuses for a while is retried at the next renewal; a lost lease is final.
      if (!this.lost) this.log.debug({ err: (err as Error).message }, 'renewing the lease failed; retrying');
    }
  }

  /** A segment is stored (in order): recorded at the next renewal, or when the lease is given back. */
  stored(key: string): void {
    this.body = { ...this.body, lastSegment: key };
  }

  /** Gives the lease back: the next archiver need not wait for it to go stale. */
  async release(): Promise<void> {
    clearInterval(this.timer);
    if (this.lost) return;
    await this.serially(async () => {
      const current = await readLease(this.store);
      if (current?.token === this.body.token) await write(this.store, { ...this.body, released: true });
    }).catch(() => {});
  }
}

/**
 * The newest segment the store's archiver recorded storing (lease.json), if any; a lease that is
 * missing or cannot be read tells none. One request: every reader of the archive asks.
 */
export async function recordedLastSegment(store: Store): Promise<string | undefined> {
  try {
    return (JSON.parse((await readAll(store, LEASE_KEY)).toString('utf8')) as LeaseBody).lastSegment;
  } catch {
    return undefined;
  }
}

/**
 * The lease as stored, or undefined when there is none. A body that does not parse is read again
 * (a store whose writes are not atomic may show one half-written), then is an error to retry.
 */
async function readLease(store: Store): Promise<LeaseBody | undefined> {
  for (let attempt = 0; ; attempt++) {
    if (!(await store.stat(LEASE_KEY))) return undefined;
    const text = (await readAll(store, LEASE_KEY)).toString('utf8');
    try {
      return JSON.parse(text) as LeaseBody;
    } catch {
      if (attempt === 4)
        throw new Error(`${store.description}/${LEASE_KEY} cannot be read as a lease: ${JSON.stringify(text.slice(0, 80))}`);
      await sleep(200);
    }
  }
}

function write(store: Store, body: LeaseBody): Promise<unknown> {
  return store.putBytes(LEASE_KEY, Buffer.from(JSON.stringify(body, null, 2) + '\n'));
}

/** Its holder is gone: a process of this host that no longer exists, or no renewal for STALE_MS. */
function gone(body: LeaseBody): boolean {
  if (Date.now() - Date.parse(body.renewed) > STALE_MS) return true;
  if (body.host !== hostname()) return false;
  try {
    process.kill(body.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function describe(body: LeaseBody): string {
  return `pid ${body.pid} on ${body.host} (slot ${body.slot}, since ${body.since}, renewed ${body.renewed})`;
}

function heldBy(store: Store, body: LeaseBody): UserError {
  return new UserError(
    `${store.description} is being written by another archiver: ${describe(body)}`,
    `one archiver writes to a store at a time: stop the other first (a lease not renewed for ${STALE_MS / 1000} s is taken over)`,
    ExitCode.CONFLICT,
  );
}
