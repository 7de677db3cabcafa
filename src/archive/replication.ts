import { LogicalReplicationService } from 'pg-logical-replication';
import type pg from 'pg';
import { PG_EPOCH_OFFSET_US } from '../pgoutput/messages.js';
import type { PgoutputMessage } from '../pgoutput/messages.js';
import type { PgoutputPlugin } from '../pgoutput/plugin.js';

/** The parts of pg's connection the replication stream uses (not in pg's type declarations). */
interface CopyConnection {
  sendCopyFromChunk(chunk: Buffer): void;
  on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): void;
  once(event: 'replicationStart', listener: () => void): void;
  stream: { pause(): void; resume(): void };
}

/** What the archiver is handed, synchronously, for each CopyData message of the stream. */
export interface StreamListener {
  /** An XLogData message's pgoutput payload, parsed. */
  message(msg: PgoutputMessage): void;
  /** A primary keepalive: the walsender has sent everything up to `walEnd`. */
  keepalive(walEnd: bigint, shouldRespond: boolean): void;
}

/** The service's private members this subclass uses: its connection's lifecycle stays the library's. */
interface ServiceInternals {
  client(): Promise<[pg.Client, CopyConnection]>;
  _connection: CopyConnection | null;
  _stop: boolean;
}

/**
 * pg-logical-replication's service (it opens the replication connection and closes it) with
 * pgtape's own stream path and status updates.
 *
 * Stream path: each message is handed to the listener synchronously, as it is parsed. The
 * library's own path formats every position as a string and runs each message through an
 * async queue and `emitAsync`: about a fifth of the archiver's CPU on bulk workloads
 * (docs/ARCHITECTURE.md, "The record path"). Back-pressure is the archiver's: it pauses the
 * socket while a message waits or is being handled (`pause`/`resume`).
 *
 * Status updates report the received (write) and durable (flush) positions separately and
 * exactly. The service's own acknowledge(lsn) reports lsn + 1 for all three positions. A
 * logical slot resumes at the flush position and skips every transaction whose commit record
 * starts before it; the apply worker and pg_recvlogical report a commit's end LSN as is, and so
 * do we. Reporting the received position as `write` keeps the walsender from pinging an idle
 * client in a tight loop (it pings while both write and flush are behind what it sent) without
 * moving the slot.
 */
export class ReplicationService extends LogicalReplicationService {
  constructor(config: pg.ClientConfig) {
    // The acknowledge timer sends the last *received* position: it stays off (docs/ARCHITECTURE.md, Facts the code respects).
    super(config, { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } });
  }

  private get internals(): ServiceInternals {
    return this as unknown as ServiceInternals;
  }

  /**
   * Starts replication from `lsn` and resolves when the stream ends; rejects when it fails.
   * Emits `start` once streaming (and `error` for the client's errors), as the library does.
   */
  async stream(plugin: PgoutputPlugin, slot: string, lsn: string, listener: StreamListener): Promise<void> {
    let client: pg.Client;
    let connection: CopyConnection;
    try {
      [client, connection] = await this.internals.client();
    } catch (err) {
      await this.stop();
      throw err;
    }
    connection.once('replicationStart', () => {
      this.internals._stop = false;
      this.emit('start');
    });
    connection.on('copyData', ({ chunk }) => {
      // XLogData: 'w', start, end, send time (8 bytes each), then the payload.
      if (chunk[0] === 0x77) listener.message(plugin.parse(chunk.subarray(25)));
      // Primary keepalive: 'k', the end of WAL sent, send time, whether a reply is wanted.
      else if (chunk[0] === 0x6b) listener.keepalive(chunk.readBigUInt64BE(1), chunk[17] === 1);
    });
    try {
      await plugin.start(client, slot, lsn);
    } catch (err) {
      // Ending the connection ourselves (stop) rejects the START_REPLICATION query: not a failure.
      if (!this.isStop() || !/Connection\s+terminated/i.test(String(err))) throw err;
    }
  }

  /** Reading goes on first: ending a connection whose socket is paused would wait for its close forever. */
  override async stop(): Promise<this> {
    this.resume();
    return super.stop();
  }

  /** Stops reading the socket: Postgres waits once the kernel's buffers fill. */
  pause(): void {
    this.internals._connection?.stream.pause();
  }

  resume(): void {
    this.internals._connection?.stream.resume();
  }

  sendStatus(received: bigint, durable: bigint, requestReply: boolean): boolean {
    const connection = this.internals._connection;
    if (!connection || this.isStop()) return false;
    const now = BigInt(Date.now()) * 1000n - PG_EPOCH_OFFSET_US;
    const message = Buffer.alloc(34);
    message.write('r', 0, 'ascii');
    message.writeBigUInt64BE(received > durable ? received : durable, 1);
    message.writeBigUInt64BE(durable, 9);
    message.writeBigUInt64BE(durable, 17);
    message.writeBigInt64BE(now, 25);
    message.writeUInt8(requestReply ? 1 : 0, 33);
    connection.sendCopyFromChunk(message);
    return true;
  }
}
