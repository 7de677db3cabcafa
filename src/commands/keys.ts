import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { ExitCode, UserError, errorMessage } from '../core/errors.js';
import { KMS_ASKED, newKeyPairFiles, newSecretKeyFile, parseKeyFile, readsWith, type WrappingKey } from '../core/key-wrap.js';
import { kmsKeyForWriting, kmsKeysForReading, storeWrappingKey } from '../log/kms-keys.js';
import { useKeys } from '../log/keys.js';
import type { Store } from '../store/store.js';
import { exitOnSignal } from '../core/interrupt.js';
import { rekeyArchive } from '../log/rekey.js';
import { indexArchive } from '../log/archive-index.js';
import { openStore } from '../store/open.js';
import { s3EndpointOption, storeOption } from './options.js';

// Keys on the command line (docs/ARCHITECTURE.md, "Encryption at rest"): writers take --encrypt,
// readers --key-file; `pgtape keygen` makes the files. Only paths pass through options and logs,
// never a key.

export const encryptOption = () =>
  new Option(
    '--encrypt <key-file>',
    'encrypt what is stored for this key: a secret key file, a public key file (then only its private half reads the archive), or kms:<KMS key id, ARN or alias>; pgtape keygen writes the files',
  );

const addPath = (value: string, previous: string[] | undefined) => [...(previous ?? []), ...value.split(',').filter(Boolean)];

export const keyFileOption = () =>
  new Option(
    '--key-file <file>',
    'a key to read an encrypted archive with (a secret key file, the private key file of a pair, or kms: to have AWS KMS decrypt the keys it wrapped); repeatable, for files under older keys',
  ).argParser(addPath);

/** `kms:<key>` (--encrypt) or `kms:` (--key-file): the KMS key named, '' for any. */
const kmsKeyOf = (value: string): string | undefined => (value.startsWith('kms:') ? value.slice(4) : undefined);

function readKeyFile(path: string, option: string): WrappingKey {
  // A key pasted where its file's path goes is never repeated (into a terminal's scrollback, a CI log).
  if (/^\s*pgtape-(secret|public|private)-key\b/.test(path) || /^[A-Za-z0-9_-]{43}$/.test(path.trim()))
    throw new UserError(
      `${option} was given a key, or text, instead of a key file's path`,
      'give the path of the file pgtape keygen wrote; keep the key itself out of commands and environment variables',
    );
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UserError(`${option} ${path} cannot be read: ${errorMessage(err)}`, 'give the path of a key file written by pgtape keygen');
  }
  return parseKeyFile(text, `${option} ${path}`);
}

/** --encrypt as given: a key file read, or a KMS key checked for its form (KMS is not asked). */
function parseEncrypt(opts: { encrypt?: unknown }): WrappingKey | { kmsKey: string } | undefined {
  if (opts.encrypt === undefined) return undefined;
  if (typeof opts.encrypt !== 'string' || opts.encrypt.trim() === '')
    throw new UserError('--encrypt takes the path of a key file, or kms:<key>', 'in a --config file: "encrypt": "./archive.pub"');
  const kmsKey = kmsKeyOf(opts.encrypt);
  if (kmsKey === undefined) return readKeyFile(opts.encrypt, '--encrypt');
  if (!/^[\x21-\x7e]{1,2048}$/.test(kmsKey))
    throw new UserError(
      `--encrypt kms: needs the KMS key after it, without spaces: ${JSON.stringify(opts.encrypt)}`,
      'for example --encrypt kms:alias/pgtape or --encrypt kms:arn:aws:kms:eu-west-1:111122223333:key/…',
    );
  return { kmsKey };
}

/** --key-file as given: the key files read, and whether KMS is to be asked (`kms:`). */
function parseKeyFiles(opts: { keyFile?: unknown }): { keys: WrappingKey[]; kms: boolean } {
  // From a flag or the environment a list of paths; from a config file whatever JSON it held.
  const given = opts.keyFile === undefined ? [] : typeof opts.keyFile === 'string' ? addPath(opts.keyFile, []) : opts.keyFile;
  if (!Array.isArray(given) || !given.every((p) => typeof p === 'string'))
    throw new UserError('--key-file takes paths of key files', 'in a --config file: "key-file": "./a.key" or ["./a.key", "./b.key"]');
  const paths = given.flatMap((p) => addPath(p, []));
  const named = paths.find((p) => kmsKeyOf(p));
  if (named)
    throw new UserError(
      `--key-file ${named}: give kms: alone`,
      "a reader has KMS decrypt every wrapping key the archive stored (keys/kms/), and KMS decides which this process may: the key's name is not needed",
    );
  const keys = paths.filter((p) => kmsKeyOf(p) === undefined).map((path) => readKeyFile(path, '--key-file'));
  for (const k of keys) {
    if (k.kind === 'public')
      throw new UserError(
        `--key-file: key ${k.id} is a public key, which reads nothing`,
        'give the private key file of the pair (pgtape keygen --private); the public one is for pgtape archive --encrypt',
      );
  }
  return { keys, kms: paths.length > keys.length };
}

/** Checks --encrypt and --key-file as given, asking KMS nothing (--print-config prints only what would run). */
export function checkKeyOptions(opts: { encrypt?: unknown; keyFile?: unknown }): void {
  parseEncrypt(opts);
  parseKeyFiles(opts);
}

/**
 * The key new files are encrypted for (--encrypt), if any. A KMS key is asked for its wrapping
 * key here; a new one is stored by the writer once its checks pass (storeWrappingKey).
 */
export async function encryptionKey(
  opts: { encrypt?: unknown },
  store: Store,
  /** What will read the archive with it (a KMS key this process may not decrypt is then refused). */
  mustRead?: string,
): Promise<WrappingKey | undefined> {
  const given = parseEncrypt(opts);
  return given && 'kmsKey' in given ? kmsKeyForWriting(store, given.kmsKey, mustRead) : given;
}

/**
 * Gives the store the keys its encrypted files are read with: every --key-file (`kms:` asks KMS
 * for the wrapping keys stored under keys/kms/), and the --encrypt key when it can read (a secret
 * key, a private key file, a KMS key this process may decrypt). Returns them.
 */
export async function useKeyFiles(store: Store, opts: { keyFile?: unknown }, encryptFor?: WrappingKey): Promise<WrappingKey[]> {
  const { keys, kms } = parseKeyFiles(opts);
  if (kms) {
    const fromKms = await kmsKeysForReading(store);
    keys.push(...fromKms.filter((k) => !keys.some((held) => held.id === k.id)), KMS_ASKED);
  }
  if (encryptFor && readsWith(encryptFor)) keys.unshift(encryptFor);
  useKeys(store, keys);
  return keys.filter((k) => k !== KMS_ASKED);
}

/** Writes a new file, never over one: a key overwritten is every file encrypted for it lost. */
function writeNew(path: string, text: string, mode: number): void {
  try {
    writeFileSync(path, text, { flag: 'wx', mode });
  } catch (err) {
    const exists = (err as NodeJS.ErrnoException).code === 'EEXIST';
    throw new UserError(
      `${path} ${exists ? 'exists already' : `cannot be written: ${errorMessage(err)}`}`,
      exists ? 'pgtape keygen never overwrites a key: choose another path' : 'choose a path in a writable directory',
      ExitCode.BAD_INPUT,
    );
  }
}

export function keygenCommand(): Command {
  return new Command('keygen')
    .description("write a new key for pgtape archive --encrypt and the readers' --key-file: a secret key, or a key pair")
    .option('--secret <file>', 'write a secret key (32 random bytes): the archiver and every reader hold the same file')
    .option(
      '--public <file>',
      'with --private: write a key pair; the archiver holds only this public half and cannot read back what it stored',
    )
    .option('--private <file>', 'with --public: where the private half goes (replay, log, diff, verify read with it)')
    .addHelpText(
      'after',
      '\nPrints the key id (every encrypted file names the id of the key it needs). Keep a copy of each key\n' +
        'out of the store: without it, what was encrypted for it cannot be read.\n' +
        '\nExamples:\n  pgtape keygen --secret ./archive.key\n  pgtape keygen --public ./archive.pub --private ./archive.private',
    )
    .action((opts: { secret?: string; public?: string; private?: string }) => {
      const pair = opts.public !== undefined || opts.private !== undefined;
      if (pair === (opts.secret !== undefined) || (pair && (opts.public === undefined || opts.private === undefined)))
        throw new UserError(
          'pgtape keygen writes either --secret <file>, or --public <file> with --private <file>',
          'for example: pgtape keygen --secret ./archive.key',
        );
      if (pair && resolve(opts.public!) === resolve(opts.private!))
        throw new UserError('--public and --private name the same file', 'give two paths');
      if (opts.secret !== undefined) {
        const text = newSecretKeyFile();
        writeNew(opts.secret, text, 0o600);
        process.stdout.write(`${parseKeyFile(text, 'new key').id}\n`);
        return;
      }
      const { publicFile, privateFile } = newKeyPairFiles();
      writeNew(opts.private!, privateFile, 0o600);
      try {
        writeNew(opts.public!, publicFile, 0o644);
      } catch (err) {
        rmSync(opts.private!, { force: true }); // half a pair is no key
        throw err;
      }
      process.stdout.write(`${parseKeyFile(publicFile, 'new key').id}\n`);
    });
}

export function rekeyCommand(): Command {
  return new Command('rekey')
    .description(
      'wrap the data keys of every encrypted file again for a new key, so that the old one can be retired; bodies are not re-encrypted',
    )
    .addOption(storeOption())
    .addOption(s3EndpointOption())
    .addOption(keyFileOption())
    .addOption(encryptOption())
    .addHelpText(
      'after',
      '\nGive the keys the files are under now with --key-file, and the new one with --encrypt (its public half is enough).\n' +
        'Segment headers, base manifests and index objects are rewritten, each atomically: an interrupted rekey leaves every\n' +
        'file readable with the old key or the new one; run it again to finish. Point the archiver at the new key first\n' +
        '(pgtape archive --encrypt), or what it writes meanwhile stays under the old one. On Pachyderm the rewrite is a new commit.\n' +
        '\nExample:\n  pgtape rekey --store ./tape --key-file ./old.private --encrypt ./new.pub',
    )
    .action(async (opts) => {
      exitOnSignal();
      if (opts.encrypt === undefined)
        throw new UserError(
          'rekey needs the new key: --encrypt <key-file>',
          'for example: pgtape rekey --store ./tape --key-file ./old.key --encrypt ./new.key',
        );
      checkKeyOptions(opts);
      const store = openStore(opts.store, { s3Endpoint: opts.s3Endpoint });
      // A store that holds no archive (a mistyped --store) is said as such, not "rekeyed 0 segments".
      await indexArchive(store, { requireBase: false });
      const keys = await useKeyFiles(store, opts);
      if (!keys.length)
        throw new UserError(
          'rekey needs the keys the files are under now: --key-file <file> (repeatable)',
          'give the secret key file, or the private key file of the pair, or kms:',
        );
      await store.checkWritable();
      const to = (await encryptionKey(opts, store))!;
      await storeWrappingKey(store, to);
      const result = await rekeyArchive(store, to, (key) => process.stdout.write(`rekeyed ${key}\n`));
      const { segments, bases, indexObjects } = result.rewritten;
      process.stdout.write(
        `rekeyed ${segments} segments, ${bases} bases and ${indexObjects} index objects for key ${to.id}; ${result.already} encrypted files were under it already\n`,
      );
      if (result.missing.length)
        throw new UserError(
          `some files are under keys not given (${result.missing
            .map((id) => {
              // A KMS key that was asked for and refused says why.
              const refused = keys.find((k) => k.id === id && k.kms?.unavailable)?.kms?.unavailable;
              return refused ? `${id}: ${refused}` : id;
            })
            .join(', ')}): they were left as they are`,
          'run pgtape rekey again with their key files (--key-file); pgtape verify --key-file with the new key alone names them',
        );
    });
}
