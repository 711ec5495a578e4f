// Inputs and results of the way back: restore, weekly verification and the monthly drill.
// Imports nothing from Node: it is bundled into the workflow sandbox.
import type { Compression, StoredObject } from './types.js';

/**
 * What to restore, as an operator names it: a backup id from the catalog, `latest`, or an
 * absolute path to a file made by the old scripts (`.backup` custom format, `.sql.gz`, `.sql`).
 */
export type BackupReference = string;

/** A backup from the catalog, resolved by the restoring host: what the restore needs of its manifest. */
export interface CatalogSource {
  kind: 'backup';
  backupId: string;
  /** When the snapshot was taken: the data's age (RPO) is measured from here. */
  takenAt: string;
  database: string;
  owner?: string;
  compression: Compression;
  /** The OpenPGP key the backup was encrypted to: the restoring host must hold its private half. */
  recipientFingerprint: string;
  objects: StoredObject[];
  rowCounts: Record<string, number>;
  /** Repositories holding the manifest, in the order copies are tried. */
  repositories: string[];
  /**
   * signed: the manifest verified under a trusted signing key (keyId); unsigned: admitted only
   * because unsigned backups were explicitly allowed. Absent in sources resolved before backups were signed.
   */
  signature?: { state: 'signed'; keyId: string } | { state: 'unsigned' };
  /** Manifest copies that were not used (damaged, unsigned or wrongly signed, another backup's, different content). */
  skipped?: SkippedCopy[];
  /** What the operator must hear about the choice: a source that could not be fully checked. */
  warnings?: string[];
}

/** A file made by the seed's scripts. No manifest: no checksums or counts to compare. */
export interface FileSource {
  kind: 'file';
  path: string;
  format: 'custom' | 'sql' | 'sql.gz';
  bytes: number;
}

export type RestoreSource = CatalogSource | FileSource;

/** A copy that was not used, and why; the operator must hear about every one. */
export interface SkippedCopy {
  repository: string;
  key: string;
  reason: string;
  errorType: string;
}

export interface RestoredDatabase {
  database: string;
  /** Where the data came from: repository and key, or the file path. */
  copy: { repository: string; key: string } | { path: string };
  skipped: SkippedCopy[];
  /** About the source's identity (an explicit id whose cluster differs or was never recorded). */
  warnings?: string[];
  /** Roles created from the backup's globals because the server lacked them. */
  createdRoles: string[];
  plainBytes: number;
  restoreSeconds: number;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** What was found in a restored database, compared with what the backup recorded. */
export interface DatabaseInspection {
  database: string;
  rowCounts: Record<string, number>;
  /** Tables whose count differs from the manifest's: `table: expected N, found M`. */
  countMismatches: string[];
  /** The configured freshness queries (restore.freshness): each one's timestamp, ISO 8601, or null (no rows, or an error: see freshnessErrors). */
  freshness: Record<string, string | null>;
  /** Freshness queries that failed, with the error. */
  freshnessErrors?: Record<string, string>;
  checks: CheckResult[];
  /** pg_amcheck over every table and index, when asked for and installed. */
  amcheck?: CheckResult;
  ok: boolean;
}

export interface RestoreDatabaseInput {
  /** Task queue of the worker on the host that restores (it holds the private key). */
  hostTaskQueue: string;
  backup: BackupReference;
  /** Name of the new database; default `<database>_restore_<UTC time>`. */
  into?: string;
  /** Swap the restored database into the live one's place, once verified. */
  replace?: boolean;
  /** pg_restore -j; default the host's restore.jobs. */
  jobs?: number;
  /**
   * Admit a backup whose manifest is not signed (made before backups were signed), or a file made by the old scripts (no manifest at all). A wrongly
   * signed manifest is never admitted. Default false.
   */
  allowUnsigned?: boolean;
}

export interface RestoreTiming {
  restoreSeconds: number;
  verifySeconds: number;
  swapSeconds?: number;
  totalSeconds: number;
}

export interface RestoreDatabaseResult {
  workflowId: string;
  source: { kind: 'backup'; backupId: string; takenAt: string } | { kind: 'file'; path: string; format: string };
  restored: RestoredDatabase;
  inspection: DatabaseInspection;
  /** Present when the live database was replaced. */
  swap?: { live: string; keptAs: string; servicesStopped: string[]; servicesStarted: string[] };
  timing: RestoreTiming;
}

export interface RestoreProgress {
  phase: 'resolving' | 'restoring' | 'verifying' | 'auditing-copies' | 'stopping-services' | 'swapping' | 'starting-services' | 'cleaning-up' | 'done' | 'failed';
  database?: string;
  failure?: string;
}

export interface VerifyBackupInput {
  /** Task queue of the verification host's worker. */
  hostTaskQueue: string;
  /** Backup id or `latest`. */
  backup: BackupReference;
  jobs?: number;
  /** Run pg_amcheck over every table and index of the scratch database (default true). */
  amcheck?: boolean;
  /**
   * Admit a backup whose manifest is not signed (made before backups were signed). A wrongly
   * signed manifest is never admitted. Default false.
   */
  allowUnsigned?: boolean;
}

/** What reading one stored object back in full found, in one repository. */
export type ObjectCopyState = 'ok' | 'missing' | 'size-mismatch' | 'checksum-mismatch' | 'unreadable';

/** A repository's manifest: `damaged` when it does not parse or contradicts the backup's objects. */
export type ManifestCopyState = 'ok' | 'missing' | 'damaged' | 'unreadable';

export interface ObjectCopyCheck {
  role: StoredObject['role'];
  key: string;
  state: ObjectCopyState;
  /** Bytes read back (the whole object when it could be read). */
  bytesRead: number;
  /** Why it is not ok, without any of its content. */
  detail?: string;
  /** The classified failure when unreadable (StorageUnreachable, StorageAccessDenied...). */
  errorType?: string;
}

/** One repository's copy of a backup: its manifest and every stored object, each read in full. */
export interface RepositoryCopyCheck {
  repository: string;
  manifest: { key: string; state: ManifestCopyState; detail?: string; errorType?: string };
  objects: ObjectCopyCheck[];
  /** The manifest and every object are whole. */
  ok: boolean;
}

/** Every copy of a backup in every repository the verification host knows. Read-only. */
export interface CopyAudit {
  repositories: RepositoryCopyCheck[];
  /** Names of the repositories whose copy is not whole, in configured order. */
  damaged: string[];
  bytesRead: number;
  /** Repositories listed as holding a copy that retention let go of (their marker, no manifest): not audited, not damaged. */
  pruned?: string[];
}

/**
 * The verification's overall state. The restore and its checks are the main verdict; a
 * restorable backup reads as healthy only when every copy was read back whole.
 */
export type VerificationState = 'verified' | 'copies-damaged' | 'copies-unchecked' | 'failed';

/** The weekly verification's verdict, stored beside the backup in the catalog. */
export interface VerificationReport {
  formatVersion: 1;
  kind: 'verification';
  reportId: string;
  workflowId: string;
  backupId: string | null;
  startedAt: string;
  finishedAt: string;
  /** The backup restored and passed its checks: the main verdict (see state for the copies). */
  ok: boolean;
  /** Set when the run failed before an inspection could be made. */
  failure?: string;
  restored?: RestoredDatabase;
  inspection?: DatabaseInspection;
  scratchDropped: boolean;
  /** The overall state; absent in reports made before copies were audited. */
  state?: VerificationState;
  /** One line for people, e.g. "restorable, 2 of 3 copies damaged (local, nas)". */
  verdict?: string;
  /** Every copy read back and checked against the manifest. */
  copies?: CopyAudit;
  /** Why the copies could not be audited, when they could not. */
  copyAuditFailure?: string;
}

export interface RecoveryDrillInput {
  /** Task queue of the drill host's worker: a host that is not the database host. */
  hostTaskQueue: string;
  /** The offsite repository the drill restores from (only that one is used). */
  repository: string;
  /** Backup id or `latest`. */
  backup: BackupReference;
  /**
   * The application archive to restore beside the database, once file backups exist:
   * `none` (default) or a backup id / `latest` of the application component.
   */
  application?: BackupReference | 'none';
  /** Optional URL that must answer 2xx once the drill's checks pass. */
  healthUrl?: string;
  jobs?: number;
  /**
   * Admit a backup whose manifest is not signed (made before backups were signed). A wrongly
   * signed manifest is never admitted. Default false.
   */
  allowUnsigned?: boolean;
}

export interface DrillReport {
  formatVersion: 1;
  kind: 'drill';
  reportId: string;
  workflowId: string;
  host: string;
  repository: string;
  backupId: string | null;
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  failure?: string;
  /** Seconds from the drill's start until the restored database passed its checks. */
  rtoSeconds?: number;
  /** Seconds between the backup's snapshot and the drill's start: the data a disaster would lose. */
  rpoSeconds?: number;
  restored?: RestoredDatabase;
  inspection?: DatabaseInspection;
  health?: CheckResult;
  application: { requested: string; restored: boolean; detail: string };
  torndown: boolean;
}
