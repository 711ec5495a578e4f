// pgBackRest's configuration for the bench's contenders: one root folder with its repository,
// log, lock and spool folders, the same compression (zst 3) and encryption (aes-256-cbc, since
// ours encrypts) as every comparison, and one stanza on the bench cluster.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PgCluster } from '../test/fixtures/postgres.js';

/**
 * Writes <root>/pgbackrest.conf (and its folders); returns its path. `global` adds lines to
 * [global]; `sections` is appended as it is (command sections such as [global:archive-get]).
 */
export function writePgbackrestConfig(root: string, cluster: PgCluster, stanza: string, global: string[], sections: string[] = []): string {
  for (const sub of ['', 'repo', 'log', 'lock', 'spool']) mkdirSync(path.join(root, sub), { recursive: true, mode: 0o700 });
  const file = path.join(root, 'pgbackrest.conf');
  writeFileSync(
    file,
    [
      '[global]',
      `repo1-path=${path.join(root, 'repo')}`,
      // Ours encrypts (gpg); so does this repository, for a fair comparison. Its passphrase is
      // random, made for this one throw-away bench repository, and never kept.
      'repo1-cipher-type=aes-256-cbc',
      `repo1-cipher-pass=${randomBytes(24).toString('base64url')}`,
      'compress-type=zst',
      'compress-level=3',
      ...global,
      `log-path=${path.join(root, 'log')}`,
      `lock-path=${path.join(root, 'lock')}`,
      `spool-path=${path.join(root, 'spool')}`,
      'log-level-console=warn',
      'log-level-stderr=warn',
      'log-level-file=info',
      '',
      `[${stanza}]`,
      `pg1-path=${cluster.dataDir}`,
      `pg1-port=${cluster.port}`,
      `pg1-socket-path=${cluster.socketDir}`,
      'pg1-user=postgres',
      '',
      ...(sections.length ? [...sections, ''] : []),
    ].join('\n'),
    { mode: 0o600 },
  );
  return file;
}
