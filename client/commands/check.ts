// `backupctl check`: the configuration's point-in-time recovery preconditions, the archiving
// set-up and a live test of it; exit 1 when anything is wrong.
import { checkArchiving } from '../../engine/archiveCheck.js';
import { pitrPreconditionProblems } from '../../common/pitrPreconditions.js';
import type { Repository } from '../../engine/storage/repository.js';
import type { Config } from '../../common/config.js';
import type { Printer } from '../output.js';

export async function runCheck(config: Config, repositories: Repository[], options: { wait?: string }, out: Printer): Promise<number> {
  const configuration = pitrPreconditionProblems(config);
  const archiving = await checkArchiving(config, repositories, options.wait ? Number(options.wait) : 60);
  const report = { ...archiving, ok: archiving.ok && configuration.length === 0, configuration: { problems: configuration } };
  out.result(report, () =>
    [
      `${configuration.length === 0 ? 'OK' : 'ATTENTION'}  point-in-time recovery configuration`,
      ...configuration.map((p) => `  problem: ${p}`),
      `${archiving.ok ? 'OK' : 'ATTENTION'}  WAL archiving: wal_level=${report.settings.wal_level} archive_mode=${report.settings.archive_mode} archive_timeout=${report.settings.archive_timeout}`,
      `  archive_command: ${report.settings.archive_command}`,
      `  archived ${report.archiver.archivedCount} (last ${report.archiver.lastArchivedWal ?? '-'} at ${report.archiver.lastArchivedTime ?? '-'}), failed ${report.archiver.failedCount}`,
      ...(report.switched ? [`  switched ${report.switched.segment}: ${report.switched.arrived ? `archived in ${report.switched.seconds.toFixed(1)} s` : 'NOT archived'}`] : []),
      ...report.problems.map((p) => `  problem: ${p}`),
    ].join('\n'),
  );
  return report.ok ? 0 : 1;
}
