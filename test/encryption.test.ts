// The public key check: backup hosts encrypt to a public key they can prove usable, and
// refuse a private key, a non-key, an expired key, or a missing file, each by name.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { loadRecipient, stopAgent } from '../engine/encryption.js';
import { runCommand } from '../engine/exec.js';
import { ensureKeyPair, type KeyPair } from '../client/dev/demoKeys.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-gpg-test-'));
let keys: KeyPair;

beforeAll(async () => {
  keys = await ensureKeyPair(path.join(dir, 'good'));
});

afterAll(async () => {
  await stopAgent(keys.privateHome);
  for (const home of signOnlyHomes) await stopAgent(home);
  rmSync(dir, { recursive: true, force: true });
});

const signOnlyHomes: string[] = [];

async function failureOf(file: string): Promise<ApplicationFailure> {
  try {
    await loadRecipient(file);
  } catch (err) {
    return err as ApplicationFailure;
  }
  throw new Error('expected loadRecipient to fail');
}

test('a public key that can encrypt gives its fingerprint, in a keyring of its own', async () => {
  const recipient = await loadRecipient(keys.publicKeyFile);
  expect(recipient.fingerprint).toBe(keys.fingerprint);
  const listed = await runCommand('gpg', ['--homedir', recipient.homeDir, '--batch', '--list-secret-keys', '--with-colons']);
  expect(listed.stdout).not.toContain('sec:');
  await recipient.dispose();
});

test('a missing file is PublicKeyMissing', async () => {
  const err = await failureOf(path.join(dir, 'nope.asc'));
  expect(err.type).toBe('PublicKeyMissing');
  expect(err.nonRetryable).toBe(true);
  expect(err.message).toContain('nope.asc');
});

test('a file that is no key is InvalidPublicKey', async () => {
  const file = path.join(dir, 'garbage.asc');
  writeFileSync(file, '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n-----END PGP PUBLIC KEY BLOCK-----\n');
  const err = await failureOf(file);
  expect(err.type).toBe('InvalidPublicKey');
  expect(err.nonRetryable).toBe(true);
});

test('a private key is refused: backup hosts hold only public keys', async () => {
  const file = path.join(dir, 'private.asc');
  await runCommand('gpg', ['--homedir', keys.privateHome, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--armor', '--output', file, '--export-secret-keys', keys.fingerprint]);
  const err = await failureOf(file);
  expect(err.type).toBe('InvalidPublicKey');
  expect(err.message).toMatch(/PRIVATE key/);
});

test('a key that can only sign is InvalidPublicKey', async () => {
  const home = mkdtempSync(path.join(dir, 'signonly-'));
  signOnlyHomes.push(home);
  const gpg = (args: string[]) => runCommand('gpg', ['--homedir', home, '--batch', '--passphrase', '', ...args]);
  await gpg(['--quick-gen-key', 'sign only <s@example.invalid>', 'ed25519', 'sign', 'never']);
  const file = path.join(dir, 'signonly.asc');
  await gpg(['--armor', '--output', file, '--export']);
  const err = await failureOf(file);
  expect(err.type).toBe('InvalidPublicKey');
  expect(err.message).toMatch(/no valid key that can encrypt/);
});
