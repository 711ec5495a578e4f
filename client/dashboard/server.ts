// The dashboard's HTTP server: the page (client/dashboard/static/, plain files, no build step)
// and GET /api/status, the data it polls. Read-only: GET and HEAD, nothing else. The data is
// loaded at most once per `cacheSeconds`, however many browsers reload at once.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { listen, type ListeningServer } from '../listen.js';
import { admit, isLoopback } from './access.js';

export interface DashboardServerOptions {
  host: string;
  port: number;
  /** Required when `host` is not loopback (the command refuses to start otherwise). */
  token?: string;
  /** The JSON served at /api/status. */
  load: () => Promise<object>;
  cacheSeconds?: number;
  /** One line per failed load; never the data. */
  log?: (line: string) => void;
}

export type RunningDashboard = ListeningServer;

/** The page's files beside this module: client/dashboard/static, or dist/client/dashboard/static (npm run build copies them). */
const STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

export async function startDashboardServer(options: DashboardServerOptions): Promise<RunningDashboard> {
  const loopback = isLoopback(options.host);
  if (!loopback && options.token === undefined) throw new Error(`the dashboard may listen on ${options.host} only with a token`);
  const cacheMs = (options.cacheSeconds ?? 5) * 1000;
  // `at`: when the load ended; undefined while it runs, and a load that runs is shared however
  // long it takes (a slow S3 must not gather one catalog scan per cache period, all at once).
  let cached: { at?: number; body: Promise<string> } | undefined;
  const status = (): Promise<string> => {
    if (!cached || (cached.at !== undefined && Date.now() - cached.at >= cacheMs)) {
      const entry: { at?: number; body: Promise<string> } = { body: options.load().then((data) => JSON.stringify(data)) };
      cached = entry;
      entry.body.then(
        () => (entry.at = Date.now()),
        // A failed load is not kept: the next request tries again.
        () => {
          if (cached === entry) cached = undefined;
        },
      );
    }
    return cached.body;
  };

  const server = http.createServer((req, res) => {
    // A request target that is no URL (`GET http://[ HTTP/1.1`): no browser sends one.
    const url = requestUrl(req);
    if (!url) return send(res, req, 400, 'text/plain; charset=utf-8', 'bad request target\n');
    handle(req, res, url).catch((err) => {
      options.log?.(`${req.method} ${url.pathname}: ${(err as Error).message}`);
      send(res, req, 500, 'application/json', JSON.stringify({ error: 'the status could not be collected; see the dashboard\'s log' }));
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const verdict = admit(req, url, loopback, options.token);
    if (!verdict.ok) return send(res, req, verdict.status, 'text/plain; charset=utf-8', `${verdict.message}\n`, verdict.status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {});
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, req, 405, 'text/plain; charset=utf-8', 'read-only: GET and HEAD only\n', { Allow: 'GET, HEAD' });
    if (verdict.redirect) return send(res, req, 303, 'text/plain; charset=utf-8', '', { Location: verdict.redirect, 'Set-Cookie': verdict.setCookie! });
    if (url.pathname === '/api/status') return send(res, req, 200, 'application/json', await status());
    // No icon: answered, so that browsers do not log a failed load on every visit.
    if (url.pathname === '/favicon.ico') return send(res, req, 204, 'image/x-icon', '');
    const file = FILES[url.pathname];
    if (!file) return send(res, req, 404, 'text/plain; charset=utf-8', 'not found\n');
    send(res, req, 200, file.type, await readFile(`${STATIC_DIR}${file.file}`));
  }

  return listen(server, options.host, options.port);
}

function requestUrl(req: http.IncomingMessage): URL | undefined {
  try {
    return new URL(req.url ?? '/', 'http://dashboard');
  } catch {
    return undefined;
  }
}

function send(res: http.ServerResponse, req: http.IncomingMessage, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(req.method === 'HEAD' ? undefined : body);
}
