// Retention of base backups and WAL on real repositories (two folders and SeaweedFS, the S3 one
// behind a TCP proxy that can be cut) and a real Temporal dev server. Base manifests are signed
// with the test's signing key and WAL entries planted as wal-push and the shipping write them
// (the catalog is synthetic; the repositories, the workflow and the deletes are real):
//   - the spool lets go only of what every other repository holds, and what no kept local base
//     backup needs; with S3 cut it keeps everything S3 would need, and S3 is reported, not pruned;
//   - another repository keeps WAL from its oldest kept base backup, and what the spool still holds;
//   - a worker SIGKILLed in the middle of a prune: manifests and entries went first (no entry
//     without its object, no base object without its manifest), and a new worker finishes it.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import pino from 'pino';
import YAML from 'yaml';
import { Client, Connection } from '@temporalio/client';
import { startDevTemporal } from '../client/dev/temporalServer.js';
import { projectTool } from '../client/dev/tools.js';
import type { Config } from '../common/config.js';
import type { ApplyRetentionReport } from '../common/retentionTypes.js';
import { SHARED_TASK_QUEUE, hostTaskQueue } from '../common/types.js';
import { loadSigner, signManifest } from '../engine/manifestSignature.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import { startWorker, type RunningWorker } from '../workers/worker.js';
import { applyRetention } from '../workflows/index.js';
import { startBackupEnv, type BackupEnv } from './fixtures/backupEnv.js';
import { freePort } from './fixtures/ports.js';
import { startTcpProxy, type TcpProxy } from './fixtures/tcpProxy.js';
import { workerProcesses } from './fixtures/workerProcess.js';

const DAY = 86_400_000;
const SEGMENT_BYTES = 16 * 1024 * 1024;
let env: BackupEnv;
let proxy: TcpProxy;
const workers = workerProcesses();
const logger = pino({ level: process.env.TEST_LOG ? 'info' : 'silent' });

const seg = (n: number) => `00000001${(Math.floor(n / 256)).toString(16).toUpperCase().padStart(8, '0')}${(n % 256).toString(16).toUpperCase().padStart(8, '0')}`;
/** The LSN where segment n starts (16 MiB segments). */
const lsnOf = (n: number) => `${Math.floor(n / 256).toString(16).toUpperCase()}/${((n % 256) * SEGMENT_BYTES).toString(16).toUpperCase()}`;

beforeAll(async () => {
  env = await startBackupEnv({ users: 5, sessionsPerUser: 1, activitiesPerSession: 1 });
  proxy = await startTcpProxy(Number(new URL(env.s3.endpoint).port));
}, 120_000);

afterAll(async () => {
  workers.killAll();
  await proxy?.stop();
  await env?.stop();
});

function configFor(host: string, base: Record<string, unknown>): Config {
  return env.config(host, (raw) => {
    raw.repositories.s3.endpoint = `http://127.0.0.1:${proxy.port}`;
    raw.retention = { timezone: 'UTC', base };
  });
}

function folderOf(config: Config, name: string): string {
  const r = config.repositories[name];
  if (r.type !== 'filesystem') throw new Error(`${name} is not a folder`);
  return r.path;
}

/** WAL files as wal-push (spool) or the shipping (elsewhere) leave them: the object, then its entry. */
async function plantWal(repository: Repository, names: string[], folder?: string): Promise<void> {
  const body = Buffer.from('sealed segment bytes');
  const sha256 = createHash('sha256').update(body).digest('hex');
  const entryOf = (name: string) => Buffer.from(JSON.stringify({ segment: name, key: `wal/${name}.zst.gpg`, compression: 'zstd', bytes: body.length, sha256, plainBytes: SEGMENT_BYTES, plainSha256: sha256, archivedAt: new Date().toISOString() }));
  if (folder) {
    // Many files, fast: written straight into the folder, as the repository would name them.
    mkdirSync(path.join(folder, 'wal'), { recursive: true });
    for (const name of names) {
      writeFileSync(path.join(folder, 'wal', `${name}.zst.gpg`), body);
      writeFileSync(path.join(folder, 'wal', `${name}.json`), entryOf(name));
    }
    return;
  }
  for (let i = 0; i < names.length; i += 20) {
    await Promise.all(
      names.slice(i, i + 20).map(async (name) => {
        await repository.put(`wal/${name}.zst.gpg`, Readable.from([body]), { contentLength: body.length });
        const entry = entryOf(name);
        await repository.put(`wal/${name}.json`, Readable.from([entry]), { contentLength: entry.length });
      }),
    );
  }
}

/** A complete, signed base backup starting in segment `start`, finished at `at`. */
async function plantBase(config: Config, repositories: Repository[], id: string, start: number, at: number): Promise<void> {
  const object = Buffer.from(`base backup ${id}`);
  const key = `base/${id}/base.tar.zst.gpg`;
  const manifest = signManifest(
    {
      formatVersion: 1,
      backupId: id,
      component: 'base',
      workflowId: id,
      runId: 'planted',
      startedAt: new Date(at - 60_000).toISOString(),
      finishedAt: new Date(at).toISOString(),
      server: { version: '15', versionNum: 150000, systemIdentifier: '7000000000000000001', walSegmentBytes: SEGMENT_BYTES },
      backup: { timeline: 1, startLsn: lsnOf(start), stopLsn: lsnOf(start + 1), startedAt: new Date(at - 60_000).toISOString(), stoppedAt: new Date(at).toISOString(), includesBackupManifest: true },
      compression: 'zstd',
      encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
      objects: [{ role: 'base', key, bytes: object.length, sha256: createHash('sha256').update(object).digest('hex') }],
      copies: [],
    },
    (await loadSigner(config))!,
  );
  const body = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  for (const repository of repositories) {
    await repository.put(key, Readable.from([object]), { contentLength: object.length });
    await repository.put(`base/${id}/manifest.json`, Readable.from([body]), { contentLength: body.length });
  }
}

const walIn = async (repository: Repository) => [...new Set((await repository.list('wal/')).map((o) => o.key.slice(4).replace(/(\.json|\.zst\.gpg)$/, '')))].sort();
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => seg(from + i));

describe('the spool and the repositories it ships to', () => {
  const HOST = 'retention-wal';
  let config: Config;
  let repos: Record<'local' | 'nas' | 's3', Repository>;
  let worker: RunningWorker;

  beforeAll(async () => {
    // Local keeps one base backup (from segment 15), nas two (from 5), S3 one (from 15).
    config = configFor(HOST, { local: { daily: 1 }, offsite: { daily: 1 }, repositories: { nas: { daily: 2 } } });
    const [local, nas, s3] = openRepositories(config);
    repos = { local, nas, s3 };
    const now = Date.now();
    await plantBase(config, [local, nas, s3], 'base-old', 5, now - 20 * DAY);
    await plantBase(config, [local, nas, s3], 'base-new', 15, now - 2 * DAY);
    await plantWal(local, range(1, 20), folderOf(config, 'local'));
    await plantWal(nas, range(1, 20), folderOf(config, 'nas'));
    // S3 is behind: it holds 1 to 12.
    await plantWal(s3, range(1, 12));
    worker = await startWorker(config, logger, { bundleInProcess: true });
  }, 120_000);

  afterAll(async () => {
    await worker?.shutdown();
  });

  const prune = (workflowId: string): Promise<ApplyRetentionReport> =>
    env.temporal.client.workflow.execute(applyRetention, { taskQueue: SHARED_TASK_QUEUE, workflowId, args: [{ hostTaskQueue: hostTaskQueue(HOST) }] });

  test('with S3 cut, S3 is reported and not pruned, and the spool keeps everything S3 would need', async () => {
    await proxy.cut();
    let report: ApplyRetentionReport;
    try {
      report = await prune('retention-wal-s3-cut');
    } finally {
      await proxy.restore();
    }
    const s3 = report.repositories.find((r) => r.repository === 's3')!;
    expect(s3.unreachable).toMatch(/s3/i);
    expect(report.recordedIn).toEqual(['local', 'nas']);
    // The spool's kept base starts at 15, but S3 (unreadable) holds nothing it can be seen to hold.
    expect(await walIn(repos.local)).toEqual(range(1, 20));
    // nas keeps from 5 (two base backups), and 1-4 stay while the spool still holds them.
    expect(await walIn(repos.nas)).toEqual(range(1, 20));
    expect(report.repositories.find((r) => r.repository === 'local')!.wal.unshipped).toBe(14);
    // Base backups: local and nas go by their rules (the WAL decision follows what stays).
    expect((await repos.local.list('base/')).some((o) => o.key.startsWith('base/base-old/'))).toBe(false);
    expect((await repos.nas.list('base/')).some((o) => o.key.startsWith('base/base-old/'))).toBe(true);
  });

  test('S3 back: the spool lets go only of what nas and S3 both hold below its cut; each repository keeps WAL from its oldest kept base backup', async () => {
    const report = await prune('retention-wal-s3-back');
    expect(report.recordedIn).toEqual(['local', 'nas', 's3']);
    // Spool: below 15, S3 lacks 13 and 14 (not shipped yet): they stay.
    expect(await walIn(repos.local)).toEqual(range(13, 20));
    expect(report.repositories.find((r) => r.repository === 'local')!.wal).toMatchObject({ deleted: 12, unshipped: 2, keepFrom: seg(15) });
    // nas: from 5 (base-old kept there); 1-4 go now that the spool let them go.
    expect(await walIn(repos.nas)).toEqual(range(5, 20));
    // S3: from 15 (only base-new kept); everything it held was below.
    expect(await walIn(repos.s3)).toEqual([]);
    expect((await repos.s3.list('base/')).map((o) => o.key)).toEqual(['base/base-new/base.tar.zst.gpg', 'base/base-new/manifest.json']);
    // The same decision again deletes nothing more.
    const again = await prune('retention-wal-again');
    expect(again.repositories.map((r) => r.wal.deleted + r.backups.deleted)).toEqual([0, 0, 0]);
  });
});

/** Base backups in local and nas, and `old` segments below the kept one in nas only: a prune of some 2 x old files there. */
async function crashScene(host: string, old: number, patch?: (raw: any) => void): Promise<{ config: Config; local: Repository; nas: Repository; file: string; nasWal: string; before: number }> {
  const config = env.config(host, (raw) => {
    raw.repositories.s3.endpoint = `http://127.0.0.1:${proxy.port}`;
    raw.retention = { timezone: 'UTC', base: { local: { daily: 1 } } };
    patch?.(raw);
  });
  const [local, nas] = openRepositories(config);
  const now = Date.now();
  await plantBase(config, [local, nas], 'crash-old', 1, now - 10 * DAY);
  await plantBase(config, [local, nas], 'crash-new', old + 100, now - DAY);
  await plantWal(nas, range(1, old), folderOf(config, 'nas'));
  await plantWal(local, range(old + 100, old + 110), folderOf(config, 'local'));
  const file = path.join(env.dir, `${host}.yaml`);
  writeFileSync(file, YAML.stringify(config));
  const nasWal = path.join(folderOf(config, 'nas'), 'wal');
  return { config, local, nas, file, nasWal, before: readdirSync(nasWal).length };
}

/** Until the first WAL entry to go is gone (a stat: reading a folder of 40,000 names would hold up a worker in this process). */
async function untilDeleting(nasWal: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (existsSync(path.join(nasWal, `${seg(1)}.json`))) {
    if (Date.now() > deadline) throw new Error('the prune never started deleting');
    await sleep(5);
  }
}

describe('the Temporal server SIGKILLed and started again in the middle of a prune', () => {
  test('the prune goes on from its history and finishes', async () => {
    const port = await freePort();
    const stateDir = path.join(env.dir, 'temporal-restart');
    let server = await startDevTemporal(stateDir, port, await freePort());
    let worker: RunningWorker | undefined;
    try {
      const scene = await crashScene('retention-restart', 20_000, (raw) => (raw.temporal.address = `127.0.0.1:${port}`));
      worker = await startWorker(scene.config, logger, { bundleInProcess: true });
      const client = new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) });
      const handle = await client.workflow.start(applyRetention, { taskQueue: SHARED_TASK_QUEUE, workflowId: 'retention-server-restart', args: [{ hostTaskQueue: hostTaskQueue('retention-restart') }] });
      await untilDeleting(scene.nasWal);
      await server.kill();
      server = await startDevTemporal(stateDir, port, await freePort());
      const report = await handle.result();
      expect(report.repositories.find((r) => r.repository === 'nas')!.wal.failed).toBe(0);
      expect(await walIn(scene.nas)).toEqual([]);
      expect((await scene.nas.list('base/')).map((o) => o.key)).toEqual(['base/crash-new/base.tar.zst.gpg', 'base/crash-new/manifest.json']);
      expect(await walIn(scene.local)).toEqual(range(20_100, 20_110));
      await client.connection.close();
    } finally {
      await worker?.shutdown().catch(() => undefined);
      await server.stop();
    }
  }, 240_000);
});

describe('a worker killed in the middle of a prune', () => {
  test('manifests and entries went first, and a new worker finishes it', async () => {
    const HOST = 'retention-crash';
    const OLD = 20_000;
    const { config, local, nas, file, nasWal, before } = await crashScene(HOST, OLD);

    const first = workers.spawn(file);
    const handle = await env.temporal.client.workflow.start(applyRetention, {
      taskQueue: SHARED_TASK_QUEUE,
      workflowId: 'retention-crash',
      args: [{ hostTaskQueue: hostTaskQueue(HOST) }],
    });
    await untilDeleting(nasWal);
    workers.kill(first);
    await first.catch(() => undefined);

    // What the kill left: no entry without its object, no base object without its manifest.
    const left = new Set(readdirSync(nasWal));
    expect(left.size).toBeGreaterThan(0);
    expect(left.size).toBeLessThan(before);
    const orphanEntries = [...left].filter((f) => f.endsWith('.json') && !left.has(f.replace(/\.json$/, '.zst.gpg')));
    expect(orphanEntries).toEqual([]);
    const oldBase = path.join(folderOf(config, 'nas'), 'base', 'crash-old');
    // The base backup's manifest goes before its object: never an object gone under a manifest.
    expect({ manifest: existsSync(path.join(oldBase, 'manifest.json')), object: existsSync(path.join(oldBase, 'base.tar.zst.gpg')) }).not.toEqual({ manifest: true, object: false });

    void workers.spawn(file);
    const report = await handle.result();
    const nasResult = report.repositories.find((r) => r.repository === 'nas')!;
    expect(nasResult.wal.failed).toBe(0);
    expect(await walIn(nas)).toEqual([]);
    expect(existsSync(oldBase)).toBe(false);
    expect((await nas.list('base/')).map((o) => o.key)).toEqual(['base/crash-new/base.tar.zst.gpg', 'base/crash-new/manifest.json']);
    expect(await walIn(local)).toEqual(range(OLD + 100, OLD + 110));
    if (process.env.RECORD_HISTORIES) {
      const show = ['workflow', 'show', '--workflow-id', 'retention-crash', '--output', 'json', '--address', env.temporal.address];
      writeFileSync('test/histories/applyRetention.json', (await execa(projectTool('temporal'), show)).stdout);
    }
  }, 240_000);
});
