// The workers' S3 credentials: an identity of their own on the SeaweedFS server, made at run
// time through the filer (`weed shell s3.configure`), so it can really be revoked mid-run and
// given back, as an operator rotating or deleting a leaked key would. The S3 gateway reloads
// identities from the filer; a deleted key is answered 403 InvalidAccessKeyId, as AWS answers.
// The harness's own client (the fixture's static identity) is untouched by either.
import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import type { S3Server } from '../test/fixtures/seaweedfs.js';

export interface S3Identity {
  accessKeyId: string;
  secretAccessKey: string;
  /** Deletes the access key; resolves once the gateway refuses it. */
  revoke(): Promise<void>;
  /** Gives the same key back; resolves once the gateway takes it again. */
  restore(): Promise<void>;
}

const USER = 'backupctl-chaos';
const ACTIONS = 'Admin,Read,Write,List,Tagging';
/** The gateway picks up a change within milliseconds; this bounds a server that does not. */
const PROPAGATION_MS = 30_000;

export async function createS3Identity(s3: S3Server, bucket: string): Promise<S3Identity> {
  const accessKeyId = `chaos${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(20).toString('hex');
  const probe = new S3Client({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 1_000, requestTimeout: 5_000 },
  });
  /** 'ok', 'revoked' (403 InvalidAccessKeyId), or another answer. */
  const answer = () =>
    probe.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 })).then(
      () => 'ok',
      (err: { name?: string }) => (err.name === 'InvalidAccessKeyId' ? 'revoked' : `other: ${err.name}`),
    );
  const until = async (wanted: string, what: string) => {
    const deadline = Date.now() + PROPAGATION_MS;
    for (let last = await answer(); last !== wanted; last = await answer()) {
      if (Date.now() > deadline) throw new Error(`the S3 gateway did not take the ${what} within ${PROPAGATION_MS / 1000} s (last answer ${last})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const give = async () => {
    await s3.shell(`s3.configure -user=${USER} -access_key=${accessKeyId} -secret_key=${secretAccessKey} -actions=${ACTIONS} -apply`);
    await until('ok', 'new key');
  };
  await give();
  return {
    accessKeyId,
    secretAccessKey,
    async revoke() {
      await s3.shell(`s3.configure -user=${USER} -access_key=${accessKeyId} -delete -apply`);
      await until('revoked', 'revocation');
    },
    restore: give,
  };
}
