// What the monitor is told of a look (activities/monitor.ts), bounded. Some checks report one
// problem per object (catalog.damaged:<repository>:<key>, database.bad-signature:<id>,
// base.bad-signature:<repository>:<id>), and anyone who can write into a repository can plant
// as many objects as they like: each would be an open problem in the monitor's state (carried
// over continue-as-new, whose payload Temporal refuses past 2 MB) and an alert per channel, each
// its own delivery activity (a history stops at 50,000 events). Past a few of a kind, they are
// told as one problem that counts them; and no message is longer than a page.
import type { Problem } from './problem.js';

/** Problems of one kind (the key before its first ':') told one by one; more are told as one. */
export const PROBLEMS_PER_KIND = 10;
/** The longest message told (the rest is cut). */
export const MESSAGE_MAX = 2_000;

const cut = (message: string) => (message.length > MESSAGE_MAX ? `${message.slice(0, MESSAGE_MAX - 3)}...` : message);

export function boundProblems(problems: readonly Problem[]): Problem[] {
  const byKind = new Map<string, Problem[]>();
  for (const p of problems) {
    const kind = p.key.split(':')[0];
    const same = byKind.get(kind);
    if (same) same.push(p);
    else byKind.set(kind, [p]);
  }
  const told = new Set<string>();
  const out: Problem[] = [];
  for (const p of problems) {
    const kind = p.key.split(':')[0];
    const all = byKind.get(kind)!;
    if (all.length <= PROBLEMS_PER_KIND) {
      out.push({ key: p.key, message: cut(p.message) });
    } else if (!told.has(kind)) {
      told.add(kind);
      out.push({ key: `${kind}:many`, message: cut(`${all.length} problems of the kind ${kind}, too many to tell one by one (backupctl status lists them); the first: ${p.message}`) });
    }
  }
  return out;
}
