// CLI start-up: what every `backupctl` command pays before it does anything, and above all
// `wal-push`, which PostgreSQL runs once per 16 MiB WAL segment, one at a time. The compiled
// JavaScript in dist/ (what bin/backupctl.js runs) against the same sources through tsx
// (BACKUPCTL_FROM_SOURCE=1, how it ran before), and bare `node -e 0` as the floor; alternating,
// medians. Run alone: node --import tsx bench/startup.ts
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { ensureKeyPair } from '../client/dev/demoKeys.js';
import { PROJECT_ROOT } from '../client/dev/tools.js';
import { segmentBytes } from '../test/fixtures/walSegment.js';
import { median } from './report.js';

const CLI = path.join(PROJECT_ROOT, 'bin', 'backupctl.js');

export interface StartupResults {
  rounds: number;
  /** Median wall ms per case. */
  floorMs: number;
  helpMs: { compiled: number; source: number };
  walPushMs: { compiled: number; source: number };
}

/** A 16 MiB stand-in segment (test/fixtures/walSegment.ts) in `dir`. */
function segment(dir: string, name: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, segmentBytes(name, 16 * 1024 * 1024, 7300000000000000003n));
  return file;
}

async function timed(args: string[], env: Record<string, string>): Promise<number> {
  const t = performance.now();
  await execa(process.execPath, args, { env, stdout: 'ignore', stderr: 'ignore' });
  return performance.now() - t;
}

export async function measureStartup(rounds = 7, say: (line: string) => void = () => undefined): Promise<StartupResults> {
  const check = await execa(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'buildState.js')], { reject: false });
  if (check.exitCode !== 0) throw new Error('dist/ is missing or older than the sources: run npm run build first');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-bench-startup-'));
  try {
    const keys = await ensureKeyPair(path.join(dir, 'keys'));
    const config = path.join(dir, 'config.yaml');
    writeFileSync(
      config,
      YAML.stringify({
        host: 'bench-startup',
        database: { url: 'postgres://postgres@127.0.0.1:1/postgres' },
        repositories: { local: { type: 'filesystem', path: path.join(dir, 'spool') } },
        encryption: { publicKeyFile: keys.publicKeyFile },
        logLevel: 'warn',
      }),
    );
    const wal = path.join(dir, 'pg_wal');
    mkdirSync(wal);
    const compiled = { BACKUPCTL_FROM_SOURCE: '0' };
    const source = { BACKUPCTL_FROM_SOURCE: '1' };
    const floor: number[] = [];
    const help = { compiled: [] as number[], source: [] as number[] };
    const push = { compiled: [] as number[], source: [] as number[] };
    let n = 0;
    const next = () => segment(wal, `00000001000000000000${(++n).toString(16).toUpperCase().padStart(4, '0')}`);
    // One warm-up of each (page cache), then alternating rounds.
    for (let round = 0; round <= rounds; round++) {
      const f = await timed(['-e', '0'], {});
      const hc = await timed([CLI, '--help'], compiled);
      const hs = await timed([CLI, '--help'], source);
      const pc = await timed([CLI, '--config', config, 'wal-push', next()], compiled);
      const ps = await timed([CLI, '--config', config, 'wal-push', next()], source);
      if (round === 0) continue;
      floor.push(f);
      help.compiled.push(hc);
      help.source.push(hs);
      push.compiled.push(pc);
      push.source.push(ps);
      say(`start-up round ${round}: node -e 0 ${f.toFixed(0)} ms; --help ${hc.toFixed(0)} / ${hs.toFixed(0)} ms; wal-push ${pc.toFixed(0)} / ${ps.toFixed(0)} ms (compiled / tsx)`);
    }
    return {
      rounds,
      floorMs: median(floor),
      helpMs: { compiled: median(help.compiled), source: median(help.source) },
      walPushMs: { compiled: median(push.compiled), source: median(push.source) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function renderStartup(r: StartupResults): string {
  const row = (what: string, m: { compiled: number; source: number }) =>
    `| ${what} | ${m.compiled.toFixed(0)} | ${m.source.toFixed(0)} | ${(m.compiled / m.source).toFixed(2)} | ${(m.compiled / r.floorMs).toFixed(1)} |`;
  return [
    '## CLI start-up',
    '',
    `Median wall time of ${r.rounds} alternating runs each (after one warm-up): the compiled JavaScript in dist/ that bin/backupctl.js runs, against the same sources through tsx (how every command ran before the build), and bare \`node -e 0\` (${r.floorMs.toFixed(0)} ms) as the floor. \`wal-push\` archives a 16 MiB segment into a local filesystem spool (compressed, encrypted, synced): PostgreSQL runs it once per segment, one at a time.`,
    '',
    '| command | compiled (ms) | tsx (ms) | compiled / tsx | compiled / node -e 0 |',
    '|---|---:|---:|---:|---:|',
    row('`backupctl --help`', r.helpMs),
    row('`backupctl wal-push <segment>`', r.walPushMs),
    '',
  ].join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.join(PROJECT_ROOT, 'bench', 'startup.ts')) {
  const results = await measureStartup(Number(process.env.STARTUP_ROUNDS ?? 7), (line) => process.stderr.write(`${line}\n`));
  process.stdout.write(renderStartup(results) + '\n');
}
