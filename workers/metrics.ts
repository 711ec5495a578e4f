// The worker's Prometheus endpoint (config metrics.port; loopback unless metrics.host says
// otherwise): the backups as of the monitor's last look on this worker (the database host's),
// each age computed at the scrape, and the Temporal SDK's own metrics when the runtime exports
// them (their text appended). Nothing here holds a secret or a row of data.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import type { HealthReport } from '../engine/health.js';
import { severityOf } from '../common/alertSeverity.js';

/** The newest look at the backups this worker made, and when. */
export class HealthObserver {
  latest?: { health: HealthReport; at: number };
  observe(health: HealthReport, at: number): void {
    this.latest = { health, at };
  }
}

const seconds = (now: number, iso: string | undefined | null) => (iso ? Math.max(0, (now - Date.parse(iso)) / 1000) : undefined);

/** The registry: every gauge reads the observer when scraped. */
export function backupRegistry(observer: HealthObserver): Registry {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        if (observer.latest) collect(this);
      },
    });
  const h = () => observer.latest!.health;
  gauge('backupctl_last_look_timestamp_seconds', 'When the monitor last looked at the backups from this worker (Unix time).', [], (g) => g.set(observer.latest!.at / 1000));
  gauge('backupctl_backup_age_seconds', 'Age of the newest good backup, by component.', ['component'], (g) => {
    const database = seconds(Date.now(), h().latestBackup?.finishedAt);
    if (database !== undefined) g.set({ component: 'database' }, database);
    const base = seconds(Date.now(), h().latestBaseBackup?.stoppedAt);
    if (base !== undefined) g.set({ component: 'base' }, base);
  });
  gauge('backupctl_backup_size_bytes', 'Size of the newest good backup, by component.', ['component'], (g) => {
    const newest = h().recentBackups.at(-1);
    if (newest) g.set({ component: 'database' }, newest.bytes);
  });
  gauge('backupctl_backup_duration_seconds', 'How long the newest good backup took, by component.', ['component'], (g) => {
    const newest = h().recentBackups.at(-1);
    if (newest) g.set({ component: 'database' }, Math.max(0, (Date.parse(newest.finishedAt) - Date.parse(newest.startedAt)) / 1000));
  });
  gauge('backupctl_backup_copies', 'Repositories holding the newest good backup, by component.', ['component'], (g) => {
    if (h().latestBackup) g.set({ component: 'database' }, h().latestBackup!.foundIn.length);
    if (h().latestBaseBackup) g.set({ component: 'base' }, h().latestBaseBackup!.foundIn.length);
  });
  gauge('backupctl_verification_age_seconds', 'Age of the newest verification (a restore that passed its checks, or not).', [], (g) => {
    const age = seconds(Date.now(), h().latestVerification?.finishedAt);
    if (age !== undefined) g.set(age);
  });
  gauge('backupctl_wal_lag_seconds', 'How far WAL shipping to each repository is behind the spool.', ['repository'], (g) => {
    for (const r of h().walArchive?.repositories ?? []) if (r.lagSeconds !== null) g.set({ repository: r.name }, r.lagSeconds);
  });
  gauge('backupctl_rpo_seconds', 'The data a disaster now would lose (measured RPO), and the objective.', ['kind'], (g) => {
    const { rpo } = h().objectives;
    if (rpo.measuredMinutes !== null) g.set({ kind: 'measured' }, rpo.measuredMinutes * 60);
    g.set({ kind: 'objective' }, rpo.objectiveMinutes * 60);
  });
  gauge('backupctl_rto_seconds', 'How long the last drill took to recover (measured RTO), and the objective.', ['kind'], (g) => {
    const { rto } = h().objectives;
    if (rto.measuredMinutes !== null) g.set({ kind: 'measured' }, rto.measuredMinutes * 60);
    g.set({ kind: 'objective' }, rto.objectiveMinutes * 60);
  });
  gauge('backupctl_open_problems', 'Problems found at the last look, by severity and component (the first part of the key).', ['severity', 'component'], (g) => {
    for (const severity of ['critical', 'warning']) g.set({ severity, component: 'all' }, 0);
    for (const p of h().problems) g.inc({ severity: severityOf(p.key), component: p.key.split('.')[0] });
    for (const severity of ['critical', 'warning']) g.set({ severity, component: 'all' }, h().problems.filter((p) => severityOf(p.key) === severity).length);
  });
  gauge('backupctl_integrity_read_bytes', 'Bytes the last look re-read and re-hashed of the integrity sample (monitor.integrity).', [], (g) => {
    if (h().integrity) g.set(h().integrity!.checkedBytes);
  });
  gauge('backupctl_integrity_objects', 'The last look\'s integrity sample, in objects: due, read, skipped (over maxBytesPerLook: the period is not met), unjudged (no admitted checksum).', ['state'], (g) => {
    const i = h().integrity;
    if (!i) return;
    g.set({ state: 'due' }, i.dueObjects);
    g.set({ state: 'read' }, i.checkedObjects);
    g.set({ state: 'skipped' }, i.skippedObjects);
    g.set({ state: 'unjudged' }, i.unjudgedObjects);
  });
  gauge('backupctl_integrity_last_corruption_timestamp_seconds', 'When the integrity sample last found a corrupt or missing object (Unix time).', [], (g) => {
    const last = h().integrity?.lastCorruption;
    if (last) g.set(Date.parse(last.foundAt) / 1000);
  });
  return registry;
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** Serves GET /metrics: the backups' gauges, then the SDK's (fetched from `sdkMetricsUrl`, when set). */
export async function startMetricsServer(options: { host: string; port: number; sdkMetricsUrl?: string }, observer: HealthObserver): Promise<MetricsServer> {
  const registry = backupRegistry(observer);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('GET /metrics\n');
      return;
    }
    void (async () => {
      let body = await registry.metrics();
      if (options.sdkMetricsUrl) {
        try {
          const sdk = await fetch(options.sdkMetricsUrl, { signal: AbortSignal.timeout(5_000) });
          if (sdk.ok) body += '\n' + (await sdk.text());
        } catch {
          // The SDK's exporter is not up (yet): the backups' gauges still answer.
        }
      }
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
    })().catch((err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}/metrics`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
