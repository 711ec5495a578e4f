// Alerts and their results leave the machine or land in status: no secret may ride along. A
// channel names every secret it touches (the SMTP password, a header's value, the parts of a
// webhook URL that can hold a token); each is hidden in every form an error message could
// quote it in, before the general redaction of common/redact.ts.
import { redact } from '../../common/redact.js';

const MASK = '***';

/** The forms a library or a server could echo a secret in. */
function formsOf(secret: string): string[] {
  return [secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('base64url'), JSON.stringify(secret).slice(1, -1)];
}

/** Hides every form of each secret (longest first, so a secret inside another goes with it), then redacts. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  const forms = [...new Set(secrets.filter((s) => s.length > 0).flatMap(formsOf))].sort((a, b) => b.length - a.length);
  let out = text;
  for (const form of forms) out = out.split(form).join(MASK);
  return redact(out);
}
