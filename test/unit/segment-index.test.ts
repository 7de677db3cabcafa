import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { brotliCompressSync, brotliDecompressSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lsnKey } from '../../src/core/lsn.js';
import { UserError } from '../../src/core/errors.js';
import { mapLimit } from '../../src/core/concurrency.js';
import {
  coveringIndexObjects,
  listIndexObjects,
  listNeededIndexObjects,
  buildIndex,
  type IndexObjectRef,
} from '../../src/log/segment-index.js';
import { listSegments } from '../../src/log/segments.js';
import { indexArchive, rangeSegments, segmentTotals, walkSegments } from '../../src/log/archive-index.js';
import { resolvePoint } from '../../src/log/resolve.js';
import { verifyArchive, type Finding } from '../../src/audit/verify.js';
import type { Target } from '../../src/log/target.js';
import { MARK_PREFIX } from '../../src/source/logical-messages.js';
import type { RelationDef } from '../../src/segment/format.js';
import { SegmentWriter } from '../../src/segment/writer.js';
import type { SegmentSealing } from '../../src/segment/encryption.js';
import { newKeyPairFiles, newSecretKeyFile, parseKeyFile, type WrappingKey } from '../../src/core/key-wrap.js';
import { useKeys } from '../../src/log/keys.js';
import { rekeyArchive } from '../../src/log/rekey.js';
import { DirectoryStore } from '../../src/store/directory.js';
import type { ListOptions } from '../../src/store/store.js';

/** Records every object read (whole or a range of it). */
function countReads(store: DirectoryStore): string[] {
  const reads: string[] = [];
  const read = store.read.bind(store);
  const readRange = store.readRange.bind(store);
  store.read = (key, options) => (reads.push(key), read(key, options));
  store.readRange = (key, offset, length) => (reads.push(key), readRange(key, offset, length));
  return reads;
}

/** Records every listing a store answers: its prefix and how many keys it returned. */
function countListings(store: DirectoryStore): { prefix: string; listed: number }[] {
  const listings: { prefix: string; listed: number }[] = [];
  const list = store.list.bind(store);
  store.list = async (prefix: string, options?: ListOptions) => {
    const listed = await list(prefix, options);
    listings.push({ prefix, listed: listed.length });
    return listed;
  };
  return listings;
}

const object = (group: number, start: number, end: number): IndexObjectRef => ({
  key: `index/${group}/${start}-${end}`,
  size: 1,
  group,
  startLsn: BigInt(start),
  endLsn: BigInt(end),
});

const MARK_EVERY = 97;
/** The commit LSN of segment i's one transaction, as writeSegments writes it. */
const commitOf = (i: number) => 0x1000n + BigInt(i) * 0x100n + 0x10n;

describe('coveringIndexObjects', () => {
  it('takes the large objects, the small ones after them, and leaves out the small ones inside', () => {
    // Contiguous, as segments are: each starts where the one before ends.
    const large = [object(100, 0, 1000), object(100, 1000, 2000)];
    const small = Array.from({ length: 25 }, (_, i) => object(5, i * 100, i * 100 + 100));
    const taken = coveringIndexObjects([...small, ...large]);
    expect(taken.map((o) => o.key)).toEqual([...large.map((o) => o.key), ...small.slice(20).map((o) => o.key)]);
  });

  it('skips an object that starts inside one already taken (its segments come from the next, or from headers)', () => {
    const taken = coveringIndexObjects([object(10, 0, 500), object(5, 250, 750), object(5, 750, 1000)]);
    expect(taken.map((o) => o.key)).toEqual(['index/10/0-500', 'index/5/750-1000']);
  });

  it('takes nothing from nothing', () => {
    expect(coveringIndexObjects([])).toEqual([]);
  });
});

describe('listNeededIndexObjects', () => {
  it('lists a long index size by size from where the larger objects end: listings and keys that do not grow with it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgtape-index-'));
    try {
      const put = (folder: string, start: number, end: number) => {
        const file = join(root, 'index', folder, `${lsnKey(BigInt(start))}-${lsnKey(BigInt(end))}.json.br`);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, '');
      };
      // 1,010 small objects, 50 large ones made of the first 1,000, a stale partial and the newest one.
      for (let i = 0; i < 1010; i++) put('50', i * 100, i * 100 + 100);
      for (let j = 0; j < 50; j++) put('1000', j * 2000, j * 2000 + 2000);
      put('partial', 0, 40);
      put('partial', 101_000, 101_040);
      const store = new DirectoryStore(root);
      const listings = countListings(store);
      const needed = await listNeededIndexObjects(store);
      expect(needed.map((o) => [o.group, Number(o.startLsn), Number(o.endLsn)])).toEqual([
        ...Array.from({ length: 50 }, (_, j) => [1000, j * 2000, j * 2000 + 2000]),
        ...Array.from({ length: 10 }, (_, i) => [50, 100_000 + i * 100, 100_100 + i * 100]),
        [0, 101_000, 101_040],
      ]);
      // The first page, one key per folder and one past the last, then each folder from its start.
      expect(listings.map((l) => l.prefix)).toEqual([...Array(5).fill('index/'), 'index/1000/', 'index/50/', 'index/partial/']);
      expect(listings.slice(5).map((l) => l.listed)).toEqual([50, 10, 1]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('buildIndex', () => {
  const relation: RelationDef = {
    oid: 16384,
    schema: 'public',
    name: 't',
    replicaIdentity: 'd',
    columns: [{ name: 'id', key: true, typeOid: 23, typmod: -1, typeName: 'int4' }],
  };
  const identity = { systemIdentifier: '1', database: 'db', slot: 'pgtape', serverVersion: 170000 };
  /** One-transaction segments `from` to `to`, each 0x100 long. */
  async function writeSegments(store: DirectoryStore, spool: string, from: number, to: number, sealing?: SegmentSealing): Promise<void> {
    await mapLimit(
      Array.from({ length: to - from }, (_, k) => from + k),
      8,
      async (i) => {
        const start = 0x1000n + BigInt(i) * 0x100n;
        const writer = new SegmentWriter(spool, start, identity, 'br', () => relation, sealing);
        await writer.begin(1000 + i, start + 0x10n, BigInt(i) * 60_000_000n);
        await writer.change({ kind: 'insert', relation: relation.oid, new: { kinds: Buffer.from('t'), values: [Buffer.from(String(i))] } });
        if (i % MARK_EVERY === 7)
          await writer.change({
            kind: 'message',
            prefix: MARK_PREFIX,
            content: Buffer.from(`m${i}`),
            lsn: start + 0x8n,
            transactional: true,
          });
        await writer.commit(start + 0x10n, start + 0x80n, BigInt(i) * 60_000_000n, 0);
        writer.advanceTo(start + 0x100n);
        const sealed = await writer.seal();
        await store.putFile(sealed.key, sealed.path);
        rmSync(sealed.path, { force: true });
      },
    );
  }

  it('past a page of index objects, lists only what follows the larger sizes, writes each range once, and readers cover every segment', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgtape-index-'));
    try {
      const store = new DirectoryStore(join(root, 'tape'));
      const spool = join(root, 'spool');
      mkdirSync(spool);
      // Objects of 1, 20, 400 and 8,000 segments: 1,100 segments make more than a page of them.
      await writeSegments(store, spool, 0, 1100);
      const first = await buildIndex(store, 1, 1);
      expect(first.length).toBe(1099 + 54 + 2);
      await writeSegments(store, spool, 1100, 1130);
      const listings = countListings(store);
      const second = await buildIndex(store, 1, 1);
      // The segment left last before and 29 new ones, and two objects of 20 from them.
      expect(second.filter((k) => k.startsWith('index/1/'))).toHaveLength(30);
      expect(second.filter((k) => k.startsWith('index/20/'))).toHaveLength(2);
      expect(second).toHaveLength(32);
      // A page of the index, then each size from where the larger ones end, and the segments after the last small object.
      expect(listings.map((l) => l.prefix)).toEqual([
        'index/',
        'index/8000/',
        'index/400/',
        'index/20/',
        'index/1/',
        'index/partial/',
        'segments/',
      ]);
      expect(
        listings.slice(1).every((l) => l.listed <= 40),
        JSON.stringify(listings),
      ).toBe(true);
      const all = await listIndexObjects(store);
      expect(new Set(all.map((o) => `${o.group} ${o.startLsn}`)).size, 'no range written twice').toBe(all.length);
      // A reader's objects hold every segment but the last, one after another.
      const needed = await listNeededIndexObjects(store);
      expect(needed.length).toBeLessThanOrEqual(2 + 19 + 19);
      const segments = await listSegments(store);
      expect(needed[0]!.startLsn).toBe(segments[0]!.startLsn);
      for (const [i, o] of needed.entries()) if (i > 0) expect(o.startLsn).toBe(needed[i - 1]!.endLsn);
      expect(needed.at(-1)!.endLsn).toBe(segments.at(-2)!.endLsn);

      // Readers descend through the summaries: each target kind found as a walk over every
      // segment would find it, opening a bounded number of objects, and holding only what it opened.
      const reads = countReads(store);
      const index = await indexArchive(store, { requireBase: false });
      expect(index.nodes.length).toBeLessThanOrEqual(needed.length + 1);
      expect(index.lastCommit).toEqual({ lsn: commitOf(1129), time: 1129n * 60_000_000n });
      expect(await segmentTotals(index)).toEqual({ segments: 1130, bytes: segments.reduce((n, s) => n + s.size, 0) });
      const walked: string[] = [];
      for await (const s of walkSegments(index)) walked.push(s.key);
      expect(walked).toEqual(segments.map((s) => s.key));
      for (const i of [0, 20, 104, 399, 401, 783, 1099, 1129]) {
        for (const [target, expected] of [
          [{ kind: 'xid', xid: 1000 + i }, commitOf(i)],
          [{ kind: 'time', micros: BigInt(i) * 60_000_000n - 1n }, commitOf(i) - 1n],
          ...(i % MARK_EVERY === 7 ? [[{ kind: 'name', name: `m${i}` }, commitOf(i)]] : []),
        ] as [Target, bigint][]) {
          const fresh = await indexArchive(store, { requireBase: false });
          reads.length = 0;
          expect(await resolvePoint(fresh, target, false), JSON.stringify({ i, target: String(target.kind) })).toBe(expected);
          // The chain's objects (opened in turn up to the target), three levels of descent, a segment.
          expect(reads.length, `${target.kind} ${i}: ${reads.join(' ')}`).toBeLessThanOrEqual(needed.length + 2 * 20 + 2);
          expect(fresh.opened.size).toBeLessThanOrEqual(needed.length + 3 * 20);
        }
      }
      await expect(resolvePoint(index, { kind: 'name', name: 'nope' }, false)).rejects.toThrow(
        /names no mark in the archive \(marks in the archive: m7, m104/,
      );
      await expect(resolvePoint(index, { kind: 'xid', xid: 999 }, false)).rejects.toThrow(/is not a transaction in the archive/);
      // A range walks its own segments only.
      const keys: string[] = [];
      for await (const s of rangeSegments(index, commitOf(500), commitOf(510))) keys.push(s.key);
      expect(keys).toEqual(segments.slice(500, 511).map((s) => s.key));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('segments with only an unfinished base: replay is refused naming that base (exit 2), and a finished one is then found', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgtape-index-'));
    try {
      const store = new DirectoryStore(join(root, 'tape'));
      const spool = join(root, 'spool');
      mkdirSync(spool);
      await writeSegments(store, spool, 0, 2);
      const unfinished = join(store.description, 'base', lsnKey(0x1000n));
      mkdirSync(join(unfinished, 'tables'), { recursive: true });
      writeFileSync(join(unfinished, 'schema.json'), '{}');
      const refusal = await indexArchive(store).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refusal).toBeInstanceOf(UserError);
      expect((refusal as UserError).exitCode).toBe(2);
      expect((refusal as UserError).message).toBe(
        `${store.description} holds segments but no base to replay them onto (base/${lsnKey(0x1000n)}/: never finished, no manifest.json)`,
      );
      writeFileSync(join(unfinished, 'manifest.json'), '{}');
      expect((await indexArchive(store)).bases.map((b) => b.lsn)).toEqual([0x1000n]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a damaged segment after a name: or time: target does not fail it; one before a name: target does', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgtape-index-'));
    try {
      const store = new DirectoryStore(join(root, 'tape'));
      const spool = join(root, 'spool');
      mkdirSync(spool);
      // No index objects: the marks are read from the segments' bodies. Marks m7 and m104, whose segment is damaged.
      await writeSegments(store, spool, 0, 110);
      const damagedKey = (await listSegments(store))[104]!.key;
      const file = join(store.description, damagedKey);
      const bytes = readFileSync(file);
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 3) ^ 0xff, bytes.length - 3);
      writeFileSync(file, bytes);
      const index = await indexArchive(store, { requireBase: false });
      const warnings: string[] = [];
      const resolve = (target: Target) => resolvePoint(index, target, false, (w) => warnings.push(w));
      expect(await resolve({ kind: 'name', name: 'm7' })).toBe(commitOf(7));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`the marks after ${store.description}/${damagedKey} could not be read`);
      // The damaged segment could hold an earlier m104, or the name asked for.
      await expect(resolve({ kind: 'name', name: 'm104' })).rejects.toThrow(/checksum/);
      await expect(resolve({ kind: 'name', name: 'nope' })).rejects.toThrow(/checksum/);
      // A time before the damaged segment's first commit needs only its header.
      for (const i of [10, 104, 105]) {
        expect(await resolve({ kind: 'time', micros: BigInt(i) * 60_000_000n - 1n, text: 't' })).toBe(commitOf(i) - 1n);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('an encrypted archive is indexed without a key (marks sealed); rekey rewrites every level, and only the new key is then needed', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgtape-index-'));
    try {
      const store = new DirectoryStore(join(root, 'tape'));
      const spool = join(root, 'spool');
      mkdirSync(spool);
      const pair = newKeyPairFiles();
      const [publicA, privateA] = [parseKeyFile(pair.publicFile, 'a'), parseKeyFile(pair.privateFile, 'a')];
      const secretB = parseKeyFile(newSecretKeyFile(), 'b');
      // 110 segments: objects of 1 and five of 20, two marks (m7, m104) in them; indexed holding the public key only.
      await writeSegments(store, spool, 0, 110, { key: publicA, markPrefix: MARK_PREFIX });
      useKeys(store, [publicA]);
      await buildIndex(store, 1, 1);
      expect((await listIndexObjects(store)).filter((o) => o.group === 20)).toHaveLength(5);
      const soundWith = async (keys: WrappingKey[]) => {
        const fresh = new DirectoryStore(store.description);
        useKeys(fresh, keys);
        const out: Finding[] = [];
        for await (const f of verifyArchive(fresh)) if (f.status !== 'OK') out.push(f);
        expect(out).toEqual([]);
        return fresh;
      };
      const resolved = async (s: DirectoryStore, name: string) =>
        resolvePoint(await indexArchive(s, { requireBase: false }), { kind: 'name', name }, false);
      expect(await resolved(await soundWith([privateA]), 'm104')).toBe(commitOf(104));
      await expect(resolved(await soundWith([publicA]), 'm104')).rejects.toThrow(new RegExp(`encrypted for key ${publicA.id}`));
      // Rekeyed for B with A's private key: every level rewritten (a wrap for B is another size).
      const rekeying = new DirectoryStore(store.description);
      useKeys(rekeying, [privateA]);
      const result = await rekeyArchive(rekeying, secretB, () => {});
      expect(result).toMatchObject({ rewritten: { segments: 110, bases: 0 }, missing: [] });
      expect(result.rewritten.indexObjects).toBe(109 + 5);
      const withB = await soundWith([secretB]);
      expect(await resolved(withB, 'm104')).toBe(commitOf(104));
      expect(await resolved(withB, 'm7')).toBe(commitOf(7));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('verify checks each summary against the object it names; a forged or missing one is named, and readers still find every target', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgtape-index-'));
    try {
      const store = new DirectoryStore(join(root, 'tape'));
      const spool = join(root, 'spool');
      mkdirSync(spool);
      // Objects of 1 and 20 segments: three of 20 (format 2) over 61 segments.
      await writeSegments(store, spool, 0, 61);
      await buildIndex(store, 1, 1);
      const larger = (await listIndexObjects(store)).filter((o) => o.group === 20);
      expect(larger).toHaveLength(3);
      const findings = async () => {
        const out: Finding[] = [];
        for await (const f of verifyArchive(store)) out.push(f);
        return out.filter((f) => f.status !== 'OK' && f.object.startsWith('index/'));
      };
      expect(await findings()).toEqual([]);
      // A summary that says the second object's latest commit is later than it is.
      const target = larger[1]!;
      const path = join(store.description, target.key);
      const body = JSON.parse(brotliDecompressSync(readFileSync(path)).toString('utf8'));
      const original = readFileSync(path);
      body.children[3].summary.maxCommitTime = '99999999999999999';
      writeFileSync(path, brotliCompressSync(Buffer.from(JSON.stringify(body))));
      const forged = await findings();
      expect(forged).toHaveLength(1);
      expect(forged[0]).toMatchObject({ status: 'CORRUPT', object: target.key });
      expect(forged[0]!.detail).toContain(`says of ${body.children[3].key} a different maxCommitTime`);
      writeFileSync(path, original);
      // A smaller object it names is gone: named, and readers list that stretch instead.
      const gone = body.children[5].key as string;
      rmSync(join(store.description, gone));
      const missing = await findings();
      expect(missing.map((f) => [f.status, f.object])).toEqual([['MISSING', gone]]);
      const warnings: string[] = [];
      const say = process.stderr.write.bind(process.stderr);
      process.stderr.write = ((chunk: string) => (warnings.push(String(chunk)), true)) as typeof process.stderr.write;
      try {
        for (const i of [24, 25, 26, 59]) {
          const index = await indexArchive(store, { requireBase: false });
          expect(await resolvePoint(index, { kind: 'xid', xid: 1000 + i }, false)).toBe(commitOf(i));
          expect(await resolvePoint(index, { kind: 'time', micros: BigInt(i) * 60_000_000n - 1n, text: 't' }, false)).toBe(
            commitOf(i) - 1n,
          );
        }
      } finally {
        process.stderr.write = say;
      }
      expect(warnings.join('')).toContain(`${gone} cannot be read`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
