// Inputs and results of physical backups and point-in-time recovery: base backups, the WAL
// archive, and recovery to a target. Imports nothing from Node: bundled into the sandbox.
import type { Compression, CopyReport, StoredObject } from './types.js';

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
