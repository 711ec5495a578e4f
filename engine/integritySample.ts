// The monitor's integrity sample: at every look, re-read and re-hash the stored objects due at
// it, in every repository, so that every object is read once per period (config
// monitor.integrity.periodDays, 30 days) and a copy gone bad on a NAS or in a bucket is found
// long before a restore needs it (restic's `check --read-data-subset`, spread over time).
//
// Which objects are due is arithmetic, not a list kept somewhere: the period is cut into N
// slots of one look interval each (N = period / interval), an object's slot is a hash of its
// repository and key modulo N, and a look at time t takes slot floor(t / interval) mod N (and
// every slot since the previous look's, when looks came late). Every object is read once per N
// looks, a new one within one period of being written, and a crash loses nothing but the look.
// What a look cannot know alone the workflow carries (common/monitorTypes.ts IntegrityCursor):
// the time of the last look that sampled, and the objects found bad, re-read at every look
// until they are whole again.
//
// An object is judged only against what an admitted manifest or WAL entry of that repository
// says of it (signed by a trusted key; unsigned only where signing.required is false), as the
// catalog admits them: a planted manifest must not raise alarms, nor silence them.
import { createHash } from 'node:crypto';
import type { Config } from '../common/config.js';
import { formatBytes } from '../common/formatBytes.js';
import type { IntegrityCursor } from '../common/monitorTypes.js';
import { ErrorType } from '../common/types.js';
import { componentPrefix, manifestKey, scanManifests, type Component } from './catalog.js';
import { errorText, isEngineError } from './errors.js';
import { admitted, loadVerifier, type Verifier } from './manifestSignature.js';
import type { Problem } from './problem.js';
import { LongerThanExpected, readBack, within, type Reader } from './readBack.js';
import { assertSafeKey, type ObjectInfo, type Repository } from './storage/repository.js';
import { readWalEntry, walEntryKey, walEntryRefusal, walTrustOf } from './walArchive.js';

/** Objects found bad that the cursor keeps re-reading at every look; more are found again at their slot. */
export const RECHECK_MAX = 500;
const COMPONENTS: Component[] = ['database', 'base'];
const WAL_PREFIX = 'wal/';
const PROBLEM_KEY = /^integrity\.(corrupt|missing):([a-z][a-z0-9_-]{0,39}):(.+)$/;

/** N: how many looks one period holds (at least one: every look reads everything). */
export function slotCount(periodDays: number, intervalSeconds: number): number {
  return Math.max(1, Math.round((periodDays * 86_400) / intervalSeconds));
}

/** An object's slot: the same at every look, spread evenly over the slots. */
export function slotOf(repository: string, key: string, slots: number): number {
  return createHash('sha256').update(`${repository}\0${key}`).digest().readUIntBE(0, 6) % slots;
}

/**
 * The slots a look at `now` takes: its own and every one since the look at `previous` (when
 * looks came late, or the monitor was down: at most all N); only its own at a first look. A
 * look in the same slot as the previous takes none.
 */
export function dueSlots(now: number, previous: number | undefined, intervalSeconds: number, slots: number): Set<number> {
  const width = intervalSeconds * 1000;
  const current = Math.floor(now / width);
  const known = previous !== undefined && Number.isFinite(previous) && previous <= now;
  const first = known ? Math.max(Math.floor(previous / width) + 1, current - slots + 1) : current;
  const due = new Set<number>();
  for (let k = first; k <= current; k++) due.add(k % slots);
  return due;
}

/** What one look read and found, for the status file and the metrics. */
export interface IntegritySummary {
  periodDays: number;
  /** N: the look interval's share of the period. */
  slots: number;
  slotsTaken: number;
  /** Due at this look (its slots, and the objects found bad before). */
  dueObjects: number;
  dueBytes: number;
  checkedObjects: number;
  checkedBytes: number;
  /** Due but not read: over monitor.integrity.maxBytesPerLook. */
  skippedObjects: number;
  skippedBytes: number;
  /** Due, but no admitted manifest or WAL entry vouches for their checksum: not judged. */
  unjudgedObjects: number;
  /** Repositories that could not be sampled at this look (they are reported by the health checks). */
  unsampled: { repository: string; reason: string }[];
  lastCorruption: { key: string; foundAt: string } | null;
}

export interface IntegrityLook {
  now: number;
  intervalSeconds: number;
  cursor?: IntegrityCursor;
  /** Cancellation, idle limit per read, and the bytes read (the activity's heartbeat). */
  reader: Reader;
  /** The signatures are checked with it; loaded from the configuration when absent. */
  verifier?: Verifier;
}

export interface IntegrityResult {
  problems: Problem[];
  summary: IntegritySummary;
  cursor: IntegrityCursor;
}

/** One stored object and what its manifest or WAL entry says it is. */
interface Expected {
  repository: Repository;
  key: string;
  bytes: number;
  sha256: string;
  /** For people: `backup <id>`, `WAL segment <name>`. */
  of: string;
  /** The manifest or entry that names it: an object missing is missing only while this is there. */
  evidence: string;
  recheck: boolean;
}

type Finding = { state: 'ok' } | { state: 'gone' } | { state: 'missing' } | { state: 'corrupt'; bytes: number; sha256?: string; longer?: boolean } | { state: 'unreadable'; detail: string; transient: boolean };

const short = (sha256: string) => `${sha256.slice(0, 12)}…`;

/** The problem key's parts, or undefined for a key that is not one of ours. */
function parseKey(key: string): { kind: string; repository: string; key: string } | undefined {
  const m = PROBLEM_KEY.exec(key);
  return m ? { kind: m[1], repository: m[2], key: m[3] } : undefined;
}

/**
 * The sample due at this look: re-reads each object due, compares its size and sha256 with
 * what its admitted manifest or WAL entry says. A corrupt, short or unreadable object is
 * `integrity.corrupt:<repository>:<key>`, one listed and absent `integrity.missing:...` (while
 * the manifest naming it is still there: retention removes the manifest first); a look that
 * cannot read all it should within the byte budget says so (`integrity.budget`). Undefined
 * when the sample is off (periodDays 0). Read-only.
 */
export async function sampleIntegrity(config: Config, repositories: Repository[], look: IntegrityLook): Promise<IntegrityResult | undefined> {
  const { periodDays, maxBytesPerLook } = config.monitor.integrity;
  if (periodDays <= 0) return undefined;
  const interval = Number.isFinite(look.intervalSeconds) && look.intervalSeconds >= 1 ? look.intervalSeconds : config.monitor.intervalSeconds;
  const slots = slotCount(periodDays, interval);
  const previous = typeof look.cursor?.sampledThrough === 'string' ? Date.parse(look.cursor.sampledThrough) : undefined;
  const due = dueSlots(look.now, previous, interval, slots);
  const carried = (Array.isArray(look.cursor?.recheck) ? look.cursor.recheck : []).filter((k) => typeof k === 'string').map(parseKey).filter((k) => k !== undefined);
  let verifier = look.verifier;
  if (!verifier) {
    try {
      verifier = await loadVerifier(config);
    } catch {
      // Reported by the health checks (signing.unusable): with no trusted key, only what unsigned backups admit is judged.
      verifier = { keys: [], host: config.host };
    }
  }
  const summary: IntegritySummary = {
    periodDays,
    slots,
    slotsTaken: due.size,
    dueObjects: 0,
    dueBytes: 0,
    checkedObjects: 0,
    checkedBytes: 0,
    skippedObjects: 0,
    skippedBytes: 0,
    unjudgedObjects: 0,
    unsampled: [],
    lastCorruption: look.cursor?.lastCorruption ?? null,
  };

  const expected: Expected[] = [];
  const listedByRepository = new Map<string, Map<string, ObjectInfo>>();
  for (const repository of repositories) {
    const recheck = new Set(carried.filter((k) => k.repository === repository.name).map((k) => k.key));
    const isDue = (slotKey: string) => due.has(slotOf(repository.name, slotKey, slots));
    try {
      const found = await dueIn(config, repository, verifier, isDue, recheck, look.reader);
      expected.push(...found.expected);
      listedByRepository.set(repository.name, found.listed);
      summary.unjudgedObjects += found.unjudged;
    } catch (err) {
      if (look.reader.signal.aborted) throw look.reader.signal.reason ?? err;
      summary.unsampled.push({ repository: repository.name, reason: errorText(err) });
    }
  }
  // Those found bad before first: their problems stay open only while they are re-read.
  expected.sort((a, b) => Number(b.recheck) - Number(a.recheck));
  summary.dueObjects = expected.length;
  summary.dueBytes = expected.reduce((n, e) => n + e.bytes, 0);

  const problems: Problem[] = [];
  const recheckNext: string[] = [];
  const judged = new Set<string>();
  let spent = 0;
  const stalled = new Set<string>();
  for (const e of expected) {
    if (stalled.has(e.repository.name)) continue;
    const listed = listedByRepository.get(e.repository.name)!.get(e.key);
    // Only an object present at its size is read: a missing or wrongly sized one costs nothing.
    const reads = listed !== undefined && listed.bytes === e.bytes;
    if (reads && spent + e.bytes > maxBytesPerLook) {
      summary.skippedObjects++;
      summary.skippedBytes += e.bytes;
      continue;
    }
    // Whatever one object's look throws is that object's (or its store's) finding, never the whole look's.
    const finding = await check(e, listed, look.reader).catch((err: unknown): Finding => {
      if (look.reader.signal.aborted) throw look.reader.signal.reason ?? err;
      return { state: 'unreadable', detail: errorText(err), transient: isEngineError(err) && err.retryable };
    });
    if (finding.state === 'unreadable' && finding.transient) {
      // Not a corruption (a CRITICAL alert for a network blip): the repository is not sampled
      // now; what was found bad in it before stays open, as for one that cannot be listed.
      stalled.add(e.repository.name);
      summary.unsampled.push({ repository: e.repository.name, reason: finding.detail });
      problems.push({ key: `integrity.unreadable:${e.repository.name}`, message: `repository ${e.repository.name}: the integrity sample cannot read objects back now (${finding.detail}); the rest of its sample is not read at this look` });
      continue;
    }
    judged.add(`${e.repository.name}:${e.key}`);
    if (reads) {
      spent += e.bytes;
      summary.checkedObjects++;
      summary.checkedBytes += e.bytes;
    }
    const problem = problemOf(e, finding);
    if (!problem) continue;
    problems.push(problem);
    recheckNext.push(problem.key);
    if (!look.cursor?.recheck.includes(problem.key)) summary.lastCorruption = { key: problem.key, foundAt: new Date(look.now).toISOString() };
  }
  // Found bad before and not read now (its repository unreadable, the budget spent): still bad as far as anyone knows.
  const unsampled = new Set(summary.unsampled.map((u) => u.repository));
  for (const k of carried) {
    if (judged.has(`${k.repository}:${k.key}`)) continue;
    const stillNamed = expected.some((e) => e.repository.name === k.repository && e.key === k.key);
    if (!stillNamed && !unsampled.has(k.repository)) continue; // no admitted manifest names it any more (pruned): nothing to say
    const key = `integrity.${k.kind}:${k.repository}:${k.key}`;
    const why = unsampled.has(k.repository) ? `repository ${k.repository} cannot be read now` : 'the look\'s byte budget was spent';
    problems.push({ key, message: `repository ${k.repository}: ${k.key} was found ${k.kind === 'missing' ? 'MISSING' : 'CORRUPT'} and is not re-read at this look (${why}); still counted as ${k.kind}` });
    recheckNext.push(key);
  }
  if (summary.skippedObjects) {
    problems.push({
      key: 'integrity.budget',
      message: `the integrity sample due at this look (${summary.dueObjects} objects, ${formatBytes(summary.dueBytes)}) is more than monitor.integrity.maxBytesPerLook (${formatBytes(maxBytesPerLook)}): ${summary.skippedObjects} objects (${formatBytes(summary.skippedBytes)}) were not re-read, so not every object is read within ${periodDays} days; raise maxBytesPerLook or periodDays`,
    });
  }
  const cursor: IntegrityCursor = { sampledThrough: new Date(look.now).toISOString(), recheck: fairCut([...new Set(recheckNext)], RECHECK_MAX) };
  if (summary.lastCorruption) cursor.lastCorruption = summary.lastCorruption;
  return { problems, summary, cursor };
}

/**
 * At most `max` problem keys, taken in turn from each repository's (each in its own order): a
 * repository with many bad objects (a real mass failure, or entries planted in a spool) cannot
 * push out of the list one found bad in another, whose problem would then be resolved unseen.
 */
function fairCut(keys: string[], max: number): string[] {
  if (keys.length <= max) return keys;
  const byRepository = new Map<string, string[]>();
  for (const key of keys) {
    const repository = parseKey(key)?.repository ?? '';
    const queue = byRepository.get(repository) ?? [];
    queue.push(key);
    byRepository.set(repository, queue);
  }
  const queues = [...byRepository.values()];
  const kept: string[] = [];
  for (let i = 0; kept.length < max; i++) for (const queue of queues) if (i < queue.length && kept.length < max) kept.push(queue[i]);
  return kept;
}

/**
 * One repository's objects due now, with what vouches for each, and its listing (a listed
 * object's size; one named and not listed may be missing). Throws when the repository cannot
 * be listed, or a manifest in it cannot be read now.
 */
async function dueIn(config: Config, repository: Repository, verifier: Verifier, isDue: (slotKey: string) => boolean, recheck: Set<string>, reader: Reader) {
  const listed = new Map<string, ObjectInfo>();
  const expected: Expected[] = [];
  let unjudged = 0;
  const allowUnsigned = !config.signing.required;
  const folderOf = (key: string) => key.split('/').slice(0, 2).join('/');
  for (const component of COMPONENTS) {
    const objects = await repository.list(componentPrefix(component));
    objects.forEach((o) => listed.set(o.key, o));
    // Only the manifests that may name an object due are read: where a listed object is due or
    // was found bad, and at the manifest's own slot, when every object it names is looked for
    // in the listing (one absent is missing: found once per period, without a read).
    const wanted = new Set([...recheck].map(folderOf));
    for (const o of objects) if (isDue(o.key) || recheck.has(o.key)) wanted.add(folderOf(o.key));
    const { manifests } = await scanManifests(repository, component, verifier, objects.filter((o) => wanted.has(folderOf(o.key))), reader);
    for (const { manifest, signature } of manifests) {
      const manifestDue = isDue(manifestKey(component, manifest.backupId));
      const named = manifest.objects.filter((o) => isDue(o.key) || recheck.has(o.key) || (manifestDue && !listed.has(o.key)));
      if (!admitted(signature, allowUnsigned)) {
        unjudged += named.length;
        continue;
      }
      for (const o of named) {
        // A key no repository can hold (planted: `..`, odd characters) vouches for nothing.
        if (!isSafeKey(o.key)) {
          unjudged++;
          continue;
        }
        expected.push({ repository, key: o.key, bytes: o.bytes, sha256: o.sha256, of: `backup ${manifest.backupId}`, evidence: manifestKey(component, manifest.backupId), recheck: recheck.has(o.key) });
      }
    }
  }
  const wal = await repository.list(WAL_PREFIX);
  wal.forEach((o) => listed.set(o.key, o));
  // A segment's object is named by its entry only: it is slotted by its entry's key.
  const recheckSegments = new Set([...recheck].filter((k) => k.startsWith(WAL_PREFIX)).map((k) => k.slice(WAL_PREFIX.length).replace(/\.[a-z0-9]+\.gpg$/, '')));
  const trust = walTrustOf(config, verifier, allowUnsigned);
  for (const o of wal) {
    if (!o.key.endsWith('.json') || !isSafeKey(o.key)) continue;
    const segment = o.key.slice(WAL_PREFIX.length, -'.json'.length);
    if (!isDue(o.key) && !recheckSegments.has(segment)) continue;
    let entry;
    try {
      entry = await readWalEntry(repository, segment, reader);
    } catch (err) {
      if ((err as { type?: string })?.type !== ErrorType.ManifestDamaged) throw err;
      unjudged++; // a damaged entry: the WAL checks' to report
      continue;
    }
    if (!entry) continue;
    if (walEntryRefusal(entry, repository.name, trust)) {
      unjudged++;
      continue;
    }
    expected.push({ repository, key: entry.key, bytes: entry.bytes, sha256: entry.sha256, of: `WAL segment ${segment}`, evidence: walEntryKey(segment), recheck: recheck.has(entry.key) });
  }
  return { expected, listed, unjudged };
}

function isSafeKey(key: string): boolean {
  try {
    assertSafeKey(key);
    return true;
  } catch {
    return false;
  }
}

/** Reads one object back and compares it; a read that fails for a moment is tried once more. */
async function check(e: Expected, listed: ObjectInfo | undefined, reader: Reader): Promise<Finding> {
  if (!listed) return (await missingNow(e, reader)) ? { state: 'missing' } : { state: 'gone' };
  if (listed.bytes !== e.bytes) return { state: 'corrupt', bytes: listed.bytes };
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const hash = createHash('sha256');
      let bytes = 0;
      // Never past its size: an object that does not end is not hashed for ever.
      await readBack(
        e.repository,
        e.key,
        reader,
        false,
        (chunk) => {
          hash.update(chunk);
          bytes += chunk.length;
        },
        e.bytes,
      );
      const sha256 = hash.digest('hex');
      return bytes === e.bytes && sha256 === e.sha256 ? { state: 'ok' } : { state: 'corrupt', bytes, sha256 };
    } catch (err) {
      if (reader.signal.aborted) throw reader.signal.reason ?? err;
      if (err instanceof LongerThanExpected) return { state: 'corrupt', bytes: e.bytes, longer: true };
      if (isEngineError(err) && err.type === ErrorType.CopyMissing) return (await missingNow(e, reader)) ? { state: 'missing' } : { state: 'gone' };
      lastError = err;
      if (isEngineError(err) && !err.retryable) break;
    }
  }
  // For a moment (a stall, a network failure): the store's state, not the object's.
  return { state: 'unreadable', detail: errorText(lastError), transient: isEngineError(lastError) && lastError.retryable };
}

/** Absent while the manifest or entry naming it is still there (retention removes those first, then the objects). */
async function missingNow(e: Expected, reader: Reader): Promise<boolean> {
  const where = `repository ${e.repository.name}`;
  if (await within(e.repository.stat(e.key), reader, `${where}: stat ${e.key}`)) return false;
  return (await within(e.repository.stat(e.evidence), reader, `${where}: stat ${e.evidence}`)) !== undefined;
}

function problemOf(e: Expected, finding: Finding): Problem | undefined {
  const where = `repository ${e.repository.name}: ${e.key} (${e.of})`;
  const says = e.evidence.endsWith('/manifest.json') ? 'its manifest says' : 'its WAL entry says';
  const corrupt = `integrity.corrupt:${e.repository.name}:${e.key}`;
  switch (finding.state) {
    case 'ok':
    case 'gone':
      return undefined;
    case 'missing':
      return { key: `integrity.missing:${e.repository.name}:${e.key}`, message: `${where} is MISSING: ${says} ${e.bytes} bytes are there, the repository has no such object; this copy cannot be restored` };
    case 'unreadable':
      return { key: corrupt, message: `${where} cannot be read back: ${finding.detail}` };
    case 'corrupt':
      return {
        key: corrupt,
        message: `${where} is CORRUPT: it reads back as ${finding.longer ? 'more than ' : ''}${finding.bytes} bytes${finding.sha256 ? ` with sha256 ${short(finding.sha256)}` : ''}, ${says} ${e.bytes} bytes with sha256 ${short(e.sha256)}; this copy cannot be restored (silent corruption in the repository)`,
      };
  }
}
