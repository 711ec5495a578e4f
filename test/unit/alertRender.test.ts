// How an alert reads in each channel (engine/alerts/): the email's subject and body, the
// generic JSON body and the Slack-compatible one.
import type { Alert } from '../../common/alertTypes.js';
import { sampleAlert } from '../fixtures/sampleAlert.js';
import { renderEmail } from '../../engine/alerts/emailMessage.js';
import { jsonBody, slackBody } from '../../engine/alerts/webhookBody.js';

const alert: Alert = sampleAlert;

test('email: the subject says severity, event, problem, host and title; the body has every fact', () => {
  const mail = renderEmail({ ...alert, link: 'http://127.0.0.1:8233/namespaces/default/workflows/w/r', openedAt: '2026-11-29T03:45:00.000Z' });
  expect(mail.subject).toBe('[backupctl CRITICAL opened] database.stale on host pg: no good database backup for 26 h (objective 25 h)');
  expect(mail.text).toContain('newest good backup: 2026-11-28T02:00:00Z\ncopies: local, nas, s3');
  expect(mail.text).toMatch(/Problem: +database\.stale/);
  expect(mail.text).toMatch(/Opened: +2026-11-29T03:45:00\.000Z/);
  expect(mail.text).toMatch(/Link: +http:\/\/127\.0\.0\.1:8233\/namespaces\/default\/workflows\/w\/r/);
});

test('email: a title with line breaks cannot add a header, and a long one is cut', () => {
  const mail = renderEmail({ ...alert, event: 'resolved', severity: 'warning', title: 'one\r\nBcc: someone@example.com ' + 'x'.repeat(400) });
  expect(mail.subject.startsWith('[backupctl WARNING resolved] database.stale on host pg: one Bcc: someone@example.com x')).toBe(true);
  expect(mail.subject).not.toMatch(/[\r\n]/);
  expect(mail.subject.length).toBeLessThanOrEqual(200);
});

test('generic JSON: the alert as it is, plus its source', () => {
  expect(JSON.parse(JSON.stringify(jsonBody(alert)))).toEqual({ ...alert, source: 'backupctl' });
});

test('Slack: a text fallback and blocks, with Slack\'s control characters escaped and its limits kept', () => {
  const body = slackBody({ ...alert, text: 'a <b> & c\n' + 'y'.repeat(5000), link: 'http://ui.example/w?a=1&b=2' });
  expect(body.text).toBe(':red_circle: [CRITICAL opened] database.stale on pg: no good database backup for 26 h (objective 25 h)');
  const section = body.blocks[0] as { type: string; text: { type: string; text: string } };
  expect(section.type).toBe('section');
  expect(section.text.type).toBe('mrkdwn');
  expect(section.text.text).toContain('a &lt;b&gt; &amp; c');
  expect(section.text.text.length).toBeLessThanOrEqual(3000);
  expect(JSON.stringify(body.blocks)).toContain('<http://ui.example/w?a=1&amp;b=2|');
  expect(slackBody({ ...alert, event: 'resolved' }).text).toMatch(/^:large_green_circle: \[CRITICAL resolved\]/);
  expect(slackBody({ ...alert, severity: 'warning' }).text).toMatch(/^:warning: \[WARNING opened\]/);
});
