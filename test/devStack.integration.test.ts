// `npm start`'s embedded stack is the whole product on one machine: a real `backupctl dev`
// process (its own Temporal dev server, SeaweedFS, the demo cluster, a worker) on ports moved by
// --port-offset, then the commands a newcomer runs next through the wrapper it writes. The
// offsite copy, the archived WAL, the schedules, the monitor and an offsite drill are read back
// from what really ran, not from what the stack printed.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';

const CLI = path.resolve('bin/backupctl.js');
/** The stack's ports before the offset (client/dev/stack.ts), and the dev server's HTTP port. */
const BASE_PORTS = [7233, 7243, 8233, 8234, 54329, ...Array.from({ length: 8 }, (_, i) => 18333 + i)];

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function freeOffset(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const offset = 1000 + Math.floor(Math.random() * 8000);
    if ((await Promise.all(BASE_PORTS.map((p) => portFree(p + offset)))).every(Boolean)) return offset;
  }
  throw new Error('no free port offset for the dev stack');
}

async function until<T>(what: string, check: () => Promise<T | undefined>, seconds: number): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

describe('backupctl dev: the whole product on one machine', () => {
  let dir: string;
  let offset: number;
  let stack: ResultPromise | undefined;
  let stderr = '';

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-devstack-'));
    offset = await freeOffset();
  });

  afterAll(async () => {
    if (stack?.pid && stack.exitCode === null) {
      stack.kill('SIGTERM');
      await stack.catch(() => undefined);
    }
    // A stack left behind by a failed test: its cluster is stopped by the next --once run's stop,
    // or here.
    await execa('su', ['postgres', '-s', '/bin/sh', '-c', `pg_ctl -D ${path.join(dir, 'pgdata')} -m immediate stop`], { reject: false, env: { PATH: `/usr/lib/postgresql/15/bin:${process.env.PATH}` } });
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const wrapper = (args: string[]) => execa(path.join(dir, 'backupctl'), args, { reject: false, timeout: 300_000 });

  it('serves Temporal, S3, the archiving demo cluster, the schedules, WAL shipping and the monitor, and a drill restores the offsite copy', async () => {
    stack = execa('node', [CLI, 'dev', '--serve', '--dir', dir, '--port-offset', String(offset)], { reject: false, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', buffer: false, forceKillAfterDelay: false });
    stack.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    stack.stdout!.resume();
    const exited = stack.then((r) => r.exitCode);
    await until('the stack to serve', async () => (/serving the Web UI/.test(stderr) ? true : (await Promise.race([exited, Promise.resolve('running')])) !== 'running' ? Promise.reject(new Error(`dev exited:\n${stderr}`)) : undefined), 300);

    expect(stderr).toContain(`Web UI http://127.0.0.1:${8233 + offset}`);
    expect(stderr).toContain(`SeaweedFS S3 started at http://127.0.0.1:${18333 + offset}`);
    expect(stderr).toMatch(/schedules: backup-database-nightly created, verify-backup-weekly created, recovery-drill-monthly created, backup-base-weekly created, apply-retention-daily created/);
    expect(stderr).toMatch(/WAL shipping: started \(wal-shipping-localhost\); monitor: started \(monitor-localhost\)/);

    // What ran: the dump and the base backup in all three repositories, S3 included.
    const status = await until(
      'the monitor and the WAL in S3',
      async () => {
        // A WAL switch closes a segment; archive_command (wal-push) spools it, shipping copies it to S3.
        await execa('psql', ['-h', '127.0.0.1', '-p', String(54329 + offset), '-U', 'postgres', '-d', 'thesis_grey_demo', '-Atc', 'SELECT pg_switch_wal()'], { reject: false });
        const run = await wrapper(['status', '--json']);
        const report = JSON.parse(run.stdout) as {
          latestBackup: { foundIn: string[] } | null;
          latestBaseBackup: { foundIn: string[] } | null;
          walArchive: { repositories: { name: string; newestSegment: string | null; error?: string }[] } | null;
          monitor: { running: boolean; lastLookAt?: string | null } | null;
        };
        const s3Wal = report.walArchive?.repositories.find((r) => r.name === 's3');
        return report.monitor?.lastLookAt && s3Wal && !s3Wal.error && s3Wal.newestSegment ? report : undefined;
      },
      180,
    );
    expect(status.latestBackup?.foundIn.sort()).toEqual(['local', 'nas', 's3']);
    expect(status.latestBaseBackup?.foundIn.sort()).toEqual(['local', 'nas', 's3']);
    expect(status.monitor?.running).toBe(true);
    // The monitor's status file, written by its look.
    expect(JSON.parse(readFileSync(path.join(dir, 'status.json'), 'utf8'))).toMatchObject({ host: 'localhost' });

    // The drill restores the offsite copy (S3 only): what a local-and-NAS stack could not do.
    const drill = await wrapper(['drill', '--wait', '--json']);
    expect({ exitCode: drill.exitCode, stderr: drill.exitCode === 0 ? '' : drill.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(JSON.parse(drill.stdout)).toMatchObject({ kind: 'drill', ok: true, repository: 's3' });

    // The dashboard, served by the stack beside the Web UI: its data names the stack's backups and links to its Web UI.
    const dashboardUrl = new RegExp(`dashboard: (http://127\\.0\\.0\\.1:${8234 + offset})/   Web UI: http://127\\.0\\.0\\.1:${8233 + offset}`).exec(stderr)?.[1];
    expect(dashboardUrl).toBeDefined();
    const page = await fetch(`${dashboardUrl}/`);
    expect(page.status).toBe(200);
    const data = (await (await fetch(`${dashboardUrl}/api/status`)).json()) as { components: { name: string }[]; timeline: unknown[]; temporal: { webUi: string | null } };
    expect(data.components.map((c) => c.name)).toEqual(expect.arrayContaining(['database', 'base']));
    expect(data.timeline.length).toBeGreaterThanOrEqual(2);
    expect(data.temporal.webUi).toBe(`http://127.0.0.1:${8233 + offset}`);

    const schedules = await wrapper(['schedules', 'list', '--json']);
    expect(schedules.exitCode).toBe(0);
    expect(schedules.stdout).toContain('recovery-drill-monthly');

    // As Ctrl-C would: the stack stops what it started, SeaweedFS flushing its data first.
    const stopping = Date.now();
    stack.kill('SIGTERM');
    expect(await exited).toBe(0);
    console.log(`the stack stopped in ${((Date.now() - stopping) / 1000).toFixed(1)} s`);
    // Everything it started is stopped: no port of the stack still answers.
    for (const port of [7233, 8234, 18333, 54329].map((p) => p + offset)) expect(await portFree(port)).toBe(true);
  }, 600_000);

  it('starts again on the same folder: the data kept, no second demo database, no second base backup', async () => {
    const again = await execa('node', [CLI, 'dev', '--once', '--dir', dir, '--port-offset', String(offset)], { reject: false, timeout: 300_000 });
    expect({ exitCode: again.exitCode, stderr: again.exitCode === 0 ? '' : again.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(again.stderr).not.toMatch(/demo database .* created/);
    expect(again.stderr).not.toMatch(/no base backup yet/);
    // Kept in Temporal's SQLite file: the WAL shipping and the monitor run on across restarts.
    expect(again.stderr).toMatch(/WAL shipping: already running \(wal-shipping-localhost\); monitor: already running/);
    expect(again.stderr).toMatch(/Temporal started/);
    expect(existsSync(path.join(dir, 'seaweedfs', 'credentials'))).toBe(true);
  }, 300_000);
});
