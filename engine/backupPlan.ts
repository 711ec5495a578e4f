// The checks every backup's plan makes before it writes anything, and its first write: the
// public key loads, the signing key too (a backup that could not be signed at the end fails
// here, not after hours), every repository is writable, no other run has published a backup
// under the id, and the id is claimed for this run in every repository.
import { ErrorType } from '../common/types.js';
import type { Config } from '../common/config.js';
import { claimForThisAttempt, type Owner } from './backupClaim.js';
import { readManifest, type Component } from './catalog.js';
import { loadRecipient } from './encryption.js';
import { permanent } from './errors.js';
import { loadSigner } from './manifestSignature.js';
import type { Repository } from './storage/repository.js';

/**
 * Runs the checks and claims the id; returns the fingerprint of the key the backup will be
 * encrypted to. `alreadyExists` words the refusal of an id another run published under.
 */
export async function checkAndClaim(
  config: Config,
  repositories: Repository[],
  component: Component,
  backupId: string,
  owner: Owner,
  alreadyExists: (repository: string, runId: string) => string,
): Promise<{ encryptionFingerprint: string }> {
  const recipient = await loadRecipient(config.encryption.publicKeyFile);
  await recipient.dispose();
  await loadSigner(config);
  await Promise.all(repositories.map((r) => r.check()));
  for (const repository of repositories) {
    const existing = await readManifest(repository, component, backupId);
    if (existing && existing.runId !== owner.runId) throw permanent(ErrorType.BackupAlreadyExists, alreadyExists(repository.name, existing.runId));
  }
  // The last check and the first write: from here on only this run writes under the id.
  await claimForThisAttempt(repositories, component, backupId, owner);
  return { encryptionFingerprint: recipient.fingerprint };
}
