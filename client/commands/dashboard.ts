// `backupctl dashboard [--port N] [--host H]`: serves the read-only dashboard page (client/dashboard/)
// until SIGINT or SIGTERM. Loopback by default; any other address only with
// dashboard.tokenFile configured, or it refuses to start.
import { readFileSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { ConfigError, type Config } from '../../common/config.js';
import { backupTimeline } from '../../engine/backupTimeline.js';
import { loadVerifier, type Verifier } from '../../engine/manifestSignature.js';
import { assertSecretFileMode } from '../../engine/secretFiles.js';
import { expectedSource } from '../../engine/sourceMatch.js';
import type { Repository } from '../../engine/storage/repository.js';
import { isLoopback, MIN_TOKEN_LENGTH } from '../dashboard/access.js';
import { startDashboardServer, type RunningDashboard } from '../dashboard/server.js';
import { dashboardView, type DashboardData } from '../dashboard/view.js';
import { InputRefused } from '../workflowRun.js';
import { collectStatus } from './status.js';

export interface DashboardCliOptions {
  port?: string;
  host?: string;
}

/** The token of dashboard.tokenFile (its first line), or undefined when none is configured. */
export function dashboardToken(config: Config): string | undefined {
  const file = config.dashboard.tokenFile;
  if (!file) return undefined;
  assertSecretFileMode('dashboard.tokenFile', file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`dashboard.tokenFile ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  const token = text.split(/\r?\n/)[0].trim();
  if (!new RegExp(`^[\\x21-\\x7e]{${MIN_TOKEN_LENGTH},}$`).test(token)) {
    throw new ConfigError(`dashboard.tokenFile ${file}: its first line must be a token of ${MIN_TOKEN_LENGTH} or more printable characters without spaces (e.g. openssl rand -hex 32)`);
  }
  return token;
}

/** Where to listen: the flags over config `dashboard`; off loopback only with a token. */
export function listenAddress(config: Config, options: DashboardCliOptions, token: string | undefined): { host: string; port: number } {
  const host = options.host ?? config.dashboard.host;
  const portText = options.port ?? String(config.dashboard.port);
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port > 65535) throw new InputRefused(`--port ${portText}: must be a port from 0 (any free one) to 65535`);
  if (!isLoopback(host) && token === undefined) {
    throw new InputRefused(
      `--host ${host}: the dashboard listens beyond this machine (not loopback) only with an access token: set dashboard.tokenFile (a file of mode 0600 holding one, e.g. openssl rand -hex 32), or keep the default 127.0.0.1`,
    );
  }
  return { host, port };
}

/** The data of one look: status (as `backupctl status --json` has it) and the catalog's timeline, made fit for the page. */
export async function loadDashboard(config: Config, repositories: Repository[], temporal: () => Promise<{ client?: Client; error?: string }>): Promise<DashboardData> {
  const { client, error } = await temporal();
  const report = await collectStatus(client, error, config, repositories);
  let verifier: Verifier = { keys: [], host: config.host };
  try {
    verifier = await loadVerifier(config);
  } catch {
    // Status already reports signing.unusable; nothing is signed then.
  }
  const timeline = await backupTimeline(repositories, verifier, await expectedSource(config));
  return dashboardView(report, timeline, config);
}

export async function startDashboard(config: Config, options: DashboardCliOptions, repositories: Repository[], temporal: () => Promise<{ client?: Client; error?: string }>, log?: (line: string) => void): Promise<RunningDashboard> {
  const token = dashboardToken(config);
  const { host, port } = listenAddress(config, options, token);
  return startDashboardServer({ host, port, token, load: () => loadDashboard(config, repositories, temporal), log });
}

/** Serves until SIGINT or SIGTERM. Temporal is connected on first use, and again after a failure. */
export async function runDashboard(config: Config, options: DashboardCliOptions, repositories: Repository[]): Promise<number> {
  const { connectClient } = await import('../temporalClient.js');
  let connection: Awaited<ReturnType<typeof connectClient>> | undefined;
  const temporal = async () => {
    if (connection) return { client: connection.client };
    try {
      connection = await connectClient(config);
      return { client: connection.client };
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      return { error: (err as Error).message };
    }
  };
  const server = await startDashboard(config, options, repositories, temporal, (line) => process.stderr.write(`backupctl dashboard: ${line}\n`));
  process.stdout.write(`dashboard on ${server.url}/ (read-only${config.dashboard.tokenFile ? ', token required' : ''})\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  await connection?.close();
  return 0;
}
