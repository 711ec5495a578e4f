// The Temporal CLI's dev server, persisted to a SQLite file so runs survive a restart.
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { Connection } from '@temporalio/client';
import { assertOwnListener } from './portOwner.js';
import { projectTool } from './tools.js';

export interface DevTemporal {
  address: string;
  uiUrl: string;
  /** False when a server was already running there and we reuse it. */
  started: boolean;
  stop(): Promise<void>;
  /** SIGKILL, as a crash would (the SQLite file stays: a new start continues from it). */
  kill(): Promise<void>;
}

export async function startDevTemporal(stateDir: string, port = 7233, uiPort = 8233): Promise<DevTemporal> {
  const address = `127.0.0.1:${port}`;
  const uiUrl = `http://127.0.0.1:${uiPort}`;
  if (await answers(address)) {
    // Whoever runs the server drives the worker that polls it: only our own (or root's) is reused.
    assertOwnListener(port, `the Temporal server answering at ${address}`);
    return { address, uiUrl, started: false, stop: async () => undefined, kill: async () => undefined };
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const server: ResultPromise = execa(
    projectTool('temporal'),
    [
      'server', 'start-dev',
      '--db-filename', path.join(stateDir, 'temporal.sqlite'),
      '--ip', '127.0.0.1',
      '--port', String(port),
      '--ui-port', String(uiPort),
      '--log-level', 'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], buffer: false, detached: false },
  );
  // The end of what it says on stderr: why it exited, when it does (a port taken meanwhile).
  let stderrTail = '';
  server.stderr?.on('data', (chunk: Buffer) => (stderrTail = (stderrTail + chunk.toString()).slice(-2000)));
  let exited: Error | undefined;
  server.catch((err) => {
    exited = err;
  });
  const deadline = Date.now() + 60_000;
  while (!(await answers(address))) {
    if (exited) throw new Error(`temporal server start-dev exited: ${exited.message}${stderrTail.trim() ? `\n${stderrTail.trim()}` : ''}`);
    if (Date.now() > deadline) {
      server.kill('SIGKILL');
      throw new Error(`temporal dev server did not answer on ${address} within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return {
    address,
    uiUrl,
    started: true,
    async stop() {
      server.kill('SIGTERM');
      await server.catch(() => undefined);
    },
    async kill() {
      server.kill('SIGKILL');
      await server.catch(() => undefined);
    },
  };
}

async function answers(address: string): Promise<boolean> {
  const [host, port] = address.split(':');
  const open = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (!open) return false;
  try {
    const connection = await Connection.connect({ address, connectTimeout: '2 seconds' });
    await connection.workflowService.getSystemInfo({});
    await connection.close();
    return true;
  } catch {
    return false;
  }
}
