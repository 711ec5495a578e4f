// What the chaos suite does not inject or run yet, said in its report rather than left out.
export const NOT_COVERED = [
  'Workflows: WAL shipping, point-in-time recovery and the recovery drill are not yet run under chaos (their crash tests in test/ cover one chosen moment each).',
  'Faults: S3 credentials revoked mid-run (SeaweedFS reads its identities at start; no revocation is injected yet).',
];
