// `backupctl wal-push <path>` (archive_command), `backupctl wal-fetch <name> <path>`
// (restore_command) and `backupctl wal-pusher` (asynchronous archiving's background half, started
// by bin/wal-push-async) and `backupctl wal-fetcher` (asynchronous recovery's, started by bin/wal-fetch-async). PostgreSQL runs them once per segment, so they load only what they need:
// no Temporal client, no worker; bin/backupctl.js sends these two commands straight here.
import { readFile, rename, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isEngineError } from '../engine/errors.js';
import { openRepositories } from '../engine/storage/index.js';
import { removeOwnFoldersSync, sweepDeadOwners } from '../engine/tempDirs.js';
import { loadVerifier } from '../engine/manifestSignature.js';
import { fetchSegment, pushSegment, walTrustOf } from '../engine/walArchive.js';
import { fileIdentity, runWalPusher } from '../engine/walPusher.js';
import { runWalFetcher } from '../engine/walFetcher.js';
import { loadConfig } from '../common/config.js';

function configFile(args: string[]): { file: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-c' || args[i] === '--config') file = args[++i];
    else if (args[i].startsWith('--config=')) file = args[i].slice('--config='.length);
    else rest.push(args[i]);
  }
  return { file, rest };
}

/**
 * Which configuration file, as it is now (as bin/wal-push-async reads it): a pusher started
 * before an edit ends, and the .ok it wrote is not taken (it loaded the old one).
 */
async function configFileIdentity(file: string | undefined): Promise<string> {
  if (!file) throw new Error('wal-pusher needs --config <file> (bin/wal-push-async passes it)');
  return fileIdentity(file).catch(() => 'missing');
}

/** A background process's log (its wrapper appends to it) is kept to two files of at most 16 MiB. */
async function rotateLog(file: string): Promise<void> {
  if (((await stat(file).catch(() => undefined))?.size ?? 0) > 16 * 1024 * 1024) await rename(file, `${file}.1`).catch(() => undefined);
}

function optionValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

const ENDING_SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 };

/** Runs a WAL command; returns the exit status PostgreSQL reads. */
export async function runWalCommand(argv: string[]): Promise<number> {
  const { file, rest } = configFile(argv);
  const [command, ...args] = rest;
  const say = (line: string) => process.stderr.write(`backupctl ${command}: ${line}\n`);
  // Ended by a signal (PostgreSQL's immediate shutdown sends SIGQUIT to its archiver and what
  // it runs): this process's gpg home goes first, then it exits as the signal would have.
  // Nothing else needs undoing: a push or fetch cut short leaves nothing visible.
  for (const [signal, number] of Object.entries(ENDING_SIGNALS)) {
    process.once(signal, () => {
      removeOwnFoldersSync([os.tmpdir()], ['gpg']);
      // Once more after a moment: a gpg home whose mkdtemp was already under way in libuv's
      // threads when the signal came is made after the first removal, and a gpg ended by the
      // same signal may have been writing in its home while the first removal walked it (the
      // rmSync failed with ENOTEMPTY, thrown out of this handler: seen in CI).
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      removeOwnFoldersSync([os.tmpdir()], ['gpg']);
      say(`ended by ${signal}`);
      process.exit(128 + number);
    });
  }
  // A wal-push or wal-fetch that died (PostgreSQL's immediate shutdown kills its archiver and
  // what it runs) left its gpg home; no worker start may come for weeks. The next one removes
  // it, beside its own work (a listing of the temp folder: a few milliseconds).
  const swept = sweepDeadOwners([os.tmpdir()], ['gpg']).catch(() => []);
  try {
    return await runCommand(file, command, args, say);
  } finally {
    await swept;
  }
}

async function runCommand(file: string | undefined, command: string, args: string[], say: (line: string) => void): Promise<number> {
  try {
    // The pusher's configuration file as it was before it was read: every .ok names it.
    const configIdentity = command === 'wal-pusher' ? await configFileIdentity(file) : '';
    const config = loadConfig(file);
    if (command === 'wal-push') {
      if (args.length !== 1) throw new Error('usage: backupctl wal-push <path of the WAL file> (archive_command = \'backupctl wal-push %p\')');
      const outcome = await pushSegment(config, openRepositories(config), args[0]);
      if (outcome.action === 'already-archived') say(`${outcome.segment} was already archived with the same content`);
      return 0;
    }
    if (command === 'wal-fetch') {
      const allowUnsigned = args[0] === '--allow-unsigned';
      const names = allowUnsigned ? args.slice(1) : args;
      if (names.length !== 2) throw new Error('usage: backupctl wal-fetch [--allow-unsigned] <WAL file name> <destination path> (restore_command = \'backupctl wal-fetch %f %p\')');
      const repositories = openRepositories(config);
      const trust = walTrustOf(config, await loadVerifier(config, { ownKey: 'if-readable' }), allowUnsigned);
      if (await fetchSegment(config, repositories, names[0], names[1], trust)) return 0;
      // Expected at the end of the archive: PostgreSQL probes for segments that do not exist yet.
      say(`${names[0]} is in no repository`);
      return 1;
    }
    if (command === 'wal-pusher') {
      // Started by bin/wal-push-async under its lock, never by hand (it would hold that lock).
      const status = optionValue(args, '--status');
      const walDir = optionValue(args, '--wal-dir');
      if (!status || !walDir) throw new Error('usage: backupctl wal-pusher --status <folder> --wal-dir <pg_wal> (started by bin/wal-push-async)');
      await rotateLog(path.join(status, 'pusher.log'));
      const summary = await runWalPusher({
        config,
        configIdentity,
        // archive_command now names another configuration file, or the file was edited. The name
        // is the one line the wrapper wrote, its newline dropped (not trimmed: it may end in a space).
        stillCurrent: async () =>
          (await readFile(path.join(status, 'config-file'), 'utf8').then((f) => f.replace(/\n$/, '') === file, () => true)) && (await configFileIdentity(file)) === configIdentity,
        repositories: openRepositories(config),
        statusDir: status,
        walDir,
        processes: config.wal.async.processes,
        idleMs: config.wal.async.idleSeconds * 1000,
        log: (line) => say(`${new Date().toISOString()} ${line}`),
      });
      say(`${new Date().toISOString()} ended (${summary.ended}): ${summary.stored} stored, ${summary.alreadyArchived} already archived, ${summary.failed} failed`);
      return 0;
    }
    if (command === 'wal-fetcher') {
      // Started by bin/wal-fetch-async under its lock (one per queue folder), never by hand.
      const queue = optionValue(args, '--queue');
      if (!queue) throw new Error('usage: backupctl wal-fetcher --queue <folder> [--allow-unsigned] (started by bin/wal-fetch-async)');
      await rotateLog(path.join(queue, 'fetcher.log'));
      const summary = await runWalFetcher({
        config,
        repositories: openRepositories(config),
        trust: walTrustOf(config, await loadVerifier(config, { ownKey: 'if-readable' }), args.includes('--allow-unsigned')),
        queueDir: queue,
        processes: config.wal.fetchAhead.processes,
        maxSegments: config.wal.fetchAhead.maxSegments,
        idleMs: config.wal.fetchAhead.idleSeconds * 1000,
        log: (line) => say(`${new Date().toISOString()} ${line}`),
      });
      say(`${new Date().toISOString()} ended: ${summary.fetched} fetched, ${summary.missing} missing, ${summary.failed} failed`);
      return 0;
    }
    throw new Error(`unknown command ${command}`);
  } catch (err) {
    const type = isEngineError(err) ? `${err.type}: ` : '';
    say(`${type}${(err as Error).message}`);
    return 2;
  }
}
