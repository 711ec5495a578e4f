// The dev stack reuses a Temporal server already answering on its port (an earlier `backupctl
// dev`): client/dev/temporalServer.ts. One that another OS user runs there would be handed the
// stack's worker (every activity it schedules runs here, with this user's keys and databases)
// and its workflows' payloads: refused. Run as root (CI), the other user is `nobody`.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startDevTemporal } from '../client/dev/temporalServer.js';
import { projectTool } from '../client/dev/tools.js';
import { freePorts } from './fixtures/ports.js';

const asRoot = process.getuid?.() === 0;

(asRoot ? test : test.skip)("a Temporal server of another OS user on the stack's port is not reused", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-devtemporal-'));
  const [port, uiPort] = await freePorts(2);
  const foreign = execa('runuser', ['-u', 'nobody', '--', projectTool('temporal'), 'server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port), '--http-port', String(uiPort), '--metrics-port', '0', '--log-level', 'error'], { cwd: '/tmp', reject: false, stdio: 'ignore' });
  try {
    // Up once a connection would be reused (the stack's own test: it answers a system-info call).
    const { Connection } = await import('@temporalio/client');
    for (;;) {
      const connected = await Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: '2 seconds' }).catch(() => undefined);
      if (connected) {
        const ok = await connected.workflowService.getSystemInfo({}).then(() => true, () => false);
        await connected.close();
        if (ok) break;
      }
      if (foreign.exitCode !== null) throw new Error('the other user\'s Temporal server exited');
      await new Promise((r) => setTimeout(r, 300));
    }
    await expect(startDevTemporal(path.join(dir, 'temporal'), port, uiPort)).rejects.toThrow(/another OS user/);
  } finally {
    foreign.kill('SIGTERM');
    await foreign;
    rmSync(dir, { recursive: true, force: true });
  }
}, 90_000);
