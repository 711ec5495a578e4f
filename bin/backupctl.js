#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: no build step to forget.
import process from 'node:process';
import { register } from 'tsx/esm/api';

register();
// archive_command and restore_command run once per WAL segment: they skip the full CLI.
const walCommand = process.argv.slice(2).find((arg) => arg === 'wal-push' || arg === 'wal-fetch');
if (walCommand) {
  const { runWalCommand } = await import('../client/walCommands.ts');
  process.exitCode = await runWalCommand(process.argv.slice(2));
} else {
  await import('../client/cli.ts');
}
