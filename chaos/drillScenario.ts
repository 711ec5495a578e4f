// "recovery drill": the monthly drill as configured (drill.repository: the offsite S3 copy of
// the latest database backup), restored into its drill database, checked, torn down, and its
// report written to the repositories. A completed drill must report ok, torn down, with its RTO
// and RPO, and the report it stored must be the one it returned; a drill that did not complete
// must not have stored a report saying ok. The drill database itself is the global
// invariants' (no database made by a run is left).
import { isDeepStrictEqual } from 'node:util';
import type { DrillReport } from '../common/restoreTypes.js';
import { repositories } from './invariants.js';
import { startWorkflow, workflowRun, type Scenario } from './scenario.js';

const REPORTS = 'drills/';
/** Report keys already read, per repository: each is read once. */
const seen = new Set<string>();

export const recoveryDrillScenario: Scenario = {
  name: 'recovery drill',
  typicalMs: 8000,
  start: (stack, id) => startWorkflow(stack.client, 'recoveryDrill', id, { repository: stack.config.drill.repository ?? 's3', backup: 'latest' }).then(workflowRun),
  async check(stack, outcome, run) {
    const problems: string[] = [];
    const stored: Array<{ repository: string; report: DrillReport }> = [];
    for (const repo of repositories(stack)) {
      let keys: string[];
      try {
        keys = await repo.keys(REPORTS);
      } catch (err) {
        problems.push(`${repo.name}: drill reports cannot be listed: ${(err as Error).message.slice(0, 120)}`);
        continue;
      }
      for (const key of keys.filter((k) => !seen.has(`${repo.name}\0${k}`))) {
        seen.add(`${repo.name}\0${key}`);
        try {
          const report = JSON.parse((await repo.bytes(key)).toString('utf8')) as DrillReport;
          if (report.workflowId === run.workflowId) stored.push({ repository: repo.name, report });
        } catch (err) {
          problems.push(`${repo.name}: ${key} is not a whole report: ${(err as Error).message.slice(0, 120)}`);
        }
      }
    }
    if (outcome.status === 'completed') {
      const report = outcome.result as DrillReport;
      if (!report.ok || !report.torndown || !report.backupId || report.repository !== (stack.config.drill.repository ?? 's3') || typeof report.rtoSeconds !== 'number' || typeof report.rpoSeconds !== 'number') {
        problems.push(`the drill completed with ok=${report.ok}, torndown=${report.torndown}, backup ${report.backupId}, repository ${report.repository}, rto ${report.rtoSeconds}, rpo ${report.rpoSeconds}`);
      }
      // The local repository is never faulted: it must hold the report; any other copy must equal it.
      if (!stored.some((s) => s.repository === 'local')) problems.push(`the completed drill's report ${report.reportId} is not in the local repository`);
      for (const s of stored.filter((s) => !isDeepStrictEqual(s.report, report))) problems.push(`${s.repository}: the stored drill report differs from the one the drill returned`);
    } else {
      for (const s of stored.filter((s) => s.report.ok)) problems.push(`${s.repository}: a drill that ended ${outcome.status} stored a report saying ok`);
    }
    return problems;
  },
};
