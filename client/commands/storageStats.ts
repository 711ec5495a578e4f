// What each repository holds and how soon it is full, as `backupctl status` and `backups list`
// print it: a compact table per repository and component, then one line per repository with
// its free space, growth, days until full and the window it alone supports. The data is
// engine/repositoryStats.ts's; --json prints it whole.
import type { RepositoryStats } from '../../engine/repositoryStats.js';
import { formatBytes } from '../output.js';

function cell(value: string, width: number): string {
  return value.padEnd(width);
}

/** The table and summary lines, indented by `indent`. */
export function storageLines(stats: RepositoryStats[], indent = ''): string[] {
  if (!stats.length) return [];
  const header = ['repository', 'component', 'count', 'bytes', 'oldest', 'newest'];
  const rows: string[][] = [];
  for (const s of stats) {
    if (!s.reachable) continue;
    s.components.forEach((c, i) => rows.push([i === 0 ? s.repository : '', c.component, String(c.count), formatBytes(c.bytes), c.oldest ?? '-', c.newest ?? '-']));
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `${indent}  ${r.map((v, i) => cell(v, widths[i])).join('  ')}`.trimEnd();
  const lines = [`${indent}storage:`];
  if (rows.length) lines.push(line(header), ...rows.map(line));
  for (const s of stats) {
    if (!s.reachable) {
      lines.push(`${indent}  ${s.repository} (${s.location}): UNREACHABLE: ${s.error}`);
      continue;
    }
    const space = s.freeBytes !== null ? `${formatBytes(s.freeBytes)} free${s.totalBytes ? ` of ${formatBytes(s.totalBytes)}` : ''}` : s.freeError ? `free space unknown (${s.freeError})` : s.kind === 's3' ? 'free space not measured (S3)' : 'free space not measured';
    const growth = s.growthBytesPerDay === null ? 'growth unknown' : `growing ${formatBytes(s.growthBytesPerDay)}/day`;
    const full = s.daysUntilFull === null ? '' : s.daysUntilFull === 0 ? ': FULL' : s.daysUntilFull > 3650 ? ': full in over 10 years' : `: full in ${s.daysUntilFull.toFixed(1)} days`;
    const window = s.window.earliest ? `window ${s.window.earliest} to ${s.window.latest} (from listing)` : 'no point-in-time window here';
    lines.push(`${indent}  ${s.repository}: ${formatBytes(s.bytes)} stored, ${space}, ${growth}${full}; ${window}`);
  }
  return lines;
}
