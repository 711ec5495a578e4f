// `--wait` at a terminal: a live line from the running activities' heartbeats (phase, bytes,
// rate, ETA where the total is known), redrawn in place; plain lines, at most one every ten
// seconds and only when something changed, when stderr is not a terminal; nothing with --json.
// Heartbeat details are decoded with the client's own data converter (payload encryption too).
import type { Client } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/codec-helpers.js';
import type { Payload } from '@temporalio/common';
import { formatBytes } from '../common/formatBytes.js';

export interface ActivityProgress {
  activity: string;
  attempt: number;
  details?: Record<string, unknown>;
  lastFailure?: string;
}

/** The running activities of a workflow, with their last heartbeat's details. */
export async function pendingActivities(client: Client, workflowId: string): Promise<ActivityProgress[]> {
  const description = await client.workflow.getHandle(workflowId).describe();
  const found: ActivityProgress[] = [];
  for (const pending of description.raw.pendingActivities ?? []) {
    let details: Record<string, unknown> | undefined;
    const payloads = pending.heartbeatDetails?.payloads as Payload[] | undefined;
    if (payloads?.length) {
      try {
        const decoded = await decodeFromPayloadsAtIndex<unknown>(client.workflow.options.loadedDataConverter, 0, payloads);
        if (decoded && typeof decoded === 'object') details = decoded as Record<string, unknown>;
      } catch {
        // Undecodable (another key): shown without details.
      }
    }
    found.push({ activity: pending.activityType?.name ?? 'unknown', attempt: pending.attempt ?? 1, details, lastFailure: pending.lastFailure?.message ?? undefined });
  }
  return found;
}

/** The byte count a heartbeat reports, whichever name its activity gives it. */
function bytesOf(details: Record<string, unknown> | undefined): number | undefined {
  for (const key of ['plainBytes', 'bytes', 'bytesRead', 'storedBytes', 'staged']) {
    const value = details?.[key];
    if (typeof value === 'number' && Number.isFinite(value)) return value;
  }
  return undefined;
}

const clock = (seconds: number) => {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 3600) ? `${Math.floor(s / 3600)}:` : ''}${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};

/** Tracks one activity's bytes over time: the rate over the last samples, and the ETA. */
export class ProgressLine {
  private samples: { at: number; bytes: number }[] = [];
  /** The activity attempt the samples are of: another one's bytes start a new count. */
  private of = '';

  constructor(private readonly startedAt: number) {}

  render(progress: ActivityProgress | undefined, now: number): string {
    const elapsed = `${clock((now - this.startedAt) / 1000)} elapsed`;
    if (!progress) return `waiting: no activity running (${elapsed})`;
    const parts = [progress.activity, String(progress.details?.phase ?? 'running')];
    const bytes = bytesOf(progress.details);
    const of = `${progress.activity}#${progress.attempt}`;
    if (of !== this.of) {
      this.of = of;
      this.samples = [];
    }
    if (bytes !== undefined) {
      if (this.samples.at(-1)?.bytes !== bytes) this.samples.push({ at: now, bytes });
      this.samples = this.samples.filter((s) => now - s.at <= 15_000).slice(-20);
      parts.push(formatBytes(bytes));
      const first = this.samples[0];
      const last = this.samples.at(-1)!;
      const rate = last.at > first.at ? (last.bytes - first.bytes) / ((last.at - first.at) / 1000) : undefined;
      if (rate !== undefined && rate > 0) {
        parts.push(`${formatBytes(rate)}/s`);
        const total = progress.details?.totalBytes;
        if (typeof total === 'number' && total > bytes) parts.push(`ETA ${clock((total - bytes) / rate)} (of ${formatBytes(total)})`);
      }
    }
    if (progress.attempt > 1) parts.push(`attempt ${progress.attempt}${progress.lastFailure ? ` (last failure: ${progress.lastFailure})` : ''}`);
    parts.push(elapsed);
    return parts.join('  ');
  }
}

export interface ProgressWatch {
  stop(): void;
}

/** Watches a workflow's progress until stopped, writing to `stream` (a TTY: one line redrawn; else plain lines). */
export function watchProgress(client: Client, workflowId: string, stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }, options: { intervalMs?: number; plainEveryMs?: number } = {}): ProgressWatch {
  const tty = Boolean(stream.isTTY);
  const line = new ProgressLine(Date.now());
  let lastPlain = 0;
  let lastText = '';
  let stopped = false;
  let drawn = false;
  const tick = async () => {
    const progress = (await pendingActivities(client, workflowId).catch(() => undefined))?.[0];
    if (stopped) return;
    const text = line.render(progress, Date.now());
    if (tty) {
      const width = Math.max(20, (stream.columns ?? 100) - 1);
      stream.write(`\r\x1b[2K${text.slice(0, width)}`);
      drawn = true;
    } else {
      const changed = text.replace(/\s+\S+ elapsed$/, '') !== lastText.replace(/\s+\S+ elapsed$/, '');
      if (changed && Date.now() - lastPlain >= (options.plainEveryMs ?? 10_000)) {
        stream.write(`progress: ${text}\n`);
        lastPlain = Date.now();
        lastText = text;
      }
    }
  };
  const timer = setInterval(() => void tick(), options.intervalMs ?? 1000);
  void tick();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      if (tty && drawn) stream.write('\r\x1b[2K');
    },
  };
}
