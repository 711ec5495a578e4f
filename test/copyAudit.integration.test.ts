// Every copy's state reaches the operator, on real components (Temporal dev server,
// PostgreSQL, SeaweedFS S3, gpg, filesystem repositories): the weekly verification reads every
// copy in every repository back, and a backup that restores from its last whole copy while
// the others are damaged is reported as such by `verify` (non-zero exit), `backups list` and
// `status`, instead of "verified".
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pino from 'pino';
import { projectTool } from '../client/dev/tools.js';
import { createCopyAuditActivities } from '../activities/copyAudit.js';
import { collectStatus, runStatus } from '../client/commands/status.js';
import { runListBackups } from '../client/commands/listBackups.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { EXIT_COPIES_DAMAGED, runVerify } from '../client/commands/verify.js';
import type { Printer } from '../client/output.js';
import { openRepositories, openRepository } from '../engine/storage/index.js';
import type { Config } from '../common/config.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { backupDatabase } from '../workflows/index.js';
import type { CopyAudit, VerificationReport } from '../common/restoreTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue, type DatabaseBackupResult } from '../common/types.js';
import { BUCKET, startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { freePort } from './fixtures/ports.js';

let env: BackupEnv;
let config: Config;
let worker: RunningWorker | undefined;
let backup: DatabaseBackupResult;
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

beforeAll(async () => {
  env = await startBackupEnv({ users: 60, sessionsPerUser: 2, activitiesPerSession: 2 });
  config = env.config('db', (raw) => {
    raw.encryption.privateKeyHome = env.keys.privateHome;
    raw.restore = { serverUrl: env.source.url('postgres'), jobs: 2, checks: [{ name: 'users exist', sql: 'SELECT count(*) > 0 FROM auth_user' }] };
  });
  worker = await startWorker(config, logger, { bundleInProcess: true });
  backup = await env.temporal.client.workflow.execute(backupDatabase, {
    taskQueue: SHARED_TASK_QUEUE,
    workflowId: 'backup-for-copy-audit',
    args: [{ hostTaskQueue: hostTaskQueue('db') }],
  });
});

afterAll(async () => {
  await worker?.shutdown().catch(() => undefined);
  await env?.stop();
});

/** A printer that keeps what a command printed, as the operator would read it. */
function capture(): Printer & { value?: any; text: string } {
  const out: Printer & { value?: any; text: string } = {
    json: false,
    text: '',
    result(value, human) {
      out.value = value;
      out.text = human();
    },
  };
  return out;
}

async function verify(workflowId: string) {
  // Report ids sort by their second; "the last verification" must be this one.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const out = capture();
  const code = await runVerify(env.temporal.client, config, 'latest', { wait: true, workflowId }, out);
  return { code, report: out.value as VerificationReport, text: out.text };
}

const dumpKey = () => backup.objects.find((o) => o.role === 'dump')!.key;
const fileIn = (repository: string, key: string) => path.join(env.dir, 'db', repository, key);

test('every copy whole: all objects in every repository read back in full, verified, exit 0', async () => {
  const { code, report, text } = await verify('verify-all-whole');
  expect(code).toBe(0);
  expect(report).toMatchObject({ ok: true, state: 'verified', verdict: 'verified, all 3 copies whole' });
  expect(report.copies!.repositories.map((r) => [r.repository, r.ok, r.manifest.state])).toEqual([
    ['local', true, 'ok'],
    ['nas', true, 'ok'],
    ['s3', true, 'ok'],
  ]);
  const stored = backup.objects.reduce((sum, o) => sum + o.bytes, 0);
  for (const r of report.copies!.repositories) {
    expect(r.objects.map((o) => [o.key, o.state, o.bytesRead])).toEqual(backup.objects.map((o) => [o.key, 'ok', o.bytes]));
  }
  expect(report.copies!.bytesRead).toBeGreaterThanOrEqual(3 * stored);
  expect(text).toContain('verified, all 3 copies whole');
});

describe('local copy corrupt, NAS dump deleted', () => {
  let original: Buffer;
  let run: Awaited<ReturnType<typeof verify>>;

  beforeAll(async () => {
    original = readFileSync(fileIn('local', dumpKey()));
    const damaged = Buffer.from(original);
    damaged[damaged.length >> 1] ^= 0xff;
    writeFileSync(fileIn('local', dumpKey()), damaged);
    rmSync(fileIn('nas', dumpKey()));
    run = await verify('verify-damaged-copies');
  });

  afterAll(async () => {
    // The audited verification's history, for the replay test (test/histories).
    if (process.env.RECORD_HISTORIES) {
      const show = ['workflow', 'show', '--workflow-id', 'verify-damaged-copies', '--output', 'json', '--address', env.temporal.address];
      writeFileSync('test/histories/verifyBackupCopyAudit.json', (await execa(projectTool('temporal'), show)).stdout);
    }
    writeFileSync(fileIn('local', dumpKey()), original);
    writeFileSync(fileIn('nas', dumpKey()), original);
  });

  test('the restore succeeds from S3, the report names local as checksum mismatch and nas as missing', () => {
    const { report } = run;
    expect(report.ok).toBe(true);
    expect(report.restored!.copy).toEqual({ repository: 's3', key: dumpKey() });
    expect(report.state).toBe('copies-damaged');
    expect(report.verdict).toBe('restorable, 2 of 3 copies damaged (local, nas)');
    expect(report.copies!.damaged).toEqual(['local', 'nas']);
    const states = Object.fromEntries(report.copies!.repositories.map((r) => [r.repository, Object.fromEntries(r.objects.map((o) => [o.role, o.state]))]));
    expect(states).toEqual({
      local: { dump: 'checksum-mismatch', globals: 'ok' },
      nas: { dump: 'missing', globals: 'ok' },
      s3: { dump: 'ok', globals: 'ok' },
    });
    expect(report.copies!.repositories.every((r) => r.manifest.state === 'ok')).toBe(true);
  });

  test('verify prints every damaged copy and exits non-zero', () => {
    expect(run.code).toBe(EXIT_COPIES_DAMAGED);
    expect(run.text).toContain('restorable, 2 of 3 copies damaged (local, nas)');
    expect(run.text).toContain(`damaged copy local: ${dumpKey()} checksum mismatch`);
    expect(run.text).toContain(`damaged copy nas: ${dumpKey()} missing`);
    expect(run.text).not.toMatch(/ verified \(/);
  });

  test('backups list shows the damaged copies of the last verification', async () => {
    const out = capture();
    await runListBackups(openRepositories(config), out, await loadVerifier(config));
    const row = out.text.split('\n').find((line) => line.includes(backup.backupId))!;
    expect(row).toMatch(/verified: ok \S+, 2 of 3 copies damaged \(local, nas\)/);
    expect(out.text).toContain(`damaged copy nas: ${dumpKey()} missing`);
    expect(out.value.backups[0].lastVerification).toMatchObject({ reportId: run.report.reportId, state: 'copies-damaged', copies: { damaged: ['local', 'nas'] } });
  });

  test('status flags the damaged copies as a problem and exits 1', async () => {
    const report = await collectStatus(env.temporal.client, undefined, config, openRepositories(config));
    const out = capture();
    const code = await runStatus(report, out);
    expect(code).toBe(1);
    const problem = report.problems.find((p) => p.includes('copies damaged'));
    expect(problem).toContain(`backup ${backup.backupId}`);
    expect(problem).toContain(`local: ${dumpKey()} checksum mismatch`);
    expect(problem).toContain(`nas: ${dumpKey()} missing`);
    expect(out.text).toContain('2 of 3 copies damaged (local, nas)');
    expect(out.text).toContain(`newest verification: backup ${backup.backupId} restored, 2 of 3 copies damaged (local, nas)`);
    expect(out.text).not.toContain('restored and verified');
  });
});

test('a truncated manifest in one repository is a damaged copy, and nothing is written or removed', async () => {
  const manifest = fileIn('nas', `database/${backup.backupId}/manifest.json`);
  const original = readFileSync(manifest);
  writeFileSync(manifest, original.subarray(0, original.length >> 1));
  const listing = async () => {
    const names: string[] = [];
    for (const r of openRepositories(config)) names.push(...(await r.list(`database/${backup.backupId}/`)).filter((o) => !o.key.includes('/verifications/')).map((o) => `${r.name}:${o.key}:${o.bytes}`));
    return names.sort();
  };
  const before = await listing();
  try {
    const { code, report } = await verify('verify-damaged-manifest');
    expect(code).toBe(EXIT_COPIES_DAMAGED);
    const nas = report.copies!.repositories.find((r) => r.repository === 'nas')!;
    expect(nas.manifest).toMatchObject({ state: 'damaged', detail: expect.stringContaining('not valid JSON') });
    expect(nas.objects.every((o) => o.state === 'ok')).toBe(true);
    expect(report.verdict).toBe('restorable, 1 of 3 copies damaged (nas)');
    // Read-only: the audit left every object as it found it.
    expect(await listing()).toEqual(before);
  } finally {
    writeFileSync(manifest, original);
  }
});

describe('the audit activity on its own (real filesystem repository, real S3 client)', () => {
  /** A TCP server that accepts and never answers: a hung S3 endpoint. */
  let blackHole: net.Server;
  const held = new Set<net.Socket>();
  let offlinePort: number;

  beforeAll(async () => {
    blackHole = net.createServer((socket) => {
      held.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', () => resolve()));
    offlinePort = await freePort();
  });

  afterAll(async () => {
    held.forEach((s) => s.destroy());
    await new Promise<void>((resolve) => blackHole.close(() => resolve()));
  });

  /** local as configured; nas an S3 endpoint that hangs; s3 one that refuses connections. */
  function activities() {
    const s3 = (port: number) => ({ type: 's3' as const, bucket: BUCKET, prefix: 'db', endpoint: `http://127.0.0.1:${port}`, partSizeMiB: 5 });
    const repositories = [
      openRepositories(config)[0],
      openRepository('nas', s3((blackHole.address() as net.AddressInfo).port) as any),
      openRepository('s3', s3(offlinePort) as any),
    ];
    return createCopyAuditActivities({ config, repositories });
  }

  test('heartbeats the bytes it reads; an unreachable or hung repository is "unreadable" with its error type, and does not hang the audit', async () => {
    const mock = new MockActivityEnvironment({ heartbeatTimeoutMs: 2000 });
    const beats: { bytesRead: number }[] = [];
    mock.on('heartbeat', (d: { bytesRead: number }) => beats.push(d));
    const started = Date.now();
    const audit: CopyAudit = await mock.run(activities().auditBackupCopies, { backupId: backup.backupId, objects: backup.objects });
    expect(Date.now() - started).toBeLessThan(20_000);
    const byName = Object.fromEntries(audit.repositories.map((r) => [r.repository, r]));
    expect(byName.local.ok).toBe(true);
    for (const name of ['nas', 's3']) {
      expect(byName[name].manifest).toMatchObject({ state: 'unreadable', errorType: 'StorageUnreachable' });
      expect(byName[name].objects.map((o) => [o.state, o.errorType])).toEqual(backup.objects.map(() => ['unreadable', 'StorageUnreachable']));
    }
    expect(byName.nas.manifest.detail).toContain('no answer within 1.2 s');
    expect(audit.damaged).toEqual(['nas', 's3']);
    const stored = backup.objects.reduce((sum, o) => sum + o.bytes, 0);
    expect(audit.bytesRead).toBeGreaterThan(stored);
    expect(Math.max(...beats.map((b) => b.bytesRead))).toBe(audit.bytesRead);
    expect(beats.some((b) => b.bytesRead > 0 && b.bytesRead < audit.bytesRead)).toBe(true);
  });

  test('cancelled while a repository hangs: it stops at once with the cancellation, not a finding', async () => {
    const mock = new MockActivityEnvironment({ heartbeatTimeoutMs: 60_000 });
    const running = mock.run(activities().auditBackupCopies, { backupId: backup.backupId, objects: backup.objects });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const cancelledAt = Date.now();
    mock.cancel();
    await expect(running).rejects.toBeInstanceOf(CancelledFailure);
    expect(Date.now() - cancelledAt).toBeLessThan(2000);
  });

  test('refuses an object list that is not of the backup named', async () => {
    const mock = new MockActivityEnvironment();
    const foreign = backup.objects.map((o) => ({ ...o, key: o.key.replace(backup.backupId, 'another-backup') }));
    await expect(mock.run(activities().auditBackupCopies, { backupId: backup.backupId, objects: foreign })).rejects.toMatchObject({
      type: 'InvalidInput',
      nonRetryable: true,
      message: expect.stringContaining('input.objects'),
    });
  });
});
