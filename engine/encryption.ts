// OpenPGP encryption with gpg, to a public key only: backup hosts never hold the private key,
// so a stolen backup host cannot read its own backups.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, rm, access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ErrorType } from '../common/types.js';
import { permanent } from './errors.js';
import { runCommand, spawnStreaming, type StreamingProcess } from './exec.js';
import { ownedTempPrefix } from './tempDirs.js';
import { assertSecretFileMode } from './secretFiles.js';

export interface Recipient {
  fingerprint: string;
  /** A private keyring holding only this public key, removed by dispose(). */
  homeDir: string;
  dispose(): Promise<void>;
}

/**
 * Imports the public key file into a throw-away keyring and checks it can encrypt.
 * Permanent failures: PublicKeyMissing (no such file), InvalidPublicKey (not a key, expired,
 * revoked, no encryption subkey, or a private key where only a public one belongs).
 */
export async function loadRecipient(publicKeyFile: string): Promise<Recipient> {
  try {
    await access(publicKeyFile);
  } catch {
    throw permanent(ErrorType.PublicKeyMissing, `encryption.publicKeyFile ${publicKeyFile} does not exist or cannot be read`);
  }
  // Named with our process id: a worker started after this one died removes it (tempDirs.ts).
  // The keyring is one folder below it: gpg makes its home folder again when it is missing (a
  // gpg still starting when a signal handler removed it: seen in CI), but never its parent.
  const owned = await mkdtemp(path.join(os.tmpdir(), ownedTempPrefix('gpg')));
  const homeDir = path.join(owned, 'home');
  const dispose = async () => {
    await stopAgent(homeDir);
    await rm(owned, { recursive: true, force: true });
  };
  try {
    await mkdir(homeDir, { mode: 0o700 });
    // Public keys need no agent; --no-autostart keeps one from outliving the keyring.
    const gpg = (args: string[]) => runCommand('gpg', ['--homedir', homeDir, '--batch', '--no-tty', '--no-autostart', ...args]);
    await assertOnePublicKey(gpg, publicKeyFile);
    try {
      await gpg(['--import', publicKeyFile]);
    } catch (err) {
      // Without an agent gpg cannot store a secret key, so a private key fails right here.
      if (/secret keys? read/i.test(gpgReason(err))) throw privateKeyRefused(publicKeyFile);
      throw permanent(ErrorType.InvalidPublicKey, `encryption.publicKeyFile ${publicKeyFile} is not an OpenPGP key: ${gpgReason(err)}`);
    }
    const secret = await gpg(['--with-colons', '--list-secret-keys']).catch(() => ({ stdout: '' }));
    if (secret.stdout.includes('sec:')) throw privateKeyRefused(publicKeyFile);
    const { stdout } = await gpg(['--with-colons', '--fixed-list-mode', '--list-keys']);
    const fingerprint = usableEncryptionKey(stdout);
    if (!fingerprint) {
      throw permanent(
        ErrorType.InvalidPublicKey,
        `encryption.publicKeyFile ${publicKeyFile} has no valid key that can encrypt (expired, revoked, or without an encryption subkey)`,
      );
    }
    return { fingerprint, homeDir, dispose };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** gpg reading plaintext on stdin and writing an OpenPGP message to stdout. */
export function spawnEncryptor(recipient: Recipient, signal: AbortSignal): StreamingProcess {
  const [file, ...args] = encryptorCommand(recipient);
  return spawnStreaming(file, args, { stdin: 'pipe', signal });
}

/** gpg encrypting stdin to the recipient, to stdout. */
export function encryptorCommand(recipient: Recipient): string[] {
  return [
    'gpg',
    '--homedir', recipient.homeDir, '--batch', '--no-tty', '--quiet', '--no-autostart',
    '--trust-model', 'always',
    // The input is already compressed; compressing again costs time and gains nothing.
    '--compress-algo', 'none',
    '--recipient', recipient.fingerprint,
    '--encrypt',
  ];
}

/**
 * The primary key's fingerprint when the key can encrypt. On a `pub` record, gpg lists in
 * upper case what the whole key can still do, counting only valid subkeys: 'E' means some
 * unexpired, unrevoked subkey encrypts.
 */
function usableEncryptionKey(colons: string): string | undefined {
  const lines = colons.split('\n').map((line) => line.split(':'));
  for (let i = 0; i < lines.length; i++) {
    const [record, validity, , , , , , , , , , capabilities = ''] = lines[i];
    if (record !== 'pub' || ['e', 'r', 'i', 'd', 'n'].includes(validity) || !capabilities.includes('E')) continue;
    const fpr = lines.slice(i + 1).find((fields) => fields[0] === 'fpr');
    if (fpr?.[9]) return fpr[9];
  }
  return undefined;
}

/**
 * The file must hold exactly one key, and no secret key: with two, gpg would encrypt to the
 * first and nobody would notice which one that was. Read with --show-keys, which imports nothing.
 */
async function assertOnePublicKey(gpg: (args: string[]) => Promise<{ stdout: string }>, file: string): Promise<void> {
  const shown = await gpg(['--with-colons', '--show-keys', file]).catch((err) => {
    if (/secret keys? read/i.test(gpgReason(err))) throw privateKeyRefused(file);
    throw permanent(ErrorType.InvalidPublicKey, `encryption.publicKeyFile ${file} is not an OpenPGP key: ${gpgReason(err)}`);
  });
  const keys = primaryKeys(shown.stdout);
  const secret = keys.filter((k) => k.secret).map((k) => k.fingerprint);
  if (secret.length) throw privateKeyRefused(file, secret);
  if (keys.length > 1) {
    throw permanent(
      ErrorType.InvalidPublicKey,
      `encryption.publicKeyFile ${file} holds ${keys.length} keys (${keys.map((k) => k.fingerprint).join(', ')}): it must hold exactly one, the key backups are encrypted to`,
    );
  }
}

/** Primary keys of a --with-colons listing: each pub or sec record and the fingerprint that follows it. */
function primaryKeys(colons: string): { fingerprint: string; secret: boolean }[] {
  const lines = colons.split('\n').map((line) => line.split(':'));
  const keys: { fingerprint: string; secret: boolean }[] = [];
  lines.forEach((fields, i) => {
    if (fields[0] !== 'pub' && fields[0] !== 'sec') return;
    const fpr = lines.slice(i + 1).find((next) => next[0] === 'fpr');
    keys.push({ fingerprint: fpr?.[9] || fields[4] || '(unknown)', secret: fields[0] === 'sec' });
  });
  return keys;
}

function privateKeyRefused(file: string, fingerprints: string[] = []) {
  const which = fingerprints.length ? ` (${fingerprints.join(', ')})` : '';
  return permanent(ErrorType.InvalidPublicKey, `encryption.publicKeyFile ${file} holds a PRIVATE key${which}: give the backup host only the public key (gpg --export)`);
}


/** Stops a gpg-agent that a keyring's gpg may have started; harmless when there is none. */
export async function stopAgent(homeDir: string): Promise<void> {
  await runCommand('gpgconf', ['--homedir', homeDir, '--kill', 'gpg-agent']).catch(() => undefined);
}

function gpgReason(err: unknown): string {
  const stderr = (err as { stderr?: string }).stderr ?? String(err);
  return stderr.split('\n').filter((l) => l.trim()).slice(-2).join(' | ') || 'gpg rejected it';
}

/** Where the private key of a restoring host is, and what unlocks it. */
export interface PrivateKey {
  /** GNUPGHOME holding the private key. */
  home: string;
  /** File holding the key's passphrase; none for a key without one. */
  passphraseFile: string | undefined;
}

/**
 * gpg arguments that unlock the private key: never a pinentry (a daemon has nobody to ask,
 * and a graphical one would wait for ever), and the passphrase read by gpg from its file, so
 * the passphrase itself is never in any process's argv or environment (the path is).
 */
export function unlockArgs(key: Pick<PrivateKey, 'passphraseFile'>): string[] {
  return ['--pinentry-mode', 'loopback', ...(key.passphraseFile ? ['--passphrase-file', key.passphraseFile] : [])];
}

/** The key gpg says the object was encrypted to ("encrypted with ... key, ID 146B1C291DCA1523"). */
export function gpgKeyOf(stderr: string): string {
  const id = /\bID ([0-9A-F]{16})\b/.exec(stderr)?.[1];
  return id ? `with subkey ID ${id}` : '(unnamed by gpg)';
}

/** gpg's words for a private key that is there but stays locked. */
export const LOCKED_KEY = /Bad passphrase|No passphrase given|can't get input/i;

/**
 * Proves the private keyring can decrypt what was encrypted to `fingerprint` (the primary
 * key's), before any byte is fetched: the key is there, and it unlocks (a probe encrypted to it
 * decrypts). Permanent: PrivateKeyMissing (no keyring, no secret key, or the secret key of
 * another key pair), PassphraseWrong (a passphrase file that cannot be read or does not unlock
 * the key, or a protected key without one).
 */
export async function assertPrivateKeyFor(
  encryption: { privateKeyHome?: string; passphraseFile?: string },
  fingerprint: string,
  host: string,
): Promise<void> {
  const { privateKeyHome, passphraseFile } = encryption;
  if (!privateKeyHome) {
    throw permanent(ErrorType.PrivateKeyMissing, `host ${host} has no encryption.privateKeyHome: only a host holding the private key can restore`);
  }
  const listed = await runCommand('gpg', ['--homedir', privateKeyHome, '--batch', '--no-tty', '--with-colons', '--fixed-list-mode', '--list-secret-keys']).catch(
    (err) => {
      throw permanent(ErrorType.PrivateKeyMissing, `encryption.privateKeyHome ${privateKeyHome} cannot be read by gpg: ${gpgReason(err)}`);
    },
  );
  const fingerprints = listed.stdout
    .split('\n')
    .filter((line) => line.startsWith('fpr:'))
    .map((line) => line.split(':')[9]);
  if (!listed.stdout.includes('sec:')) {
    throw permanent(ErrorType.PrivateKeyMissing, `encryption.privateKeyHome ${privateKeyHome} holds no private key (the backup was encrypted to ${fingerprint})`);
  }
  if (!fingerprints.includes(fingerprint)) {
    throw permanent(
      ErrorType.PrivateKeyMissing,
      `encryption.privateKeyHome ${privateKeyHome} holds the private key of ${fingerprints[0]}, but the backup was encrypted to ${fingerprint}: wrong key`,
    );
  }
  await assertUnlocks({ home: privateKeyHome, passphraseFile }, fingerprint);
}

async function assertUnlocks(key: PrivateKey, fingerprint: string): Promise<void> {
  if (key.passphraseFile) {
    assertSecretFileMode('encryption.passphraseFile', key.passphraseFile);
    try {
      await access(key.passphraseFile, constants.R_OK);
    } catch (err) {
      throw permanent(
        ErrorType.PassphraseWrong,
        `encryption.passphraseFile ${key.passphraseFile} cannot be read (${(err as NodeJS.ErrnoException).code}): it unlocks the private key ${fingerprint}`,
      );
    }
  }
  const gpg = (args: string[], input: string) => runCommand('gpg', ['--homedir', key.home, '--batch', '--no-tty', ...args], { input });
  // A key that can no longer encrypt (an expired subkey) may still decrypt old backups: then
  // there is no probe, and the decryption itself will tell.
  const probe = await gpg(['--trust-model', 'always', '--armor', '--recipient', fingerprint, '--encrypt'], randomBytes(16).toString('hex')).catch(() => undefined);
  if (!probe) return;
  try {
    await gpg([...unlockArgs(key), '--decrypt'], probe.stdout);
  } catch (err) {
    throw lockedKeyFailure(key, fingerprint, gpgReason(err));
  }
}

/** The failure for a private key that did not decrypt: a passphrase problem, or no usable key. */
export function lockedKeyFailure(key: Pick<PrivateKey, 'home' | 'passphraseFile'>, which: string, reason: string) {
  if (!LOCKED_KEY.test(reason)) {
    return permanent(ErrorType.PrivateKeyMissing, `encryption.privateKeyHome ${key.home}: the private key ${which} cannot decrypt: ${reason}`);
  }
  return permanent(
    ErrorType.PassphraseWrong,
    key.passphraseFile
      ? `encryption.passphraseFile ${key.passphraseFile} does not unlock the private key ${which} in ${key.home}: wrong passphrase`
      : `the private key ${which} in ${key.home} is protected by a passphrase: set encryption.passphraseFile to a file holding it`,
  );
}
