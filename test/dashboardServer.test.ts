// The dashboard's HTTP server (client/dashboard/server.ts) against requests no browser sends:
// a request line whose target is no URL, and many looks while the data loads slowly. The page
// and its data on a real stack are test/dashboard.browser.test.ts's.
import net from 'node:net';
import { startDashboardServer, type RunningDashboard } from '../client/dashboard/server.js';

/** Exactly these bytes to the server: `sent` once they are written, `answer` whole once it closes the connection. */
function send(server: RunningDashboard, text: string): { sent: Promise<void>; answer: Promise<string> } {
  const { hostname, port } = new URL(server.url);
  let sent!: () => void;
  const written = new Promise<void>((resolve) => (sent = resolve));
  const answer = new Promise<string>((resolve, reject) => {
    // Written, not ended: a half-closed connection gets no answer from a Node server still working on it.
    const socket = net.connect(Number(port), hostname, () => socket.write(text, () => sent()));
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
  return { sent: written, answer };
}
const raw = (server: RunningDashboard, text: string) => send(server, text).answer;

const get = (target: string) => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`;
const statusLine = (answer: string) => answer.split('\r\n')[0];

test('a request target that is no URL is a 400, and the server (its log configured, as the command has it) serves on', async () => {
  const logged: string[] = [];
  const server = await startDashboardServer({ host: '127.0.0.1', port: 0, load: async () => ({ ok: true }), log: (line) => logged.push(line) });
  try {
    for (const target of ['http://[', '//[x', 'http://a:b/']) expect([target, statusLine(await raw(server, get(target)))]).toEqual([target, 'HTTP/1.1 400 Bad Request']);
    expect(statusLine(await raw(server, get('/api/status')))).toBe('HTTP/1.1 200 OK');
  } finally {
    await server.close();
  }
  // Unanswered (the connection left open) when the server's error path itself threw.
}, 20_000);

test('a load still running is shared: looks that come while it runs start no other, whatever the cache period', async () => {
  let loads = 0;
  let started!: () => void;
  const loadStarted = new Promise<void>((resolve) => (started = resolve));
  const finishers: ((data: object) => void)[] = [];
  const server = await startDashboardServer({
    host: '127.0.0.1',
    port: 0,
    cacheSeconds: 0,
    load: () => {
      loads++;
      started();
      return new Promise<object>((resolve) => finishers.push(resolve));
    },
  });
  try {
    const first = raw(server, get('/api/status'));
    await loadStarted;
    const others = [send(server, get('/api/status')), send(server, get('/api/status'))];
    // Both later looks written before a request the server answers at once: read by the server before the load ends.
    await Promise.all(others.map((o) => o.sent));
    expect(statusLine(await raw(server, get('/style.css')))).toBe('HTTP/1.1 200 OK');
    for (const finish of finishers) finish({ look: 1 });
    for (const answer of await Promise.all([first, ...others.map((o) => o.answer)])) expect(answer).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*\{"look":1\}$/);
    expect(loads).toBe(1);
  } finally {
    await server.close();
  }
});

test('?token= once sends back to a path of this server, never to another host (/.//host is the path //host)', async () => {
  const token = 'tok-0123456789abcdef0123';
  const server = await startDashboardServer({ host: '127.0.0.1', port: 0, token, load: async () => ({ ok: true }) });
  try {
    for (const target of [`/.//evil.example/?token=${token}`, `/..//evil.example/x?token=${token}&a=1`]) {
      const answer = await raw(server, get(target));
      expect([target, statusLine(answer)]).toEqual([target, 'HTTP/1.1 303 See Other']);
      const location = /\r\nLocation: ([^\r]*)/i.exec(answer)?.[1];
      expect([target, location]).toEqual([target, expect.stringMatching(/^\/(?![/\\])/)]);
    }
  } finally {
    await server.close();
  }
});
