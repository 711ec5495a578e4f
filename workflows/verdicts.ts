// What a failed inspection of a restored database says, in one line per problem.
import type { DatabaseInspection } from '../common/restoreTypes.js';

export function inspectionProblems(inspection: DatabaseInspection | undefined): string[] {
  if (!inspection) return [];
  return [
    ...inspection.countMismatches,
    ...inspection.checks.filter((c) => !c.ok).map((c) => `check ${c.name}: ${c.detail}`),
    ...(inspection.amcheck && !inspection.amcheck.ok ? [`pg_amcheck: ${inspection.amcheck.detail}`] : []),
  ];
}
