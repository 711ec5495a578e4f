// Inputs and results of physical backups and point-in-time recovery: base backups, the WAL
// archive, and recovery to a target. Imports nothing from Node: bundled into the sandbox.
import type { Compression, CopyReport, ManifestSignature, StoredObject } from './types.js';

export interface BaseBackupInput {
  /** Task queue of the worker on the database host. */
  hostTaskQueue: string;
  compression?: Compression;
  /** A subset of the configured repositories, by name; default all of them. */
  repositories?: string[];
}

export interface ServerFacts {
  version: string;
  /** server_version_num, e.g. 150004: recovery settings depend on it. */
  versionNum: number;
  systemIdentifier: string;
  /** wal_segment_size in bytes: which WAL segment a base backup's start LSN is in (retention keeps WAL from it). Absent in manifests made before it was recorded. */
  walSegmentBytes?: number;
}

/** What the database host found before the base backup started. */
export interface BaseBackupPlan {
  server: ServerFacts;
  repositories: { name: string; kind: 'filesystem' | 's3' }[];
  compression: Compression;
  encryptionFingerprint: string;
  checkpoint: 'fast' | 'spread';
}

/** What pg_basebackup reported: the WAL range the backup needs to be consistent. */
export interface BaseBackupFacts {
  timeline: number;
  startLsn: string;
  stopLsn: string;
  /** Wall-clock bounds of the copy; a recovery target must lie after `stoppedAt`. */
  startedAt: string;
  stoppedAt: string;
  /** PostgreSQL's backup_manifest is inside the tar, for pg_verifybackup after restore. */
  includesBackupManifest: boolean;
}

export interface BaseBackupManifest {
  formatVersion: 1;
  backupId: string;
  component: 'base';
  workflowId: string;
  runId: string;
  startedAt: string;
  finishedAt: string;
  server: ServerFacts;
  backup: BaseBackupFacts;
  compression: Compression;
  encryption: { type: 'openpgp'; recipientFingerprint: string };
  objects: StoredObject[];
  copies: CopyReport[];
  /** Present in stored manifests made by a host with a signing key. */
  signature?: ManifestSignature;
}

export interface BaseBackupResult {
  workflowId: string;
  backupId: string;
  component: 'base';
  startedAt: string;
  finishedAt: string;
  bytes: number;
  sha256: string;
  compression: Compression;
  encryption: string;
  server: ServerFacts;
  backup: BaseBackupFacts;
  objects: StoredObject[];
  copies: CopyReport[];
}

/** Where each repository's copy of the WAL archive stands, as the shipping workflow last saw it. */
export interface WalRepositoryState {
  newestSegment: string | null;
  /** Segments in the spool this repository does not have yet. */
  behind: number;
  lastShippedAt: string | null;
  lastError?: string;
  lastErrorAt?: string;
}

export interface WalShippingState {
  spool: string;
  repositories: Record<string, WalRepositoryState>;
  passes: number;
}

export interface ShipWalInput {
  /** Task queue of the database host's worker (the spool is on its disk). */
  hostTaskQueue: string;
  intervalSeconds?: number;
  /** Carried across continue-as-new. */
  state?: WalShippingState;
}

/** One shipping pass to one repository. */
export interface WalShipResult {
  repository: string;
  shipped: number;
  newestSegment: string | null;
  behind: number;
}

/** What to recover to: PostgreSQL's recovery_target_time, _lsn, _xid or _name. */
export type RecoveryTarget =
  | { kind: 'time'; value: string }
  | { kind: 'lsn'; value: string }
  | { kind: 'xid'; value: string }
  | { kind: 'name'; value: string };

export interface BaseBackupSummary {
  backupId: string;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  stoppedAt: string;
}

/** The span a recovery can reach: after the oldest usable base backup, up to the newest archived WAL. */
export interface RecoverableWindow {
  baseBackups: BaseBackupSummary[];
  earliest: string | null;
  latest: string | null;
  newestSegment: string | null;
  /** Highest LSN the archive can hold (end of the newest archived segment). */
  latestLsn: string | null;
}

export interface PointInTimeRecoveryInput {
  /** Task queue of the host that recovers (it holds the private key and the new data directory). */
  hostTaskQueue: string;
  /** Without one, the workflow waits for the operator's setTargetTime signal or setTarget update. */
  target?: RecoveryTarget;
  /** New data directory (must not exist or be empty); default under restore.workDir. */
  dataDir?: string;
  /** Port for the recovered cluster; default a free one. */
  port?: number;
  /**
   * After verification, wait this many hours for the approveCutover signal, then stop the
   * services, run pitr.cutoverCommand and start them again. Without it, nothing live changes.
   */
  awaitCutoverApprovalHours?: number;
  /**
   * Admit a backup whose manifest is not signed (made before backups were signed). A wrongly
   * signed manifest is never admitted. Default false.
   */
  allowUnsigned?: boolean;
}

export interface CutoverOutcome {
  requested: boolean;
  approvedBy?: string;
  switched: boolean;
  detail: string;
}

export interface RejectedTarget {
  target: RecoveryTarget;
  reason: string;
  at: string;
}

export interface PitrState {
  phase: 'waiting-for-target' | 'restoring-base-backup' | 'replaying-wal' | 'verifying' | 'awaiting-cutover-approval' | 'cutting-over' | 'done' | 'failed';
  /** Where the recovered cluster runs, once it does. */
  cluster?: RecoveryCluster;
  window: RecoverableWindow | null;
  target: RecoveryTarget | null;
  baseBackup: BaseBackupSummary | null;
  rejected: RejectedTarget[];
  failure?: string;
}

export interface RecoveryCluster {
  dataDir: string;
  port: number;
  host: string;
}

export interface PointInTimeRecoveryResult {
  workflowId: string;
  target: RecoveryTarget;
  baseBackup: BaseBackupSummary;
  cluster: RecoveryCluster;
  /** The last transaction replayed (pg_last_xact_replay_timestamp before promotion). */
  recoveredTo: string | null;
  timeline: number;
  rowCounts: Record<string, number>;
  checks: { name: string; ok: boolean; detail: string }[];
  cutover: CutoverOutcome;
  timing: { waitedSeconds: number; restoreSeconds: number; replaySeconds: number; totalSeconds: number };
}
