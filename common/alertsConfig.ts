// The `alerts` section of the configuration: where alerts go (engine/alerts/) and how often an
// open problem is recalled. Secrets never stand in this section: the SMTP password and a
// webhook's tokens come from files it names. A webhook's URL is a secret of its own kind
// (Slack's carry their token in the path), so a message about one shows its host only.
import path from 'node:path';
import { z } from 'zod';

const NAME = /^[a-z][a-z0-9_-]{0,39}$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)$/;
// An address as SMTP takes it; no space, no CR or LF (a header of its own), no angle bracket.
const ADDRESS = String.raw`[^\s@<>()",;:\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?`;
const MAILBOX = new RegExp(`^(?:${ADDRESS}|[^\\r\\n<>"]*<${ADDRESS}>)$`);

const absolutePath = z
  .string()
  .min(1, 'must be an absolute path')
  .refine((p) => !p.includes('\0'), 'must not contain a NUL byte')
  .refine((p) => path.isAbsolute(p), 'must be an absolute path');
const mailbox = z.string().regex(MAILBOX, 'must be an email address (name@example.com or "Name <name@example.com>")');

/** Where a webhook URL may be shown: its origin, never its path or query (a token may live there). */
export function webhookOrigin(url: string): string {
  return URL.canParse(url) ? new URL(url).host : '(not a URL)';
}

function webhookUrlProblem(value: string): string | undefined {
  if (!URL.canParse(value)) return 'must be an http:// or https:// URL';
  const url = new URL(value);
  if (!['http:', 'https:'].includes(url.protocol) || url.port === '0') return 'must be an http:// or https:// URL (port 1-65535)';
  // fetch() refuses such a URL, and the password would be shown wherever the URL is.
  if (url.username || url.password) return 'must not hold a user or password: put an "Authorization: ..." line in headersFile';
  return undefined;
}

// The issue carries the URL's host as its input, so a message that quotes the input (as
// config.ts's does) never quotes a token in the path.
const webhookUrl = z.string().check((ctx) => {
  const message = webhookUrlProblem(ctx.value);
  if (message) ctx.issues.push({ code: 'custom', message, input: webhookOrigin(ctx.value) });
});

/**
 * An object that refuses unknown fields, as z.strictObject does, but whose issue quotes the
 * field's name only: zod's own quotes the whole object, and config.ts shows an issue's input,
 * which here would be a webhook's URL or a password written where it must not be.
 */
function closedObject<Shape extends z.ZodRawShape>(shape: Shape, advice: (key: string) => string | undefined = () => undefined) {
  const unknownFields = z.superRefine(
    (value: unknown, ctx) => {
      if (!value || typeof value !== 'object') return;
      for (const key of Object.keys(value)) {
        if (!Object.hasOwn(shape, key)) ctx.addIssue({ code: 'custom', path: [key], message: advice(key) ?? `unknown field "${key}"`, input: key });
      }
    },
    // Reported beside the other fields' issues, not only once they are all fixed.
    { when: () => true },
  );
  return z.looseObject(shape).check(unknownFields);
}

const email = closedObject(
    {
      host: z.string().regex(HOST, 'must be a host name or IP address of the SMTP server'),
      port: z.number({ error: 'must be the SMTP port, a whole number from 1 to 65535 (587 for STARTTLS, 465 for implicit TLS)' }).int('must be a whole number from 1 to 65535').min(1, 'must be from 1 to 65535').max(65535, 'must be from 1 to 65535'),
      /** Implicit TLS from the first byte (port 465). */
      secure: z.boolean().default(false),
      /** Refuse to send unless the server upgrades the connection with STARTTLS (port 587). */
      requireTls: z.boolean().default(false),
      user: z.string().min(1, 'must not be empty').optional(),
      /** A file holding the SMTP password (its owner's alone, as every secret file). */
      passwordFile: absolutePath.optional(),
      from: mailbox,
      to: z.array(mailbox).min(1, 'must list at least one recipient'),
    },
    (key) => (key === 'password' ? 'a password never stands in the configuration: put it in a file (mode 600) and name that file with passwordFile' : undefined),
  )
  .refine((e) => (e.user === undefined) === (e.passwordFile === undefined), 'user and passwordFile go together: set both to log in, neither to send without AUTH')
  .refine((e) => !(e.secure && e.requireTls), 'set secure (implicit TLS, usually port 465) or requireTls (STARTTLS, usually port 587), not both');

const webhook = closedObject({
  name: z.string().regex(NAME, 'must be a webhook name: a lower-case letter, then up to 39 of a-z 0-9 _ -'),
  url: webhookUrl,
  /** json: the alert as it is, plus { source }; slack: a body Slack's incoming webhooks (and Mattermost's, Rocket.Chat's) take. */
  format: z.enum(['json', 'slack'], { error: 'must be "json" or "slack"' }).default('json'),
  /** A file of "Name: value" lines sent as headers (tokens); its values are secrets. */
  headersFile: absolutePath.optional(),
});

export const alertsSchema = closedObject({
  /** How long an open problem waits before it is recalled again. */
  reminderMinutes: z.number().int('must be a whole number of minutes').min(1, 'must be at least 1 minute').max(10_080 * 4, 'must be at most 4 weeks (40320 minutes)').default(240),
  email: email.optional(),
  webhooks: z
    .array(webhook)
    .default([])
    .superRefine((hooks, ctx) => {
      const seen = new Set<string>();
      for (const { name } of hooks) {
        if (seen.has(name)) ctx.addIssue({ code: 'custom', message: `names "${name}" more than once: each webhook needs its own name` });
        seen.add(name);
      }
    }),
});

export type AlertsConfig = z.output<typeof alertsSchema>;
export type EmailAlertsConfig = NonNullable<AlertsConfig['email']>;
export type WebhookAlertsConfig = AlertsConfig['webhooks'][number];

/**
 * Validates an `alerts` section on its own (until it is part of the whole configuration),
 * naming each bad field as `alerts.<path>`. Throws an Error listing them all.
 */
export function parseAlertsConfig(raw: unknown): AlertsConfig {
  const parsed = alertsSchema.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const field = ['alerts', ...issue.path.map(String)].join('.');
    return `${field}: ${issue.message}`;
  });
  throw new Error(`alerts config is invalid:\n  - ${problems.join('\n  - ')}`);
}
