// A webhook: one POST of the alert's JSON (generic or Slack's) with Node's fetch, within a
// timeout that covers the answer's body too. The URL is a secret of its own (Slack's carry
// their token in the path), so the channel is shown by its name and host only.
import type { Alert } from '../../common/alertTypes.js';
import type { WebhookAlertsConfig } from '../../common/alertsConfig.js';
import { AlertDeliveryError, TLS_SETTINGS_PROBLEM } from './deliveryError.js';
import { readHeadersFile } from './headersFile.js';
import { jsonBody, slackBody } from './webhookBody.js';

// Enough of an answer's body to tell why it refused (Slack answers "invalid_token", "no_service").
const ANSWER_QUOTE_MAX = 200;

export function webhookChannelName(hook: WebhookAlertsConfig): string {
  return `webhook ${hook.name} (${URL.canParse(hook.url) ? new URL(hook.url).hostname : 'not a URL'})`;
}

/** What of the URL could be a token: all of it past the host, each long path segment, each query value. */
export function webhookUrlSecrets(url: string): string[] {
  if (!URL.canParse(url)) return [url];
  const parsed = new URL(url);
  const segments = parsed.pathname.split('/').filter((s) => s.length >= 6);
  const values = [...parsed.searchParams.values()].filter((v) => v.length >= 4);
  return [url, `${parsed.pathname}${parsed.search}`, parsed.search.slice(1), ...segments, ...segments.map(decodeURIComponentSafe), ...values, parsed.hash.slice(1)].filter(Boolean);
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Posts the alert; throws AlertDeliveryError. Pushes every secret it reads into `secrets` before using it. */
export async function postWebhook(alert: Alert, hook: WebhookAlertsConfig, options: { timeoutMs: number; secrets: string[] }): Promise<void> {
  options.secrets.push(...webhookUrlSecrets(hook.url));
  let extra: Record<string, string> = {};
  if (hook.headersFile) {
    const file = readHeadersFile(`alerts.webhooks.${hook.name}.headersFile`, hook.headersFile);
    options.secrets.push(...file.secrets);
    extra = file.headers;
  }
  const body = JSON.stringify(hook.format === 'slack' ? slackBody(alert) : jsonBody(alert));
  const signal = AbortSignal.timeout(options.timeoutMs);
  let status: number;
  let answer: string;
  try {
    // A redirect is not followed: it would carry the headers (tokens) to wherever it points.
    const response = await fetch(hook.url, {
      method: 'POST',
      headers: { ...extra, 'content-type': 'application/json', 'user-agent': 'backupctl' },
      body,
      redirect: 'manual',
      signal,
    });
    status = response.status;
    answer = (await response.text()).slice(0, ANSWER_QUOTE_MAX);
  } catch (err) {
    throw networkFailure(err, options.timeoutMs);
  }
  if (status >= 200 && status < 300) return;
  const quoted = answer.trim() ? `: ${answer.trim().replace(/\s+/g, ' ')}` : '';
  if (status >= 300 && status < 400) throw new AlertDeliveryError(`HTTP ${status}: the webhook redirects elsewhere; configure the URL it points to`, false);
  // 408 and 429 ask to come back later; other 4xx say this request will never do (a revoked
  // token, a deleted channel, a wrong URL); 5xx is the receiver's trouble, often passing.
  const retryable = status >= 500 || status === 408 || status === 429;
  throw new AlertDeliveryError(`HTTP ${status}${quoted}`, retryable);
}

function networkFailure(err: unknown, timeoutMs: number): AlertDeliveryError {
  const error = err as Error & { cause?: { code?: string; message?: string } };
  if (error?.name === 'TimeoutError' || error?.name === 'AbortError') return new AlertDeliveryError(`no answer within ${timeoutMs} ms`, true);
  const cause = error?.cause;
  const detail = cause?.message ?? error?.message ?? String(err);
  const code = cause?.code ?? '';
  if (TLS_SETTINGS_PROBLEM.test(`${code} ${detail}`)) return new AlertDeliveryError(`TLS failed: ${detail.trim()}`, false);
  // Refused, reset, unreachable, a name that does not resolve (yet): all may pass; unknown stays retryable.
  return new AlertDeliveryError(`cannot reach the webhook: ${detail}`, true);
}
