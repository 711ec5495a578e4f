// The retention policy a configuration asks for (config `retention`), with the seed's defaults:
// database dumps daily 30, weekly 12 and monthly 3 on local repositories, and daily 30, weekly
// 12, monthly 12, yearly 7 offsite; base backups weekly 4 and a 7-day point-in-time window
// locally, weekly 12, monthly 12 and a 30-day window offsite (the seed's "WAL 7 days local, 30
// days cloud": WAL follows the base backups kept). Offsite is an S3 repository; local, a filesystem one.
import type { Config } from '../common/config.js';
import type { RetentionPolicy, RetentionRule } from './retention.js';

type Kind = 'local' | 'offsite';

export const DEFAULT_RETENTION: Record<'database' | 'base', Record<Kind, RetentionRule>> = {
  database: { local: { daily: 30, weekly: 12, monthly: 3 }, offsite: { daily: 30, weekly: 12, monthly: 12, yearly: 7 } },
  base: { local: { weekly: 4, pitrWindowDays: 7 }, offsite: { weekly: 12, monthly: 12, pitrWindowDays: 30 } },
};

export function retentionPolicyOf(config: Config): RetentionPolicy {
  const { retention } = config;
  return {
    timezone: retention.timezone,
    leftoverGraceMs: retention.leftoverGraceHours * 3_600_000,
    ruleFor(component, repository) {
      if (component !== 'database' && component !== 'base') return undefined;
      const set = retention[component];
      const kind: Kind = config.repositories[repository]?.type === 's3' ? 'offsite' : 'local';
      return set.repositories[repository] ?? set[kind] ?? DEFAULT_RETENTION[component][kind];
    },
  };
}
