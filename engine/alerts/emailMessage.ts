// An alert as an email: a subject that sorts and filters well in a mailbox (severity and event
// first, then the problem's key and host) and a plain-text body. No HTML: it reads the same in
// every client and in a terminal.
import type { Alert } from '../../common/alertTypes.js';

const SUBJECT_MAX = 200;

export interface EmailMessage {
  subject: string;
  text: string;
}

/** One line: line breaks and runs of white space become one space (a header has no line of its own). */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

export function renderEmail(alert: Alert): EmailMessage {
  const subject = oneLine(`[backupctl ${alert.severity.toUpperCase()} ${alert.event}] ${alert.key} on host ${alert.host}: ${alert.title}`);
  const facts: [string, string | undefined][] = [
    ['Problem', alert.key],
    ['Event', alert.event],
    ['Severity', alert.severity],
    ['Host', alert.host],
    ['At', alert.at],
    ['Opened', alert.openedAt],
    ['Link', alert.link],
  ];
  const table = facts.filter(([, value]) => value !== undefined).map(([name, value]) => `${`${name}:`.padEnd(10)}${value}`);
  return {
    subject: subject.length > SUBJECT_MAX ? `${subject.slice(0, SUBJECT_MAX - 1)}…` : subject,
    text: `${alert.title}\n\n${alert.text.trimEnd()}\n\n${table.join('\n')}\n\n-- \nbackupctl on ${alert.host}\n`,
  };
}
