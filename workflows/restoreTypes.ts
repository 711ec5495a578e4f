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
  /** Manifest copies that were not used (damaged, another backup's, different content). */
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
  /** The seed's freshness check: newest review_manager_searchsession.created_at. */
  newestSearchSession: string | null;
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
  phase: 'resolving' | 'restoring' | 'verifying' | 'stopping-services' | 'swapping' | 'starting-services' | 'cleaning-up' | 'done' | 'failed';
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
}

/** The weekly verification's verdict, stored beside the backup in the catalog. */
export interface VerificationReport {
  formatVersion: 1;
  kind: 'verification';
  reportId: string;
  workflowId: string;
  backupId: string | null;
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  /** Set when the run failed before an inspection could be made. */
  failure?: string;
  restored?: RestoredDatabase;
  inspection?: DatabaseInspection;
  scratchDropped: boolean;
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
