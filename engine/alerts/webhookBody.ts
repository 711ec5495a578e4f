// An alert as a webhook's body: the generic JSON one (the alert itself, for programs), and the
// one Slack's incoming webhooks take ({ text, blocks }; Mattermost and Rocket.Chat read `text`).
import type { Alert } from '../../common/alertTypes.js';
import { oneLine } from './emailMessage.js';

export type JsonAlertBody = Alert & { source: 'backupctl' };

export function jsonBody(alert: Alert): JsonAlertBody {
  return { ...alert, source: 'backupctl' };
}

export interface SlackBody {
  /** The notification's text, and everything a client that shows no blocks shows (escaped as the blocks are). */
  text: string;
  blocks: Record<string, unknown>[];
}

// Slack's limits: a section's text 3000 characters, a context element's 2000.
const SECTION_MAX = 3000;
const CONTEXT_MAX = 2000;

/** Slack reads &, < and > as control characters (links, mentions): escaped as its docs ask. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function icon(alert: Alert): string {
  if (alert.event === 'resolved') return ':large_green_circle:';
  return alert.severity === 'critical' ? ':red_circle:' : ':warning:';
}

export function slackBody(alert: Alert): SlackBody {
  const headline = oneLine(`[${alert.severity.toUpperCase()} ${alert.event}] ${alert.key} on ${alert.host}: ${alert.title}`);
  const context = [`problem \`${alert.key}\``, `host ${alert.host}`, `at ${alert.at}`, ...(alert.openedAt ? [`opened ${alert.openedAt}`] : [])].map(escapeSlack).join(' · ');
  const blocks: Record<string, unknown>[] = [
    { type: 'section', text: { type: 'mrkdwn', text: cut(`${icon(alert)} *${escapeSlack(headline)}*\n${escapeSlack(alert.text.trimEnd())}`, SECTION_MAX) } },
    { type: 'context', elements: [{ type: 'mrkdwn', text: cut(context, CONTEXT_MAX) }] },
  ];
  if (alert.link) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `<${escapeSlack(alert.link)}|Details (Temporal Web UI)>` } });
  // The notification's text is read as mrkdwn too: a key or message quoting <!channel> must not page anyone.
  return { text: `${icon(alert)} ${escapeSlack(headline)}`, blocks };
}
