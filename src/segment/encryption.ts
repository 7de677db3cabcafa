import { randomBytes } from 'node:crypto';
import { DATA_KEY_BYTES, DecryptionError, decryptBuffer, encryptBuffer } from '../core/chunked-aead.js';
import { openValue, opensKey, sealValue, unwrapDataKey, wrapDataKey, type WrappedKey, type WrappingKey } from '../core/key-wrap.js';
import { lsnKey } from '../core/lsn.js';
import type { SealedMark, SegmentEncryption, SegmentHeader, TableCount } from './format.js';

// A segment's encryption (docs/ARCHITECTURE.md, "Encryption at rest"). What planning needs stays
// in the clear header: LSN, time and xid ranges, counts per table oid, sizes. The body (after
// compression), the tables' names and the marks' names are sealed. Every sealed part is bound to
// the segment's range and stream (`context`): a body moved under another segment's name, or
// another stream's segment of the same range, does not authenticate.

/** What the archiver encrypts for, and which logical messages are marks (their names are sealed in the header too). */
export interface SegmentSealing {
  key: WrappingKey;
  markPrefix: string;
}

type Identity = Pick<SegmentHeader, 'startLsn' | 'endLsn' | 'systemIdentifier' | 'database' | 'slot'>;

/** What a part of a segment is bound to: its range (its file name) and its stream. */
function context(h: Identity, part: 'key' | 'body' | 'tables'): Buffer {
  return Buffer.from(`pgtape segment ${part}\0${lsnKey(h.startLsn)}-${lsnKey(h.endLsn)}\0${h.systemIdentifier}\0${h.database}\0${h.slot}`);
}

/** A mark's name is bound to its transaction's commit LSN: it opens without its segment. */
const markContext = (commitLsn: bigint) => Buffer.from(`pgtape mark\0${lsnKey(commitLsn)}`);

/** A new segment's data key, and what its header says of it; the tables' names sealed, the table counts left without them. */
export function sealSegmentHead(
  sealing: SegmentSealing,
  header: Identity & { tables: TableCount[] },
  marks: { name: string; commitLsn: bigint }[],
): { dataKey: Buffer; bodyContext: Buffer; encryption: SegmentEncryption; tables: TableCount[] } {
  const dataKey = randomBytes(DATA_KEY_BYTES);
  const names = Buffer.from(JSON.stringify(header.tables.map((t) => [t.schema, t.name])));
  return {
    dataKey,
    bodyContext: context(header, 'body'),
    tables: header.tables.map((t) => ({ ...t, schema: '', name: '' })),
    encryption: {
      dataKey: wrapDataKey(sealing.key, dataKey, context(header, 'key')),
      sealedTables: encryptBuffer(dataKey, context(header, 'tables'), names),
      marks: marks.map((m) => {
        const v = sealValue(sealing.key, Buffer.from(m.name, 'utf8'), markContext(m.commitLsn));
        return { commitLsn: m.commitLsn, key: v.key, sealedName: v.sealed };
      }),
    },
  };
}

/** The body's data key and what it is bound to; a key not given is a UserError naming the key id (exit 2). */
export function openBodyKey(header: SegmentHeader, keys: WrappingKey[], what: string): { dataKey: Buffer; bodyContext: Buffer } {
  const e = header.encryption!;
  return { dataKey: unwrapDataKey(keys, e.dataKey, context(header, 'key'), what), bodyContext: context(header, 'body') };
}

/**
 * The header with its tables' names, when it is encrypted and a key given opens it; as it is
 * otherwise (names empty: what needs them reads the body, and is refused naming the key).
 * Names that do not open under the right key are damage (DecryptionError).
 */
export function openHeaderNames(header: SegmentHeader, keys: WrappingKey[] | undefined, what: string): SegmentHeader {
  const e = header.encryption;
  if (!e || !keys || !opensKey(keys, e.dataKey.keyId)) return header;
  const dataKey = unwrapDataKey(keys, e.dataKey, context(header, 'key'), what);
  const names = JSON.parse(decryptBuffer(dataKey, context(header, 'tables'), e.sealedTables).toString('utf8')) as [string, string][];
  if (names.length !== header.tables.length) throw new DecryptionError(`${what}: its sealed table names do not match its tables`);
  return { ...header, tables: header.tables.map((t, i) => ({ ...t, schema: names[i]![0], name: names[i]![1] })) };
}

/** A sealed mark's name; a key not given is a UserError naming the key id (exit 2). */
export function openMarkName(mark: SealedMark, keys: WrappingKey[], what: string): string {
  return openValue(keys, { key: mark.key, sealed: mark.sealedName }, markContext(mark.commitLsn), what).toString('utf8');
}

/** A wrapped key wrapped again for `to` (its data key unchanged), or the same when it already is `to`'s. */
export type Rewrap = (wrapped: WrappedKey, context: Buffer, what: string) => WrappedKey;

/** A segment's encryption with every data key wrapped again (pgtape rekey): the body and sealed parts stay as they are. */
export function rewrapSegmentHead(header: SegmentHeader, rewrap: Rewrap, what: string): SegmentEncryption {
  const e = header.encryption!;
  return {
    ...e,
    dataKey: rewrap(e.dataKey, context(header, 'key'), what),
    marks: e.marks.map((m) => ({ ...m, key: rewrap(m.key, markContext(m.commitLsn), `${what}, a mark`) })),
  };
}
