#!/usr/bin/env node
// Runs the compiled JavaScript in dist/ (`npm run build`; scripts/setup.sh builds it whenever
// the sources changed). Only where the TypeScript sources are newer than the build, or there
// is no build (a checkout being edited), does it run the sources through tsx: about a second
// more at every start (docs/benchmarks.md, "CLI start-up").
import process from 'node:process';
import { buildIsCurrent } from './buildState.js';

const compiled = process.env.BACKUPCTL_FROM_SOURCE !== '1' && buildIsCurrent();
const code = compiled ? '../dist' : '..';
const ext = compiled ? 'js' : 'ts';
if (!compiled) {
  const { register } = await import('tsx/esm/api');
  register();
}
// archive_command and restore_command run once per WAL segment: they skip the full CLI.
const walCommand = process.argv.slice(2).find((arg) => arg === 'wal-push' || arg === 'wal-fetch' || arg === 'wal-pusher' || arg === 'wal-fetcher');
if (walCommand) {
  const { runWalCommand } = await import(`${code}/client/walCommands.${ext}`);
  process.exitCode = await runWalCommand(process.argv.slice(2));
} else {
  await import(`${code}/client/cli.${ext}`);
}
