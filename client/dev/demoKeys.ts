// The dev stack's keys: an OpenPGP key pair, whose public half is what the backup worker gets
// and whose private half stays in its own keyring, standing in for the restore host's key; and
// an Ed25519 signing key pair, whose private half signs manifests on the backup host and whose
// public half lets the restore host trust them.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCommand } from '../../engine/exec.js';
import { keyIdOf } from '../../engine/manifestSignature.js';

export interface KeyPair {
  publicKeyFile: string;
  /** GNUPGHOME holding the private key (for restores and checks). */
  privateHome: string;
  fingerprint: string;
  /** The manifest signing key pair (signing.privateKeyFile, signing.publicKeyFiles). */
  signing: SigningKeyPair;
}

export interface SigningKeyPair {
  /** PEM PKCS#8 Ed25519 private key, 0600. */
  privateKeyFile: string;
  /** PEM SPKI public key. */
  publicKeyFile: string;
  keyId: string;
}

/** An Ed25519 signing key pair in dir (made once; kept on later calls). */
export function ensureSigningKeyPair(dir: string, name = 'signing'): SigningKeyPair {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const privateKeyFile = path.join(dir, `${name}-private.pem`);
  const publicKeyFile = path.join(dir, `${name}-public.pem`);
  if (!existsSync(privateKeyFile)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    // wx: two callers racing never overwrite each other's key.
    try {
      writeFileSync(privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const publicKey = createPublicKey(readFileSync(privateKeyFile, 'utf8'));
  if (!existsSync(publicKeyFile)) writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
  return { privateKeyFile, publicKeyFile, keyId: keyIdOf(publicKey) };
}

/**
 * The key pair in `dir`, made when missing. With `passphraseFile`, a new private key is
 * protected by the passphrase in that file (read by gpg: never on its command line).
 */
export async function ensureKeyPair(dir: string, uid = 'backupctl dev <backupctl-dev@localhost.invalid>', passphraseFile?: string): Promise<KeyPair> {
  const privateHome = path.join(dir, 'private-gnupg');
  const publicKeyFile = path.join(dir, 'backup-public.asc');
  mkdirSync(privateHome, { recursive: true, mode: 0o700 });
  const gpg = (args: string[]) => runCommand('gpg', ['--homedir', privateHome, '--batch', '--no-tty', ...args]);
  let fingerprint = fingerprintOf((await gpg(['--with-colons', '--list-secret-keys']).catch(() => ({ stdout: '' }))).stdout);
  if (!fingerprint) {
    const protection = passphraseFile ? ['--pinentry-mode', 'loopback', '--passphrase-file', passphraseFile] : ['--passphrase', ''];
    await gpg([...protection, '--quick-gen-key', uid, 'ed25519', 'sign', 'never']);
    fingerprint = fingerprintOf((await gpg(['--with-colons', '--list-secret-keys'])).stdout)!;
    await gpg([...protection, '--quick-add-key', fingerprint, 'cv25519', 'encr', 'never']);
  }
  if (!existsSync(publicKeyFile)) await gpg(['--armor', '--output', publicKeyFile, '--export', fingerprint]);
  return { publicKeyFile, privateHome, fingerprint, signing: ensureSigningKeyPair(dir) };
}

function fingerprintOf(colons: string): string | undefined {
  const lines = colons.split('\n');
  const sec = lines.findIndex((l) => l.startsWith('sec:'));
  if (sec < 0) return undefined;
  return lines.slice(sec + 1).find((l) => l.startsWith('fpr:'))?.split(':')[9];
}
