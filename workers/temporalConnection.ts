// Connection settings for the Temporal service, shared by the worker and the client.
import { readFileSync } from 'node:fs';
import type { Config } from '../common/config.js';

export function connectionOptions(config: Config): { address: string; tls?: boolean; apiKey?: string } {
  const apiKey = config.temporal.apiKeyFile ? readFileSync(config.temporal.apiKeyFile, 'utf8').trim() : undefined;
  return {
    address: config.temporal.address,
    tls: config.temporal.tls || apiKey !== undefined ? true : undefined,
    apiKey,
  };
}
