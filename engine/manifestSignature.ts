// Authenticity of backups. Anyone who can write to a repository can encrypt to the (public)
// encryption key, so encryption proves nothing about who made a backup. The backup host
// therefore signs every manifest with a key of its own; a manifest names each object's size
// and sha256, so the signature binds the objects too, and the hosts that restore trust only
// manifests that verify under a configured public key.
//
// Ed25519 through node:crypto rather than gpg: a signature is one in-process call (listing the
// catalog verifies hundreds of manifests; gpg would start a process and a keyring for each),
// needs no agent or keyring home, and is deterministic, so a retried publish writes the same
// bytes and the fenced, create-if-absent publish (backupClaim.ts) stays as it was.
//
// The signature is embedded in the manifest (`signature`), so a manifest and its signature
// appear together in one atomic create: no window in which one is there without the other,
// nothing more to publish, take back or sweep. It covers `backupctl-manifest-v1\n` followed by
// JSON.stringify of the manifest as parsed, without the `signature` field: exactly the object
// every reader goes on to use, whatever whitespace the stored file has.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { ErrorType, type ManifestSignature, type SignatureVerdict } from '../common/types.js';
import type { Config } from '../common/config.js';
import { permanent } from './errors.js';
import { assertSecretFileMode } from './secretFiles.js';

const DOMAIN = 'backupctl-manifest-v1\n';

export interface Signer {
  keyId: string;
  privateKey: KeyObject;
}

export interface TrustedKey {
  keyId: string;
  publicKey: KeyObject;
  /** Where it was configured, for messages. */
  file: string;
}

/** The signing public keys a host trusts, and what to tell an operator when none fits. */
export interface Verifier {
  keys: TrustedKey[];
  host: string;
}

/** Signatures checked, and whether manifests with no signature at all are admitted. */
export interface Trust {
  verifier: Verifier;
  allowUnsigned: boolean;
}

/** A key's id: sha256 of its public half (SPKI DER), hex. */
export function keyIdOf(key: KeyObject): string {
  const spki = (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

/** The first 16 hex digits of a key id, for people. */
export function shortKeyId(keyId: string): string {
  return keyId.slice(0, 16);
}

async function readKeyFile(field: string, file: string, host: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw permanent(ErrorType.InvalidConfig, `${field} ${file} on host ${host} does not exist or cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function assertEd25519(key: KeyObject, field: string, file: string): void {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw permanent(ErrorType.InvalidConfig, `${field} ${file} is a ${key.asymmetricKeyType ?? 'symmetric'} key; signing keys are Ed25519 (openssl genpkey -algorithm ed25519)`);
  }
}

async function loadPrivateKey(file: string, host: string): Promise<KeyObject> {
  assertSecretFileMode('signing.privateKeyFile', file);
  const pem = await readKeyFile('signing.privateKeyFile', file, host);
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    // Never the parser's message: it may quote the key.
    throw permanent(ErrorType.InvalidConfig, `signing.privateKeyFile ${file} is not a PEM private key (PKCS#8, "BEGIN PRIVATE KEY")`);
  }
  assertEd25519(key, 'signing.privateKeyFile', file);
  return key;
}

/**
 * The backup host's signer. Permanent InvalidConfig when signing.privateKeyFile is not set
 * (unless signing.required is false: then undefined, and backups go unsigned), cannot be read,
 * or is not an Ed25519 private key.
 */
export async function loadSigner(config: Config): Promise<Signer | undefined> {
  const file = config.signing.privateKeyFile;
  if (!file) {
    if (!config.signing.required) return undefined;
    throw permanent(
      ErrorType.InvalidConfig,
      `signing.privateKeyFile is not set on host ${config.host}: every backup is signed, so that restores can tell it from one planted in a repository (README, "Signing keys"). Set it, or set signing.required: false to make unsigned backups (insecure: restores refuse them unless run with --allow-unsigned)`,
    );
  }
  const privateKey = await loadPrivateKey(file, config.host);
  return { keyId: keyIdOf(privateKey), privateKey };
}

/**
 * The keys this host trusts: signing.publicKeyFiles, and the public half of
 * signing.privateKeyFile (a host's own signatures). Read on every call, so a key added to the
 * configuration counts without a restart. Permanent InvalidConfig for a file that cannot be
 * read, is not an Ed25519 public key, or holds a PRIVATE key (restore hosts get only the public half).
 * With ownKey 'if-readable', a signing.privateKeyFile this process may not read is left out.
 */
export async function loadVerifier(config: Config, options: { ownKey?: 'required' | 'if-readable' } = {}): Promise<Verifier> {
  const keys: TrustedKey[] = [];
  const add = (publicKey: KeyObject, file: string) => {
    const keyId = keyIdOf(publicKey);
    if (!keys.some((k) => k.keyId === keyId)) keys.push({ keyId, publicKey, file });
  };
  for (const file of config.signing.publicKeyFiles) {
    const pem = await readKeyFile('signing.publicKeyFiles', file, config.host);
    if (/PRIVATE KEY/.test(pem)) {
      throw permanent(ErrorType.InvalidConfig, `signing.publicKeyFiles ${file} holds a PRIVATE key: give hosts that restore only the public half (openssl pkey -in <private> -pubout)`);
    }
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey(pem);
    } catch {
      throw permanent(ErrorType.InvalidConfig, `signing.publicKeyFiles ${file} is not a PEM public key ("BEGIN PUBLIC KEY")`);
    }
    assertEd25519(publicKey, 'signing.publicKeyFiles', file);
    add(publicKey, file);
  }
  const own = config.signing.privateKeyFile;
  // wal-fetch runs as the database server's OS user, which may not read the signing key (and
  // should not): there it trusts signing.publicKeyFiles, and its own key only if it can read it.
  if (own && (options.ownKey !== 'if-readable' || (await access(own, constants.R_OK).then(() => true, () => false)))) {
    add(createPublicKey(await loadPrivateKey(own, config.host)), own);
  }
  return { keys, host: config.host };
}

/** What a signature covers: the domain tag, then the manifest's JSON without its signature. */
function signedBytes(manifest: object): Buffer {
  const rest: Record<string, unknown> = { ...(manifest as Record<string, unknown>) };
  delete rest.signature;
  return Buffer.from(DOMAIN + JSON.stringify(rest));
}

/** The manifest with its signature as the last field. Deterministic: the same manifest and key give the same bytes. */
export function signManifest<T extends object>(manifest: T, signer: Signer): T & { signature: ManifestSignature } {
  // As it will be read back: what JSON cannot hold (undefined fields) is gone before signing.
  const plain = JSON.parse(JSON.stringify(manifest)) as T & { signature?: unknown };
  delete plain.signature;
  const value = sign(null, signedBytes(plain), signer.privateKey).toString('base64');
  return { ...plain, signature: { algorithm: 'ed25519', keyId: signer.keyId, value } };
}

/**
 * Whether a parsed manifest is signed by a trusted key. The reason of a bad signature names
 * the key id and the trusted keys, never the manifest's content.
 */
export function checkSignature(parsed: object, verifier: Verifier): SignatureVerdict {
  if (!('signature' in parsed)) return { state: 'unsigned' };
  const signature = (parsed as { signature: unknown }).signature as Partial<ManifestSignature> | null;
  const bad = (reason: string): SignatureVerdict => ({ state: 'bad-signature', reason });
  if (!signature || typeof signature !== 'object' || signature.algorithm !== 'ed25519' || typeof signature.keyId !== 'string' || !/^[0-9a-f]{64}$/.test(signature.keyId)) {
    return bad('has a malformed signature (expected algorithm ed25519, a key id and a value)');
  }
  const value = typeof signature.value === 'string' && /^[A-Za-z0-9+/]{86}==$/.test(signature.value) ? Buffer.from(signature.value, 'base64') : undefined;
  if (value?.length !== 64) return bad('has a malformed signature value (an Ed25519 signature is 64 bytes, base64)');
  const key = verifier.keys.find((k) => k.keyId === signature.keyId);
  if (!key) {
    const trusted = verifier.keys.length ? `trusted there: ${verifier.keys.map((k) => `${shortKeyId(k.keyId)} (${k.file})`).join(', ')}` : 'signing.publicKeyFiles is empty there';
    return bad(`is signed by key ${shortKeyId(signature.keyId)}, which host ${verifier.host} does not trust (${trusted})`);
  }
  if (!verify(null, signedBytes(parsed), key.publicKey, value)) {
    return bad(`has a signature by key ${shortKeyId(key.keyId)} that does not match its content (altered after signing, or forged)`);
  }
  return { state: 'signed', keyId: key.keyId };
}

/** Whether a verdict may be used: signed by a trusted key, or unsigned where unsigned backups are admitted. */
export function admitted(verdict: SignatureVerdict, allowUnsigned: boolean): boolean {
  return verdict.state === 'signed' || (verdict.state === 'unsigned' && allowUnsigned);
}

/** A refused verdict's words and error type, for a skipped copy or a refusal. */
export function refusalOf(verdict: SignatureVerdict): { reason: string; errorType: ErrorType } {
  if (verdict.state === 'bad-signature') return { reason: verdict.reason, errorType: ErrorType.BadSignature };
  return { reason: 'is not signed (made before backups were signed, by a host without signing.privateKeyFile, or planted)', errorType: ErrorType.UnsignedBackup };
}
