// Inputs and results of retention (workflows/applyRetention.ts, `backupctl prune`): what the
// policy keeps and deletes in every repository, recorded as a report before anything goes.
// Imports nothing from Node: it is bundled into the workflow sandbox.

/** What retention judges: logical dumps, physical base backups, and the WAL archive. */
export type RetentionComponent = 'database' | 'base' | 'wal';
export const RETENTION_COMPONENTS: readonly RetentionComponent[] = ['database', 'base', 'wal'];

export interface ApplyRetentionInput {
  /** Task queue of the database host: the WAL spool is a folder there. */
  hostTaskQueue: string;
  /** Decide and record the report; delete nothing. */
  dryRun?: boolean;
  /** Only these components (default: all). WAL follows the base backups kept, so judging WAL reads them too. */
  components?: RetentionComponent[];
  /** Only these repositories (default: every configured one). */
  repositories?: string[];
}

/** One repository's part of a run. */
export interface RepositoryRetention {
  repository: string;
  /** Could not be listed (down, refused): skipped, nothing of it judged or deleted. */
  unreachable?: string;
  backups: { kept: number; deleted: number; failed: number; bytesFreed: number };
  wal: { kept: number; deleted: number; failed: number; bytesFreed: number; keepFrom?: string; unshipped: number };
  /** Things found under our folders that are not ours (left alone), and damaged manifests (kept). */
  notOurs: string[];
  /** Deletions that failed, and why (the next run tries again). */
  failures: string[];
}

export interface ApplyRetentionReport {
  workflowId: string;
  reportId: string;
  dryRun: boolean;
  /** The clock the decision was made at (the workflow's time). */
  decidedAt: string;
  finishedAt: string;
  /** Where the decision (every backup and WAL range with its reasons) is recorded: `retention/<reportId>.json` in these repositories. */
  recordedIn: string[];
  /** The report's sha256 as recorded: a copy read back that is not these bytes was rewritten. */
  reportSha256?: string;
  repositories: RepositoryRetention[];
}

/** What the progress query answers while retention runs. */
export interface RetentionProgress {
  phase: 'deciding' | 'pruning' | 'done' | 'failed';
  repository?: string;
  done?: number;
  of?: number;
  failure?: string;
}
