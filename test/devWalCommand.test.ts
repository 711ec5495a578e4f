// The dev stack's archive_command and restore_command (client/dev/stack.ts walCommand) for a
// state folder of any name: PostgreSQL first replaces %p, %f and %% in the string, then /bin/sh
// runs it, so the configuration's path must come through both unchanged. /bin/sh here is the
// real one; PostgreSQL's replacement is the documented one (a literal % is written %%).
import { execa } from 'execa';
import { walCommand } from '../client/dev/stack.js';

/** What PostgreSQL 15 does to archive_command before handing it to the shell. */
function postgresExpands(command: string, p: string, f: string): string {
  return command.replace(/%([pf%])/g, (_, c: string) => (c === 'p' ? p : c === 'f' ? f : '%'));
}

test('a state folder with spaces, quotes, $, backticks and % reaches backupctl as its own path', async () => {
  for (const dir of ["/tmp/dev stack/it's $HOME `id`", '/tmp/100%f done/%p/%%', '/tmp/plain']) {
    const config = `${dir}/wal-postgres/config.yaml`;
    const shell = postgresExpands(walCommand(config, 'wal-push %p'), 'pg_wal/000000010000000000000001', '000000010000000000000001');
    // printf in front: the words the shell hands on (node, backupctl.js, then these), one per line.
    const { stdout } = await execa('/bin/sh', ['-c', `printf '%s\\n' ${shell}`]);
    expect(stdout.split('\n').slice(2)).toEqual(['--config', config, 'wal-push', 'pg_wal/000000010000000000000001']);
  }
});
