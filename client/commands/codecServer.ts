// `backupctl codec-server`: the Temporal Web UI's (and `temporal --codec-endpoint`'s) codec
// endpoint, so people can read encrypted payloads while the Temporal service cannot. It
// speaks the codec server protocol: POST /decode and /encode (or /<namespace>/decode...) with
// {"payloads": [...]} in proto3 JSON (metadata values and data in base64), CORS for the Web
// UI's origin. It decrypts for whoever reaches it: it listens on loopback unless told
// otherwise, and belongs behind the same access control as the Web UI.
import http from 'node:http';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { Config } from '../../common/config.js';
import { listen, type ListeningServer } from '../listen.js';
import { PayloadEncryptionCodec } from '../../workers/payloadCodec.js';
import { loadPayloadKeys } from '../../workers/payloadKeys.js';
import { InputRefused } from '../workflowRun.js';

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** The namespace whose keys this process holds; a request for another is refused. */
  namespace: string;
  /** Web UI origins (scheme://host[:port]) allowed to call it from a browser; none: no browser may. */
  origins: string[];
  host: string;
  port: number;
  /** One line per refused or failed request; never a payload. */
  log?: (line: string) => void;
}

export type RunningCodecServer = ListeningServer;

const MAX_BODY_BYTES = 16 * 1024 * 1024;
const ROUTE = /^\/(?:([^/]+)\/)?(decode|encode)\/?$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** `https://ui.example:8080/` -> `https://ui.example:8080`; anything that is not an origin throws. */
export function normalizeOrigin(origin: string): string {
  const url = URL.canParse(origin) ? new URL(origin) : undefined;
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.pathname !== '/' || url.search || url.hash || url.username) {
    throw new InputRefused(`--origin ${origin}: must be the Web UI's origin, scheme://host[:port] (e.g. https://temporal-ui.example)`);
  }
  return url.origin;
}

export interface CodecServerCliOptions {
  port: string;
  listen: string;
  origin?: string[];
}

/** Serves until SIGINT or SIGTERM. Refuses to start without the payload keys, naming the variable. */
export async function runCodecServer(config: Config, options: CodecServerCliOptions, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const port = Number(options.port);
  if (!/^\d{1,5}$/.test(options.port) || port > 65535) throw new InputRefused(`--port ${options.port}: must be a port from 0 (any free one) to 65535`);
  const origins = (options.origin ?? []).map(normalizeOrigin);
  const server = await startCodecServer({
    codec: new PayloadEncryptionCodec(loadPayloadKeys(env, 'the codec server decrypts with the payload keys')),
    namespace: config.temporal.namespace,
    origins,
    host: options.listen,
    port,
    log: (line) => process.stderr.write(`backupctl codec-server: ${line}\n`),
  });
  process.stdout.write(`codec server listening on ${server.url} for namespace ${config.temporal.namespace}; Web UI origins: ${origins.join(', ') || 'none'}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return 0;
}

export async function startCodecServer(options: CodecServerOptions): Promise<RunningCodecServer> {
  const origins = new Set(options.origins.map(normalizeOrigin));
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      const status = err instanceof HttpError ? err.status : 500;
      options.log?.(`${req.method} ${req.url}: ${status} ${(err as Error).message}`);
      if (!res.headersSent) res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: (err as Error).message }));
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const origin = req.headers.origin;
    if (origin !== undefined) {
      // A page from anywhere else may not use the keys, even blind (a form post needs no preflight).
      if (!origins.has(origin)) throw new HttpError(403, `origin ${origin} is not allowed (allowed: ${[...origins].join(', ') || 'none; start with --origin'})`);
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
    const route = ROUTE.exec(new URL(req.url ?? '/', 'http://codec').pathname);
    if (!route) throw new HttpError(404, 'not found: the endpoints are /decode and /encode');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'POST, OPTIONS',
        'Access-Control-Allow-Headers': 'Content-Type, X-Namespace, Authorization',
        'Access-Control-Max-Age': '600',
        // A hosted UI (Temporal Cloud's) calling a codec server on this machine or network:
        // browsers ask first whether a public page may reach a private address.
        ...(origin !== undefined && req.headers['access-control-request-private-network'] === 'true' ? { 'Access-Control-Allow-Private-Network': 'true' } : {}),
      });
      res.end();
      return;
    }
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not allowed: POST`);
    const namespace = (req.headers['x-namespace'] as string | undefined) ?? (route[1] && pathSegment(route[1]));
    if (namespace && namespace !== options.namespace) {
      throw new HttpError(403, `namespace ${namespace}: this codec server holds the keys of namespace ${options.namespace} only`);
    }
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'Content-Type must be application/json');
    const payloads = parseBody(await readBody(req));
    let converted: Payload[];
    try {
      converted = route[2] === 'decode' ? await options.codec.decode(payloads) : await options.codec.encode(payloads);
    } catch (err) {
      throw new HttpError(422, (err as Error).message);
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ payloads: converted.map(toJson) }));
  }

  return listen(server, options.host, options.port);
}

function pathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'the namespace in the path is not valid percent-encoding');
  }
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** {"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}: every bytes field in base64. */
function parseBody(body: string): Payload[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new HttpError(400, 'the body is not JSON');
  }
  const payloads = (parsed as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(payloads)) throw new HttpError(400, 'the body must be {"payloads": [...]}');
  return payloads.map((p, i) => {
    if (!p || typeof p !== 'object') throw new HttpError(400, `payloads[${i}] must be an object`);
    const { metadata = {}, data = '' } = p as { metadata?: unknown; data?: unknown };
    if (!metadata || typeof metadata !== 'object' || Array.isArray(metadata)) throw new HttpError(400, `payloads[${i}].metadata must be an object`);
    return {
      metadata: Object.fromEntries(Object.entries(metadata).map(([key, value]) => [key, bytes(value, `payloads[${i}].metadata.${key}`)])),
      data: bytes(data, `payloads[${i}].data`),
    };
  });
}

function bytes(value: unknown, field: string): Uint8Array {
  if (typeof value !== 'string' || !BASE64.test(value)) throw new HttpError(400, `${field} must be base64 (proto3 JSON bytes)`);
  return Buffer.from(value, 'base64');
}

function toJson(payload: Payload): { metadata: Record<string, string>; data: string } {
  return {
    metadata: Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([key, value]) => [key, Buffer.from(value ?? []).toString('base64')])),
    data: Buffer.from(payload.data ?? []).toString('base64'),
  };
}
