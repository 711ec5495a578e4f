// The payload codec, its keys and its codec server, in process: what a hosted Temporal
// service stores is ciphertext under a named key; what cannot be decrypted fails with a
// message naming the key, never as garbage; rotated-out keys still decrypt.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { startCodecServer, type RunningCodecServer } from '../client/commands/codecServer.js';
import { ConfigError, validateConfig } from '../common/config.js';
import { ENCODED_FAILURE_CONVERTER_PATH, temporalDataConverter } from '../workers/dataConverter.js';
import { PayloadDecryptionError, PayloadEncryptionCodec } from '../workers/payloadCodec.js';
import { loadPayloadKeys, parsePayloadKeys, PAYLOAD_KEYS_ENV, PAYLOAD_KEYS_FILE_ENV } from '../workers/payloadKeys.js';

const MARKER = 'catalog-marker-7f3a';
const key = () => randomBytes(32).toString('base64');
const OLD = key();
const NEW = key();
const codecOf = (spec: string) => new PayloadEncryptionCodec(parsePayloadKeys(spec, PAYLOAD_KEYS_ENV));
const plain = (value: unknown): Payload => defaultPayloadConverter.toPayload(value);
const valueOf = (payload: Payload): any => defaultPayloadConverter.fromPayload(payload);
const str = (bytes?: Uint8Array | null) => Buffer.from(bytes ?? []).toString('utf8');

async function failureOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('the codec', () => {
  const codec = codecOf(`k-2026:${OLD}`);

  test('round trip: ciphertext under the named key, the value and its metadata restored', async () => {
    const original = plain({ database: MARKER, bytes: 42 });
    const [encrypted] = await codec.encode([original]);
    expect(str(encrypted.metadata!.encoding)).toBe('binary/encrypted');
    expect(str(encrypted.metadata!['encryption-key-id'])).toBe('k-2026');
    // Neither the value nor its encoding is left in the clear.
    const wire = Buffer.concat([Buffer.from(encrypted.data!), ...Object.values(encrypted.metadata!).map((v) => Buffer.from(v))]).toString('latin1');
    expect(wire).not.toContain(MARKER);
    expect(wire).not.toContain('json/plain');
    const [decoded] = await codec.decode([encrypted]);
    expect(str(decoded.metadata!.encoding)).toBe('json/plain');
    expect(valueOf(decoded)).toEqual({ database: MARKER, bytes: 42 });
  });

  test('every payload gets its own nonce: the same value never encrypts the same twice', async () => {
    const [a, b] = await codec.encode([plain(MARKER), plain(MARKER)]);
    expect(Buffer.from(a.data!).equals(Buffer.from(b.data!))).toBe(false);
  });

  test('empty arrays and undefined values survive', async () => {
    expect(await codec.encode([])).toEqual([]);
    const [decoded] = await codec.decode(await codec.encode([plain(undefined)]));
    expect(valueOf(decoded)).toBeUndefined();
  });

  test('a tampered ciphertext fails authentication, naming the key', async () => {
    const [encrypted] = await codec.encode([plain(MARKER)]);
    const data = Buffer.from(encrypted.data!);
    data[20] ^= 1;
    const err = await failureOf(codec.decode([{ ...encrypted, data }]));
    expect(err).toBeInstanceOf(PayloadDecryptionError);
    expect(err.message).toMatch(/encrypted with key k-2026 fails authentication: it was altered/);
  });

  test('a truncated ciphertext fails clearly', async () => {
    const [encrypted] = await codec.encode([plain(MARKER)]);
    const err = await failureOf(codec.decode([{ ...encrypted, data: Buffer.from(encrypted.data!).subarray(0, 10) }]));
    expect(err.message).toMatch(/key k-2026 is truncated/);
  });

  test('a ciphertext relabelled with another loaded key id does not open', async () => {
    const two = codecOf(`a:${OLD},b:${NEW}`);
    const [encrypted] = await two.encode([plain(MARKER)]);
    const relabelled = { ...encrypted, metadata: { ...encrypted.metadata, 'encryption-key-id': Buffer.from('b') } };
    expect((await failureOf(two.decode([relabelled]))).message).toMatch(/key b fails authentication/);
  });

  test('the same id with a different key fails authentication, never decrypts to garbage', async () => {
    const [encrypted] = await codec.encode([plain(MARKER)]);
    const err = await failureOf(codecOf(`k-2026:${NEW}`).decode([encrypted]));
    expect(err.message).toMatch(/key k-2026 in BACKUPCTL_PAYLOAD_KEYS is not the key that encrypted it/);
  });

  test('an unknown key id fails, naming it and the keys held', async () => {
    const [encrypted] = await codecOf(`k-2027:${NEW}`).encode([plain(MARKER)]);
    const err = await failureOf(codec.decode([encrypted]));
    expect(err).toBeInstanceOf(PayloadDecryptionError);
    expect(err.message).toMatch(/encrypted with key k-2027, which BACKUPCTL_PAYLOAD_KEYS does not hold \(it holds k-2026\)/);
  });

  test('an encrypted payload without a key id fails clearly', async () => {
    const [encrypted] = await codec.encode([plain(MARKER)]);
    const metadata = { ...encrypted.metadata };
    delete metadata['encryption-key-id'];
    expect((await failureOf(codec.decode([{ ...encrypted, metadata }]))).message).toMatch(/names no encryption-key-id/);
  });

  test('payloads written before encryption was turned on pass through', async () => {
    const [decoded] = await codec.decode([plain(MARKER)]);
    expect(valueOf(decoded)).toBe(MARKER);
  });

  test('rotation: the first key encrypts, the old one still decrypts, and a process without the new key says which it lacks', async () => {
    const before = codecOf(`old:${OLD}`);
    const staged = codecOf(`old:${OLD},new:${NEW}`); // step 1: the new key listed last everywhere
    const after = codecOf(`new:${NEW}\nold:${OLD}`); // step 2: listed first
    const [written] = await before.encode([plain('written before')]);
    const [stagedWritten] = await staged.encode([plain('still old')]);
    expect(str(stagedWritten.metadata!['encryption-key-id'])).toBe('old');
    const [rotated] = await after.encode([plain('written after')]);
    expect(str(rotated.metadata!['encryption-key-id'])).toBe('new');
    expect((await after.decode([written, stagedWritten, rotated])).map(valueOf)).toEqual(['written before', 'still old', 'written after']);
    expect((await staged.decode([rotated])).map(valueOf)).toEqual(['written after']);
    expect((await failureOf(before.decode([rotated]))).message).toMatch(/key new, which BACKUPCTL_PAYLOAD_KEYS does not hold \(it holds old\)/);
  });
});

describe('the keys come from the environment', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-payload-keys-'));

  test('missing: a ConfigError naming both variables', () => {
    const err = thrown(() => loadPayloadKeys({}));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/temporal.payloadEncryption is enabled but BACKUPCTL_PAYLOAD_KEYS \(or BACKUPCTL_PAYLOAD_KEYS_FILE\) is not set/);
  });

  test('a key file, with comments and blank lines; its first key encrypts', () => {
    const file = path.join(dir, 'keys');
    writeFileSync(file, `# rotated in 2026-11\nnew:${NEW}\n\nold:${OLD}   # retire after the retention period\n`, { mode: 0o600 });
    const keyring = loadPayloadKeys({ [PAYLOAD_KEYS_FILE_ENV]: file });
    expect(keyring.encryptWith).toBe('new');
    expect([...keyring.keys.keys()]).toEqual(['new', 'old']);
    expect(keyring.source).toBe(`BACKUPCTL_PAYLOAD_KEYS_FILE (${file})`);
  });

  test('a key file any other account may read: a ConfigError naming it, its mode and the chmod, never a key', () => {
    const file = path.join(dir, 'keys-open');
    writeFileSync(file, `new:${NEW}\n`);
    chmodSync(file, 0o644);
    const err = thrown(() => loadPayloadKeys({ [PAYLOAD_KEYS_FILE_ENV]: file }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toBe(`BACKUPCTL_PAYLOAD_KEYS_FILE (${file}): holds the payload keys but accounts other than its owner may use it (mode 0644); chmod 600 ${file}`);
  });

  test.each([
    ['both variables', { [PAYLOAD_KEYS_ENV]: `a:${OLD}`, [PAYLOAD_KEYS_FILE_ENV]: '/etc/keys' }, /both BACKUPCTL_PAYLOAD_KEYS and BACKUPCTL_PAYLOAD_KEYS_FILE are set/],
    ['an unreadable file', { [PAYLOAD_KEYS_FILE_ENV]: '/nonexistent/keys' }, /BACKUPCTL_PAYLOAD_KEYS_FILE \(\/nonexistent\/keys\): cannot be read \(ENOENT\)/],
    ['no key at all', { [PAYLOAD_KEYS_ENV]: ' , ' }, /BACKUPCTL_PAYLOAD_KEYS holds no key/],
    ['a key without id', { [PAYLOAD_KEYS_ENV]: OLD }, /BACKUPCTL_PAYLOAD_KEYS entry 1: must be <key id>:<base64 key>/],
    ['a 16-byte key', { [PAYLOAD_KEYS_ENV]: `a:${OLD},b:${randomBytes(16).toString('base64')}` }, /entry 2 \(key id b\): the key must be 32 bytes in base64 .*; it is 16 bytes/],
    ['a key that is no base64', { [PAYLOAD_KEYS_ENV]: `a:not base64!` }, /entry 1 \(key id a\): the key must be 32 bytes in base64/],
    ['a key id listed twice', { [PAYLOAD_KEYS_ENV]: `a:${OLD},a:${NEW}` }, /entry 2: key id a is listed twice/],
  ])('%s: a ConfigError that names the variable and never shows a key', (_name, env, message) => {
    const err = thrown(() => loadPayloadKeys(env));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(message);
    for (const secret of [OLD, NEW, OLD.slice(0, 12), NEW.slice(0, 12)]) expect(err.message).not.toContain(secret);
  });
});

describe('on by configuration', () => {
  const raw = (enabled?: boolean) => ({
    database: { url: 'postgres://app@localhost/app' },
    repositories: { local: { type: 'filesystem', path: '/var/backups' } },
    encryption: { publicKeyFile: '/etc/backupctl/public.asc' },
    ...(enabled === undefined ? {} : { temporal: { payloadEncryption: { enabled } } }),
  });

  test('off by default: the SDK defaults, and no keys needed', () => {
    expect(validateConfig(raw(), 'test').temporal.payloadEncryption).toEqual({ enabled: false });
    expect(temporalDataConverter(validateConfig(raw(false), 'test'), {})).toBeUndefined();
  });

  test('on without keys: refused, naming the variable', () => {
    expect(() => temporalDataConverter(validateConfig(raw(true), 'test'), {})).toThrow(/BACKUPCTL_PAYLOAD_KEYS/);
  });

  test('on: the encrypting codec, and a failure converter that moves messages into (encrypted) payloads', async () => {
    const converter = temporalDataConverter(validateConfig(raw(true), 'test'), { [PAYLOAD_KEYS_ENV]: `k:${OLD}` })!;
    expect(converter.payloadCodecs).toHaveLength(1);
    expect(converter.failureConverterPath).toBe(ENCODED_FAILURE_CONVERTER_PATH);
    const { failureConverter } = createRequire(import.meta.url)(ENCODED_FAILURE_CONVERTER_PATH);
    const failure = failureConverter.errorToFailure(new Error(`database ${MARKER} does not exist`), defaultPayloadConverter);
    expect(failure.message).not.toContain(MARKER);
    expect(valueOf(failure.encodedAttributes).message).toBe(`database ${MARKER} does not exist`);
  });

  test('the config file cannot carry keys', () => {
    expect(() => validateConfig({ ...raw(), temporal: { payloadEncryption: { enabled: true, keys: `k:${OLD}` } } }, 'test')).toThrow(/temporal.payloadEncryption/);
  });
});

describe('the codec server', () => {
  const UI = 'https://temporal-ui.example';
  const codec = codecOf(`k-2026:${OLD}`);
  let server: RunningCodecServer;
  const logged: string[] = [];

  beforeAll(async () => {
    server = await startCodecServer({ codec, namespace: 'backups', origins: [`${UI}/`], host: '127.0.0.1', port: 0, log: (line) => logged.push(line) });
  });
  afterAll(() => server?.close());

  const json = (payloads: Payload[]) => ({
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      data: Buffer.from(p.data ?? []).toString('base64'),
    })),
  });
  const fromJson = (body: any): Payload[] =>
    (body as { payloads: { metadata: Record<string, string>; data: string }[] }).payloads.map((p) => ({ metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])), data: Buffer.from(p.data, 'base64') }));
  const post = (route: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${server.url}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  test('POST /decode, as the Web UI sends it: proto3 JSON in, decrypted payloads out, readable from the UI origin', async () => {
    const encrypted = await codec.encode([plain({ database: MARKER }), plain(7)]);
    const res = await post('/decode', json(encrypted), { 'X-Namespace': 'backups', Origin: UI });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI);
    expect(fromJson(await res.json()).map(valueOf)).toEqual([{ database: MARKER }, 7]);
  });

  test('POST /<namespace>/encode (temporal --codec-endpoint templating): encrypted under the encrypting key', async () => {
    const res = await post('/backups/encode', json([plain(MARKER)]));
    expect(res.status).toBe(200);
    const [encrypted] = fromJson(await res.json());
    expect(str(encrypted.metadata!['encryption-key-id'])).toBe('k-2026');
    expect(valueOf((await codec.decode([encrypted]))[0])).toBe(MARKER);
  });

  test('the preflight from the UI origin is allowed, with the headers the UI sends', async () => {
    const res = await fetch(`${server.url}/decode`, {
      method: 'OPTIONS',
      headers: { Origin: UI, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type,x-namespace' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI);
    expect(res.headers.get('access-control-allow-methods')).toMatch(/POST/);
    expect(res.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/i);
    expect(res.headers.get('access-control-allow-headers')).toMatch(/Content-Type/i);
    expect(res.headers.get('access-control-allow-private-network')).toBeNull();
  });

  test('a hosted UI may reach it on a private address, when the browser asks (Private Network Access)', async () => {
    const res = await fetch(`${server.url}/decode`, {
      method: 'OPTIONS',
      headers: { Origin: UI, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Private-Network': 'true' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-private-network')).toBe('true');
  });

  test('another origin is refused, preflight and request alike', async () => {
    const preflight = await fetch(`${server.url}/decode`, { method: 'OPTIONS', headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const request = await post('/decode', json(await codec.encode([plain(MARKER)])), { Origin: 'https://evil.example' });
    expect(request.status).toBe(403);
    expect(await request.text()).not.toContain(MARKER);
  });

  test('another namespace is refused: these keys are not its keys', async () => {
    const res = await post('/decode', json([]), { 'X-Namespace': 'payments' });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toMatch(/namespace payments: this codec server holds the keys of namespace backups only/);
    expect((await post('/payments/decode', json([]))).status).toBe(403);
  });

  test('a payload it cannot decrypt: 422 naming the key, never garbage', async () => {
    const [foreign] = await codecOf(`k-other:${NEW}`).encode([plain(MARKER)]);
    const res = await post('/decode', json([foreign]), { 'X-Namespace': 'backups' });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: string }).error).toMatch(/encrypted with key k-other, which BACKUPCTL_PAYLOAD_KEYS does not hold/);
  });

  test.each([
    ['not JSON', '{payloads', 400, /not JSON/],
    ['no payloads array', { payloads: 'x' }, 400, /must be \{"payloads": \[\.\.\.\]\}/],
    ['data that is no base64', { payloads: [{ metadata: {}, data: 'not base64!' }] }, 400, /payloads\[0\]\.data must be base64/],
    ['metadata that is no base64', { payloads: [{ metadata: { encoding: 'json plain' } }] }, 400, /payloads\[0\]\.metadata\.encoding must be base64/],
    ['metadata that is no string', { payloads: [{ metadata: { encoding: 7 } }] }, 400, /payloads\[0\]\.metadata\.encoding must be base64/],
  ])('a bad body (%s) is refused', async (_name, body, status, message) => {
    const res = await post('/decode', body);
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: string }).error).toMatch(message);
  });

  test('wrong content type, path or method', async () => {
    expect((await fetch(`${server.url}/decode`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: '{}' })).status).toBe(415);
    expect((await post('/history', json([]))).status).toBe(404);
    expect((await fetch(`${server.url}/decode`)).status).toBe(405);
  });

  test('its log names refusals, never payload contents', () => {
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.join('\n')).not.toContain(MARKER);
  });
});
