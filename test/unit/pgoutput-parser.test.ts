import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { PgoutputMessage, Tuple } from '../../src/pgoutput/messages.js';
import { PgoutputParser } from '../../src/pgoutput/parser.js';

// Real pgoutput bytes, captured once from PostgreSQL (see the fixture's "about"): no server here.
interface Captured {
  label: string;
  lsn: string;
  hex: string;
}
interface Group {
  name: string;
  protoVersion: number;
  note: string;
  xids: number[];
  commitTimes: string[];
  messages: Captured[];
}
interface Fixture {
  serverVersion: number;
  facts: { relations: Record<string, number>; types: Record<string, number> };
  groups: Group[];
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/pgoutput/pg17-messages.json', import.meta.url), 'utf8')) as Fixture;
const { relations: oid, types } = fixture.facts;

function group(name: string): Group {
  const g = fixture.groups.find((x) => x.name === name);
  if (!g) throw new Error(`no group ${name} in the fixture`);
  return g;
}

/** What the archiver does: parse(), then parseStreamed() on a stream block's messages. */
interface Parsed {
  captured: Captured;
  message: PgoutputMessage;
  inner?: PgoutputMessage;
}
function parseAll(g: Group, parser = new PgoutputParser()): Parsed[] {
  return g.messages.map((captured) => {
    const message = parser.parse(Buffer.from(captured.hex, 'hex'));
    return message.tag === 'streamed' ? { captured, message, inner: parser.parseStreamed(message.raw) } : { captured, message };
  });
}
const messagesOf = (name: string) => parseAll(group(name)).map((p) => p.inner ?? p.message);
const ofTag = <T extends PgoutputMessage['tag']>(ms: PgoutputMessage[], tag: T) =>
  ms.filter((m): m is Extract<PgoutputMessage, { tag: T }> => m.tag === tag);

/** A row image as strings: the kind bytes, and the sent values as UTF-8. */
const row = (t: Tuple | undefined) => t && { kinds: t.kinds.toString('latin1'), values: t.values.map((v) => v.toString('utf8')) };
/** '0/1500560' → 0x1500560n (pg_lsn text, as the server printed it). */
const lsn = (text: string) => {
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
};
const column = (name: string, typeOid: number, key = false, typmod = -1) => ({ name, key, typeOid, typmod });

// Independent of the parser: what the first byte of each message means in the protocol.
const TAG_OF_BYTE: Record<string, string> = {
  B: 'begin',
  C: 'commit',
  O: 'origin',
  R: 'relation',
  Y: 'type',
  I: 'insert',
  U: 'update',
  D: 'delete',
  T: 'truncate',
  M: 'message',
  S: 'stream_start',
  E: 'stream_stop',
  c: 'stream_commit',
  A: 'stream_abort',
};

describe(`pgoutput parser on messages captured from PostgreSQL ${fixture.serverVersion}`, () => {
  it('turns every captured message into the tag its first byte names', () => {
    for (const g of fixture.groups) {
      for (const p of parseAll(g)) {
        expect((p.inner ?? p.message).tag, `${g.name}: ${p.captured.label}`).toBe(
          TAG_OF_BYTE[String.fromCharCode(parseInt(p.captured.hex.slice(0, 2), 16))],
        );
      }
    }
  });

  it("pairs each Begin with its Commit: the server's xid, commit LSN, end LSN and commit time (Unix microseconds)", () => {
    for (const g of fixture.groups.filter((x) => !x.name.startsWith('stream'))) {
      const parsed = parseAll(g);
      const begins = parsed.filter((p) => p.message.tag === 'begin');
      const commits = parsed.filter((p) => p.message.tag === 'commit');
      expect(begins.length, g.name).toBe(g.xids.length);
      expect(commits.length, g.name).toBe(g.xids.length);
      begins.forEach((b, i) => {
        const begin = b.message as Extract<PgoutputMessage, { tag: 'begin' }>;
        const commitAt = commits[i]!;
        const commit = commitAt.message as Extract<PgoutputMessage, { tag: 'commit' }>;
        const time = BigInt(g.commitTimes[i]!);
        expect(begin, g.name).toEqual({ tag: 'begin', xid: g.xids[i], commitLsn: commit.commitLsn, commitTime: time });
        expect(commit, g.name).toEqual({
          tag: 'commit',
          flags: 0,
          commitLsn: commit.commitLsn,
          endLsn: lsn(commitAt.captured.lsn),
          commitTime: time,
        });
        expect(commit.commitLsn < commit.endLsn, g.name).toBe(true);
        expect(commit.commitLsn > lsn(b.captured.lsn), g.name).toBe(true);
      });
    }
  });

  it('reads Type messages for a user enum and composite, then the Relation with their OIDs', () => {
    const ms = messagesOf('insert-types');
    expect(ofTag(ms, 'type')).toEqual([
      { tag: 'type', oid: types.mood, schema: 'public', name: 'mood' },
      { tag: 'type', oid: types.pair, schema: 'public', name: 'pair' },
    ]);
    expect(ofTag(ms, 'relation')).toEqual([
      {
        tag: 'relation',
        oid: oid['public.items'],
        schema: 'public',
        name: 'items',
        replicaIdentity: 'd',
        columns: [column('id', 23, true), column('name', 25), column('mood', types.mood!), column('p', types.pair!), column('big', 25)],
      },
    ]);
  });

  it('keeps NULLs, empty strings, unicode and control characters of inserted rows exactly', () => {
    const inserts = ofTag(messagesOf('insert-types'), 'insert');
    expect(inserts.map((i) => i.relation)).toEqual([oid['public.items'], oid['public.items'], oid['public.items'], oid['public.items']]);
    expect(inserts.map((i) => row(i.new))).toEqual([
      { kinds: 'ttttn', values: ['1', 'plain', 'happy', '(7,"x y")'] },
      { kinds: 'ttnnn', values: ['2', ''] },
      { kinds: 'ttnnn', values: ['3', 'ünïcödé ✓ 日本 🎉'] },
      { kinds: 'ttnnn', values: ['4', 'tab\there\nnewline back\\slash'] },
    ]);
    expect(inserts[1]!.new.values[1]!.length).toBe(0);
  });

  it('reads identifiers that need quoting, and varchar and numeric type modifiers', () => {
    const ms = messagesOf('odd-identifiers');
    expect(ofTag(ms, 'relation')).toEqual([
      {
        tag: 'relation',
        oid: oid['Odd Schema.Wëird "Table"'],
        schema: 'Odd Schema',
        name: 'Wëird "Table"',
        replicaIdentity: 'd',
        // varchar(20): 20 + 4; numeric(10,2): (10 << 16 | 2) + 4.
        columns: [column('Id', 23, true), column('col with space', 1043, false, 24), column('ünï', 1700, false, ((10 << 16) | 2) + 4)],
      },
    ]);
    expect(row(ofTag(ms, 'insert')[0]!.new)).toEqual({ kinds: 'ttt', values: ['1', 'a', '12.50'] });
  });

  it('sends the old key (K) only with an update that changes the key, and with a delete', () => {
    const ms = messagesOf('update-delete');
    const [plain, moved] = ofTag(ms, 'update');
    expect({ key: row(plain!.key), old: row(plain!.old), new: row(plain!.new) }).toEqual({
      key: undefined,
      old: undefined,
      new: { kinds: 'ttttn', values: ['1', 'renamed', 'happy', '(7,"x y")'] },
    });
    expect({ key: row(moved!.key), old: row(moved!.old), new: row(moved!.new) }).toEqual({
      key: { kinds: 'tnnnn', values: ['1'] },
      old: undefined,
      new: { kinds: 'ttttn', values: ['10', 'renamed', 'happy', '(7,"x y")'] },
    });
    expect(ofTag(ms, 'delete').map((d) => ({ relation: d.relation, key: row(d.key), old: row(d.old) }))).toEqual([
      { relation: oid['public.items'], key: { kinds: 'tnnnn', values: ['10'] }, old: undefined },
    ]);
  });

  it('flags every column of a composite key, and sends all of them in the old key', () => {
    const ms = messagesOf('composite-key');
    expect(ofTag(ms, 'relation')[0]!.columns).toEqual([column('k1', 23, true), column('k2', 25, true), column('v', 25)]);
    const update = ofTag(ms, 'update')[0]!;
    expect([row(update.key), row(update.new)]).toEqual([
      { kinds: 'ttn', values: ['1', 'a'] },
      { kinds: 'ttt', values: ['1', 'b', 'v1'] },
    ]);
    expect(row(ofTag(ms, 'delete')[0]!.key)).toEqual({ kinds: 'ttn', values: ['1', 'b'] });
  });

  it('reads REPLICA IDENTITY FULL (old rows, O), USING INDEX and NOTHING', () => {
    const ms = messagesOf('replica-identity');
    expect(ofTag(ms, 'relation').map((r) => [r.name, r.replicaIdentity, r.columns.map((c) => c.key)])).toEqual([
      ['full_t', 'f', [true, true]],
      ['by_index', 'i', [false, true, false]],
      ['no_ident', 'n', [false]],
    ]);
    const [full, byIndex] = ofTag(ms, 'update');
    expect([row(full!.key), row(full!.old), row(full!.new)]).toEqual([
      undefined,
      { kinds: 'tt', values: ['1', 'one'] },
      { kinds: 'tt', values: ['1', 'uno'] },
    ]);
    expect([row(byIndex!.key), row(byIndex!.new)]).toEqual([
      { kinds: 'ntn', values: ['c1'] },
      { kinds: 'ttt', values: ['1', 'c2', 'v'] },
    ]);
    const del = ofTag(ms, 'delete')[0]!;
    expect([row(del.key), row(del.old)]).toEqual([undefined, { kinds: 'tn', values: ['2'] }]);
  });

  it('marks a TOASTed value an update left alone as unchanged (u), with no bytes', () => {
    const ms = messagesOf('toast');
    const big = Array.from({ length: 100 }, (_, i) =>
      createHash('md5')
        .update(String(i + 1))
        .digest('hex'),
    ).join('');
    expect(row(ofTag(ms, 'insert')[0]!.new)).toEqual({ kinds: 'ttnnt', values: ['5', 'toasty', big] });
    expect(row(ofTag(ms, 'update')[0]!.new)).toEqual({ kinds: 'ttnnu', values: ['5', 'still toasty'] });
  });

  it('reads TRUNCATE with its CASCADE and RESTART IDENTITY flags and every relation it names', () => {
    expect(ofTag(messagesOf('truncate'), 'truncate')).toEqual([
      { tag: 'truncate', flags: 1 | 2, relations: [oid['public.parent'], oid['public.child']] },
      { tag: 'truncate', flags: 0, relations: [oid['public.full_t']] },
    ]);
  });

  it('reads logical messages, transactional or not, at the LSN the server reported', () => {
    const parsed = parseAll(group('messages')).filter((p) => p.message.tag === 'message');
    expect(parsed.map((p) => p.message)).toEqual([
      { tag: 'message', transactional: false, lsn: lsn(parsed[0]!.captured.lsn), prefix: 'pgtape', content: Buffer.from('nt') },
      { tag: 'message', transactional: true, lsn: lsn(parsed[1]!.captured.lsn), prefix: 'pgtape', content: Buffer.from('m1') },
    ]);
  });

  it('reads the Origin of a transaction replayed from another node, after its Begin', () => {
    const ms = messagesOf('origin');
    expect(ms.map((m) => m.tag)).toEqual(['begin', 'origin', 'relation', 'insert', 'commit']);
    expect(ms[1]).toEqual({ tag: 'origin', originLsn: 0xabcdefn, name: 'upstream' });
  });
});

describe('pgoutput parser on streamed transactions (protocol version 2)', () => {
  it('hands out the messages of a stream block as bytes with their (sub)transaction, and parses them later', () => {
    const g = group('stream-commit');
    const [xid] = g.xids as [number];
    const parsed = parseAll(g);
    expect(parsed.map((p) => (p.message.tag === 'streamed' ? `${p.message.xid - xid}:${p.inner!.tag}` : p.message.tag))).toEqual([
      'stream_start',
      '0:relation',
      '0:insert',
      '0:insert',
      'stream_stop',
      'stream_start',
      '0:insert',
      '0:insert',
      'stream_stop',
      'stream_start',
      '0:insert',
      '0:insert',
      '0:message',
      '1:insert',
      '1:insert',
      'stream_stop',
      'stream_abort',
      'stream_start',
      '2:relation',
      '2:update',
      '2:update',
      'stream_stop',
      'stream_commit',
    ]);
    for (const p of parsed.filter((x) => x.message.tag === 'streamed')) {
      expect(p.message.tag === 'streamed' && p.message.raw.toString('hex')).toBe(p.captured.hex);
    }
    expect(parsed.filter((p) => p.message.tag === 'stream_start').map((p) => p.message)).toEqual([
      { tag: 'stream_start', xid, first: true },
      { tag: 'stream_start', xid, first: false },
      { tag: 'stream_start', xid, first: false },
      { tag: 'stream_start', xid, first: false },
    ]);
    expect(parsed.find((p) => p.message.tag === 'stream_abort')!.message).toEqual({ tag: 'stream_abort', xid, subxid: xid + 1 });
    const commit = parsed.at(-1)!;
    expect(commit.message).toMatchObject({
      tag: 'stream_commit',
      xid,
      flags: 0,
      endLsn: lsn(commit.captured.lsn),
      commitTime: BigInt(g.commitTimes[0]!),
    });
  });

  it('parses streamed changes as it would outside a block', () => {
    const inner = parseAll(group('stream-commit')).flatMap((p) => (p.inner ? [p.inner] : []));
    expect(inner[0]).toEqual({
      tag: 'relation',
      oid: oid['public.big_t'],
      schema: 'public',
      name: 'big_t',
      replicaIdentity: 'd',
      columns: [column('id', 23, true), column('payload', 25)],
    });
    const inserts = ofTag(inner, 'insert');
    expect(row(inserts[0]!.new)).toEqual({ kinds: 'tt', values: ['1', 'x'.repeat(200)] });
    expect(row(inserts.at(-1)!.new)!.values[1]).toBe('y'.repeat(200));
    expect(ofTag(inner, 'message')).toMatchObject([{ transactional: true, prefix: 'pgtape', content: Buffer.from('inside stream') }]);
    expect(ofTag(inner, 'update').map((u) => row(u.new))).toEqual([
      { kinds: 'tt', values: ['1', 'z'] },
      { kinds: 'tt', values: ['2', 'z'] },
    ]);
  });

  it('reads the Stream Abort of a whole transaction rolled back while streaming', () => {
    const g = group('stream-abort');
    const parsed = parseAll(g);
    expect(parsed[0]!.message).toEqual({ tag: 'stream_start', xid: g.xids[0], first: true });
    expect(
      parsed.filter((p) => p.message.tag === 'streamed').every((p) => p.message.tag === 'streamed' && p.message.xid === g.xids[0]),
    ).toBe(true);
    expect(parsed.at(-1)!.message).toEqual({ tag: 'stream_abort', xid: g.xids[0], subxid: g.xids[0] });
  });

  it("gives an Origin inside a stream block (it carries no xid) the block's transaction", () => {
    const parsed = parseAll(group('stream-origin'));
    const xid = group('stream-origin').xids[0];
    // An empty block and the abort of the transaction before come first (see the fixture's note).
    expect(parsed.slice(0, 3).map((p) => p.message.tag)).toEqual(['stream_start', 'stream_stop', 'stream_abort']);
    const origin = parsed.find((p) => p.inner?.tag === 'origin')!;
    expect(origin.message).toMatchObject({ tag: 'streamed', xid });
    expect(origin.inner).toEqual({ tag: 'origin', originLsn: 0n, name: 'upstream' });
  });

  it('starts outside any stream block after reset(), as on a new connection', () => {
    const parser = new PgoutputParser();
    const [start, relation] = group('stream-commit').messages.map((m) => Buffer.from(m.hex, 'hex'));
    const begin = Buffer.from(group('origin').messages[0]!.hex, 'hex');
    expect(parser.parse(start!).tag).toBe('stream_start');
    expect(parser.parse(relation!).tag).toBe('streamed');
    parser.reset();
    expect(parser.parse(begin).tag).toBe('begin');
  });
});

describe('pgoutput parser on malformed input', () => {
  const insert = () => Buffer.from(group('insert-types').messages[4]!.hex, 'hex'); // I, relation, N, 5 columns, first kind at byte 8
  const hex = (h: string) => Buffer.from(h.replace(/ /g, ''), 'hex');

  it('refuses an unknown message type, naming it', () => {
    expect(() => new PgoutputParser().parse(hex('5a 00000001'))).toThrow('pgoutput: unsupported message type "Z"');
    expect(() => new PgoutputParser().parseStreamed(hex('5a 00000302 00'))).toThrow('pgoutput: unsupported message type "Z"');
  });

  it('refuses an unknown message type inside a stream block only when the block is parsed (at its commit)', () => {
    const parser = new PgoutputParser();
    parser.parse(Buffer.from(group('stream-commit').messages[0]!.hex, 'hex'));
    const unknown = parser.parse(hex('5a 00000302 00'));
    expect(unknown).toMatchObject({ tag: 'streamed', xid: 0x302 });
    expect(() => parser.parseStreamed(unknown.tag === 'streamed' ? unknown.raw : Buffer.alloc(0))).toThrow(
      'pgoutput: unsupported message type "Z"',
    );
  });

  it('refuses an unknown tuple column kind, naming it', () => {
    const bad = insert();
    expect(bad[8]).toBe(0x74);
    bad[8] = 0x78;
    expect(() => new PgoutputParser().parse(bad)).toThrow('pgoutput: unknown tuple column kind "x"');
  });

  it('refuses a message cut short, and a string without its terminator', () => {
    const full = insert();
    for (const cut of [1, 5, 8, 12, full.length - 1]) {
      expect(() => new PgoutputParser().parse(full.subarray(0, cut)), `cut at ${cut}`).toThrow(/pgoutput: message truncated/);
    }
    expect(() => new PgoutputParser().parse(hex('59 00004001 7075626c6963'))).toThrow('pgoutput: unterminated string');
  });

  it('refuses row changes without the tuple markers the protocol requires', () => {
    expect(() => new PgoutputParser().parse(hex('49 00004010 4b 0000'))).toThrow('pgoutput: Insert expected N, got "K"');
    expect(() => new PgoutputParser().parse(hex('55 00004010 4b 0001 6e 4b 0001 6e'))).toThrow(
      'pgoutput: Update without new tuple (got "K")',
    );
    expect(() => new PgoutputParser().parse(hex('44 00004010 4e 0001 6e'))).toThrow('pgoutput: Delete without key or old tuple (got "N")');
  });
});
