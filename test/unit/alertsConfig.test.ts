// The `alerts` section of the configuration (common/alertsConfig.ts): defaults, and every bad
// value refused with a message that names its field, without echoing a webhook's secret path.
import { alertsSchema, parseAlertsConfig } from '../../common/alertsConfig.js';

const email = { host: 'smtp.example.com', port: 587, from: 'backupctl <backup@example.com>', to: ['ops@example.com'] };

test('defaults: a reminder every 4 hours, no email, no webhooks, TLS as the server offers it', () => {
  expect(parseAlertsConfig({})).toEqual({ reminderMinutes: 240, webhooks: [] });
  const parsed = parseAlertsConfig({ email, webhooks: [{ name: 'ops', url: 'https://hooks.example.com/x' }] });
  expect(parsed.email).toEqual({ ...email, secure: false, requireTls: false });
  expect(parsed.webhooks).toEqual([{ name: 'ops', url: 'https://hooks.example.com/x', format: 'json' }]);
});

test('a complete section is taken as written', () => {
  const alerts = {
    reminderMinutes: 60,
    email: { ...email, port: 465, secure: true, user: 'backup', passwordFile: '/etc/backupctl/smtp-password' },
    webhooks: [
      { name: 'slack', url: 'https://hooks.slack.com/services/T1/B2/abc', format: 'slack' },
      { name: 'pager', url: 'http://127.0.0.1:9000/alert', format: 'json', headersFile: '/etc/backupctl/pager-headers' },
    ],
  };
  expect(parseAlertsConfig(alerts)).toEqual({ ...alerts, email: { ...alerts.email, requireTls: false } });
});

test.each([
  [{ reminderMinutes: 0 }, /alerts\.reminderMinutes: .*at least 1/],
  [{ reminderMinutes: 2.5 }, /alerts\.reminderMinutes: .*whole number/],
  [{ email: { ...email, host: 'smtp example' } }, /alerts\.email\.host: must be a host name/],
  [{ email: { ...email, port: 0 } }, /alerts\.email\.port: .*1 to 65535/],
  [{ email: { ...email, port: undefined } }, /alerts\.email\.port/],
  [{ email: { ...email, to: [] } }, /alerts\.email\.to: must list at least one recipient/],
  [{ email: { ...email, to: ['not an address'] } }, /alerts\.email\.to\.0: must be an email address/],
  [{ email: { ...email, from: 'backup@example.com\r\nBcc: x@evil.example' } }, /alerts\.email\.from: must be an email address/],
  [{ email: { ...email, password: 'hunter2' } }, /alerts\.email\.password: .*passwordFile/],
  [{ email: { ...email, user: 'backup' } }, /alerts\.email: .*user and passwordFile go together/],
  [{ email: { ...email, passwordFile: '/etc/pw' } }, /alerts\.email: .*user and passwordFile go together/],
  [{ email: { ...email, user: 'backup', passwordFile: 'relative/pw' } }, /alerts\.email\.passwordFile: must be an absolute path/],
  [{ email: { ...email, secure: true, requireTls: true } }, /alerts\.email: .*secure.*requireTls/],
  [{ webhooks: [{ name: 'Ops!', url: 'https://h.example.com/' }] }, /alerts\.webhooks\.0\.name: must be/],
  [{ webhooks: [{ name: 'ops', url: 'ftp://h.example.com/' }] }, /alerts\.webhooks\.0\.url: must be an http/],
  [{ webhooks: [{ name: 'ops', url: 'https://user:pw@h.example.com/' }] }, /alerts\.webhooks\.0\.url: must not hold a user or password/],
  [{ webhooks: [{ name: 'ops', url: 'https://h.example.com/', format: 'teams' }] }, /alerts\.webhooks\.0\.format: .*json.*slack/],
  [{ webhooks: [{ name: 'ops', url: 'https://h.example.com/', headersFile: 'h.txt' }] }, /alerts\.webhooks\.0\.headersFile: must be an absolute path/],
  [{ webhooks: [{ name: 'ops', url: 'https://a.example.com/' }, { name: 'ops', url: 'https://b.example.com/' }] }, /alerts\.webhooks: .*"ops" more than once/],
  [{ webhook: [] }, /alerts\.webhook: unknown field "webhook"/],
  [{ webhooks: [{ name: 'ops', url: 'https://h.example.com/', token: 'x' }] }, /alerts\.webhooks\.0\.token: unknown field "token"/],
])('refused, naming the field: %j', (section, message) => {
  expect(() => parseAlertsConfig(section)).toThrow(message);
});

test('a bad webhook URL is shown by its host only: a Slack URL carries its token in the path', () => {
  let message = '';
  try {
    parseAlertsConfig({ webhooks: [{ name: 'slack', url: 'https://hooks.slack.com/services/T1/B2/SECRETTOKEN', format: 'teams' }] });
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message).toMatch(/format/);
  expect(message).not.toContain('SECRETTOKEN');
});

test('an issue never carries a webhook URL or an inline password as its input (config.ts quotes inputs)', () => {
  const parsed = alertsSchema.safeParse(
    {
      email: { ...email, password: 'hunter2hunter2' },
      webhook: 'a stray field beside the webhooks',
      webhooks: [
        { name: 'slack', url: 'https://hooks.slack.com/services/T1/B2/SECRETTOKEN1', extra: 1 },
        { name: 'ops', url: 'ftp://hooks.example.com/SECRETTOKEN2' },
        { name: 'Bad Name', url: 'https://hooks.example.com/SECRETTOKEN3' },
      ],
    },
    { reportInput: true },
  );
  expect(parsed.success).toBe(false);
  const issues = JSON.stringify(parsed.error?.issues);
  expect(issues).toMatch(/extra/);
  expect(issues).toMatch(/stray|"webhook"/);
  expect(issues).not.toMatch(/SECRETTOKEN|hunter2/);
});
