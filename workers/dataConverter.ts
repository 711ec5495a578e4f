// What the worker and every client convert payloads with: the SDK's defaults, or, with
// temporal.payloadEncryption on, the encrypting codec and a failure converter that moves
// messages and stack traces into an (encrypted) payload. Worker and clients must agree, so
// both take it from here.
import { fileURLToPath } from 'node:url';
import type { DataConverter } from '@temporalio/common';
import type { Config } from '../common/config.js';
import { PayloadEncryptionCodec } from './payloadCodec.js';
import { loadPayloadKeys } from './payloadKeys.js';

/** Exports `failureConverter`; the workflow bundle must be built with it too (see worker.ts). */
export const ENCODED_FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./encodedFailureConverter.cjs', import.meta.url));

/**
 * undefined when payload encryption is off. Throws ConfigError naming the variable when it is
 * on and the keys are missing or malformed: a process that would write plaintext, or could
 * not read what others wrote, does not start.
 */
export function temporalDataConverter(config: Config, env: NodeJS.ProcessEnv = process.env): DataConverter | undefined {
  if (!config.temporal.payloadEncryption.enabled) return undefined;
  return {
    payloadCodecs: [new PayloadEncryptionCodec(loadPayloadKeys(env))],
    failureConverterPath: ENCODED_FAILURE_CONVERTER_PATH,
  };
}
