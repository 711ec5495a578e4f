// The verification's read-back of every copy: each repository's manifest and every stored
// object of the backup, read in full and checked against the manifest (size and sha256). A
// restore reads the first whole copy and stops; this is what notices the ones it never reads.
// Read-only: it never writes, moves or deletes anything.
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ErrorType, type BackupManifest, type StoredObject } from '../common/types.js';
import type { CopyAudit, ManifestCopyState, ObjectCopyCheck, RepositoryCopyCheck } from '../common/restoreTypes.js';
import { backupPrefix, manifestKey } from '../engine/catalog.js';
import type { DatabaseBackupDeps } from './databaseBackup.js';
import { errorText, isEngineError, permanent } from '../engine/errors.js';
import { LongerThanExpected, readBack, within, type Reader } from '../engine/readBack.js';
import { admitted, checkSignature, loadVerifier, refusalOf, type Trust } from '../engine/manifestSignature.js';
import { BACKUP_ID } from '../engine/restoreSource.js';
import type { Repository } from '../engine/storage/repository.js';
import { prunedHere } from '../engine/prune.js';
import './attemptContext.js';

export interface AuditCopiesInput {
  backupId: string;
  /** The objects as the manifest the verification resolved names them: key, size, sha256. */
  objects: StoredObject[];
  /** An unsigned manifest copy counts as whole (the verification admitted unsigned backups); a wrongly signed one never does. */
  allowUnsigned?: boolean;
}

/** A manifest is small; one that is not is not ours, and is not read into memory. */
const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

export function createCopyAuditActivities(deps: DatabaseBackupDeps) {
  return {
    /**
     * Reads every copy of a backup back in full: in every configured repository that holds its
     * manifest or that an intact manifest lists as a copy, the manifest (present, parses, names
     * this backup and the same objects, signed by a trusted key) and each object (present, size, sha256). Findings are
     * the result, never an error: a missing, short, corrupt or unreadable copy is reported with
     * its state. Heartbeats `{ phase, bytesRead, objectsChecked }` only when bytes move or an
     * object is done, and gives up on a read that moves nothing for most of the heartbeat
     * timeout (reported unreadable), so a stalled repository cannot hang it. Idempotent (it
     * only reads). Permanent: InvalidInput for a malformed input.
     */
    async auditBackupCopies(input: AuditCopiesInput): Promise<CopyAudit> {
      checkInput(input);
      const ctx = Context.current();
      const signal = ctx.cancellationSignal;
      const idleMs = Math.max(1000, Math.min(60_000, (ctx.info.heartbeatTimeoutMs || 100_000) * 0.6));
      const progress = { phase: 'auditing-copies', bytesRead: 0, objectsChecked: 0 };
      let lastBeat = 0;
      // Only on progress, and at most once a second while bytes stream: the SDK throttles too, but each call still crosses into it.
      const beat = (force = true) => {
        if (!force && Date.now() - lastBeat < 1000) return;
        lastBeat = Date.now();
        ctx.heartbeat({ ...progress });
      };
      const reader: Reader = { signal, idleMs, onBytes: (n) => ((progress.bytesRead += n), beat(false)) };
      beat();

      const trust: Trust = { verifier: await loadVerifier(deps.config), allowUnsigned: input.allowUnsigned === true };
      const manifests = await Promise.all(deps.repositories.map((repository) => checkManifest(repository, input, reader, trust)));
      beat();
      // A copy is expected where a manifest is, and wherever an intact manifest says one was written.
      const listed = new Set(manifests.flatMap((m) => m.copies));
      // A copy retention let go of (its marker, and no manifest left) is pruned, not lost.
      // An unsigned marker only where no key is trusted (no host signs): elsewhere the prune
      // signs its markers, and an unsigned one is planted or older than signed markers, even
      // in an audit that admits unsigned manifests (which cannot hide a lost copy: the objects
      // are read back; a marker would spare them the reading).
      const markerTrust: Trust = { verifier: trust.verifier, allowUnsigned: trust.allowUnsigned && trust.verifier.keys.length === 0 };
      const pruned = await prunedCopies(deps.repositories.filter((r, i) => manifests[i].state === 'missing' && listed.has(r.name)), input.backupId, markerTrust);
      const expected = deps.repositories.filter((r, i) => (manifests[i].state !== 'missing' || listed.has(r.name)) && !pruned.includes(r.name));
      const audited = await Promise.all(
        expected.map(async (repository): Promise<RepositoryCopyCheck> => {
          const objects: ObjectCopyCheck[] = [];
          for (const object of input.objects) {
            objects.push(await checkObject(repository, object, reader));
            progress.objectsChecked++;
            beat();
          }
          const { key, state, detail, errorType } = manifests[deps.repositories.indexOf(repository)];
          const manifest = { key, state, ...(detail && { detail }), ...(errorType && { errorType }) };
          return { repository: repository.name, manifest, objects, ok: state === 'ok' && objects.every((o) => o.state === 'ok') };
        }),
      );
      // Listed as a copy but not configured here: nothing proves that copy whole.
      const unknown = [...listed].filter((name) => !deps.repositories.some((r) => r.name === name));
      for (const name of unknown) {
        const why = { state: 'unreadable' as const, errorType: ErrorType.UnknownRepository, detail: `repository ${name} is not configured on host ${deps.config.host}` };
        audited.push({
          repository: name,
          manifest: { key: manifestKey('database', input.backupId), ...why },
          objects: input.objects.map((o) => ({ role: o.role, key: o.key, bytesRead: 0, ...why })),
          ok: false,
        });
      }
      return { repositories: audited, damaged: audited.filter((r) => !r.ok).map((r) => r.repository), bytesRead: progress.bytesRead, ...(pruned.length ? { pruned } : {}) };
    },
  };
}

/** The repositories that record pruning this backup by retention, with a trusted marker (engine/prune.ts); one that cannot be asked counts as not. */
async function prunedCopies(repositories: Repository[], backupId: string, trust: Trust): Promise<string[]> {
  const found: string[] = [];
  for (const repository of repositories) if (await prunedHere(repository, 'database', backupId, trust)) found.push(repository.name);
  return found;
}

function checkInput(input: AuditCopiesInput): void {
  if (!input || typeof input.backupId !== 'string' || !BACKUP_ID.test(input.backupId)) {
    throw permanent(ErrorType.InvalidInput, `input.backupId ${JSON.stringify(input?.backupId)} is not a backup id (letters, digits, . _ -)`);
  }
  if (!Array.isArray(input.objects) || !input.objects.length) throw permanent(ErrorType.InvalidInput, 'input.objects must list the backup\'s stored objects');
  const prefix = backupPrefix('database', input.backupId);
  for (const o of input.objects) {
    if (typeof o?.key !== 'string' || !o.key.startsWith(prefix) || !Number.isSafeInteger(o.bytes) || o.bytes < 0 || !/^[0-9a-f]{64}$/.test(String(o.sha256))) {
      throw permanent(ErrorType.InvalidInput, `input.objects: ${JSON.stringify(o?.key)} is not an object of backup ${input.backupId} with a size and a sha256`);
    }
  }
}

interface ManifestFinding {
  key: string;
  state: ManifestCopyState;
  detail?: string;
  errorType?: string;
  /** The repositories this manifest says hold a copy (when intact). */
  copies: string[];
}

async function checkManifest(repository: Repository, input: AuditCopiesInput, reader: Reader, trust: Trust): Promise<ManifestFinding> {
  const key = manifestKey('database', input.backupId);
  let body: Buffer;
  try {
    const info = await within(repository.stat(key), reader, `repository ${repository.name}: stat ${key}`);
    if (!info) return { key, state: 'missing', copies: [] };
    if (info.bytes > MANIFEST_MAX_BYTES) return { key, state: 'damaged', detail: `${info.bytes} bytes; a manifest is at most ${MANIFEST_MAX_BYTES}`, copies: [] };
    // No further than its listed size: a body that goes on is not held in memory.
    body = await readBack(repository, key, reader, true, undefined, info.bytes);
  } catch (err) {
    if (err instanceof LongerThanExpected) return { key, state: 'damaged', detail: `reads back as more than its ${err.bytes} bytes`, copies: [] };
    return { key, ...unreadable(err, reader), copies: [] };
  }
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(body.toString('utf8')) as BackupManifest;
  } catch {
    // Never the parser's message: it quotes the file.
    return { key, state: 'damaged', detail: `not valid JSON (${body.length} bytes)`, copies: [] };
  }
  const contradiction = contradicts(manifest, input);
  if (contradiction) return { key, state: 'damaged', detail: contradiction, copies: [] };
  // Not signed by a trusted key: a copy nobody can tell from a planted one. Its copies list is not believed either.
  const signature = checkSignature(manifest, trust.verifier);
  if (!admitted(signature, trust.allowUnsigned)) {
    const refusal = refusalOf(signature);
    return { key, state: 'damaged', detail: refusal.reason, errorType: refusal.errorType, copies: [] };
  }
  return { key, state: 'ok', copies: manifest.copies.map((c) => c.repository) };
}

/** How a parsed manifest differs from the backup being verified, or undefined when it does not. */
function contradicts(manifest: BackupManifest, input: AuditCopiesInput): string | undefined {
  if (!manifest || typeof manifest !== 'object') return 'not a manifest object';
  if (manifest.backupId !== input.backupId) return `names backup ${JSON.stringify(manifest.backupId)}`;
  if (manifest.component !== 'database') return `names component ${JSON.stringify(manifest.component)}`;
  if (!Array.isArray(manifest.objects) || !Array.isArray(manifest.copies)) return 'has no objects or copies list';
  const own = (o: StoredObject) => `${o.key} ${o.bytes} ${o.sha256}`;
  const theirs = manifest.objects.map(own).sort();
  const ours = input.objects.map(own).sort();
  if (theirs.join('\n') !== ours.join('\n')) return 'lists other objects, sizes or checksums than the manifest verified';
  if (manifest.copies.some((c) => typeof c?.repository !== 'string')) return 'has a malformed copies list';
  return undefined;
}

async function checkObject(repository: Repository, object: StoredObject, reader: Reader): Promise<ObjectCopyCheck> {
  const found = { role: object.role, key: object.key, bytesRead: 0 };
  try {
    const info = await within(repository.stat(object.key), reader, `repository ${repository.name}: stat ${object.key}`);
    if (!info) return { ...found, state: 'missing' };
    if (info.bytes !== object.bytes) return { ...found, state: 'size-mismatch', detail: `${info.bytes} bytes; the manifest says ${object.bytes}` };
    const hash = createHash('sha256');
    let bytes = 0;
    // Never past its size: a body that does not end (a link to /dev/zero swapped in) is not read for ever.
    await readBack(
      repository,
      object.key,
      reader,
      false,
      (chunk) => {
        hash.update(chunk);
        bytes += chunk.length;
      },
      object.bytes,
    );
    const sha256 = hash.digest('hex');
    if (bytes !== object.bytes) return { ...found, bytesRead: bytes, state: 'size-mismatch', detail: `read ${bytes} bytes; the manifest says ${object.bytes}` };
    if (sha256 !== object.sha256) return { ...found, bytesRead: bytes, state: 'checksum-mismatch', detail: `sha256 ${sha256}; the manifest says ${object.sha256}` };
    return { ...found, bytesRead: bytes, state: 'ok' };
  } catch (err) {
    if (err instanceof LongerThanExpected) return { ...found, bytesRead: object.bytes, state: 'size-mismatch', detail: `reads back as more than ${object.bytes} bytes; the manifest says ${object.bytes}` };
    return { ...found, ...unreadable(err, reader) };
  }
}

/** The state of a copy that could not be read; a cancellation is no finding and goes on up. */
function unreadable(err: unknown, reader: Reader): { state: 'missing' | 'unreadable'; detail?: string; errorType: string } {
  if (reader.signal.aborted) throw reader.signal.reason ?? err;
  const errorType = (isEngineError(err) && err.type) || ErrorType.StorageUnreachable;
  // Deleted between stat and read.
  if (errorType === ErrorType.CopyMissing) return { state: 'missing', errorType };
  return { state: 'unreadable', errorType, detail: isEngineError(err) ? err.message : errorText(err) };
}
