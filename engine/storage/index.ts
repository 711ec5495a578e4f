// Builds the configured repositories. S3 credentials and endpoint come from the AWS SDK's own
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_S3)
// unless the configuration names an endpoint.
import { S3Client } from '@aws-sdk/client-s3';
import type { Config, RepositoryConfig } from '../../common/config.js';
import { ErrorType } from '../../common/types.js';
import { permanent } from '../errors.js';
import { FilesystemRepository } from './filesystem.js';
import type { Repository } from './repository.js';
import { S3Repository } from './s3.js';

export type { Repository } from './repository.js';

export function openRepositories(config: Pick<Config, 'repositories'>, env: NodeJS.ProcessEnv = process.env): Repository[] {
  return Object.entries(config.repositories).map(([name, spec]) => openRepository(name, spec, env));
}

/**
 * How long an S3 request may go without a byte moving before it is abandoned (and retried by
 * the SDK): a stalled server or a black-holed connection otherwise holds a request for ever.
 */
export const S3_IDLE_TIMEOUT_MS = 60_000;

export function openRepository(name: string, spec: RepositoryConfig, env: NodeJS.ProcessEnv = process.env, tuning: { staleUploadMs?: number; idleTimeoutMs?: number } = {}): Repository {
  if (spec.type === 'filesystem') return new FilesystemRepository(name, spec.path);
  const endpoint = spec.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const client = new S3Client({
    region: spec.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    endpoint,
    // S3-compatible servers on a plain host:port rarely serve virtual-host-style buckets.
    forcePathStyle: spec.forcePathStyle ?? Boolean(endpoint),
    maxAttempts: 3,
    // socketTimeout is the idle bound (no byte either way); requestTimeout would bound a whole upload.
    requestHandler: { connectionTimeout: 10_000, socketTimeout: tuning.idleTimeoutMs ?? S3_IDLE_TIMEOUT_MS },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return new S3Repository(name, client, {
    bucket: spec.bucket,
    prefix: spec.prefix,
    storageClass: spec.storageClass,
    partSizeBytes: spec.partSizeMiB * 1024 * 1024,
    staleUploadMs: tuning.staleUploadMs,
    objectLock: spec.objectLock,
  });
}

/** The named repositories, in the order named; all of them when no names are given. */
export function pickRepositories(all: Repository[], names: string[] | undefined, host: string): Repository[] {
  if (!names) return all;
  return names.map((name) => {
    const found = all.find((r) => r.name === name);
    if (!found) {
      throw permanent(ErrorType.UnknownRepository, `repository "${name}" is not configured on host ${host}; configured: ${all.map((r) => r.name).join(', ')}`);
    }
    return found;
  });
}
