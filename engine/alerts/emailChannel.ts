// Email over SMTP with nodemailer: one connection per alert (alerts are rare; a pool would
// hold a connection open for hours), TLS as configured (implicit, required STARTTLS, or
// STARTTLS when the server offers it), AUTH with a password read from its file at each send,
// so a rotated password needs no restart.
import { readFileSync } from 'node:fs';
import { createTransport } from 'nodemailer';
import type { Alert } from '../../common/alertTypes.js';
import type { EmailAlertsConfig } from '../../common/alertsConfig.js';
import { ErrorType } from '../../common/types.js';
import { permanent } from '../errors.js';
import { assertSecretFileMode } from '../secretFiles.js';
import { AlertDeliveryError, TLS_SETTINGS_PROBLEM } from './deliveryError.js';
import { renderEmail } from './emailMessage.js';

export function emailChannelName(email: EmailAlertsConfig): string {
  return `email (${email.host}:${email.port})`;
}

function readPassword(file: string): string {
  const field = 'alerts.email.passwordFile';
  assertSecretFileMode(field, file);
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw permanent(ErrorType.InvalidConfig, `${field} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Sends the alert to every recipient; throws AlertDeliveryError. Pushes every secret it reads into `secrets` before using it. */
export async function sendAlertEmail(alert: Alert, email: EmailAlertsConfig, options: { timeoutMs: number; secrets: string[] }): Promise<void> {
  let auth: { user: string; pass: string } | undefined;
  if (email.user !== undefined && email.passwordFile !== undefined) {
    const pass = readPassword(email.passwordFile);
    // The password alone, and as AUTH PLAIN and AUTH LOGIN put it on the wire.
    options.secrets.push(pass, `\0${email.user}\0${pass}`, `${email.user}\0${email.user}\0${pass}`);
    auth = { user: email.user, pass };
  }
  const transport = createTransport({
    host: email.host,
    port: email.port,
    secure: email.secure,
    requireTLS: email.requireTls,
    auth,
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    dnsTimeout: options.timeoutMs,
    logger: false,
    debug: false,
  });
  const message = renderEmail(alert);
  let timer: NodeJS.Timeout | undefined;
  try {
    // Each step has its timeout; the whole send has one too, so a server that answers every
    // step slowly cannot hold the alert for minutes.
    await Promise.race([
      transport.sendMail({ from: email.from, to: email.to, subject: message.subject, text: message.text }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new AlertDeliveryError(`no complete SMTP exchange within ${options.timeoutMs} ms`, true)), options.timeoutMs);
      }),
    ]);
  } catch (err) {
    throw smtpFailure(err);
  } finally {
    clearTimeout(timer);
    transport.close();
  }
}

const PERMANENT_CODES = new Set(['EAUTH', 'ENOAUTH', 'ETLS', 'EREQUIRETLS', 'ECONFIG', 'EOAUTH2']);

/** SMTP's own rule: a 4yz reply is transient, a 5yz reply permanent; refused credentials and TLS settings are permanent. */
function smtpFailure(err: unknown): AlertDeliveryError {
  if (err instanceof AlertDeliveryError) return err;
  const error = err as Error & { code?: string; responseCode?: number };
  const code = error?.code ?? '';
  const text = error?.message ?? String(err);
  if (code === 'EAUTH' || code === 'ENOAUTH') return new AlertDeliveryError(`SMTP authentication refused: ${text}`, false);
  if (TLS_SETTINGS_PROBLEM.test(text)) return new AlertDeliveryError(`SMTP TLS failed (secure is implicit TLS, usually port 465; requireTls is STARTTLS, usually 587): ${text.trim()}`, false);
  if (PERMANENT_CODES.has(code)) return new AlertDeliveryError(`SMTP ${code}: ${text}`, false);
  const reply = error?.responseCode;
  if (typeof reply === 'number' && reply >= 500) return new AlertDeliveryError(`SMTP refused (${reply}): ${text}`, false);
  return new AlertDeliveryError(`SMTP ${code || 'error'}: ${text}`, true);
}
