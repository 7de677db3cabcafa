import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.js';
import { newKeyPairFiles, newSecretKeyFile, parseKeyFile, unwrapDataKey, wrapDataKey } from '../../src/core/key-wrap.js';

const context = Buffer.from('segments/0000000000001000-0000000000002000.pgtape');

describe('key wrapping', () => {
  it('wraps a data key with a secret key, and only that key (by its id) unwraps it', () => {
    const key = parseKeyFile(newSecretKeyFile(), 'k1');
    const other = parseKeyFile(newSecretKeyFile(), 'k2');
    expect(key.id).toMatch(/^[0-9a-f]{16}$/);
    expect(key.id).not.toBe(other.id);
    const dataKey = randomBytes(32);
    const w = wrapDataKey(key, dataKey, context);
    expect(w).toMatchObject({ mode: 'secret', keyId: key.id });
    expect(unwrapDataKey([other, key], w, context, 'the file')).toEqual(dataKey);
    expect(() => unwrapDataKey([other], w, context, 'the file')).toThrow(
      new RegExp(`encrypted for key ${key.id}, and no key given has that id`),
    );
  });

  it('with a key pair, the public half wraps and cannot unwrap; the private half unwraps', () => {
    const { publicFile, privateFile } = newKeyPairFiles();
    const pub = parseKeyFile(publicFile, 'public');
    const priv = parseKeyFile(privateFile, 'private');
    expect(pub.id).toBe(priv.id);
    const dataKey = randomBytes(32);
    const w = wrapDataKey(pub, dataKey, context);
    expect(w.mode).toBe('x25519');
    // Each wrap has its own ephemeral key: the same data key wraps differently every time.
    expect(wrapDataKey(pub, dataKey, context).wrapped.equals(w.wrapped)).toBe(false);
    const refused = (() => {
      try {
        unwrapDataKey([pub], w, context, 'the file');
      } catch (err) {
        return err;
      }
    })();
    expect(refused).toBeInstanceOf(UserError);
    expect((refused as UserError).message).toMatch(/only its public half was given/);
    expect(unwrapDataKey([pub, priv], w, context, 'the file')).toEqual(dataKey);
  });

  it('refuses a wrapped key moved to another file, or changed in any byte', () => {
    for (const key of [parseKeyFile(newSecretKeyFile(), 'k'), parseKeyFile(newKeyPairFiles().privateFile, 'k')]) {
      const w = wrapDataKey(key, randomBytes(32), context);
      expect(() => unwrapDataKey([key], w, Buffer.from('segments/other.pgtape'), 'the file')).toThrow(/does not open with key/);
      for (let i = 0; i < w.wrapped.length; i += 7) {
        const changed = Buffer.from(w.wrapped);
        changed[i]! ^= 0x80;
        expect(() => unwrapDataKey([key], { ...w, wrapped: changed }, context, 'the file')).toThrow(UserError);
      }
      expect(() => unwrapDataKey([key], { ...w, wrapped: w.wrapped.subarray(0, 10) }, context, 'the file')).toThrow(UserError);
    }
  });

  it('refuses files that are no key files, saying what is wrong', () => {
    const pair = newKeyPairFiles();
    const [, d] = pair.privateFile.trim().split(' ');
    const otherPublic = newKeyPairFiles().publicFile.trim().split(' ')[1];
    for (const [text, why] of [
      ['', /does not begin with pgtape-secret-key/],
      ['hello world', /does not begin with/],
      ['pgtape-secret-key abc', /not 32 bytes/],
      [`pgtape-secret-key ${randomBytes(32).toString('base64url')} extra`, /more than one key/],
      [`pgtape-private-key ${d} ${otherPublic}`, /not one pair/],
    ] as const) {
      expect(() => parseKeyFile(text, 'keys/k')).toThrow(why);
    }
    // A bare key (its kind left out) is refused without being repeated in the message.
    const bare = randomBytes(32).toString('base64url');
    expect(() => parseKeyFile(bare, 'keys/k')).toThrow(/does not begin with/);
    expect(() => parseKeyFile(bare, 'keys/k')).not.toThrow(new RegExp(bare.slice(0, 10)));
  });
});
