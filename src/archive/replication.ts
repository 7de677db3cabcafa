import { LogicalReplicationService } from 'pg-logical-replication';
import type pg from 'pg';
import { PG_EPOCH_OFFSET_US } from '../pgoutput/messages.js';

interface CopyConnection {
  sendCopyFromChunk(chunk: Buffer): void;
}

/**
 * pg-logical-replication's service with one addition: a standby status update that reports
 * the received (write) and durable (flush) positions separately and exactly.
 *
 * The service's own acknowledge(lsn) reports lsn + 1 for all three positions. A logical slot
 * resumes at the flush position and skips every transaction whose commit record starts before
 * it; the apply worker and pg_recvlogical report a commit's end LSN as is, and so do we. Reporting
 * the received position as `write` keeps the walsender from pinging an idle client in a tight
 * loop (it pings while both write and flush are behind what it sent) without moving the slot.
 */
export class ReplicationService extends LogicalReplicationService {
  constructor(config: pg.ClientConfig) {
    // The acknowledge timer sends the last *received* position: it stays off (docs/ARCHITECTURE.md, Facts the code respects).
    super(config, { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: true } });
  }

  sendStatus(received: bigint, durable: bigint, requestReply: boolean): boolean {
    const connection = (this as unknown as { _connection: CopyConnection | null })._connection;
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
