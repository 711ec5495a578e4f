// What the chaos suite does not inject or run yet, said in its report rather than left out.
export const NOT_COVERED = [
  'Workflows: the sweep of leftovers itself runs only as the harness\'s cleanup after a fault that left a repository unwritable (a revoked S3 key, a full or read-only NAS) (not under faults of its own); workflows of later issues (application code, files, configuration, retention) do not exist yet.',
  'Faults: only one fault per run; no clock jumps, no DNS failure, no disk full on the database host\'s WAL spool or on the restore staging folder, no PostgreSQL restart of the restore server apart from the source (they are the same server here).',
  'Point-in-time recovery is run without a cutover (nothing live changes); the cutover and its services switch are covered by test/pitr.integration.test.ts at chosen moments only.',
];
