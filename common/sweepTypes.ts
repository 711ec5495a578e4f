// Inputs and results of the sweep of leftovers: what runs that closed without cleaning up
// (terminated, timed out, or whose compensation failed) left on a host and in its
// repositories. Imports nothing from Node: it is bundled into the workflow sandbox.

export interface SweepLeftoversInput {
  /** Task queue of the host whose restore server, folders and repositories are swept. */
  hostTaskQueue: string;
  /** Report what would be done, and do nothing. */
  dryRun?: boolean;
  /**
   * Also remove the folders of recoveries that did not complete (stopped first). Without it a
   * failed recovery's data directory and server log stay for the operator to read.
   */
  removeRecoveryFolders?: boolean;
  /**
   * An unfinished write (an S3 multipart upload, a file repository's temp file) is removed only
   * when older than this (default 24): a transfer activity runs at most 12 hours, so an older
   * upload is no live writer's (a temp file's age counts from its last write).
   */
  uploadAgeHours?: number;
}

/** A workflow run, as our marks name it: the run id proves it, the workflow id finds it. */
export interface RunRef {
  workflowId: string;
  runId: string;
}

export type RunStatus = 'COMPLETED' | 'FAILED' | 'CANCELED' | 'TERMINATED' | 'CONTINUED_AS_NEW' | 'TIMED_OUT' | 'UNSPECIFIED';

/** What Temporal says of a run. */
export type RunStanding =
  | { state: 'open' }
  | {
      state: 'closed';
      status: RunStatus;
      /** The workflow type, e.g. restoreDatabase. */
      type: string;
      /** A recovery run only: whether it ever asked to switch the application over. */
      cutoverAttempted?: boolean;
    }
  /** No such run: it closed and its history is gone (retention), or it never existed. */
  | { state: 'gone' }
  /** Temporal could not be asked, or gave no answer we understand: touch nothing. */
  | { state: 'unknown'; why: string };

/** Something a run of ours made, as found on the host or in a repository. */
export type Leftover =
  | {
      kind: 'database';
      /** On this host's restore server. */
      name: string;
      run: RunRef;
      attempt: number;
      /** From its marker: still being restored into, or restored (the restore's result). */
      state: 'restoring' | 'restored';
      /** A verification's or a drill's scratch database (named after its workflow id). */
      scratch: boolean;
    }
  | {
      kind: 'backup';
      component: 'database' | 'base';
      backupId: string;
      /** The claim's holder; null when no claim is readable. */
      run: RunRef | null;
      claim: 'held' | 'damaged' | 'none';
      /** A manifest exists in some repository ('damaged': one cannot be read, so what it names is unknown). */
      manifest: 'published' | 'none' | 'damaged';
      /** Attempt folders no manifest names, `<repository>:<folder>`. */
      folders: string[];
    }
  | {
      kind: 'upload';
      repository: string;
      key: string;
      /** S3: the upload id; a file repository: the temp file's name. */
      uploadId: string;
      /** A file repository's temp file (not an S3 multipart upload); its age counts from its last write. */
      tempFile?: boolean;
      initiated: string | null;
      ageHours: number | null;
    }
  | {
      kind: 'recovery';
      /** The folder holding the data directory and its private folder. */
      folder: string;
      dataDir: string;
      run: RunRef;
      running: boolean;
    }
  | {
      kind: 'staging';
      /** A temporary folder (restore staging, gpg home) whose owning process is dead. */
      folder: string;
    };

export interface FoundLeftovers {
  leftovers: Leftover[];
  /** What could not be looked at, and why (a restore server down, a repository unreachable). */
  notExamined: { what: string; why: string }[];
}

export type SweepAct = 'drop' | 'remove' | 'abort' | 'stop' | 'keep';

export interface SweepDecision {
  act: SweepAct;
  /** A recovery only: remove its folder after stopping its server. */
  removeFolder?: boolean;
  why: string;
}

export interface SweepItem {
  leftover: Leftover;
  standing?: RunStanding;
  decision: SweepDecision;
  /** What happened: done, kept, planned (dry run) or failed. */
  outcome: 'done' | 'kept' | 'planned' | 'failed';
  /** What the act did (objects removed, server stopped...) or why it failed. */
  detail?: string;
}

export interface SweepReport {
  workflowId: string;
  hostTaskQueue: string;
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  items: SweepItem[];
  notExamined: { what: string; why: string }[];
  counts: { done: number; kept: number; planned: number; failed: number };
}

/** Progress of a running sweep, answered by progressQuery. */
export interface SweepProgress {
  phase: 'finding' | 'asking-temporal' | 'sweeping' | 'done' | 'failed';
  done?: number;
  of?: number;
  failure?: string;
}
