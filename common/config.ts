// Configuration: one YAML or JSON file (--config or BACKUPCTL_CONFIG) overlaid by the
// conventional environment variables, validated once at start-up. Every error names the
// field, the value and what is allowed. Secrets are never in this object's file by design:
// passwords come from the URL, PGPASSWORD, a passfile or a password file.
import { alertsSchema } from './alertsConfig.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { COMPRESSIONS, ErrorType } from './types.js';
import { redact, redactUrlUserinfo } from './redact.js';

const NAME = /^[a-z][a-z0-9_-]{0,39}$/;
const HOST = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const SQL_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/;

const noNul = (text: string) => !text.includes('\0');
/** One argument of a command we run: not empty, and no NUL byte (no process can receive one). */
const commandWord = z.string().min(1, 'must not be empty').refine(noNul, 'must not contain a NUL byte');
const hostName = z.string().regex(HOST, 'must be a host name of 1-63 letters, digits, . _ - (it names the task queue backup@<host>)');
const repositoryName = z.string().regex(NAME, 'must be a repository name: a lower-case letter, then up to 39 of a-z 0-9 _ -');
/** A path we open: no NUL byte (the kernel would cut the path there), and absolute, so it means the same from every working directory. */
const absolutePath = z
  .string()
  .min(1, 'must be an absolute path')
  .refine(noNul, 'must not contain a NUL byte')
  .refine((p) => path.isAbsolute(p), 'must be an absolute path');
const postgresUrl = z
  .string()
  .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
  .refine(noNul, 'must not contain a NUL byte')
  .refine(
    (u) => URL.canParse(u) && new URL(u).port !== '0',
    'must be a valid URL: postgres://user:password@host:port/database, port 1-65535, special characters of the password percent-encoded (@ as %40, space as %20)',
  );
const httpUrl = z
  .string()
  .refine((u) => URL.canParse(u) && ['http:', 'https:'].includes(new URL(u).protocol) && new URL(u).port !== '0', 'must be an http:// or https:// URL (port 1-65535)');
/** A timezone the runtime knows (IANA names such as Europe/Berlin, or UTC). */
const timeZone = z.string().refine((zone) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}, 'must be an IANA time zone such as UTC or Europe/Berlin');

const filesystemRepository = z.strictObject({
  type: z.literal('filesystem'),
  path: absolutePath,
});

const s3Repository = z.strictObject({
  type: z.literal('s3'),
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name (3-63 of a-z 0-9 . -)'),
  prefix: z.string().regex(/^([A-Za-z0-9._-]+\/)*[A-Za-z0-9._-]*$/, 'must be a key prefix of A-Z a-z 0-9 . _ - and /').default(''),
  region: z.string().regex(/^[a-z0-9-]{1,64}$/, 'must be a region name such as eu-central-1').optional(),
  endpoint: httpUrl.optional(),
  forcePathStyle: z.boolean().optional(),
  storageClass: z
    .enum(['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE', 'REDUCED_REDUNDANCY'])
    .optional(),
  partSizeMiB: z.number().int().min(5).max(512).default(8),
  /**
   * S3 Object Lock (the bucket must have been made with Object Lock enabled): every object put
   * here is retained, under this mode, for `days`: nobody (COMPLIANCE) or nobody without the
   * bypass permission (GOVERNANCE) can destroy its data before then. Retention never tries:
   * a backup still locked stays, with the date its lock ends. Set `days` no longer than this
   * repository's shortest retention, or backups stay (and are billed) until their locks end.
   */
  objectLock: z.strictObject({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), days: z.number().int().min(1).max(36_500) }).optional(),
});

function cadence(cron: string) {
  return z
    .strictObject({
      cron: z.string().regex(/^\S+( \S+){4}$/, 'must be a five-field cron expression, e.g. "0 2 * * *"').default(cron),
      timezone: timeZone.default('UTC'),
      paused: z.boolean().default(false),
    })
    .prefault({});
}

const repository = z.discriminatedUnion('type', [filesystemRepository, s3Repository]);

/** How many of each kind of bucket a retention rule keeps (engine/retention.ts). */
const bucketCount = z.number().int().min(0).max(10_000).optional();
const retentionRule = z
  .strictObject({
    daily: bucketCount,
    weekly: bucketCount,
    monthly: bucketCount,
    yearly: bucketCount,
    /** Everything completed within this many days stays. */
    withinDays: z.number().int().min(0).max(36_600).optional(),
    /** Base backups: the point-in-time window, in days, that stays recoverable. */
    pitrWindowDays: z.number().int().min(0).max(36_600).optional(),
  })
  .refine((r) => Object.values(r).some((v) => v !== undefined && v > 0), 'must keep something: set daily, weekly, monthly, yearly, withinDays or pitrWindowDays above 0');

/** A component's retention: by kind of repository (local: filesystem, offsite: S3), or for one repository by name. */
const componentRetention = z
  .strictObject({
    local: retentionRule.optional(),
    offsite: retentionRule.optional(),
    repositories: z.record(z.string(), retentionRule).default({}),
  })
  .prefault({});

export const configSchema = z.strictObject({
  /** This machine's name: its worker polls hostTaskQueue(host). */
  host: hostName.default('localhost'),
  temporal: z
    .strictObject({
      /** The Temporal Web UI's address (http://host:8233): alerts link to the runs they tell of. */
      webUiUrl: httpUrl.optional(),
      address: z
        .string()
        .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):\d{1,5}$/, 'must be host:port (a host name, IPv4 address or [IPv6] address)')
        .refine((a) => {
          const port = Number(a.slice(a.lastIndexOf(':') + 1));
          return port >= 1 && port <= 65535;
        }, 'must be host:port with a port from 1 to 65535')
        .default('127.0.0.1:7233'),
      namespace: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/, 'must be a namespace name of letters, digits, . _ -').default('default'),
      tls: z.boolean().default(false),
      apiKeyFile: absolutePath.optional(),
      /**
       * Encrypt every payload (inputs, results, heartbeat details, failure messages) with
       * AES-256-GCM before it reaches the Temporal service. The keys come from the environment
       * only (BACKUPCTL_PAYLOAD_KEYS or BACKUPCTL_PAYLOAD_KEYS_FILE, see workers/payloadKeys.ts),
       * the same on every worker and client; `backupctl codec-server` shows them in the Web UI.
       */
      payloadEncryption: z.strictObject({ enabled: z.boolean().default(false) }).prefault({}),
    })
    .prefault({}),
  database: z.strictObject({
    url: postgresUrl,
    /** File holding the password (alternative to PGPASSWORD or a passfile). */
    passwordFile: absolutePath.optional(),
    /** Host whose worker runs pg_dump; default the configured host. */
    host: hostName.optional(),
    /**
     * Tables whose rows are counted in the dump's own snapshot and compared after every restore:
     * `all` (the default: every table), a list, or [] for none.
     */
    keyTables: z.union([z.literal('all'), z.array(z.string().regex(SQL_IDENTIFIER, 'must be a table name, optionally schema-qualified'))]).default('all'),
    includeRolePasswords: z.boolean().default(false),
    /** Where pg_dump and friends live; default: the newest /usr/lib/postgresql/N/bin, else PATH. */
    binDir: absolutePath.optional(),
  }),
  repositories: z
    .record(z.string().regex(NAME, 'repository names are a lower-case letter, then up to 39 of a-z 0-9 _ -'), repository)
    .refine((r) => Object.keys(r).length > 0, 'at least one repository is required'),
  compression: z
    .strictObject({
      algorithm: z.enum(COMPRESSIONS).default('zstd'),
      level: z.number().int().min(1).max(19).default(3),
      /** zstd worker threads; 0 means one per core. */
      threads: z.number().int().min(0).max(64).default(0),
    })
    .prefault({}),
  encryption: z.strictObject({
    /** ASCII-armored or binary OpenPGP public key; backup hosts hold no private key. */
    publicKeyFile: absolutePath,
    /** GNUPGHOME holding the private key: set only on hosts that restore, verify or drill. */
    privateKeyHome: absolutePath.optional(),
    /**
     * File holding the private key's passphrase (its first line), when the key has one. gpg
     * reads it itself: the passphrase is never in a command line or an environment. Whoever
     * decrypts must be able to read it: the worker, and the PostgreSQL OS user for wal-fetch.
     */
    passphraseFile: absolutePath.optional(),
  }),
  /**
   * Authenticity of backups: the backup host signs every manifest (which holds each object's
   * size and sha256) with an Ed25519 key of its own, separate from the encryption key; restores,
   * verifications, drills and point-in-time recovery use only manifests whose signature
   * verifies under one of the listed public keys.
   */
  signing: z
    .strictObject({
      /** PEM (PKCS#8) Ed25519 PRIVATE key: only on hosts that make backups. Its public half is trusted here too. */
      privateKeyFile: absolutePath.optional(),
      /** PEM (SPKI) Ed25519 public keys whose signatures are trusted: the current one and, after a rotation, the older ones. */
      publicKeyFiles: z.array(absolutePath).default([]),
      /**
       * false lets a host without privateKeyFile make UNSIGNED backups (insecure: restores refuse
       * them unless run with --allow-unsigned). Default true: such a backup fails at once.
       */
      required: z.boolean().default(true),
    })
    .prefault({}),
  /** Physical base backups (pg_basebackup) for point-in-time recovery. */
  baseBackup: z
    .strictObject({
      /** A role with REPLICATION (pg_hba must allow its replication connections); default database.url. */
      url: postgresUrl.optional(),
      passwordFile: absolutePath.optional(),
      /** fast: an immediate checkpoint (the backup starts at once, with an I/O burst); spread: a gentle one. */
      checkpoint: z.enum(['fast', 'spread']).default('fast'),
    })
    .prefault({}),
  /** The WAL archive: where archive_command writes, and how often the rest is shipped. */
  wal: z
    .strictObject({
      /** The filesystem repository wal-push writes to; default the first filesystem repository. */
      spool: repositoryName.optional(),
      /** Seconds between shipping passes to the other repositories. */
      shipIntervalSeconds: z.number().int().min(1).max(3600).default(30),
      /** The background pusher of asynchronous archiving (bin/wal-push-async, README). */
      async: z
        .strictObject({
          /** WAL files stored at once (each runs zstd and gpg). */
          processes: z.number().int().min(1).max(32).default(4),
          /** The pusher ends after this long with nothing to store; the next archive_command starts one. */
          idleSeconds: z.number().int().min(1).max(86400).default(60),
        })
        .prefault({}),
      /** The background fetcher of asynchronous recovery (bin/wal-fetch-async). */
      fetchAhead: z
        .strictObject({
          /** WAL files fetched and decrypted at once. */
          processes: z.number().int().min(1).max(32).default(4),
          /** At most this many segments wait, decrypted, in the queue folder (16 MiB each by default): the disk bound. */
          maxSegments: z.number().int().min(1).max(4096).default(32),
          /** The fetcher ends after this long with nothing asked of it; the next restore_command starts one. */
          idleSeconds: z.number().int().min(1).max(86400).default(30),
        })
        .prefault({}),
      /**
       * WAL files PostgreSQL has ready but not yet archived (its archive_status queue) beyond
       * which `status` reports a problem: archiving falls behind, and pg_wal grows.
       */
      queueMaxSegments: z.number().int().min(1).max(100000).default(32),
    })
    .prefault({}),
  /** Point-in-time recovery on this host. */
  pitr: z
    .strictObject({
      /**
       * restore_command of recovered clusters; default this worker's `backupctl --config <file>
       * wal-fetch %f %p`. It runs as the PostgreSQL OS user, who must be able to read that
       * configuration, the repositories and a private keyring.
       */
      // It becomes a line of postgresql.auto.conf: a line break would add settings of its own.
      restoreCommand: z
        .string()
        .regex(/%f[\s\S]*%p/, 'must contain %f and then %p')
        .refine((c) => !/[\0\r\n]/.test(c), 'must be one line without NUL bytes')
        // Unsigned WAL is admitted per recovery (pitr start --allow-unsigned hands the flag to
        // wal-fetch and the result says so), never by configuration for every recovery.
        .refine((c) => !c.includes('--allow-unsigned'), 'must not carry --allow-unsigned: a recovery that must replay unsigned WAL is started with pitr start --allow-unsigned')
        .optional(),
      /**
       * Points the application at an approved recovered cluster (a pgbouncer reload, a config
       * switch...), run with BACKUPCTL_RECOVERED_HOST, _PORT and _DATA_DIR in its environment,
       * while the application's services (restore.services) are stopped.
       */
      cutoverCommand: z.array(commandWord).min(1).optional(),
    })
    .prefault({}),
  /** How this host restores: into which server, how, and what it checks afterwards. */
  restore: z
    .strictObject({
      /** A role that may create databases and roles there (superuser, to keep owners and grants); default database.url's server as its user, database postgres. */
      serverUrl: postgresUrl.optional(),
      passwordFile: absolutePath.optional(),
      /** pg_restore -j. */
      jobs: z.number().int().min(1).max(64).default(2),
      /** Where the decrypted archive is staged for a parallel pg_restore (private, removed after). */
      workDir: absolutePath.optional(),
      /**
       * The system identifier (SELECT system_identifier FROM pg_control_system()) of the cluster
       * whose backups this host restores; default the live cluster's (database.url). Set it when
       * restoring onto a new cluster after the original is gone: `latest` then takes that
       * cluster's backups.
       */
      sourceSystemIdentifier: z.string().regex(/^[1-9][0-9]{0,19}$/, 'must be a cluster system identifier (digits)').optional(),
      /** SQL checks run on every restored database: each must return one row whose first column is true. */
      checks: z.array(z.strictObject({ name: z.string().min(1), sql: z.string().min(1) })).default([]),
      /**
       * Freshness of a restored database, for people to read in every report: each query returns
       * one timestamp (say the newest row of the application's busiest table).
       */
      freshness: z.array(z.strictObject({ name: z.string().min(1), sql: z.string().min(1) })).default([]),
      /** The application's services, stopped around a swap and always started again. */
      services: z
        .strictObject({
          /** None by default: name the application's units, or nothing is stopped while the databases are swapped. */
          units: z.array(z.string().regex(/^[A-Za-z0-9@._-]+$/, 'must be a unit name')).default([]),
          stopCommand: z.array(commandWord).min(1).default(['systemctl', 'stop']),
          startCommand: z.array(commandWord).min(1).default(['systemctl', 'start']),
        })
        .prefault({}),
    })
    .prefault({}),
  /** The weekly verification: which host's worker restores the backup into a scratch database. */
  verification: z.strictObject({ host: hostName.optional() }).prefault({}),
  /** The monthly drill: a host that is not the database host, restoring the offsite copy. */
  drill: z
    .strictObject({
      host: hostName.optional(),
      repository: repositoryName.optional(),
      // fetch refuses a URL with user:password@, and the URL is the drill's input (its
      // history) and the name of its check (its report): credentials would only leak there.
      healthUrl: httpUrl
        .refine((u) => !URL.canParse(u) || (!new URL(u).username && !new URL(u).password), 'must not hold credentials (user:password@): the URL is recorded in the drill\'s history and report')
        .optional(),
    })
    .prefault({}),
  /**
   * What the backups promise (the seed's RPO 1 h and RTO 4 h), and how old each kind of newest
   * good backup or proof may get. Status measures against them; a breach is a problem.
   */
  objectives: z
    .strictObject({
      /** Recovery point objective: the data a disaster may lose, at most. */
      rpoMinutes: z.number().int().min(1).max(525_600).default(60),
      /** Recovery time objective: how long a recovery (as the last drill measured it) may take. */
      rtoMinutes: z.number().int().min(1).max(525_600).default(240),
      /** The newest good one of each, at most this old (hours). */
      maxAgeHours: z
        .strictObject({
          /** The nightly dump: a day and an hour. */
          database: z.number().positive().max(87_840).default(25),
          /** The weekly base backup: eight days. */
          base: z.number().positive().max(87_840).default(192),
          /** The weekly verification: eight days. */
          verification: z.number().positive().max(87_840).default(192),
          /** The monthly drill: 32 days. */
          drill: z.number().positive().max(87_840).default(768),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Where alerts go (email, webhooks) and how often an open problem is recalled (common/alertsConfig.ts). */
  alerts: alertsSchema.prefault({}),
  /**
   * Prometheus metrics served by the worker (workers/metrics.ts): the Temporal SDK's and the
   * backups' (as of the monitor's last look on this host). Off unless a port is set.
   */
  metrics: z
    .strictObject({
      port: z.number().int().min(1).max(65_535).optional(),
      /** Loopback by default: a scraper elsewhere needs it set to an address it can reach. */
      host: z.string().min(1).default('127.0.0.1'),
      /**
       * Where the Temporal SDK's own exporter listens (on loopback) for `backupctl worker`; its
       * metrics are then served after the backups' on `port`. Unset: the backups' only.
       */
      sdkPort: z.number().int().min(1).max(65_535).optional(),
    })
    .prefault({}),
  /**
   * `backupctl dashboard`: a read-only web page of the backups' state. Loopback by default;
   * any other address needs tokenFile (the token is a secret: like every other one, it is in a
   * file of its own, never in this configuration).
   */
  dashboard: z
    .strictObject({
      port: z.number().int().min(0).max(65_535).default(8390),
      host: z.string().min(1).default('127.0.0.1'),
      /** File holding the access token (its first line, 16 characters or more), mode 0600. */
      tokenFile: absolutePath.optional(),
    })
    .prefault({}),
  /** The monitor workflow (workflows/monitor.ts), started by `schedules apply` and `backupctl monitor start`. */
  monitor: z
    .strictObject({
      /** Seconds between two looks at the backups (15 minutes). */
      intervalSeconds: z.number().int().min(10).max(86_400).default(900),
      /** Seconds between two looks for failed runs of ours. */
      failedRunsSeconds: z.number().int().min(5).max(3_600).default(60),
      /** Written on every look (engine/statusFile.ts, docs/status.schema.json): the seed's status.json, for whatever reads it. */
      statusFile: absolutePath.optional(),
      /**
       * The integrity sample (engine/integritySample.ts): each look re-reads and re-hashes the
       * stored objects due at it, so every object of every repository is read once per
       * `periodDays` (0: never). `maxBytesPerLook` caps one look's reading; what it cuts is
       * reported (integrity.budget), and the period is then not met.
       */
      integrity: z
        .strictObject({
          periodDays: z.number().min(0).max(366).default(30),
          maxBytesPerLook: z.number().int().min(1).default(10 * 1024 ** 3),
        })
        .prefault({}),
    })
    .prefault({}),
  /** Temporal Schedules; `backupctl schedules apply` creates or updates them. */
  schedules: z
    .strictObject({
      database: cadence('0 2 * * *'),
      /** Physical base backups, when baseBackup.url is set: the start of every point-in-time recovery. */
      base: cadence('0 1 * * 0'),
      verification: cadence('0 3 * * 0'),
      drill: cadence('0 4 1 * *'),
      /** Daily retention (workflows/applyRetention.ts): what `retention` no longer keeps is deleted. */
      retention: cadence('30 5 * * *'),
    })
    .prefault({}),
  /**
   * What `backupctl prune` and the daily retention keep (engine/retention.ts): grandfather-father-son
   * buckets in `timezone`, per component and repository; engine/retentionPolicy.ts has the defaults.
   */
  retention: z
    .strictObject({
      timezone: timeZone.default('UTC'),
      /** A backup without a manifest, its run closed, is removed as a leftover after this long. */
      leftoverGraceHours: z.number().int().min(1).max(8_784).default(48),
      database: componentRetention,
      base: componentRetention,
    })
    .prefault({}),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error']).default('info'),
}).superRefine((config, ctx) => {
  // Names that point at a repository must point at one that exists, of the kind the job needs.
  const names = Object.keys(config.repositories);
  const filesystems = names.filter((name) => config.repositories[name].type === 'filesystem');
  if (config.wal.spool !== undefined && !filesystems.includes(config.wal.spool)) {
    ctx.addIssue({ code: 'custom', path: ['wal', 'spool'], input: config.wal.spool, message: `must name a configured filesystem repository (${filesystems.join(', ') || 'none configured'})` });
  }
  for (const component of ['database', 'base'] as const) {
    for (const name of Object.keys(config.retention[component].repositories)) {
      if (!names.includes(name)) ctx.addIssue({ code: 'custom', path: ['retention', component, 'repositories', name], input: name, message: `must name a configured repository (${names.join(', ')})` });
    }
  }
  if (config.drill.repository !== undefined && !names.includes(config.drill.repository)) {
    ctx.addIssue({ code: 'custom', path: ['drill', 'repository'], input: config.drill.repository, message: `must name a configured repository (${names.join(', ')})` });
  }
});

export type Config = z.infer<typeof configSchema>;
export type RepositoryConfig = z.infer<typeof repository>;

/** Its message never holds a secret: every text that reaches it is redacted here. */
export class ConfigError extends Error {
  readonly type = ErrorType.InvalidConfig;

  constructor(message: string) {
    super(redact(message));
  }
}

/** Reads, overlays the environment and validates. Throws ConfigError naming every bad field. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  const source = file ?? env.BACKUPCTL_CONFIG;
  let raw: Record<string, unknown> = {};
  if (source) {
    let text: string;
    try {
      text = readFileSync(source, 'utf8');
    } catch (err) {
      throw new ConfigError(`config ${source}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
    try {
      raw = (source.endsWith('.json') ? JSON.parse(text) : YAML.parse(text)) ?? {};
    } catch (err) {
      throw new ConfigError(`config ${source}: not valid ${source.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`config ${source}: must be a mapping of settings`);
  }
  return validateConfig(applyEnvironment(raw, env), source ?? 'environment');
}

export function validateConfig(raw: unknown, source: string): Config {
  const parsed = configSchema.safeParse(raw, { reportInput: true });
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const field = issue.path.join('.') || '(top level)';
    const got = 'input' in issue && issue.input !== undefined ? `; got ${JSON.stringify(withoutUserinfo(issue.input))}` : '';
    return `${field}: ${issue.message}${got}`;
  });
  throw new ConfigError(`config ${source} is invalid:\n  - ${problems.join('\n  - ')}`);
}

/** The value as we may show it: the userinfo of every URL in it hidden, wherever it is nested. */
function withoutUserinfo(value: unknown): unknown {
  if (typeof value === 'string') return redactUrlUserinfo(value);
  if (Array.isArray(value)) return value.map(withoutUserinfo);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutUserinfo(v)]));
  return value;
}

function applyEnvironment(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(raw) as Record<string, any>;
  if (env.DATABASE_URL) out.database = { ...(out.database ?? {}), url: env.DATABASE_URL };
  if (env.TEMPORAL_ADDRESS || env.TEMPORAL_NAMESPACE) {
    out.temporal = { ...(out.temporal ?? {}) };
    if (env.TEMPORAL_ADDRESS) out.temporal.address = env.TEMPORAL_ADDRESS;
    if (env.TEMPORAL_NAMESPACE) out.temporal.namespace = env.TEMPORAL_NAMESPACE;
  }
  if (env.BACKUPCTL_HOST) out.host = env.BACKUPCTL_HOST;
  return out;
}

/** The host whose worker restores, verifies and drills: the verification host, else the database host. */
export function verificationHost(config: Config): string {
  return config.verification.host ?? databaseHost(config);
}

/** The drill's offsite repository: configured, else the first S3 repository. */
export function drillRepository(config: Config): string | undefined {
  return config.drill.repository ?? Object.entries(config.repositories).find(([, r]) => r.type === 's3')?.[0];
}

/** The host whose worker runs database work. */
export function databaseHost(config: Config): string {
  return config.database.host ?? config.host;
}
