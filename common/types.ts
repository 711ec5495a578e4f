// Inputs, results, error types and task-queue names shared by workflows, activities and the
// client. Imports nothing from Node: it is bundled into the workflow sandbox.

/** Error types carried by ApplicationFailure.type; the CLI and tests match on these. */
export const ErrorType = {
  InvalidInput: 'InvalidInput',
  InvalidConfig: 'InvalidConfig',
  UnknownDatabase: 'UnknownDatabase',
  AuthenticationFailed: 'AuthenticationFailed',
  PermissionDenied: 'PermissionDenied',
  DatabaseUnreachable: 'DatabaseUnreachable',
  PublicKeyMissing: 'PublicKeyMissing',
  InvalidPublicKey: 'InvalidPublicKey',
  UnknownRepository: 'UnknownRepository',
  BucketMissing: 'BucketMissing',
  StorageAccessDenied: 'StorageAccessDenied',
  StorageUnreachable: 'StorageUnreachable',
  DiskFull: 'DiskFull',
  DumpFailed: 'DumpFailed',
  DumpUnreadable: 'DumpUnreadable',
  ChecksumMismatch: 'ChecksumMismatch',
  DecryptionFailed: 'DecryptionFailed',
  CopyMissing: 'CopyMissing',
  BackupAlreadyExists: 'BackupAlreadyExists',
  BackupNotFound: 'BackupNotFound',
  NoUsableCopy: 'NoUsableCopy',
  PrivateKeyMissing: 'PrivateKeyMissing',
  /** The private key is there but stays locked: its passphrase file is missing, unreadable or wrong. */
  PassphraseWrong: 'PassphraseWrong',
  TargetDatabaseExists: 'TargetDatabaseExists',
  RestoreFailed: 'RestoreFailed',
  VerificationFailed: 'VerificationFailed',
  ServiceCommandFailed: 'ServiceCommandFailed',
  SwapFailed: 'SwapFailed',
  HealthCheckFailed: 'HealthCheckFailed',
  WalConflict: 'WalConflict',
  WalMissing: 'WalMissing',
  RecoveryFailed: 'RecoveryFailed',
  BackupOwnershipLost: 'BackupOwnershipLost',
  PipelineStalled: 'PipelineStalled',
  /** A manifest copy that cannot be read, names another backup, or differs from the one used: a damaged copy. */
  ManifestDamaged: 'ManifestDamaged',
  /** A backup whose recorded source (database, cluster system identifier) is not the configured one. */
  SourceMismatch: 'SourceMismatch',
  /** The configured live database: only the swap may rename it, nothing drops or creates over it. */
  LiveDatabaseProtected: 'LiveDatabaseProtected',
  /** A newer attempt of the same activity owns the work: this one stopped without touching it. */
  AttemptSuperseded: 'AttemptSuperseded',
  /** Another session holds backupctl's lock on a database name for too long. */
  TargetDatabaseBusy: 'TargetDatabaseBusy',
  /**
   * A backup with no signed manifest (made before backups were signed, by a host without a
   * signing key, planted, or a seed-made file): refused unless explicitly admitted.
   */
  UnsignedBackup: 'UnsignedBackup',
  /** A manifest whose signature does not verify under any configured signing public key: never used. */
  BadSignature: 'BadSignature',
} as const;
export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** The queue every worker polls; work that may run on any host goes here. */
export const SHARED_TASK_QUEUE = 'backup';

/** The queue of one host's worker: activities that touch that host's files or database. */
export function hostTaskQueue(host: string): string {
  return `${SHARED_TASK_QUEUE}@${host}`;
}

export const COMPRESSIONS = ['zstd', 'gzip'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface DatabaseBackupInput {
  /** Task queue of the worker on the database host (hostTaskQueue(host)). */
  hostTaskQueue: string;
  /** Overrides the worker's configured compression. */
  compression?: Compression;
  /** A subset of the configured repositories, by name; default all of them. */
  repositories?: string[];
}

/** What the database host's worker found before anything was written. */
export interface DatabaseBackupPlan {
  database: string;
  serverVersion: string;
  repositories: { name: string; kind: RepositoryKind }[];
  /** `all`: every table in the snapshot; else these. */
  keyTables: 'all' | string[];
  compression: Compression;
  encryptionFingerprint: string;
}

export type RepositoryKind = 'filesystem' | 's3';

/** One stored object of a backup, as written to every repository. */
export interface StoredObject {
  /** Role in the backup: 'dump' (pg_dump custom format), 'globals' (pg_dumpall -g) or 'base' (pg_basebackup tar). */
  role: 'dump' | 'globals' | 'base';
  /** Key relative to the repository root; the same in every repository. */
  key: string;
  /** Size of the stored (compressed, encrypted) bytes. */
  bytes: number;
  /** sha256 of the stored bytes, hex. */
  sha256: string;
  /** Size of the plaintext produced by pg_dump / pg_dumpall, before compression. */
  plainBytes: number;
}

export interface DumpResult {
  objects: StoredObject[];
  rowCounts: Record<string, number>;
  warnings: string[];
  source: SourceFacts;
  /** How the dump was proved readable. */
  readabilityCheck: string;
}

export interface SourceFacts {
  database: string;
  /**
   * The cluster's system identifier (pg_control_system()), as a decimal string: which cluster
   * the database was dumped from. Absent in older manifests, whose source cannot be checked.
   */
  systemIdentifier?: string;
  /** Owner of the database; a restore gives the new database the same owner. Absent in older manifests. */
  owner?: string;
  serverVersion: string;
  /** WAL position when the snapshot was taken (replay position on a standby). */
  lsn: string | null;
  snapshotTakenAt: string;
  databaseBytes: number;
}

export interface CopyReport {
  repository: string;
  key: string;
  bytes: number;
  sha256: string;
  verified: boolean;
}

/**
 * A manifest's signature, made on the backup host with its signing key: Ed25519 over
 * `backupctl-manifest-v1\n` + the manifest's JSON without this field (manifestSignature.ts).
 */
export interface ManifestSignature {
  algorithm: 'ed25519';
  /** sha256 of the signing public key (SPKI DER), hex. */
  keyId: string;
  /** The signature, base64. */
  value: string;
}

/** What a manifest's signature proves: signed by a configured key, not signed at all, or wrongly signed. */
export type SignatureVerdict = { state: 'signed'; keyId: string } | { state: 'unsigned' } | { state: 'bad-signature'; reason: string };

export interface BackupManifest {
  formatVersion: 1;
  backupId: string;
  component: 'database';
  workflowId: string;
  runId: string;
  startedAt: string;
  finishedAt: string;
  source: SourceFacts;
  compression: Compression;
  encryption: { type: 'openpgp'; recipientFingerprint: string };
  objects: StoredObject[];
  rowCounts: Record<string, number>;
  readabilityCheck: string;
  copies: CopyReport[];
  warnings: string[];
  /** Present in stored manifests made by a host with a signing key. */
  signature?: ManifestSignature;
}

export interface DatabaseBackupResult {
  workflowId: string;
  backupId: string;
  component: 'database';
  startedAt: string;
  finishedAt: string;
  /** Stored bytes of the dump object (the globals object is listed in objects). */
  bytes: number;
  sha256: string;
  compression: Compression;
  encryption: string;
  rowCounts: Record<string, number>;
  objects: StoredObject[];
  copies: CopyReport[];
  warnings: string[];
}

/** Progress of a running backup, answered by progressQuery. */
export interface BackupProgress {
  phase: 'planning' | 'dumping' | 'verifying' | 'writing-manifest' | 'cleaning-up' | 'done' | 'failed';
  backupId: string;
  failure?: string;
}
