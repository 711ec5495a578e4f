// Who listens on a TCP port of this machine: the OS users (uids) holding a listening socket on
// it, read from /proc/net/tcp and tcp6 (Linux). The dev stack reuses a server already on its
// ports only when it is this user's (or root's): another user's would be handed its work.

import { readFileSync } from 'node:fs';

const LISTEN = '0A';

/** The uids listening on `port` (any address); undefined where /proc/net cannot tell (not Linux). */
export function listenerUids(port: number): number[] | undefined {
  const uids = new Set<number>();
  let read = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    read = true;
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 8 || fields[3] !== LISTEN) continue;
      if (parseInt(fields[1].split(':')[1], 16) === port) uids.add(Number(fields[7]));
    }
  }
  return read ? [...uids] : undefined;
}

/** Throws when another OS user (not root, not us) listens on `port`: `what` is the server's name for the message. */
export function assertOwnListener(port: number, what: string): void {
  const mine = process.getuid?.();
  if (mine === undefined) return;
  const strangers = (listenerUids(port) ?? []).filter((uid) => uid !== mine && uid !== 0);
  if (strangers.length) {
    throw new Error(`${what} on port ${port} is run by another OS user (uid ${strangers.join(', ')}): not reused, since it would be handed this stack's worker and data; stop it, or move the stack's ports (--port-offset)`);
  }
}
