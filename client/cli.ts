// backupctl: the one command operators use. Every subcommand reads the same configuration
// (--config or BACKUPCTL_CONFIG, overlaid by the environment); --json prints exactly one JSON
// object on stdout, and the exit code is 0 only on success.
// A command loads only what it uses, when it runs (`--help` loads none of it): the Temporal
// client, the AWS SDK and the worker take most of a start (docs/benchmarks.md, "CLI start-up").
import { Command, Option } from 'commander';
import type { RestoreOptions } from './commands/restore.js';
import type { PitrStartOptions } from './commands/pitr.js';
import type { SweepOptions } from './commands/sweep.js';
import type { PruneOptions } from './commands/prune.js';
import type { CodecServerCliOptions } from './commands/codecServer.js';
import type { DashboardCliOptions } from './commands/dashboard.js';
import type { Config } from '../common/config.js';
import type { Printer } from './output.js';
import type { connectClient } from './temporalClient.js';

const program = new Command('backupctl')
  .description('Durable backups and disaster recovery for PostgreSQL applications, on Temporal')
  .option('-c, --config <file>', 'configuration file (YAML or JSON); default $BACKUPCTL_CONFIG')
  .showHelpAfterError();

const jsonOption = () => new Option('--json', 'print exactly one JSON object on stdout');
const allowUnsignedOption = () =>
  new Option('--allow-unsigned', 'also admit a backup whose manifest is not signed (made before backups were signed) or a seed-made file; never one signed by an untrusted key');

async function config(): Promise<Config> {
  const { loadConfig } = await import('../common/config.js');
  return loadConfig(program.opts().config);
}

async function printer(json: boolean | undefined): Promise<Printer> {
  return (await import('./output.js')).printer(Boolean(json));
}

const repositoriesOf = async (cfg: Config) => (await import('../engine/storage/index.js')).openRepositories(cfg);

/**
 * Runs a command body; turns any failure into a message (or a JSON object) and exit code 1, or
 * 2 for input refused before anything started (no workflow exists for it).
 */
function action<A extends unknown[]>(body: (...args: A) => Promise<number>) {
  return async (...args: A) => {
    const opts = (args.at(-2) ?? {}) as { json?: boolean };
    try {
      process.exitCode = await body(...args);
    } catch (err) {
      const [{ failureOf }, { InputRefused }] = await Promise.all([import('./output.js'), import('./workflowRun.js')]);
      const failure = failureOf(err);
      if (opts.json) process.stdout.write(JSON.stringify({ ok: false, error: failure }, null, 2) + '\n');
      else process.stderr.write(`backupctl: ${failure.type}: ${failure.message}\n`);
      process.exitCode = err instanceof InputRefused ? 2 : 1;
    }
  };
}

async function withClient<T>(cfg: Config, body: (client: Awaited<ReturnType<typeof connectClient>>['client']) => Promise<T>): Promise<T> {
  const { connectClient } = await import('./temporalClient.js');
  const { client, close } = await connectClient(cfg);
  try {
    return await body(client);
  } finally {
    await close();
  }
}

program
  .command('worker')
  .description("run this host's worker: the shared queue and backup@<host>")
  .action(
    action(async () => {
      const cfg = await config();
      const [{ createLogger, installTemporalLogging }, { startWorker }] = await Promise.all([import('../workers/logger.js'), import('../workers/worker.js')]);
      const logger = createLogger(cfg.logLevel);
      installTemporalLogging(logger, { sdkMetricsPort: cfg.metrics.port ? cfg.metrics.sdkPort : undefined });
      const worker = await startWorker(cfg, logger, { configFile: program.opts().config ?? process.env.BACKUPCTL_CONFIG });
      const stop = () => void worker.shutdown();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await worker.done;
      return 0;
    }),
  );

const backup = program.command('backup').description('start a backup');
backup
  .command('database')
  .description('full logical backup of the configured database, to every repository')
  .option('--wait', 'wait for the backup to finish and print its result')
  .option('--compression <algorithm>', 'zstd (default) or gzip')
  .option('--repository <name...>', 'only these repositories (default: all configured)')
  .option('--workflow-id <id>', 'workflow id (default: backup-database-<UTC time>)')
  .addOption(jsonOption())
  .action(
    action(async (options: { wait?: boolean; compression?: string; repository?: string[]; workflowId?: string; json?: boolean }) => {
      const cfg = await config();
      // Checked before connecting: bad input is refused even when Temporal is down.
      const { backupDatabaseInput, startBackupDatabase } = await import('./commands/backupDatabase.js');
      const input = backupDatabaseInput(cfg, options);
      const print = await printer(options.json);
      return withClient(cfg, (client) => startBackupDatabase(client, input, options, print));
    }),
  );

backup
  .command('base')
  .description('physical base backup (pg_basebackup, tar) for point-in-time recovery, to every repository')
  .option('--wait', 'wait for the base backup to finish and print its result')
  .option('--compression <algorithm>', 'zstd (default) or gzip')
  .option('--repository <name...>', 'only these repositories (default: all configured)')
  .option('--workflow-id <id>', 'workflow id (default: backup-base-<UTC time>)')
  .addOption(jsonOption())
  .action(
    action(async (options: { wait?: boolean; compression?: string; repository?: string[]; workflowId?: string; json?: boolean }) => {
      const cfg = await config();
      const { backupBaseInput, startBackupBase } = await import('./commands/backupBase.js');
      const input = backupBaseInput(cfg, options);
      const print = await printer(options.json);
      return withClient(cfg, (client) => startBackupBase(client, input, options, print));
    }),
  );

const wal = program
  .command('wal')
  .description("the WAL archive for point-in-time recovery; PostgreSQL runs 'backupctl wal-push %p' (archive_command) and 'backupctl wal-fetch %f %p' (restore_command)");
wal
  .command('ship')
  .description("start (or find) this database host's WAL shipping workflow: spool -> NAS, S3, continuously")
  .addOption(jsonOption())
  .action(
    action(async (options: { json?: boolean }) => {
      const cfg = await config();
      const { runShipWal } = await import('./commands/wal.js');
      const print = await printer(options.json);
      return withClient(cfg, (client) => runShipWal(client, cfg, print));
    }),
  );

const monitorCommand = program.command('monitor').description('the monitor: looks at the backups every 15 minutes and tells people (alerts) of what is wrong');
monitorCommand
  .command('start')
  .description("start (or find) this database host's monitor workflow")
  .addOption(jsonOption())
  .action(
    action(async (options: { json?: boolean }) => {
      const cfg = await config();
      const { runStartMonitor } = await import('./commands/monitor.js');
      const print = await printer(options.json);
      return withClient(cfg, (client) => runStartMonitor(client, cfg, print));
    }),
  );
monitorCommand
  .command('show')
  .description('the monitor\'s open problems, its channels and its last look (exit 1 when no monitor runs)')
  .addOption(jsonOption())
  .action(
    action(async (options: { json?: boolean }) => {
      const cfg = await config();
      const { runShowMonitor } = await import('./commands/monitor.js');
      const print = await printer(options.json);
      return withClient(cfg, (client) => runShowMonitor(client, cfg, print));
    }),
  );

program
  .command('check')
  .description(
    "check the configuration's point-in-time recovery preconditions, PostgreSQL's WAL archiving (settings, pg_stat_archiver) and that a switched segment reaches the archive; exit 1 on any problem",
  )
  .option('--wait <seconds>', 'how long to wait for the switched segment', '60')
  .addOption(jsonOption())
  .action(
    action(async (options: { wait?: string; json?: boolean }) => {
      const cfg = await config();
      const { runCheck } = await import('./commands/check.js');
      return runCheck(cfg, await repositoriesOf(cfg), options, await printer(options.json));
    }),
  );

const pitr = program.command('pitr').description('point-in-time recovery into a new data directory (never over the live cluster)');
pitr
  .command('start')
  .description('start a recovery; without a target it waits for one (backupctl pitr target)')
  .option('--target-time <iso8601>', 'recover to this time (explicit zone, e.g. 2026-11-26T14:30:00Z)')
  .option('--target-lsn <lsn>', 'recover to this WAL position')
  .option('--target-xid <xid>', 'recover to this transaction')
  .option('--target-name <name>', 'recover to this restore point (pg_create_restore_point)')
  .option('--data-dir <dir>', 'new data directory (default under restore.workDir)')
  .option('--port <n>', 'port of the recovered cluster (default a free one)')
  .option('--await-cutover-approval <hours>', 'after verification, wait this long for `pitr approve`, then switch the application over')
  .option('--wait', 'wait for the recovery and print where the cluster runs')
  .option('--workflow-id <id>', 'workflow id (default pitr-<UTC time>)')
  .addOption(allowUnsignedOption())
  .addOption(jsonOption())
  .action(
    action(async (options: PitrStartOptions & { json?: boolean }) => {
      const cfg = await config();
      const { pitrStartInput, startPitr } = await import('./commands/pitr.js');
      const input = pitrStartInput(cfg, options);
      const print = await printer(options.json);
      return withClient(cfg, (client) => startPitr(client, input, options, print));
    }),
  );
pitr
  .command('target <workflowId> <time>')
  .description('send the target time to a waiting recovery (signal setTargetTime); --check uses the setTarget update, answered at once')
  .option('--check', 'send it as an update: accepted or rejected with the recoverable window, at once')
  .addOption(jsonOption())
  .action(
    action(async (workflowId: string, time: string, options: { check?: boolean; json?: boolean }) => {
      const { runPitrTarget } = await import('./commands/pitr.js');
      const print = await printer(options.json);
      return withClient(await config(), (client) => runPitrTarget(client, workflowId, time, options, print));
    }),
  );
pitr
  .command('approve <workflowId>')
  .description('approve the cutover of a verified recovery: services stopped, pitr.cutoverCommand, services started')
  .option('--by <name>', 'who approves (recorded in the result)', process.env.USER ?? 'operator')
  .addOption(jsonOption())
  .action(
    action(async (workflowId: string, options: { by: string; json?: boolean }) => {
      const { runPitrApprove } = await import('./commands/pitr.js');
      const print = await printer(options.json);
      return withClient(await config(), (client) => runPitrApprove(client, workflowId, options.by, print));
    }),
  );
pitr
  .command('status <workflowId>')
  .description('phase, recoverable window, chosen base backup, rejected targets')
  .addOption(jsonOption())
  .action(
    action(async (workflowId: string, options: { json?: boolean }) => {
      const { runPitrStatus } = await import('./commands/pitr.js');
      const print = await printer(options.json);
      return withClient(await config(), (client) => runPitrStatus(client, workflowId, print));
    }),
  );

const restore = program.command('restore').description('restore from a backup: never over the live database until a verified copy exists');
restore
  .command('database <backup>')
  .description('restore a backup id, "latest", or a .backup/.sql.gz/.sql file into a NEW database, verify it, and with --replace swap it in')
  .option('--into <name>', 'name of the new database (default <live>_restore_<time>)')
  .option('--replace', 'swap the verified database into the live one\'s place (services stopped; old database kept)')
  .option('--jobs <n>', 'pg_restore parallel jobs (default restore.jobs)')
  .option('--host <host>', 'the restoring host (default verification.host, else the database host)')
  .option('--wait', 'wait for the restore to finish and print its result')
  .option('--workflow-id <id>', 'workflow id (default restore-database-<UTC time>)')
  .addOption(allowUnsignedOption())
  .addOption(jsonOption())
  .action(
    action(async (backupRef: string, options: RestoreOptions & { json?: boolean }) => {
      const cfg = await config();
      const { restoreDatabaseInput, startRestoreDatabase } = await import('./commands/restore.js');
      const input = restoreDatabaseInput(cfg, backupRef, options);
      const print = await printer(options.json);
      return withClient(cfg, (client) => startRestoreDatabase(client, input, options, print));
    }),
  );

program
  .command('verify <backup>')
  .description('restore a backup id or "latest" into a scratch database, assert its row counts and checks, record the verdict and read every copy back; exit 1 when it fails, 3 when it restores but a copy is damaged')
  .option('--wait', 'wait for the verdict')
  .option('--workflow-id <id>', 'workflow id (default verify-backup-<UTC time>)')
  .addOption(allowUnsignedOption())
  .addOption(jsonOption())
  .action(
    action(async (backupRef: string, options: { wait?: boolean; workflowId?: string; allowUnsigned?: boolean; json?: boolean }) => {
      const cfg = await config();
      const { startVerify, verifyBackupInput } = await import('./commands/verify.js');
      const input = verifyBackupInput(cfg, backupRef, options);
      const print = await printer(options.json);
      return withClient(cfg, (client) => startVerify(client, input, options, print));
    }),
  );

program
  .command('drill')
  .description('recovery drill on the drill host from the offsite copy: restore, smoke checks, RTO and RPO, report, tear down')
  .option('--backup <id>', 'backup id or "latest"', 'latest')
  .option('--wait', 'wait for the report')
  .option('--workflow-id <id>', 'workflow id (default recovery-drill-<UTC time>)')
  .addOption(allowUnsignedOption())
  .addOption(jsonOption())
  .action(
    action(async (options: { backup?: string; wait?: boolean; workflowId?: string; allowUnsigned?: boolean; json?: boolean }) => {
      const cfg = await config();
      const { drillInput, startDrill } = await import('./commands/drill.js');
      const input = drillInput(cfg, options.backup, options);
      const print = await printer(options.json);
      return withClient(cfg, (client) => startDrill(client, input, options, print));
    }),
  );

program
  .command('sweep')
  .description(
    'remove what runs that closed without cleaning up left (restore databases, unfinished backups and uploads, recovery servers, temporary folders), only where Temporal says the run that made it has closed; report what was found, removed and kept; exit 3 when something could not be decided or removed',
  )
  .option('--dry-run', 'report what would be done, change nothing')
  .option('--host <host>', "the host whose restore server, folders and repositories are swept (default this configuration's host)")
  .option('--remove-recovery-folders', "also remove the data directories of recoveries that did not complete (by default they stay for the operator to read)")
  .option('--workflow-id <id>', 'workflow id (default sweep-leftovers-<host>-<UTC time>)')
  .addOption(jsonOption())
  .action(
    action(async (options: SweepOptions & { json?: boolean }) => {
      const cfg = await config();
      const { startSweep, sweepInput } = await import('./commands/sweep.js');
      const input = sweepInput(cfg, options);
      const print = await printer(options.json);
      return withClient(cfg, (client) => startSweep(client, input, options, print));
    }),
  );

program
  .command('prune')
  .description(
    "apply the retention policy (config retention): decide what every repository keeps, record the decision in the repositories, then delete the rest, manifests first; the WAL spool only of what every other repository holds. Prints every decision with its reason; exit 3 when a repository could not be read or something could not be deleted",
  )
  .option('--dry-run', 'decide and record the report, delete nothing')
  .addOption(new Option('--component <component...>', 'only these components').choices(['database', 'base', 'wal']))
  .option('--repository <name...>', 'only these repositories')
  .option('--workflow-id <id>', 'workflow id (default apply-retention-<UTC time>)')
  .addOption(jsonOption())
  .action(
    action(async (options: PruneOptions & { json?: boolean }) => {
      const cfg = await config();
      const { startPrune, pruneInput } = await import('./commands/prune.js');
      const input = pruneInput(cfg, options);
      const print = await printer(options.json);
      const repositories = await repositoriesOf(cfg);
      return withClient(cfg, (client) => startPrune(client, repositories, input, options, print));
    }),
  );

program
  .command('backups')
  .description('the catalog of complete backups')
  .command('list')
  .description('list complete backups found in the repositories')
  .addOption(jsonOption())
  .action(
    action(async (options: { json?: boolean }) => {
      const cfg = await config();
      const [{ runListBackups }, { loadVerifier }, { expectedSource }] = await Promise.all([
        import('./commands/listBackups.js'),
        import('../engine/manifestSignature.js'),
        import('../engine/sourceMatch.js'),
      ]);
      return runListBackups(await repositoriesOf(cfg), await printer(options.json), await loadVerifier(cfg), await expectedSource(cfg));
    }),
  );

const schedules = program
  .command('schedules')
  .description('Temporal Schedules: the nightly backup, the weekly base backup and verification, daily retention, the monthly drill');
schedules
  .command('apply')
  .description(
    "create, update or delete backupctl's schedules to match the configuration, and start WAL shipping when wal.spool is set; says what it did (unchanged when nothing differs); exit 1 when a schedule not made by backupctl holds one of its ids",
  )
  .addOption(jsonOption())
  .action(
    action(async (options: { json?: boolean }) => {
      const cfg = await config();
      const { runApplySchedules } = await import('./commands/schedules.js');
      const print = await printer(options.json);
      return withClient(cfg, (client) => runApplySchedules(client, cfg, print));
    }),
  );
schedules
  .command('list')
  .description('schedules with their next and recent runs')
  .addOption(jsonOption())
  .action(
    action(async (options: { json?: boolean }) => {
      const { runListSchedules } = await import('./commands/schedules.js');
      const print = await printer(options.json);
      return withClient(await config(), (client) => runListSchedules(client, print));
    }),
  );
schedules
  .command('pause <name>')
  .description('pause a schedule (schedules apply unpauses it again unless the configuration says paused: true)')
  .option('--note <text>', 'why, shown by schedules list and the Web UI')
  .addOption(jsonOption())
  .action(
    action(async (name: string, options: { note?: string; json?: boolean }) => {
      const { runPauseSchedule } = await import('./commands/schedules.js');
      const print = await printer(options.json);
      return withClient(await config(), (client) => runPauseSchedule(client, name, options.note, print));
    }),
  );
schedules
  .command('unpause <name>')
  .description('unpause a schedule')
  .addOption(jsonOption())
  .action(
    action(async (name: string, options: { json?: boolean }) => {
      const { runUnpauseSchedule } = await import('./commands/schedules.js');
      const print = await printer(options.json);
      return withClient(await config(), (client) => runUnpauseSchedule(client, name, print));
    }),
  );
schedules
  .command('trigger <name>')
  .description("run a schedule's workflow now, under its overlap policy (nothing while a run of it is going)")
  .addOption(jsonOption())
  .action(
    action(async (name: string, options: { json?: boolean }) => {
      const { runTriggerSchedule } = await import('./commands/schedules.js');
      const print = await printer(options.json);
      return withClient(await config(), (client) => runTriggerSchedule(client, name, print));
    }),
  );

program
  .command('status')
  .description('Temporal, workers, running work and the age of the newest backup; exit 1 when anything needs attention')
  .addOption(jsonOption())
  .action(
    action(async (options: { json?: boolean }) => {
      const cfg = await config();
      const [{ connectClient }, { ConfigError }, { collectStatus, runStatus }] = await Promise.all([
        import('./temporalClient.js'),
        import('../common/config.js'),
        import('./commands/status.js'),
      ]);
      let connection: Awaited<ReturnType<typeof connectClient>> | undefined;
      let error: string | undefined;
      try {
        connection = await connectClient(cfg);
      } catch (err) {
        // Missing payload keys are this host's configuration, not an unreachable Temporal.
        if (err instanceof ConfigError) throw err;
        error = (err as Error).message;
      }
      try {
        const report = await collectStatus(connection?.client, error, cfg, await repositoriesOf(cfg));
        return runStatus(report, await printer(options.json));
      } finally {
        await connection?.close();
      }
    }),
  );

program
  .command('codec-server')
  .description(
    'serve the Temporal Web UI (Settings > Codec Server) and `temporal --codec-endpoint` the payload codec: decrypts with the keys of BACKUPCTL_PAYLOAD_KEYS or BACKUPCTL_PAYLOAD_KEYS_FILE',
  )
  .option('--port <n>', 'port to listen on; 0 for any free one', '8888')
  .option('--listen <address>', 'address to listen on: it decrypts for whoever reaches it, so keep it private', '127.0.0.1')
  .option('--origin <url...>', "the Web UI's origin (scheme://host[:port]), allowed to call it from a browser")
  .action(action(async (options: CodecServerCliOptions) => (await import('./commands/codecServer.js')).runCodecServer(await config(), options)));

program
  .command('dashboard')
  .description('serve a read-only web page of the backups: timeline, freshness, RPO/RTO, open problems, failed runs; loopback unless dashboard.tokenFile is set')
  .option('--port <n>', 'port to listen on; 0 for any free one (default: dashboard.port, 8390)')
  .option('--host <address>', 'address to listen on (default: dashboard.host, 127.0.0.1); any other than loopback needs dashboard.tokenFile')
  .action(
    action(async (options: DashboardCliOptions) => {
      const cfg = await config();
      return (await import('./commands/dashboard.js')).runDashboard(cfg, options, await repositoriesOf(cfg));
    }),
  );

program
  .command('dev')
  .description(
    'the embedded stack, the whole product on this machine: dev Temporal server, SeaweedFS as the offsite S3 repository beside local and NAS folders, a demo database archiving its WAL through wal-push, a worker, the schedules, WAL shipping and the monitor; runs one backup and, while serving, the dashboard',
  )
  .option('--once', 'stop after the backup (the default when stdin is not a terminal)')
  .option('--serve', 'keep serving the Web UI and the worker until Ctrl-C, even without a terminal')
  .option('--dir <dir>', 'where the dev stack keeps its state', '.backupctl/dev')
  .option('--port-offset <n>', 'add n to every port of the stack (Temporal 7233, Web UI 8233, dashboard 8234, PostgreSQL 54329, S3 18333-18340): a second stack beside the first', '0')
  .addOption(jsonOption())
  .action(
    action(async (options: { once?: boolean; serve?: boolean; dir: string; json?: boolean; portOffset: string }) => {
      const portOffset = Number(options.portOffset);
      if (!Number.isInteger(portOffset) || portOffset < 0 || portOffset > 40_000) throw new (await import('./workflowRun.js')).InputRefused(`--port-offset ${JSON.stringify(options.portOffset)}: expected a whole number from 0 to 40000`);
      return (await import('./dev/stack.js')).runDev({ ...options, portOffset, configFile: program.opts().config });
    }),
  );

await program.parseAsync(process.argv);
