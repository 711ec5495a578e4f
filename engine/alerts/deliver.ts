// One alert to every configured channel at once. A channel that fails is reported with
// whether a retry may help, and never keeps the others from delivering; no result carries a
// secret. The caller (an activity) decides what to retry: only the channels that failed
// retryably, so a recipient that already has the alert does not get it twice.
import type { Alert, AlertDeliveryResult } from '../../common/alertTypes.js';
import type { AlertsConfig } from '../../common/alertsConfig.js';
import { isEngineError } from '../errors.js';
import { AlertDeliveryError } from './deliveryError.js';
import { emailChannelName, sendAlertEmail } from './emailChannel.js';
import { scrubSecrets } from './scrub.js';
import { postWebhook, webhookChannelName } from './webhookChannel.js';

export type AlertChannels = Pick<AlertsConfig, 'email'> & { webhooks?: AlertsConfig['webhooks'] };

export interface DeliverOptions {
  /** Per channel: the longest wait for a connection, an answer, a whole SMTP exchange. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 15_000;

interface Channel {
  name: string;
  send(alert: Alert, options: { timeoutMs: number; secrets: string[] }): Promise<void>;
}

function channelsOf(config: AlertChannels): Channel[] {
  const channels: Channel[] = [];
  const email = config.email;
  if (email) channels.push({ name: emailChannelName(email), send: (alert, options) => sendAlertEmail(alert, email, options) });
  for (const hook of config.webhooks ?? []) channels.push({ name: webhookChannelName(hook), send: (alert, options) => postWebhook(alert, hook, options) });
  return channels;
}

/** One result per channel, in the order configured (email first, then the webhooks). Never throws. */
export async function deliverAlert(alert: Alert, config: AlertChannels, options: DeliverOptions = {}): Promise<AlertDeliveryResult[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return Promise.all(
    channelsOf(config).map(async (channel): Promise<AlertDeliveryResult> => {
      const secrets: string[] = [];
      try {
        await channel.send(alert, { timeoutMs, secrets });
        return { channel: channel.name, ok: true, retryable: false };
      } catch (err) {
        const retryable = err instanceof AlertDeliveryError || isEngineError(err) ? err.retryable : true;
        const message = err instanceof Error ? err.message : String(err);
        return { channel: channel.name, ok: false, error: scrubSecrets(message, secrets), retryable };
      }
    }),
  );
}
