// An encrypted archive end to end (issue 17; docs/ARCHITECTURE.md, "Encryption at rest"): an
// archive that starts in the clear, goes on under a key pair, then under a rotated secret key;
// read with the keys it needs and refused, naming the key id, without them; every tampering
// refused as damage with nothing replayed; a file in the clear after encryption reported.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHead, encodeHead } from '../../src/segment/format.js';
import { SegmentWriter } from '../../src/segment/writer.js';
import { parseKeyFile } from '../../src/core/key-wrap.js';
import { archiveArgs, pgtape } from '../support/cli.js';
import { useSource } from '../support/fixture.js';
import { checksums } from '../support/oracle.js';
import { createHash } from 'node:crypto';
import type { BaseManifest } from '../../src/log/bases.js';
import { scratchDir } from '../support/scratch.js';

const SCHEMA = `
  create table salaries (id int primary key, who text not null, amount numeric);
  create table audit_notes (at timestamptz default now(), note text);
  alter table audit_notes replica identity full;
  insert into salaries select g, 'employee ' || g, 1000 + g from generate_series(1, 300) g;
`;

describe('an encrypted archive', () => {
  const source = useSource(SCHEMA);
  const { dir, remove: removeScratch } = scratchDir('pgtape-encryption-');
  const keys = { pub: join(dir, 'a.pub'), priv: join(dir, 'a.private'), secretB: join(dir, 'b.key'), other: join(dir, 'other.key') };
  const ids: Record<string, string> = {};
  const state: Record<string, Record<string, string>> = {};
  const store = () => source.store.dir;
  let db = 0;
  afterAll(removeScratch);

  const archiveNow = async (...more: string[]) => {
    const r = await pgtape([
      ...archiveArgs(source.db.url(), store(), '--create-publication', '--segment-bytes', '4kB'),
      '--until',
      'now',
      ...more,
    ]);
    expect(r.code, r.stderr).toBe(0);
  };
  const work = async (label: string) => {
    await source.admin.query(
      `update salaries set amount = amount + 1 where id % 7 = 0; insert into audit_notes (note) values ('${label}')`,
    );
    await source.admin.query(`select pg_logical_emit_message(true, 'pgtape', '${label}')`);
    state[label] = await checksums(source.admin);
  };
  /** Replays `target` from `at` into a new database with `args`; the database's checksums, or the failed run. */
  const replay = async (at: string, target: string, ...args: string[]) => {
    const name = `replayed_${db++}`;
    await source.admin.query(`create database ${name}`);
    const url = new URL(source.db.url());
    url.pathname = `/${name}`;
    const r = await pgtape(['replay', '--store', at, '--to', target, '--into', url.toString(), ...args]);
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      const tables = (await client.query(`select count(*)::int as n from pg_tables where schemaname = 'public'`)).rows[0].n as number;
      return { ...r, sums: r.code === 0 ? await checksums(client) : undefined, tables };
    } finally {
      await client.end();
      await source.admin.query(`drop database ${name}`);
    }
  };
  /** A copy of the store to damage. */
  const copy = () => {
    const to = mkdtempSync(join(dir, 'damaged-'));
    cpSync(store(), to, { recursive: true });
    return to;
  };
  const segmentFiles = (at: string) =>
    readdirSync(join(at, 'segments'))
      .filter((f) => f.endsWith('.pgtape'))
      .sort()
      .map((f) => join(at, 'segments', f));
  const encryptedSegments = (at: string) => segmentFiles(at).filter((f) => decodeHead(readFileSync(f), f).header.encryption);

  beforeAll(async () => {
    for (const [args, id] of [
      [['--public', keys.pub, '--private', keys.priv], 'a'],
      [['--secret', keys.secretB], 'b'],
      [['--secret', keys.other], 'other'],
    ] as const) {
      const r = await pgtape(['keygen', ...args]);
      expect(r.code, r.stderr).toBe(0);
      ids[id] = r.stdout.trim();
    }
    expect(parseKeyFile(readFileSync(keys.priv, 'utf8'), 'a').id).toBe(ids.a);
  });

  it('keygen never overwrites a key, and refuses half a request', async () => {
    const before = readFileSync(keys.secretB, 'utf8');
    const again = await pgtape(['keygen', '--secret', keys.secretB]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists already/);
    expect(readFileSync(keys.secretB, 'utf8')).toBe(before);
    const half = await pgtape(['keygen', '--public', join(dir, 'lonely.pub')]);
    expect(half.code).toBe(2);
    expect(existsSync(join(dir, 'lonely.pub'))).toBe(false);
  });

  it('archives in the clear, then under a key pair, then under a rotated secret key', async () => {
    await archiveNow();
    await work('clear');
    await archiveNow();
    // An archiver holding only the public key cannot keep bases fresh from what it stored.
    const refused = await pgtape([...archiveArgs(source.db.url(), store()), '--encrypt', keys.pub, '--base-after', '1MiB']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(new RegExp(`only the public key ${ids.a}`));
    await work('under-a');
    await archiveNow('--encrypt', keys.pub);
    const b = await pgtape(['base', '--source', source.db.url(), '--store', store(), '--encrypt', keys.pub]);
    expect(b.code, b.stderr).toBe(0);
    // Continuing in the clear is refused: it would downgrade the archive.
    const clear = await pgtape([...archiveArgs(source.db.url(), store()), '--until', 'now']);
    expect(clear.code).toBe(2);
    expect(clear.stderr).toMatch(new RegExp(`encrypted \\(its newest files are for key ${ids.a}\\)`));
    await work('under-b');
    await archiveNow('--encrypt', keys.secretB);
    const headers = segmentFiles(store()).map((f) => decodeHead(readFileSync(f), f).header.encryption?.dataKey.keyId);
    expect(headers).toContain(undefined);
    expect(headers).toContain(ids.a);
    expect(headers.at(-1)).toBe(ids.b);
  });

  it('replays every point with the keys it needs, and without them names the key id (exit 2), having replayed nothing', async () => {
    for (const label of ['clear', 'under-a', 'under-b']) {
      const r = await replay(store(), `name:${label}`, '--key-file', keys.priv, '--key-file', keys.secretB);
      expect(r.code, r.stderr).toBe(0);
      expect(r.sums).toEqual(state[label]);
    }
    // A point under the older key replays with it alone: the newer key's marks are not needed to find it.
    const older = await replay(store(), 'name:under-a', '--key-file', keys.priv);
    expect(older.code, older.stderr).toBe(0);
    expect(older.sums).toEqual(state['under-a']);
    // Only the older key: the newer files are named as needing the newer one.
    const old = await replay(store(), 'latest', '--key-file', keys.priv);
    expect(old.code).toBe(2);
    expect(old.stderr).toContain(ids.b);
    expect(old.tables).toBe(0);
    // The public half reads nothing; another key is not this one.
    for (const args of [['--key-file', keys.pub], ['--key-file', keys.other], []]) {
      const r = await replay(store(), 'name:under-a', ...args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(args[1] === keys.pub ? /public key, which reads nothing/ : new RegExp(ids.a!));
      expect(r.tables).toBe(0);
    }
  });

  it('log, diff and verify read with the keys; verify without them checks what it can and says what it did not', async () => {
    const both = ['--key-file', `${keys.priv},${keys.secretB}`];
    const log = await pgtape(['log', '--store', store(), '--rows', ...both]);
    expect(log.code, log.stderr).toBe(0);
    expect(log.stdout).toMatch(/mark "under-b"/);
    expect(log.stdout).toMatch(/public\.salaries/);
    const diff = await pgtape(['diff', '--store', store(), '--from', 'name:clear', '--to', 'name:under-b', '--summary', ...both]);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toMatch(/salaries/);
    const full = await pgtape(['verify', '--store', store(), ...both]);
    expect(full.code, full.stdout + full.stderr).toBe(0);
    expect(full.stdout).not.toMatch(/not given/);
    const keyless = await pgtape(['verify', '--store', store()]);
    expect(keyless.code, keyless.stdout + keyless.stderr).toBe(0);
    expect(keyless.stdout).toMatch(new RegExp(`encrypted for key ${ids.a}, not given: its size and checksum checked`));
    // Planning needs no key: what expire would remove is said from the clear parts.
    const expire = await pgtape(['expire', '--store', store(), '--keep-bases', '1']);
    expect(expire.code, expire.stderr).toBe(0);
    expect(expire.stdout + expire.stderr).toMatch(/would/);
    // A key pasted where its path goes is refused without being repeated; a config value of the wrong type too.
    const secret = readFileSync(keys.secretB, 'utf8').trim();
    const pasted = await pgtape(['log', '--store', store(), '--key-file', secret]);
    expect(pasted.code).toBe(2);
    expect(pasted.stderr).toMatch(/was given a key, or text, instead of a key file's path/);
    expect(pasted.stderr).not.toContain(secret.split(' ')[1]);
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ 'key-file': 5 }));
    const typed = await pgtape(['log', '--store', store(), '--config', config]);
    expect(typed.code, typed.stderr).toBe(2);
    const noKey = await pgtape(['log', '--store', store()]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(new RegExp(`encrypted for key (${ids.a}|${ids.b})`));
  });

  it('rekey wraps every file again for a new key: the old keys are then needed for nothing, index objects included', async () => {
    const at = copy();
    const index = await pgtape(['index', '--store', at, '--group', '2']);
    expect(index.code, index.stderr).toBe(0);
    const newKey = join(dir, 'c.key');
    expect((await pgtape(['keygen', '--secret', newKey])).code).toBe(0);
    // Only one of the two old keys: what it opens is rekeyed, the rest named (exit 2).
    const partial = await pgtape(['rekey', '--store', at, '--key-file', keys.priv, '--encrypt', newKey]);
    expect(partial.code, partial.stderr).toBe(2);
    expect(partial.stderr).toContain(ids.b);
    const rest = await pgtape(['rekey', '--store', at, '--key-file', keys.secretB, '--encrypt', newKey]);
    expect(rest.code, rest.stderr).toBe(0);
    expect(rest.stdout).toMatch(/rekeyed \d+ segments/);
    for (const label of ['clear', 'under-a', 'under-b']) {
      const r = await replay(at, `name:${label}`, '--key-file', newKey);
      expect(r.code, r.stderr).toBe(0);
      expect(r.sums).toEqual(state[label]);
    }
    const v = await pgtape(['verify', '--store', at, '--key-file', newKey]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).not.toMatch(/not given/);
    // A mistyped store is said as such, not "rekeyed 0 segments".
    const nothing = await pgtape(['rekey', '--store', join(dir, 'no-such-store'), '--key-file', newKey, '--encrypt', newKey]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/holds no archive/);
    expect(existsSync(join(dir, 'no-such-store'))).toBe(false);
    const again = await pgtape(['rekey', '--store', at, '--key-file', newKey, '--encrypt', newKey]);
    expect(again.stdout).toMatch(/rekeyed 0 segments, 0 bases and 0 index objects/);
    rmSync(at, { recursive: true, force: true });
  });

  it('refuses a changed byte, a forged checksum, a cut file, a file moved under another name and a swapped base file (exit 4), replaying nothing', async () => {
    const args = ['--key-file', `${keys.priv},${keys.secretB}`];
    const damage: [string, (at: string) => void][] = [
      [
        'a flipped bit',
        (at) => {
          const f = encryptedSegments(at).at(-1)!;
          const b = readFileSync(f);
          b[b.length - 20]! ^= 0x04;
          writeFileSync(f, b);
        },
      ],
      [
        'a changed chunk with its checksum forged',
        (at) => {
          const f = encryptedSegments(at).at(-1)!;
          const file = readFileSync(f);
          const { header, bodyOffset } = decodeHead(file, f);
          const body = Buffer.from(file.subarray(bodyOffset));
          body[body.length >> 1]! ^= 0x10;
          writeFileSync(f, Buffer.concat([encodeHead({ ...header, bodySha256: createHash('sha256').update(body).digest() }), body]));
        },
      ],
      [
        'a cut file',
        (at) => {
          const f = encryptedSegments(at).at(-1)!;
          writeFileSync(f, readFileSync(f).subarray(0, -40));
        },
      ],
      [
        "another segment's body under this one's header",
        (at) => {
          // The last segment (the one replaying latest reads) with the body of the one before it.
          const [b, a] = encryptedSegments(at).slice(-2);
          const fa = readFileSync(a!);
          const ha = decodeHead(fa, a!);
          const body = readFileSync(b!).subarray(decodeHead(readFileSync(b!), b!).bodyOffset);
          writeFileSync(
            a!,
            Buffer.concat([
              encodeHead({ ...ha.header, bodyBytes: body.length, bodySha256: createHash('sha256').update(body).digest() }),
              body,
            ]),
          );
        },
      ],
      [
        "an encrypted base's table file replaced by one in the clear, its key taken out of the manifest",
        (at) => {
          const [clear, sealed] = readdirSync(join(at, 'base')).sort();
          const manifestPath = join(at, 'base', sealed!, 'manifest.json');
          const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as BaseManifest;
          const bytes = readFileSync(join(at, 'base', clear!, manifest.tables[0]!.file));
          writeFileSync(join(at, 'base', sealed!, manifest.tables[0]!.file), bytes);
          const { key: _gone, ...entry } = manifest.tables[0]!;
          manifest.tables[0] = { ...entry, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length };
          writeFileSync(manifestPath, JSON.stringify(manifest));
        },
      ],
      [
        "a manifest's schema key that pgtape did not write",
        (at) => {
          const base = readdirSync(join(at, 'base')).sort().at(-1)!;
          const manifestPath = join(at, 'base', base, 'manifest.json');
          writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(readFileSync(manifestPath, 'utf8')), schemaKey: 'x' }));
        },
      ],
      [
        "an encrypted base's two table files swapped, their checksums forged",
        (at) => {
          const base = readdirSync(join(at, 'base')).sort().at(-1)!;
          const manifestPath = join(at, 'base', base, 'manifest.json');
          const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as BaseManifest;
          expect(manifest.schemaKey).toBeDefined();
          const [one, two] = manifest.tables.map((t) => readFileSync(join(at, 'base', base, t.file)));
          for (const [i, bytes] of [two!, one!].entries()) {
            writeFileSync(join(at, 'base', base, manifest.tables[i]!.file), bytes);
            manifest.tables[i] = { ...manifest.tables[i]!, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length };
          }
          writeFileSync(manifestPath, JSON.stringify(manifest));
        },
      ],
    ];
    for (const [what, harm] of damage) {
      const at = copy();
      harm(at);
      const r = await replay(at, 'latest', ...args);
      expect(r.code, `${what}: ${r.stderr}`).toBe(4);
      expect(r.stderr, what).toMatch(/damaged|does not|cannot/);
      expect(r.tables, what).toBe(0);
      const v = await pgtape(['verify', '--store', at, ...args]);
      expect(v.code, `${what}: ${v.stdout}`).toBe(4);
      rmSync(at, { recursive: true, force: true });
    }
  });

  it('a forged header (commit times an hour early) is named by verify; base without --encrypt is refused past a damaged newest segment', async () => {
    const at = copy();
    const f = encryptedSegments(at).at(-1)!;
    const file = readFileSync(f);
    const { header, bodyOffset } = decodeHead(file, f);
    const hour = 3_600_000_000n;
    writeFileSync(
      f,
      Buffer.concat([
        encodeHead({ ...header, firstCommitTime: header.firstCommitTime - hour, lastCommitTime: header.lastCommitTime - hour }),
        file.subarray(bodyOffset),
      ]),
    );
    const v = await pgtape(['verify', '--store', at, '--key-file', `${keys.priv},${keys.secretB}`]);
    expect(v.code, v.stdout).toBe(4);
    expect(v.stdout).toMatch(/its header disagrees with its body: commit times/);
    // The newest segment unreadable: the one before it says the archive is encrypted.
    writeFileSync(f, Buffer.from('not a segment'));
    const base = await pgtape(['base', '--source', source.db.url(), '--store', at]);
    expect(base.code, base.stderr).toBe(2);
    expect(base.stderr).toMatch(new RegExp(`is encrypted \\(its newest files are for key ${ids.a}\\)`));
    expect(readdirSync(join(at, 'base'))).toHaveLength(2);
    rmSync(at, { recursive: true, force: true });
  });

  it('verify reports a segment stored in the clear after the archive was encrypted (a downgrade), and replay still reads it', async () => {
    const at = copy();
    const last = segmentFiles(at).at(-1)!;
    const { header } = decodeHead(readFileSync(last), last);
    // A forged continuation in the clear: a transaction with a mark, right after the last segment.
    const spool = mkdtempSync(join(dir, 'spool-'));
    const identity = {
      systemIdentifier: header.systemIdentifier,
      database: header.database,
      slot: header.slot,
      serverVersion: header.serverVersion,
    };
    const writer = new SegmentWriter(spool, header.endLsn, identity, 'br', () => {
      throw new Error('no relation');
    });
    writer.begin(999_999, header.endLsn + 0x10n, header.lastCommitTime + 1n);
    writer.change({
      kind: 'message',
      prefix: 'pgtape',
      content: Buffer.from('in-the-clear'),
      lsn: header.endLsn + 0x8n,
      transactional: true,
    });
    writer.commit(header.endLsn + 0x10n, header.endLsn + 0x20n, header.lastCommitTime + 1n, 0);
    const sealed = await writer.seal();
    cpSync(sealed.path, join(at, sealed.key));
    const v = await pgtape(['verify', '--store', at, '--key-file', `${keys.priv},${keys.secretB}`]);
    expect(v.code, v.stdout + v.stderr).toBe(4);
    expect(v.stdout).toMatch(/DOWNGRADE +segments\/.*stored in the clear/);
    expect(v.stderr).toMatch(/stored in the clear after it was encrypted/);
    const r = await replay(at, 'name:in-the-clear', '--key-file', `${keys.priv},${keys.secretB}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.sums).toEqual(state['under-b']);
    rmSync(at, { recursive: true, force: true });
  });
});
