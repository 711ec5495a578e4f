// Alert channels against real servers: an SMTP server (aiosmtpd, with AUTH) and an HTTP
// receiver (node:http). One alert reaches every channel; a channel that fails says whether a
// retry may help and never stops the others; no secret (the SMTP password, a header value, a
// webhook URL's path or query) appears in any result.
import { sampleAlert } from './fixtures/sampleAlert.js';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Alert, AlertDeliveryResult } from '../common/alertTypes.js';
import type { EmailAlertsConfig, WebhookAlertsConfig } from '../common/alertsConfig.js';
import { deliverAlert } from '../engine/alerts/deliver.js';
import { freePort } from './fixtures/ports.js';
import { SecretSearch, type Secret } from './fixtures/secretSearch.js';
import { startSmtpServer, type SmtpServer } from './fixtures/smtpServer.js';

const token = (label: string) => `${label}${randomBytes(12).toString('hex')}`;
const SMTP_PASSWORD = token('smtppw');
const WRONG_PASSWORD = token('wrongpw');
const BEARER = token('bearer');
const API_KEY = token('apikey');
const SLACK_TOKEN = token('slack');
const PATH_TOKEN = token('path');
const QUERY_TOKEN = token('query');

interface Received {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let smtp: SmtpServer;
let receiver: http.Server;
let base: string;
let dir: string;
let headersFile: string;
let wrongPasswordFile: string;
const received: Received[] = [];
/** Every result and every message the code under test gave us, searched for secrets at the end. */
const outputs: AlertDeliveryResult[][] = [];

const alert: Alert = { ...sampleAlert, link: 'http://127.0.0.1:8233/namespaces/default/workflows/backup-database-2026-11-29/run-1/history' };

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'backupctl-alerts-'));
  headersFile = path.join(dir, 'headers');
  await writeFile(headersFile, `# tokens for the receiver\nAuthorization: Bearer ${BEARER}\n\nX-Api-Key: ${API_KEY}\n`, { mode: 0o600 });
  wrongPasswordFile = path.join(dir, 'wrong-password');
  await writeFile(wrongPasswordFile, `${WRONG_PASSWORD}\n`, { mode: 0o600 });
  smtp = await startSmtpServer({ user: 'backup', password: SMTP_PASSWORD });
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      received.push({ url: req.url ?? '', headers: req.headers, body });
      const route = (req.url ?? '').split('/')[1];
      if (route === 'hang') return; // never answers
      if (route === 'moved') return res.writeHead(302, { location: `/ok/redirected/${PATH_TOKEN}` }).end();
      const status = { ok: 200, fail500: 500, forbidden: 403, throttled: 429, gone: 404 }[route ?? ''] ?? 200;
      // A careless receiver that echoes what it was sent: the URL and the token.
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : `refused ${req.url} with ${req.headers.authorization} ${req.headers['x-api-key']}`);
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});

afterAll(async () => {
  receiver?.closeAllConnections();
  await new Promise((resolve) => receiver?.close(resolve));
  await smtp?.stop();
  await rm(dir, { recursive: true, force: true });
});

function email(overrides: Partial<EmailAlertsConfig> = {}): EmailAlertsConfig {
  return {
    host: smtp.host,
    port: smtp.port,
    secure: false,
    requireTls: false,
    user: 'backup',
    passwordFile: smtp.passwordFile,
    from: 'backupctl <backup@example.com>',
    to: ['ops@example.com', 'dba@example.com'],
    ...overrides,
  };
}

const jsonHook = (route = 'ok'): WebhookAlertsConfig => ({ name: 'ops', url: `${base}/${route}/${PATH_TOKEN}/alert?token=${QUERY_TOKEN}`, format: 'json', headersFile });
const slackHook = (route = 'ok'): WebhookAlertsConfig => ({ name: 'slack', url: `${base}/${route}/services/T0/B0/${SLACK_TOKEN}`, format: 'slack' });

/** The text as written, from quoted-printable (soft line breaks, =XX escapes) and CRLF lines. */
function quotedPrintable(data: string): string {
  return data
    .replace(/\r\n/g, '\n')
    .replace(/=\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

async function deliver(channels: Parameters<typeof deliverAlert>[1], timeoutMs = 5_000) {
  const results = await deliverAlert(alert, channels, { timeoutMs });
  outputs.push(results);
  return results;
}

test('one alert reaches the email recipients and both webhooks, each once', async () => {
  const before = received.length;
  const results = await deliver({ email: email(), webhooks: [jsonHook(), slackHook()] });
  expect(results).toEqual([
    { channel: `email (${smtp.host}:${smtp.port})`, ok: true, retryable: false },
    { channel: 'webhook ops (127.0.0.1)', ok: true, retryable: false },
    { channel: 'webhook slack (127.0.0.1)', ok: true, retryable: false },
  ]);

  const [mail] = await smtp.waitForMessages(1);
  expect(mail.login).toBe('backup');
  expect(mail.mailFrom).toBe('backup@example.com');
  expect(mail.rcptTos).toEqual(['ops@example.com', 'dba@example.com']);
  expect(mail.data).toMatch(/^Subject: \[backupctl CRITICAL opened\] database\.stale on host pg: no good\s+database backup for 26 h \(objective 25 h\)$/m);
  expect(quotedPrintable(mail.data)).toContain('newest good backup: 2026-11-28T02:00:00Z\ncopies: local, nas, s3');
  expect(quotedPrintable(mail.data)).toContain(`Link:     ${alert.link}`);
  expect(mail.data).toMatch(/Content-Type: text\/plain/);
  expect(await smtp.authAttempts()).toEqual(['PLAIN ok']);

  const hooks = received.slice(before);
  expect(hooks).toHaveLength(2);
  const json = hooks.find((r) => r.url.includes(PATH_TOKEN))!;
  expect(json.headers['content-type']).toBe('application/json');
  expect(json.headers.authorization).toBe(`Bearer ${BEARER}`);
  expect(json.headers['x-api-key']).toBe(API_KEY);
  expect(JSON.parse(json.body)).toEqual({ ...alert, source: 'backupctl' });
  const slack = hooks.find((r) => r.url.includes(SLACK_TOKEN))!;
  expect(slack.headers.authorization).toBeUndefined();
  const body = JSON.parse(slack.body);
  expect(body.text).toBe(':red_circle: [CRITICAL opened] database.stale on pg: no good database backup for 26 h (objective 25 h)');
  expect(body.blocks[0]).toMatchObject({ type: 'section', text: { type: 'mrkdwn' } });
  expect(JSON.stringify(body.blocks)).toContain(alert.link);
});

test('SMTP server down: the email fails and may be retried; the webhooks still deliver', async () => {
  const nobody = await freePort();
  const results = await deliver({ email: email({ port: nobody }), webhooks: [jsonHook(), slackHook()] });
  expect(results[0]).toMatchObject({ channel: `email (127.0.0.1:${nobody})`, ok: false, retryable: true });
  expect(results[0].error).toMatch(/ECONNREFUSED|refused/);
  expect(results.slice(1).map((r) => r.ok)).toEqual([true, true]);
});

test('a wrong SMTP password is refused for good: no retry helps', async () => {
  const results = await deliver({ email: email({ passwordFile: wrongPasswordFile }), webhooks: [] });
  expect(results).toHaveLength(1);
  expect(results[0]).toMatchObject({ ok: false, retryable: false });
  expect(results[0].error).toMatch(/authentication|login/i);
  expect((await smtp.authAttempts()).at(-1)).toBe('PLAIN refused');
});

test('no login configured where the server requires one: refused for good (530)', async () => {
  const results = await deliver({ email: email({ user: undefined, passwordFile: undefined }), webhooks: [] });
  expect(results[0]).toMatchObject({ ok: false, retryable: false });
  expect(results[0].error).toMatch(/530/);
});

test('webhook answers: 500 and 429 may be retried, 403 and 404 not, a silent receiver times out (retryable)', async () => {
  const results = await deliver(
    {
      webhooks: [
        { ...jsonHook('fail500'), name: 'five' },
        { ...jsonHook('throttled'), name: 'throttled' },
        { ...jsonHook('forbidden'), name: 'forbidden' },
        { ...slackHook('gone'), name: 'gone' },
        { ...slackHook('hang'), name: 'silent' },
        jsonHook(),
      ],
    },
    1_000,
  );
  expect(results.map(({ channel, ok, retryable }) => ({ channel, ok, retryable }))).toEqual([
    { channel: 'webhook five (127.0.0.1)', ok: false, retryable: true },
    { channel: 'webhook throttled (127.0.0.1)', ok: false, retryable: true },
    { channel: 'webhook forbidden (127.0.0.1)', ok: false, retryable: false },
    { channel: 'webhook gone (127.0.0.1)', ok: false, retryable: false },
    { channel: 'webhook silent (127.0.0.1)', ok: false, retryable: true },
    { channel: 'webhook ops (127.0.0.1)', ok: true, retryable: false },
  ]);
  expect(results[0].error).toMatch(/HTTP 500/);
  expect(results[2].error).toMatch(/HTTP 403/);
  expect(results[4].error).toMatch(/no answer within 1000 ms/);
});

test('TLS that the server cannot give is a setting to fix, not to retry: STARTTLS required but not offered, implicit TLS on a plain port', async () => {
  const count = (await smtp.messages()).length;
  const results = await deliver({ email: email({ requireTls: true }), webhooks: [] });
  expect(results[0]).toMatchObject({ ok: false, retryable: false });
  expect(results[0].error).toMatch(/STARTTLS/i);
  const implicit = await deliver({ email: email({ secure: true }), webhooks: [] }, 2_000);
  expect(implicit[0]).toMatchObject({ ok: false, retryable: false });
  expect(implicit[0].error).toMatch(/TLS failed .*wrong version number/);
  expect((await smtp.messages()).length).toBe(count);
});

test('a redirect is not followed (it would carry the tokens elsewhere) and is not retried; a closed port is', async () => {
  const before = received.length;
  const closed = await freePort();
  const results = await deliver({ webhooks: [{ ...jsonHook('moved'), name: 'moved' }, { name: 'closed', url: `http://127.0.0.1:${closed}/x/${PATH_TOKEN}`, format: 'json', headersFile }] });
  expect(results.map(({ ok, retryable }) => ({ ok, retryable }))).toEqual([
    { ok: false, retryable: false },
    { ok: false, retryable: true },
  ]);
  expect(results[0].error).toMatch(/HTTP 302/);
  expect(results[1].error).toMatch(/ECONNREFUSED/);
  expect(received.slice(before).map((r) => r.url.split('/')[1])).toEqual(['moved']);
});

test('a missing password file or headers file fails its own channel only, for good', async () => {
  const results = await deliver({ email: email({ passwordFile: path.join(dir, 'absent') }), webhooks: [{ ...jsonHook(), headersFile: path.join(dir, 'absent') }, slackHook()] });
  expect(results.map(({ ok, retryable }) => ({ ok, retryable }))).toEqual([
    { ok: false, retryable: false },
    { ok: false, retryable: false },
    { ok: true, retryable: false },
  ]);
  expect(results[0].error).toMatch(/passwordFile .*absent.* cannot be read/);
  expect(results[1].error).toMatch(/headersFile .*absent.* cannot be read/);
});

test('no secret in any result: the SMTP password, header values, the webhook URL\'s path and query', () => {
  const secrets: Secret[] = [
    { name: 'smtp password', value: SMTP_PASSWORD, parts: [] },
    { name: 'wrong smtp password', value: WRONG_PASSWORD, parts: [] },
    { name: 'bearer header', value: BEARER, parts: [] },
    { name: 'api key header', value: API_KEY, parts: [] },
    { name: 'slack URL token', value: SLACK_TOKEN, parts: [] },
    { name: 'URL path token', value: PATH_TOKEN, parts: [] },
    { name: 'URL query token', value: QUERY_TOKEN, parts: [] },
  ];
  const search = new SecretSearch(secrets);
  // Positive control: the receiver's answers did echo them, so a careless error message would carry them.
  expect(search.wouldFind(received.map((r) => `${r.url} ${r.headers.authorization} ${r.headers['x-api-key']}`).join('\n')).length).toBeGreaterThan(0);
  const text = JSON.stringify(outputs, null, 1);
  search.search('results', 'every deliverAlert result', text);
  expect(outputs.flat().filter((r) => !r.ok).length).toBeGreaterThanOrEqual(14);
  expect(search.hits).toEqual([]);
});
