// Encrypts every Temporal payload (workflow and activity inputs and results, heartbeat
// details, failure messages, query and signal arguments) with AES-256-GCM before it leaves
// this process, so a hosted Temporal service stores ciphertext only. The whole payload,
// metadata included, is sealed: the service learns neither the value nor its encoding.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { PayloadKeyring } from './payloadKeys.js';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
export const CIPHER_METADATA = 'encryption-cipher';
const CIPHER = 'AES-256-GCM';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

const ProtoPayload = proto.temporal.api.common.v1.Payload;
const text = (bytes: Uint8Array | null | undefined) => (bytes ? Buffer.from(bytes).toString('utf8') : undefined);

/** A payload this process cannot decrypt. Never garbage instead: the message names the key id. */
export class PayloadDecryptionError extends Error {
  override name = 'PayloadDecryptionError';
}

export function isEncryptedPayload(payload: Payload): boolean {
  return text(payload.metadata?.[METADATA_ENCODING_KEY]) === ENCRYPTED_ENCODING;
}

export class PayloadEncryptionCodec implements PayloadCodec {
  constructor(private readonly keyring: PayloadKeyring) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.encrypt(payload));
  }

  /** Payloads written before encryption was turned on pass through as they are. */
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => (isEncryptedPayload(payload) ? this.decrypt(payload) : payload));
  }

  private encrypt(payload: Payload): Payload {
    const keyId = this.keyring.encryptWith;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keyring.keys.get(keyId)!, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData(keyId));
    const sealed = Buffer.concat([cipher.update(ProtoPayload.encode(payload).finish()), cipher.final()]);
    return {
      metadata: {
        [METADATA_ENCODING_KEY]: Buffer.from(ENCRYPTED_ENCODING),
        [KEY_ID_METADATA]: Buffer.from(keyId),
        [CIPHER_METADATA]: Buffer.from(CIPHER),
      },
      data: Buffer.concat([nonce, sealed, cipher.getAuthTag()]),
    };
  }

  private decrypt(payload: Payload): Payload {
    const keyId = text(payload.metadata?.[KEY_ID_METADATA]);
    if (!keyId) throw new PayloadDecryptionError('an encrypted payload names no encryption-key-id: it was not written by backupctl');
    const cipherName = text(payload.metadata?.[CIPHER_METADATA]) ?? CIPHER;
    if (cipherName !== CIPHER) throw new PayloadDecryptionError(`a payload encrypted with key ${keyId} uses cipher ${cipherName}; this backupctl reads ${CIPHER} only`);
    const key = this.keyring.keys.get(keyId);
    if (!key) {
      throw new PayloadDecryptionError(
        `a payload is encrypted with key ${keyId}, which ${this.keyring.source} does not hold (it holds ${[...this.keyring.keys.keys()].join(', ')}): ` +
          `add that key, as a decrypting key after the one that encrypts`,
      );
    }
    const data = Buffer.from(payload.data ?? []);
    if (data.length < NONCE_BYTES + TAG_BYTES) throw new PayloadDecryptionError(`a payload encrypted with key ${keyId} is truncated (${data.length} bytes)`);
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(associatedData(keyId));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(
        `a payload encrypted with key ${keyId} fails authentication: it was altered, or key ${keyId} in ${this.keyring.source} is not the key that encrypted it`,
      );
    }
    return ProtoPayload.decode(plain);
  }
}

/** Binds the key id into the tag: a ciphertext relabelled with another key id fails to open. */
function associatedData(keyId: string): Buffer {
  return Buffer.from(`backupctl payload ${CIPHER} ${keyId}`);
}
