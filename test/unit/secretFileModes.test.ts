// A file that holds a secret (the database password, the signing key, the private key's
// passphrase) readable by every local account is refused, with an error that names the field,
// the file, its mode and the chmod that fixes it (docs/SECURITY.md, "File modes").
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { loadSigner } from '../../engine/manifestSignature.js';
import { parseDatabaseUrl } from '../../engine/postgres.js';
import { assertSecretFileMode } from '../../engine/secretFiles.js';
import { validateConfig } from '../../common/config.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-modes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string, mode: number): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
}

test('a password file readable by others is refused, naming the file, its mode and the fix; 0600 is taken', () => {
  const open = file('password-open', 'hunter2\n', 0o644);
  expect(() => parseDatabaseUrl('postgres://app@db/app', open)).toThrow(expect.objectContaining({ type: 'InvalidConfig', nonRetryable: true }));
  expect(() => parseDatabaseUrl('postgres://app@db/app', open)).toThrow(new RegExp(`${open}.*every local account.*mode 0644.*chmod 600`));
  const closed = file('password-closed', 'hunter2\n', 0o600);
  expect(parseDatabaseUrl('postgres://app@db/app', closed).password).toBe('hunter2');
});

test('group access is refused for a file owned by another user, allowed read-only (0640) for one owned by root', () => {
  const groupReadable = file('group-readable', 'x', 0o640);
  const groupWritable = file('group-writable', 'x', 0o660);
  const ownedByRoot = process.getuid?.() === 0;
  if (ownedByRoot) expect(() => assertSecretFileMode('f', groupReadable)).not.toThrow();
  else expect(() => assertSecretFileMode('f', groupReadable)).toThrow(/its group/);
  expect(() => assertSecretFileMode('f', groupWritable)).toThrow(/written by its group.*mode 0660/);
});

test('a signing key readable by others is refused before it is read', async () => {
  const key = file('signing.pem', generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o644);
  const config = validateConfig(
    {
      host: 'modes',
      temporal: { address: '127.0.0.1:7233', namespace: 'default' },
      database: { url: 'postgres://app@db/app' },
      repositories: { local: { type: 'filesystem', path: path.join(dir, 'local') } },
      encryption: { publicKeyFile: '/nonexistent/key.asc' },
      signing: { privateKeyFile: key },
    },
    'test config',
  );
  await expect(loadSigner(config)).rejects.toMatchObject({ type: 'InvalidConfig', message: expect.stringMatching(/signing\.privateKeyFile .*mode 0644.*chmod 600/) });
  chmodSync(key, 0o600);
  await expect(loadSigner(config)).resolves.toBeDefined();
});

test('a container secret mount (/run/secrets/, often 0444) is exempt: it is visible inside its container only', () => {
  expect(() => assertSecretFileMode('database.passwordFile', '/run/secrets/pgpassword')).not.toThrow();
  expect(() => assertSecretFileMode('database.passwordFile', '/var/run/secrets/db/password')).not.toThrow();
});
