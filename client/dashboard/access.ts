// Who may read the dashboard. It binds loopback unless told otherwise; on loopback a request
// must name a loopback Host (a page on another site resolving its own name to 127.0.0.1, DNS
// rebinding, is refused). Bound anywhere else it needs a token, checked on every request in
// constant time: `Authorization: Bearer <token>`, or the cookie that `?token=<token>` sets once
// (the page then reloads without the token in its address).
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type http from 'node:http';

export const TOKEN_COOKIE = 'backupctl_dashboard';
export const MIN_TOKEN_LENGTH = 16;

/** 127.0.0.0/8, ::1, ::ffff:127.x, or the name localhost. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

/** The Host header's name without its port, or undefined when it is missing or malformed. */
function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(header.trim());
  return match?.[1];
}

/** On loopback, only 127.0.0.1, localhost or [::1] (any port) may be named. */
export function hostAllowed(header: string | undefined): boolean {
  const name = hostName(header)?.toLowerCase();
  return name === '127.0.0.1' || name === 'localhost' || name === '[::1]';
}

/** Equal in time independent of where they differ (both hashed first: lengths leak nothing either). */
export function tokensEqual(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function cookie(req: http.IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export type Verdict = { ok: true; setCookie?: string; redirect?: string } | { ok: false; status: 401 | 403; message: string };

/**
 * The request's admission. `loopback`: the server is bound to a loopback address; `token`: the
 * configured one, if any (required off loopback: the command refuses to start without it).
 */
export function admit(req: http.IncomingMessage, url: URL, loopback: boolean, token: string | undefined): Verdict {
  if (loopback && !hostAllowed(req.headers.host)) return { ok: false, status: 403, message: 'this Host is not served here: open http://127.0.0.1:<port>/ (or localhost)' };
  if (token === undefined) return { ok: true };
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  if (bearer !== undefined) return tokensEqual(bearer, token) ? { ok: true } : { ok: false, status: 401, message: 'wrong token' };
  const query = url.searchParams.get('token');
  if (query !== null) {
    if (!tokensEqual(query, token)) return { ok: false, status: 401, message: 'wrong token' };
    // Once: the token goes into a cookie only this site's own requests carry, and out of the address bar.
    const rest = new URLSearchParams(url.searchParams);
    rest.delete('token');
    const search = rest.toString();
    // One leading slash: a path `//host` (from `/.//host`) would send the browser to that host.
    const path = `/${url.pathname.replace(/^\/+/, '')}`;
    return { ok: true, setCookie: `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`, redirect: `${path}${search ? `?${search}` : ''}` };
  }
  const fromCookie = cookie(req, TOKEN_COOKIE);
  if (fromCookie !== undefined) {
    let value: string;
    try {
      value = decodeURIComponent(fromCookie);
    } catch {
      return { ok: false, status: 401, message: 'wrong token' };
    }
    return tokensEqual(value, token) ? { ok: true } : { ok: false, status: 401, message: 'wrong token' };
  }
  return { ok: false, status: 401, message: 'a token is required: Authorization: Bearer <token>, or open /?token=<token> once' };
}
