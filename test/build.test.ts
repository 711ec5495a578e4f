// The compiled build (npm run build, run by scripts/setup.sh when the sources changed): what
// bin/backupctl.js runs when it is current, tsx only where a source is newer. The suite runs
// after setup, so dist/ is current here.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
// @ts-expect-error: plain JavaScript beside the CLI, without type declarations
import { buildIsCurrent } from '../bin/buildState.js';

const ROOT = path.resolve('.');

test('the build is current after setup, and its CLI runs without tsx', async () => {
  expect(buildIsCurrent(ROOT)).toBe(true);
  const help = await execa(process.execPath, [path.join(ROOT, 'dist', 'client', 'cli.js'), '--help']);
  expect(help.stdout).toContain('Usage: backupctl');
});

test('the compiled bundler bundles the compiled workflows, as a worker run from dist/ does', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-build-'));
  try {
    const out = path.join(dir, 'workflows.js');
    await execa(process.execPath, [path.join(ROOT, 'dist', 'workers', 'bundleWorkflows.js'), out]);
    const code = readFileSync(out, 'utf8');
    for (const workflow of ['backupDatabase', 'restoreDatabase', 'pointInTimeRecovery', 'sweepLeftovers']) expect(code).toContain(workflow);
    expect(code).toContain('dist/workflows/index.js');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

test('a source newer than the build, or no build, makes it stale', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'backupctl-buildstate-'));
  try {
    mkdirSync(path.join(root, 'activities'));
    writeFileSync(path.join(root, 'activities', 'a.ts'), '');
    expect(buildIsCurrent(root)).toBe(false);
    mkdirSync(path.join(root, 'dist'));
    writeFileSync(path.join(root, 'dist', '.built'), '');
    const past = new Date(Date.now() - 60_000);
    utimesSync(path.join(root, 'activities', 'a.ts'), past, past);
    expect(buildIsCurrent(root)).toBe(true);
    writeFileSync(path.join(root, 'activities', 'a.ts'), 'changed');
    utimesSync(path.join(root, 'dist', '.built'), past, past);
    expect(buildIsCurrent(root)).toBe(false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the systemd unit for the worker is one systemd accepts, and runs the CLI that runs dist/', async () => {
  const unit = path.join(ROOT, 'deploy', 'backupctl-worker.service');
  const verified = await execa('systemd-analyze', ['verify', unit], { reject: false });
  expect({ exitCode: verified.exitCode, stderr: verified.stderr }).toEqual({ exitCode: 0, stderr: '' });
  const text = readFileSync(unit, 'utf8');
  expect(text).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/backupctl\/bin\/backupctl\.js --config \/etc\/backupctl\/backupctl\.yaml worker$/m);
  expect(text).toMatch(/^Restart=on-failure$/m);
  expect(text).toMatch(/^User=backupctl$/m);
  expect(text).toMatch(/^EnvironmentFile=\/etc\/backupctl\/worker\.env$/m);
});
