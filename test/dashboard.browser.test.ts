// `backupctl dashboard` in a real browser (Debian's headless Chromium, driven by playwright-core)
// on a real stack: a Temporal dev server and an in-process worker, a real nightly dump (the
// database component, fresh), a base backup 20 days old planted beside it (stale: red), a
// failed run (a link into the configured Web UI), and manifests planted under hostile names
// (shown as text, never as markup). Then the server's rules without a browser: loopback Host
// check, read-only, the token off loopback, and the refusal to listen off loopback without one.
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import pino from 'pino';
import { chromium, type Browser } from 'playwright-core';
import YAML from 'yaml';
import { startDashboard } from '../client/commands/dashboard.js';
import type { RunningDashboard } from '../client/dashboard/server.js';
import type { Config } from '../common/config.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type BackupManifest } from '../common/types.js';
import { readManifest, writeManifest } from '../engine/catalog.js';
import { loadSigner, signManifest } from '../engine/manifestSignature.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase, restoreDatabase } from '../workflows/index.js';
import { APP_PASSWORD, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';

const HOST = 'dash';
const WEB_UI = 'http://temporal-ui.test:8233/';
const OUTPUT = path.resolve('test-output', 'dashboard');
/** Planted folder names: markup, and Slack's mention syntax. */
const HOSTILE_IMG = '<img src=x onerror="document.body.dataset.pwned=1">';
const HOSTILE_CHANNEL = '<!channel>';
const DAY = 86_400_000;

let env: BackupEnv;
let config: Config;
let repositories: Repository[];
let worker: RunningWorker;
let dashboard: RunningDashboard;
let browser: Browser;
let failedRunId: string;

/** A signed base backup of the source cluster, finished `ageMs` ago, in `repository`. */
async function plantBaseBackup(repository: Repository, backupId: string, ageMs: number, systemIdentifier: string): Promise<void> {
  const stoppedAt = new Date(Date.now() - ageMs).toISOString();
  const startedAt = new Date(Date.now() - ageMs - 3600_000).toISOString();
  const key = `base/${backupId}/base.tar.zst.gpg`;
  await repository.put(key, Readable.from([Buffer.alloc(4096)]), { contentLength: 4096 });
  await writeManifest(
    repository,
    signManifest(
      {
        formatVersion: 1,
        backupId,
        component: 'base' as const,
        runId: 'planted',
        startedAt,
        finishedAt: stoppedAt,
        compression: 'zstd',
        encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
        server: { version: '15.8', versionNum: 150008, systemIdentifier },
        backup: { timeline: 1, startLsn: '0/1000028', stopLsn: '0/2000100', startedAt, stoppedAt },
        objects: [{ role: 'base', key, bytes: 4096, sha256: 'a'.repeat(64) }],
        copies: [],
      },
      (await loadSigner(config))!,
    ),
  );
}

/** GET (or another method) with exactly these headers, Host included (fetch cannot set Host). */
function request(url: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  env = await startBackupEnv({ users: 5, sessionsPerUser: 1, activitiesPerSession: 1 });
  config = env.config(HOST, (raw) => {
    raw.temporal.webUiUrl = WEB_UI;
  });
  repositories = openRepositories(config);
  worker = await startWorker(config, pino({ level: process.env.TEST_LOG ? 'info' : 'silent' }), { bundleInProcess: true });
  const backup = await env.temporal.client.workflow.execute(backupDatabase, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'dashboard-nightly', args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });
  const manifest = (await readManifest(repositories[0], 'database', backup.backupId)) as BackupManifest;
  await plantBaseBackup(repositories[0], 'base-old', 20 * DAY, manifest.source.systemIdentifier!);
  // Written past the repository's API (it refuses such keys): what someone with write access to the folder could leave.
  const local = config.repositories.local as { path: string };
  for (const name of [HOSTILE_IMG, HOSTILE_CHANNEL]) {
    mkdirSync(path.join(local.path, 'base', name), { recursive: true });
    writeFileSync(path.join(local.path, 'base', name, 'manifest.json'), 'not a manifest');
  }
  const failed = await env.temporal.client.workflow.start(restoreDatabase, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: 'dashboard-restore-bad',
    args: [{ hostTaskQueue: hostTaskQueue(HOST), backup: 'latest', jobs: 0 }],
  });
  await expect(failed.result()).rejects.toThrow();
  failedRunId = failed.firstExecutionRunId;
  dashboard = await startDashboard(config, { port: '0' }, repositories, async () => ({ client: env.temporal.client }));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await dashboard?.close();
  await worker?.shutdown();
  await env?.stop();
});

test('the page: the fresh dump green, the stale base backup red, failed runs linked to the Web UI, hostile names as text; a screenshot', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
  const blocked: string[] = [];
  page.on('console', (m) => m.type() === 'error' && blocked.push(m.text()));
  await page.goto(`${dashboard.url}/`);
  await page.waitForSelector('body[data-loaded]');

  const card = (name: string) => page.locator(`[data-component="${name}"]`);
  expect(await card('database').getAttribute('data-state')).toBe('ok');
  expect(await card('base').getAttribute('data-state')).toBe('failing');
  const border = (name: string) => card(name).evaluate((node) => (globalThis as any).getComputedStyle(node).borderLeftColor as string);
  expect(await border('database')).toBe('rgb(34, 139, 34)');
  expect(await border('base')).toBe('rgb(200, 30, 30)');
  await expect(card('base').textContent()).resolves.toContain('base.stale');

  const link = page.locator('[data-workflow-id="dashboard-restore-bad"] a');
  expect(await link.getAttribute('href')).toBe(`http://temporal-ui.test:8233/namespaces/default/workflows/dashboard-restore-bad/${failedRunId}/history`);

  // The planted names are on the page, character for character, and became no element.
  const problems = (await page.locator('#problems').textContent())!;
  expect(problems).toContain(`base/${HOSTILE_IMG}/manifest.json`);
  expect(problems).toContain(`base/${HOSTILE_CHANNEL}/manifest.json`);
  expect(await page.locator('img').count()).toBe(0);
  expect(await page.evaluate(() => (globalThis as any).document.body.dataset.pwned)).toBeUndefined();

  // Two dots on the timeline: the dump and the planted base backup.
  expect(await page.locator('#timeline circle').count()).toBe(2);
  expect(await page.locator('#stored-label').textContent()).toMatch(/not the repositories' size in the past/);
  expect(blocked).toEqual([]);
  await page.screenshot({ path: path.join(OUTPUT, 'dashboard.png'), fullPage: true });
  await page.close();
}, 120_000);

test('the JSON holds no secret: not the database password, not the S3 secret key', async () => {
  const response = await request(`${dashboard.url}/api/status`);
  expect(response.status).toBe(200);
  expect(response.headers['content-security-policy']).toContain("default-src 'self'");
  for (const secret of [APP_PASSWORD, encodeURIComponent(APP_PASSWORD), env.s3.env.AWS_SECRET_ACCESS_KEY!]) expect(response.body).not.toContain(secret);
});

test('on loopback: another Host is refused (DNS rebinding), and only GET and HEAD are served', async () => {
  const port = new URL(dashboard.url).port;
  expect((await request(`${dashboard.url}/api/status`, { headers: { Host: `rebound.example:${port}` } })).status).toBe(403);
  expect((await request(`${dashboard.url}/`, { headers: { Host: `localhost:${port}` } })).status).toBe(200);
  expect((await request(`${dashboard.url}/api/status`, { method: 'HEAD' })).status).toBe(200);
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const response = await request(`${dashboard.url}/api/status`, { method });
    expect([method, response.status, response.headers.allow]).toEqual([method, 405, 'GET, HEAD']);
  }
});

test('off loopback: the token on every request, wrong or missing is 401; ?token= once sets a cookie', async () => {
  const tokenFile = path.join(env.dir, 'dashboard-token');
  const token = 'tok-0123456789abcdef0123';
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  const withToken = { ...config, dashboard: { ...config.dashboard, tokenFile } };
  const server = await startDashboard(withToken, { host: '0.0.0.0', port: '0' }, repositories, async () => ({ client: env.temporal.client }));
  try {
    const url = `http://127.0.0.1:${new URL(server.url).port}`;
    expect((await request(`${url}/api/status`)).status).toBe(401);
    expect((await request(`${url}/api/status`, { headers: { Authorization: 'Bearer tok-0123456789abcdef0124' } })).status).toBe(401);
    expect((await request(`${url}/?token=wrong`)).status).toBe(401);
    expect((await request(`${url}/api/status`, { headers: { Cookie: 'backupctl_dashboard=wrong' } })).status).toBe(401);
    expect((await request(`${url}/api/status`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await request(`${url}/api/status`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } })).status).toBe(405);
    const once = await request(`${url}/?token=${token}`);
    expect([once.status, once.headers.location]).toEqual([303, '/']);
    const cookie = once.headers['set-cookie']![0];
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect((await request(`${url}/api/status`, { headers: { Cookie: cookie.split(';')[0] } })).status).toBe(200);
  } finally {
    await server.close();
  }
});

test('backupctl dashboard refuses to listen off loopback without a token, saying what to set', async () => {
  const file = path.join(env.dir, 'dashboard.yaml');
  writeFileSync(file, YAML.stringify(config));
  const run = await execa('node', [path.resolve('bin/backupctl.js'), '--config', file, 'dashboard', '--host', '0.0.0.0', '--port', '0'], { reject: false, timeout: 60_000 });
  expect(run.exitCode).toBe(2);
  expect(run.stderr).toContain('dashboard.tokenFile');
  expect(run.stderr).toContain('--host 0.0.0.0');
}, 90_000);
