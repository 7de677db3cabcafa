// pgoutput logical replication messages, as plain typed objects.
// https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html

/**
 * One row image. `kinds` has one byte per column: `n` null, `u` unchanged TOAST, `t` text,
 * `b` binary. `values` holds the bytes of the `t`/`b` columns only, in column order, exactly as
 * Postgres sent them.
 */
export interface Tuple {
  kinds: Buffer;
  values: Buffer[];
}

export interface RelationColumn {
  name: string;
  /** Part of the replica identity (the key flag of pgoutput). */
  key: boolean;
  typeOid: number;
  typmod: number;
}

export interface Begin {
  tag: 'begin';
  commitLsn: bigint;
  commitTime: bigint;
  xid: number;
}
export interface Commit {
  tag: 'commit';
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: bigint;
}
export interface Origin {
  tag: 'origin';
  originLsn: bigint;
  name: string;
}
export interface Relation {
  tag: 'relation';
  oid: number;
  schema: string;
  name: string;
  /** pg_class.relreplident: d default, n nothing, f full, i index. */
  replicaIdentity: string;
  columns: RelationColumn[];
}
export interface TypeMessage {
  tag: 'type';
  oid: number;
  schema: string;
  name: string;
}
export interface Insert {
  tag: 'insert';
  relation: number;
  new: Tuple;
}
/** `key` is sent when the replica identity changed (K), `old` with REPLICA IDENTITY FULL (O). */
export interface Update {
  tag: 'update';
  relation: number;
  key?: Tuple;
  old?: Tuple;
  new: Tuple;
}
export interface Delete {
  tag: 'delete';
  relation: number;
  key?: Tuple;
  old?: Tuple;
}
/** flags: 1 CASCADE, 2 RESTART IDENTITY. */
export interface Truncate {
  tag: 'truncate';
  flags: number;
  relations: number[];
}
export interface LogicalMessage {
  tag: 'message';
  transactional: boolean;
  lsn: bigint;
  prefix: string;
  content: Buffer;
}

export type Change = Insert | Update | Delete | Truncate | LogicalMessage;

// Protocol version 2 (Postgres 14+): a large transaction is sent while it is still in progress,
// in blocks between Stream Start and Stream Stop, interleaved with other transactions, and
// ends with Stream Commit or Stream Abort (of the whole transaction or of a subtransaction).
export interface StreamStart {
  tag: 'stream_start';
  xid: number;
  first: boolean;
}
export interface StreamStop {
  tag: 'stream_stop';
}
export interface StreamCommit {
  tag: 'stream_commit';
  xid: number;
  flags: number;
  commitLsn: bigint;
  endLsn: bigint;
  commitTime: bigint;
}
/** `subxid` equals `xid` when the whole transaction aborted. */
export interface StreamAbort {
  tag: 'stream_abort';
  xid: number;
  subxid: number;
}
/**
 * A message of a stream block, as its bytes (a view into the connection's buffer, valid until
 * it is handled), for the archiver's spool; parseStreamed reads it. `xid` is the
 * (sub)transaction that made the change.
 */
export interface Streamed {
  tag: 'streamed';
  xid: number;
  raw: Buffer;
}

/**
 * An Insert, Update or Delete left as its bytes (a view, like Streamed's), for a consumer that
 * writes them elsewhere without the parsed tuples (the parser's `rowsAsBytes`).
 */
export interface RowBytes {
  tag: 'row';
  raw: Buffer;
}

export type PgoutputMessage =
  Begin | Commit | Origin | Relation | TypeMessage | Change | StreamStart | StreamStop | StreamCommit | StreamAbort | Streamed | RowBytes;

/** Microseconds between the Unix epoch and the Postgres epoch (2000-01-01). */
export const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;
