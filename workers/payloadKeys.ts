// The keys that encrypt Temporal payloads come from the process environment only: never from
// the configuration file (which is copied, mailed and committed) nor from a payload. The
// first key listed encrypts; every key listed decrypts, so a key is rotated in by listing it
// last everywhere, then first, and retired once no retained history needs it.
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '../common/config.js';

/** `<key id>:<base64 of 32 random bytes>` entries, separated by commas or line breaks. */
export const PAYLOAD_KEYS_ENV = 'BACKUPCTL_PAYLOAD_KEYS';
/** A file holding the same entries, one per line (`#` starts a comment). */
export const PAYLOAD_KEYS_FILE_ENV = 'BACKUPCTL_PAYLOAD_KEYS_FILE';

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
export const PAYLOAD_KEY_BYTES = 32;

export interface PayloadKeyring {
  /** The key new payloads are encrypted with: the first one listed. */
  encryptWith: string;
  /** Every key that may decrypt, by id. */
  keys: ReadonlyMap<string, Buffer>;
  /** Where the keys came from (a variable's name, or a file named by one), for messages. */
  source: string;
}

/**
 * The keyring of this process's environment. Throws ConfigError naming the variable; never
 * shows a key. `needed` says who needs the keys, for the message when none are set.
 */
export function loadPayloadKeys(env: NodeJS.ProcessEnv = process.env, needed = 'temporal.payloadEncryption is enabled'): PayloadKeyring {
  const inline = env[PAYLOAD_KEYS_ENV];
  const file = env[PAYLOAD_KEYS_FILE_ENV];
  if (inline && file) {
    throw new ConfigError(`both ${PAYLOAD_KEYS_ENV} and ${PAYLOAD_KEYS_FILE_ENV} are set: set one, so it is clear which keys encrypt`);
  }
  if (file) {
    const source = `${PAYLOAD_KEYS_FILE_ENV} (${file})`;
    let text: string;
    try {
      // Keys every local account may read are no secret (as for the password files).
      const mode = statSync(file).mode & 0o777;
      if (mode & 0o077) throw new ConfigError(`${source}: holds the payload keys but accounts other than its owner may use it (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 ${file}`);
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`${source}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
    return parsePayloadKeys(text, source);
  }
  if (inline) return parsePayloadKeys(inline, PAYLOAD_KEYS_ENV);
  throw new ConfigError(
    `${needed} but ${PAYLOAD_KEYS_ENV} (or ${PAYLOAD_KEYS_FILE_ENV}) is not set: ` +
      `set it to <key id>:<key>, the key made by \`openssl rand -base64 32\`, the same on every worker and client`,
  );
}

export function parsePayloadKeys(text: string, source: string): PayloadKeyring {
  const entries = text
    .split(/[,\n]/)
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter(Boolean);
  if (entries.length === 0) throw new ConfigError(`${source} holds no key: expected <key id>:<base64 key>, separated by commas or lines`);
  const keys = new Map<string, Buffer>();
  entries.forEach((entry, i) => {
    const colon = entry.indexOf(':');
    const id = colon < 0 ? '' : entry.slice(0, colon).trim();
    const where = `${source} entry ${i + 1}`;
    if (!KEY_ID.test(id)) {
      // The entry itself may be a key pasted without its id: it is not repeated here.
      throw new ConfigError(`${where}: must be <key id>:<base64 key>, the id 1-64 of A-Z a-z 0-9 . _ -`);
    }
    const encoded = entry.slice(colon + 1).trim();
    const key = BASE64.test(encoded) ? Buffer.from(encoded, 'base64') : undefined;
    if (!key || key.length !== PAYLOAD_KEY_BYTES) {
      throw new ConfigError(`${where} (key id ${id}): the key must be ${PAYLOAD_KEY_BYTES} bytes in base64 (openssl rand -base64 32)${key ? `; it is ${key.length} bytes` : ''}`);
    }
    if (keys.has(id)) throw new ConfigError(`${where}: key id ${id} is listed twice`);
    keys.set(id, key);
  });
  return { encryptWith: keys.keys().next().value as string, keys, source };
}
