// An HTTP proxy in front of the S3 server that answers with faults on demand: error statuses
// (500, 503, SlowDown), connection resets, stalls, and truncated response bodies. Requests go
// through unchanged (headers included, so SigV4 signatures still match); the faults are what a
// flaky network or an overloaded object store do.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type S3FaultKind = 's3-500' | 's3-503' | 's3-slowdown' | 's3-reset' | 's3-stall' | 's3-truncate';

export interface S3FaultProxy {
  endpoint: string;
  /** Faults the next `count` requests (or all, for `forMs`), then passes again. */
  inject(kind: S3FaultKind, options: { count?: number; forMs?: number }): void;
  /** Requests faulted so far. */
  faulted(): number;
  heal(): void;
  stop(): Promise<void>;
}

const SLOW_DOWN = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
const INTERNAL = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>';

export async function startS3FaultProxy(target: string): Promise<S3FaultProxy> {
  const upstream = new URL(target);
  let fault: { kind: S3FaultKind; left: number; until: number } | undefined;
  let faulted = 0;
  const stalled = new Set<http.ServerResponse>();

  const take = (): S3FaultKind | undefined => {
    if (!fault) return undefined;
    if (fault.left <= 0 || Date.now() > fault.until) {
      fault = undefined;
      return undefined;
    }
    fault.left--;
    faulted++;
    return fault.kind;
  };

  const heal = () => {
    fault = undefined;
    for (const res of stalled) res.socket?.destroy();
    stalled.clear();
  };

  const server = http.createServer((req, res) => {
    const kind = take();
    if (kind === 's3-500' || kind === 's3-503' || kind === 's3-slowdown') {
      req.resume();
      req.once('end', () => {
        const body = kind === 's3-500' ? INTERNAL : SLOW_DOWN;
        res.writeHead(kind === 's3-500' ? 500 : 503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    if (kind === 's3-reset') {
      req.socket.destroy();
      return;
    }
    if (kind === 's3-stall') {
      // Never answers: the client's own timeouts (or the activity's) must end the wait.
      stalled.add(res);
      req.resume();
      return;
    }
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (kind === 's3-truncate') {
          // Half the body (or a byte), then the connection drops.
          const length = Number(answer.headers['content-length'] ?? 2);
          let sent = 0;
          answer.on('data', (chunk: Buffer) => {
            const room = Math.max(1, Math.floor(length / 2)) - sent;
            if (room > 0) res.write(chunk.subarray(0, room));
            sent += chunk.length;
            if (sent >= length / 2) {
              answer.destroy();
              res.socket?.destroy();
            }
          });
          answer.on('end', () => res.socket?.destroy());
          return;
        }
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.socket?.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    inject(kind, options) {
      fault = { kind, left: options.count ?? Number.MAX_SAFE_INTEGER, until: Date.now() + (options.forMs ?? 24 * 3600_000) };
    },
    faulted: () => faulted,
    heal,
    async stop() {
      heal();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
