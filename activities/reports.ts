// Verification and drill reports into the catalog, and the drill's HTTP health check.
import { log } from '@temporalio/activity';
import { ErrorType } from '../common/types.js';
import type { CheckResult, DrillReport, VerificationReport } from '../common/restoreTypes.js';
import { drillKey, repositoriesHolding, verificationKey, writeJson } from '../engine/catalog.js';
import type { DatabaseBackupDeps } from './databaseBackup.js';
import { errorText, transient } from '../engine/errors.js';
import { redactUrlUserinfo } from '../common/redact.js';
import type { Repository } from '../engine/storage/repository.js';
import './attemptContext.js';

export function createReportActivities(deps: DatabaseBackupDeps) {
  /** Writes to each repository; succeeds when at least one took it, and says which did not. */
  async function writeEverywhere(repositories: Repository[], key: string, report: object): Promise<string[]> {
    const results = await Promise.allSettled(repositories.map((r) => writeJson(r, key, report)));
    const written = repositories.filter((_, i) => results[i].status === 'fulfilled').map((r) => r.name);
    results.forEach((r, i) => {
      if (r.status === 'rejected') log.warn('report not written', { repository: repositories[i].name, key, error: errorText(r.reason) });
    });
    if (!written.length) {
      throw transient(ErrorType.StorageUnreachable, `no repository took ${key}: ${results.map((r) => (r.status === 'rejected' ? errorText(r.reason) : '')).join('; ')}`);
    }
    return written;
  }

  return {
    /** Stores the report beside its backup in every repository that holds the backup. Idempotent (same key, same content). */
    async writeVerificationReport(report: VerificationReport): Promise<string[]> {
      if (!report.backupId) return [];
      const holders = await repositoriesHolding(deps.repositories, 'database', report.backupId);
      return writeEverywhere(holders.length ? holders : deps.repositories, verificationKey(report.backupId, report.reportId), report);
    },

    /** Stores the drill report in every repository of the drill host. Idempotent. */
    async writeDrillReport(report: DrillReport): Promise<string[]> {
      return writeEverywhere(deps.repositories, drillKey(report.reportId), report);
    },

    /** GETs the health URL; passes on a 2xx answer within 10 s. Never throws for a finding. */
    async checkHealthUrl(input: { url: string }): Promise<CheckResult> {
      try {
        const response = await fetch(input.url, { signal: AbortSignal.timeout(10_000), redirect: 'follow' });
        await response.body?.cancel();
        return { name: `GET ${redactUrlUserinfo(input.url)}`, ok: response.ok, detail: `HTTP ${response.status}` };
      } catch (err) {
        return { name: `GET ${redactUrlUserinfo(input.url)}`, ok: false, detail: errorText(err) };
      }
    },
  };
}
