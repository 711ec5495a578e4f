// Retention at scale, against the issue's absolute target (no baseline tool is named, so none is
// run): prune one S3 repository holding 3,000 nightly database backups (about 8 years) and
// 200,000 WAL segments under a few base backups, in under 60 s, with at most one request per
// 1,000 deleted keys plus the listing. The repository is SeaweedFS (the tests' fixture); the
// backups are planted with raw PutObject calls (manifests signed with a key made here, bodies
// a few bytes: retention reads manifests and listings, never the dumps), then the prune runs
// through the engine as the two retention activities do, with no Temporal:
//   catalog  readRetentionCatalog (the listings, one manifest read per backup)
//   decide   decideRetention with the default offsite rules (engine/retentionPolicy.ts)
//   report   buildReport, recordReport (the decision written into the repository)
//   apply    readReport, applyReport (its own listings, manifests, pruned markers, entries, objects)
// Every request the repository's S3 client sends is counted by command name (a middleware on
// the client openRepository built), per phase, and timed.
import { generateKeyPairSync, createHash } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import { ListObjectsV2Command, PutObjectCommand, S3Client, type DeleteObjectsCommandInput } from '@aws-sdk/client-s3';
import type { RepositoryConfig } from '../common/config.js';
import { applyReport, buildReport, readReport, recordReport } from '../engine/prune.js';
import { decideRetention, type RetentionPolicy } from '../engine/retention.js';
import { ManifestCache } from '../engine/manifestCache.js';
import { readRetentionCatalog } from '../engine/retentionCatalog.js';
import { DEFAULT_RETENTION } from '../engine/retentionPolicy.js';
import { keyIdOf, signManifest, type Signer, type Verifier } from '../engine/manifestSignature.js';
import { openRepository } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import { startS3Server } from '../test/fixtures/seaweedfs.js';
import { OTHER, Sampler, waitForQuiet } from './procfs.js';

export const RETENTION_SECTION = '## Retention';
/** The issue's scale: 3,000 dumps and 200,000 WAL segments; --retention-scale multiplies both. */
export const FULL_DUMPS = 3000;
export const FULL_WAL = 200_000;
/** Base backups, one every 30 days, the newest yesterday; the WAL runs from the oldest one's start. */
const BASES = 24;
export const TARGET_SECONDS = 60;
/** At most one request per this many deleted keys, plus the listing. */
export const KEYS_PER_REQUEST = 1000;
/** SeaweedFS here takes about 300 small PutObject/s from 32 in flight up (measured: 8: 197/s, 32: 295/s, 128: 280/s). */
const PLANT_CONCURRENCY = 64;
const BUCKET = 'backupctl-bench-retention';
const PREFIX = 'bench/';
const REPOSITORY = 'offsite';
const DAY = 86_400_000;
const SEGMENT_BYTES = 16 * 1024 * 1024;

export type RetentionPhase = 'dry run' | 'catalog' | 'decide' | 'report' | 'apply';
/** The dry run first (a fresh worker: every manifest read), then the prune on the same worker. */
export const RETENTION_PHASES: RetentionPhase[] = ['dry run', 'catalog', 'decide', 'report', 'apply'];
/** What the targets are measured on: the prune, the dry run before it not counted. */
const PRUNE_PHASES: RetentionPhase[] = ['catalog', 'decide', 'report', 'apply'];

export interface CommandStats {
  /** Commands sent (what the code asked for). */
  commands: number;
  /** HTTP attempts (retries included). */
  attempts: number;
  /** From the first command's start to the last one's end, ms. */
  spanMs: number;
  /** DeleteObjects only: keys asked for. */
  keys?: number;
}

export interface RetentionResults {
  scale: number;
  planted: { dumps: number; bases: number; wal: number; keys: number; seconds: number; concurrency: number };
  phases: Record<RetentionPhase, { ms: number; requests: Record<string, CommandStats> }>;
  /** What the prune removed (DeleteObjects keys), and the engine's own summary. */
  deleted: { keys: number; dumps: number; bases: number; wal: number; failed: number };
  kept: { dumps: number; bases: number; wal: number; walKeepFrom?: string };
  /** Keys under database/, base/ and wal/ after the prune, listed afresh (a check the deletes happened). */
  leftAfter: number;
  /** CPU seconds during the prune: this process (the engine), SeaweedFS, and processes outside the benchmark; and the wait for quiet before it. */
  cpu: { engine: number; seaweedfs: number; other: number; waitedSeconds: number };
  machine: string;
}

const seg = (n: number) => `00000001${Math.floor(n / 256).toString(16).toUpperCase().padStart(8, '0')}${(n % 256).toString(16).toUpperCase().padStart(8, '0')}`;
const lsnOf = (n: number) => `${Math.floor(n / 256).toString(16).toUpperCase()}/${((n % 256) * SEGMENT_BYTES).toString(16).toUpperCase()}`;
const idOf = (ms: number, n: number) => `${new Date(ms).toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '_')}-${n.toString(16).padStart(6, '0')}`;

/** Runs `work` over items from `source`, at most `limit` at once. */
async function pool<T>(source: Iterable<T>, limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const it = source[Symbol.iterator]();
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let next = it.next(); !next.done; next = it.next()) await work(next.value);
    }),
  );
}

/** Counts every command the client sends, and every HTTP attempt, under the phase current when it started. */
function countRequests(client: S3Client, phaseNow: () => string, into: Map<string, Map<string, CommandStats & { first: number; last: number }>>): void {
  const stats = (command: string) => {
    const phase = phaseNow();
    let byCommand = into.get(phase);
    if (!byCommand) into.set(phase, (byCommand = new Map()));
    let s = byCommand.get(command);
    if (!s) byCommand.set(command, (s = { commands: 0, attempts: 0, spanMs: 0, first: Infinity, last: 0 }));
    return s;
  };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const s = stats(context.commandName ?? 'unknown');
      s.commands++;
      s.first = Math.min(s.first, performance.now());
      if (context.commandName === 'DeleteObjectsCommand') s.keys = (s.keys ?? 0) + ((args.input as DeleteObjectsCommandInput).Delete?.Objects?.length ?? 0);
      try {
        return await next(args);
      } finally {
        s.last = Math.max(s.last, performance.now());
        s.spanMs = s.last - s.first;
      }
    },
    { step: 'initialize', name: 'benchCountCommands' },
  );
  // The retry middleware sits in finalizeRequest: deserialize runs once per HTTP attempt.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      stats(context.commandName ?? 'unknown').attempts++;
      return next(args);
    },
    { step: 'deserialize', name: 'benchCountAttempts' },
  );
}

/** The S3 client openRepository built: the one whose requests count. */
function clientOf(repository: Repository): S3Client {
  const client = (repository as unknown as { client?: unknown }).client;
  if (!(client instanceof S3Client)) throw new Error(`repository ${repository.name} (${repository.kind}) has no S3Client in its "client" field: the request counter cannot be attached`);
  return client;
}

export async function runRetentionPhase(scale: number, cleanups: Array<() => Promise<void>>, say: (line: string) => void): Promise<RetentionResults> {
  const dumps = Math.max(1, Math.round(FULL_DUMPS * scale));
  const walCount = Math.max(BASES * 2, Math.round(FULL_WAL * scale));
  const s3 = await startS3Server();
  cleanups.unshift(() => s3.stop());
  await s3.createBucket(BUCKET);

  // ---- the catalog, planted -----------------------------------------------------------------
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const signer: Signer = { keyId: keyIdOf(privateKey), privateKey };
  const verifier: Verifier = { keys: [{ keyId: signer.keyId, publicKey, file: '(made by the benchmark)' }], host: 'bench' };
  const now = Date.now();
  const today = Math.floor(now / DAY) * DAY;
  const agent = new http.Agent({ keepAlive: true, maxSockets: PLANT_CONCURRENCY });
  const planter = new S3Client({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 5,
    requestHandler: { httpAgent: agent, connectionTimeout: 10_000, socketTimeout: 60_000 },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  cleanups.unshift(async () => {
    planter.destroy();
    agent.destroy();
  });
  const tiny = Buffer.from('sealed bytes');
  const tinySha = createHash('sha256').update(tiny).digest('hex');
  function* objects(): Generator<[string, Buffer]> {
    for (let d = 0; d < dumps; d++) {
      // Nightly at 02:00 UTC, the newest last night.
      const at = today - (dumps - d) * DAY + 2 * 3_600_000 + 7 * 60_000;
      const id = idOf(at - 7 * 60_000, d);
      const objectsOf = ['dump.pgcustom.zst.gpg', 'globals.sql.zst.gpg'].map((name, i) => ({ role: i ? 'globals' : 'dump', key: `database/${id}/${name}`, bytes: tiny.length, sha256: tinySha }));
      const manifest = signManifest(
        { formatVersion: 1, backupId: id, component: 'database', database: 'app', workflowId: `backup-app-${id}`, runId: 'planted', startedAt: new Date(at - 7 * 60_000).toISOString(), finishedAt: new Date(at).toISOString(), compression: 'zstd', encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) }, objects: objectsOf, copies: [] },
        signer,
      );
      for (const o of objectsOf) yield [o.key, tiny];
      yield [`database/${id}/manifest.json`, Buffer.from(JSON.stringify(manifest, null, 2) + '\n')];
    }
    for (let b = 0; b < BASES; b++) {
      const at = today - (BASES - 1 - b) * 30 * DAY - DAY + 3 * 3_600_000;
      const id = `base-${idOf(at, b)}`;
      const start = Math.floor((b * walCount) / BASES) + 1;
      const key = `base/${id}/base.tar.zst.gpg`;
      const manifest = signManifest(
        {
          formatVersion: 1, backupId: id, component: 'base', workflowId: id, runId: 'planted',
          startedAt: new Date(at - 60_000).toISOString(), finishedAt: new Date(at).toISOString(),
          server: { version: '15', versionNum: 150000, systemIdentifier: '7000000000000000001', walSegmentBytes: SEGMENT_BYTES },
          backup: { timeline: 1, startLsn: lsnOf(start), stopLsn: lsnOf(start + 1), startedAt: new Date(at - 60_000).toISOString(), stoppedAt: new Date(at).toISOString(), includesBackupManifest: true },
          compression: 'zstd', encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
          objects: [{ role: 'base', key, bytes: tiny.length, sha256: tinySha }], copies: [],
        },
        signer,
      );
      yield [key, tiny];
      yield [`base/${id}/manifest.json`, Buffer.from(JSON.stringify(manifest, null, 2) + '\n')];
    }
    for (let n = 1; n <= walCount; n++) {
      const name = seg(n);
      yield [`wal/${name}.zst.gpg`, tiny];
      yield [`wal/${name}.json`, Buffer.from(JSON.stringify({ segment: name, key: `wal/${name}.zst.gpg`, compression: 'zstd', bytes: tiny.length, sha256: tinySha, plainBytes: SEGMENT_BYTES, plainSha256: tinySha, archivedAt: new Date(now).toISOString() }))];
    }
  }
  const totalKeys = dumps * 3 + BASES * 2 + walCount * 2;
  say(`retention: planting ${dumps.toLocaleString('en')} dumps, ${BASES} base backups and ${walCount.toLocaleString('en')} WAL files (${totalKeys.toLocaleString('en')} objects, ${PLANT_CONCURRENCY} PutObject in flight; untimed for the prune)`);
  const p0 = performance.now();
  let put = 0;
  await pool(objects(), PLANT_CONCURRENCY, async ([key, body]) => {
    await planter.send(new PutObjectCommand({ Bucket: BUCKET, Key: PREFIX + key, Body: body, ContentLength: body.length }));
    if (++put % 50_000 === 0) say(`retention: ${put.toLocaleString('en')} / ${totalKeys.toLocaleString('en')} planted (${((performance.now() - p0) / 1000).toFixed(0)} s)`);
  });
  const plantSeconds = (performance.now() - p0) / 1000;
  say(`retention: planted in ${plantSeconds.toFixed(0)} s (${(totalKeys / plantSeconds).toFixed(0)} PutObject/s)`);

  // ---- the prune, through the engine --------------------------------------------------------
  const spec: RepositoryConfig = { type: 's3', bucket: BUCKET, prefix: PREFIX, endpoint: s3.endpoint, forcePathStyle: true, partSizeMiB: 8 };
  // The SDK's default chain reads the credentials from the environment, as on a worker host.
  const saved = Object.fromEntries(Object.keys(s3.env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, s3.env);
  cleanups.unshift(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const repository = openRepository(REPOSITORY, spec, s3.env);
  let phase: RetentionPhase = 'catalog';
  const counted = new Map<string, Map<string, CommandStats & { first: number; last: number }>>();
  countRequests(clientOf(repository), () => phase, counted);
  const policy: RetentionPolicy = {
    timezone: 'UTC',
    leftoverGraceMs: 24 * 3_600_000,
    ruleFor: (component) => (component === 'database' || component === 'base' ? DEFAULT_RETENTION[component].offsite : undefined),
  };
  const ms: Record<RetentionPhase, number> = { 'dry run': 0, catalog: 0, decide: 0, report: 0, apply: 0 };
  const timed = async <T>(name: RetentionPhase, work: () => Promise<T> | T): Promise<T> => {
    phase = name;
    const t = performance.now();
    try {
      return await work();
    } finally {
      ms[name] = performance.now() - t;
      say(`retention: ${name} ${(ms[name] / 1000).toFixed(2)} s`);
    }
  };
  // Another job on a shared machine would slow the prune: wait for it to pass (a while at
  // most), then measure what other processes used anyway.
  const quiet = await waitForQuiet([process.pid], 0.2, 120_000);
  if (quiet.waitedMs > 1500) say(`retention: waited ${(quiet.waitedMs / 1000).toFixed(0)} s for other processes to go quiet (now ${quiet.otherCores.toFixed(2)} cores)`);
  const sampler = new Sampler(undefined, new Map(), 200, [process.pid]);
  // As a worker runs it: `backupctl prune --dry-run` first, on a worker that has read nothing
  // yet (every manifest read), then the prune on the same worker (the manifests it read, unchanged, not read again).
  const manifestCache = new ManifestCache();
  say('retention: a dry run on a fresh worker (catalog, decide, report)');
  await timed('dry run', async () => {
    const cold = await readRetentionCatalog([repository], { verifier, allowUnsigned: false, manifestCache });
    const dry = buildReport({ reportId: `${idOf(now, 0)}-bench-dry`, workflowId: 'bench-retention-dry', runId: 'bench', dryRun: true, timezone: policy.timezone, scope: {} }, cold, decideRetention(cold.catalog, policy, now, [REPOSITORY]));
    await recordReport([repository], dry);
  });
  say('retention: pruning (catalog, decide, report, apply)');
  const reading = await timed('catalog', () => readRetentionCatalog([repository], { verifier, allowUnsigned: false, manifestCache }));
  if (reading.unreachable.length) throw new Error(`retention: the repository could not be read: ${reading.unreachable.map((u) => u.reason).join('; ')}`);
  const complete = reading.catalog.backups.filter((b) => b.complete).length;
  if (complete !== dumps + BASES) throw new Error(`retention: the catalog holds ${complete} complete backups, ${dumps + BASES} were planted (notes: ${reading.contents[0]?.notes.slice(0, 3).join('; ')})`);
  const decision = await timed('decide', () => decideRetention(reading.catalog, policy, now, [REPOSITORY]));
  const reportId = `${idOf(now, 0)}-bench`;
  await timed('report', async () => {
    const built = buildReport({ reportId, workflowId: 'bench-retention', runId: 'bench', dryRun: false, timezone: policy.timezone, scope: {} }, reading, decision);
    const recorded = await recordReport([repository], built);
    if (recorded.failed.length) throw new Error(`retention: the report was not recorded: ${recorded.failed.map((f) => f.reason).join('; ')}`);
  });
  const summary = await timed('apply', async () => applyReport(repository, await readReport(repository, reportId)));
  const usage = sampler.stop();
  if (summary.failures.length) throw new Error(`retention: deletions failed: ${summary.failures.slice(0, 5).join('; ')}`);

  // ---- checked afresh: what is left ---------------------------------------------------------
  let leftAfter = 0;
  for (const folder of ['database/', 'base/', 'wal/']) {
    let token: string | undefined;
    do {
      const page = await planter.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: PREFIX + folder, ContinuationToken: token }));
      leftAfter += page.KeyCount ?? page.Contents?.length ?? 0;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }
  const doomed = decision.backups.filter((b) => b.action === 'delete');
  const walDecision = decision.wal.find((w) => w.repository === REPOSITORY);
  const deletedKeys = [...counted.values()].reduce((n, byCommand) => n + (byCommand.get('DeleteObjectsCommand')?.keys ?? 0), 0);
  if (leftAfter !== totalKeys - deletedKeys) throw new Error(`retention: ${leftAfter} keys left after the prune; ${totalKeys} planted - ${deletedKeys} deleted = ${totalKeys - deletedKeys} expected`);
  const phases = Object.fromEntries(
    RETENTION_PHASES.map((p) => [p, { ms: ms[p], requests: Object.fromEntries([...(counted.get(p) ?? new Map())].map(([c, s]) => [c.replace(/Command$/, ''), { commands: s.commands, attempts: s.attempts, spanMs: s.spanMs, ...(s.keys !== undefined ? { keys: s.keys } : {}) }])) }]),
  ) as RetentionResults['phases'];
  const cpus = os.cpus();
  return {
    scale,
    planted: { dumps, bases: BASES, wal: walCount, keys: totalKeys, seconds: plantSeconds, concurrency: PLANT_CONCURRENCY },
    phases,
    deleted: { keys: deletedKeys, dumps: doomed.filter((b) => b.component === 'database').length, bases: doomed.filter((b) => b.component === 'base').length, wal: walDecision?.delete.length ?? 0, failed: summary.backups.failed + summary.wal.failed },
    kept: { dumps: dumps - doomed.filter((b) => b.component === 'database').length, bases: BASES - doomed.filter((b) => b.component === 'base').length, wal: walCount - (walDecision?.delete.length ?? 0), walKeepFrom: walDecision?.keepFrom },
    leftAfter,
    cpu: { engine: usage.programs.node?.cpuSeconds ?? 0, seaweedfs: usage.programs.weed?.cpuSeconds ?? 0, other: usage.programs[OTHER]?.cpuSeconds ?? 0, waitedSeconds: quiet.waitedMs / 1000 },
    machine: `${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${os.type()} ${os.release()}; Node ${process.version}; SeaweedFS (the tests' fixture, \`weed server\` on loopback, its data on the same disk)`,
  };
}

const n = (x: number) => x.toLocaleString('en');
const s = (msValue: number) => (msValue / 1000).toFixed(2);

/** The section: wall time and S3 requests per phase, against the issue's targets. */
export function renderRetention(r: RetentionResults): string[] {
  const all = PRUNE_PHASES.flatMap((p) => Object.entries(r.phases[p].requests).map(([command, st]) => ({ phase: p, command, ...st })));
  const total = PRUNE_PHASES.reduce((t, p) => t + r.phases[p].ms, 0);
  const dry = r.phases['dry run'];
  const dryGets = dry.requests.GetObject?.commands ?? 0;
  const count = (filter: (x: (typeof all)[number]) => boolean) => all.filter(filter).reduce((t, x) => t + x.commands, 0);
  const lists = count((x) => x.command === 'ListObjectsV2');
  const deletes = count((x) => x.command === 'DeleteObjects');
  const manifestGets = count((x) => x.phase === 'catalog' && x.command === 'GetObject');
  const others = count((x) => x.command !== 'ListObjectsV2');
  const recordRequests = count((x) => x.phase === 'report' || (x.phase === 'apply' && x.command === 'GetObject'));
  const allowed = Math.ceil(r.deleted.keys / KEYS_PER_REQUEST);
  const attempts = all.reduce((t, x) => t + x.attempts, 0);
  const commands = all.reduce((t, x) => t + x.commands, 0);
  const verdict = (ok: boolean) => (ok ? '**met**' : '**not met**');
  const scaleNote = r.scale === 1 ? "the issue's scale" : `scale ${r.scale} of the issue's (\`--retention-scale ${r.scale}\`)`;
  const lines = [
    `${RETENTION_SECTION}: pruning ${n(r.planted.dumps)} dumps and ${n(r.planted.wal)} WAL segments in one S3 repository`,
    '',
    `One S3 repository (SeaweedFS on loopback) holding ${n(r.planted.dumps)} complete nightly database backups (about ${(r.planted.dumps / 365.25).toFixed(1)} years; each a signed \`manifest.json\`, \`dump.pgcustom.zst.gpg\` and \`globals.sql.zst.gpg\`), ` +
      `${r.planted.bases} base backups a month apart and ${n(r.planted.wal)} WAL segments (an entry \`wal/<name>.json\` and an object \`wal/<name>.zst.gpg\` each) from the oldest base's start: ${n(r.planted.keys)} keys, ${scaleNote}. ` +
      `Bodies are a few bytes (retention reads listings and manifests, never the dumps). Planted with raw PutObject, ${r.planted.concurrency} in flight: ${r.planted.seconds.toFixed(0)} s (${(r.planted.keys / r.planted.seconds).toFixed(0)} objects/s), not part of the prune. ` +
      'The prune runs through the engine as the retention activities do, without Temporal: `readRetentionCatalog`, `decideRetention` (the default offsite rules: dumps daily 30, weekly 12, monthly 12, yearly 7; base backups weekly 12, monthly 12, a 30-day window), ' +
      '`buildReport` + `recordReport`, then `readReport` + `applyReport`. Every request the repository\'s own S3 client (from `openRepository`) sends is counted by a middleware, by command and phase. ' +
      'The issue names no baseline tool, so nothing runs side by side: the numbers stand against its absolute targets.',
    '',
    `Machine: ${r.machine}.`,
    '',
    `Deleted: ${n(r.deleted.dumps)} dumps, ${r.deleted.bases} base backups, ${n(r.deleted.wal)} WAL files, ${n(r.deleted.keys)} keys (${r.deleted.failed} failed). Kept: ${n(r.kept.dumps)} dumps, ${r.kept.bases} base backups, ${n(r.kept.wal)} WAL files (from ${r.kept.walKeepFrom ?? '–'}). ` +
      `Listed afresh afterwards: ${n(r.leftAfter)} keys left under \`database/\`, \`base/\`, \`wal/\` (planted − deleted, as it should).`,
    '',
    '| phase | wall s | requests (command: count, its span s) |',
    '|---|--:|---|',
    ...PRUNE_PHASES.map((p) => {
      const requests = Object.entries(r.phases[p].requests)
        .sort((a, b) => b[1].commands - a[1].commands)
        .map(([c, st]) => `${c}: ${n(st.commands)}${st.attempts !== st.commands ? ` (${n(st.attempts)} attempts)` : ''}${st.keys !== undefined ? ` (${n(st.keys)} keys)` : ''}, ${s(st.spanMs)} s`);
      return `| ${p} | ${s(r.phases[p].ms)} | ${requests.join('; ') || '–'} |`;
    }),
    `| **total** | **${s(total)}** | ${n(commands)} requests${attempts !== commands ? ` (${n(attempts)} HTTP attempts)` : ''} |`,
    '',
    `CPU during the prune: ${r.cpu.engine.toFixed(1)} s in this process (the engine and the SDK), ${r.cpu.seaweedfs.toFixed(1)} s in SeaweedFS, ${r.cpu.other.toFixed(1)} s in processes outside the benchmark (other jobs on the machine; waited ${r.cpu.waitedSeconds.toFixed(0)} s for them to go quiet first).`,
    '',
    `Manifest reads: the dry run before the prune, on a fresh worker, read every manifest (${n(dryGets)} GetObject, ${s(dry.requests.GetObject?.spanMs ?? 0)} s; the whole dry run ${s(dry.ms)} s, ${n(Object.values(dry.requests).reduce((t, st) => t + st.commands, 0))} requests, not counted above). ` +
      `The prune, on the same worker, read ${n(manifestGets)} (a manifest listed with the ETag it was read at is not read again: engine/manifestCache.ts). A worker's first run reads them all; each nightly run after, the new ones.`,
    '',
    '| target | measured | |',
    '|---|--:|---|',
    `| prune under ${TARGET_SECONDS} s (catalog to the last delete) | ${s(total)} s | ${verdict(total / 1000 < TARGET_SECONDS)} |`,
    `| the same, counting the dry run's cold reading instead of the prune's catalog (a worker's first run) | ${s(total - r.phases.catalog.ms + dry.ms)} s | ${verdict((total - r.phases.catalog.ms + dry.ms) / 1000 < TARGET_SECONDS)} |`,
    `| DeleteObjects: ≤ 1 request per ${n(KEYS_PER_REQUEST)} deleted keys (⌈${n(r.deleted.keys)} / ${n(KEYS_PER_REQUEST)}⌉ = ${n(allowed)}) | ${n(deletes)} (${((deletes / r.deleted.keys) * KEYS_PER_REQUEST).toFixed(2)} per 1,000) | ${verdict(deletes <= allowed)} |`,
    `| every request but the listing: ≤ ${n(allowed)} (the ${n(lists)} ListObjectsV2 pages allowed on top) | ${n(others)} | ${verdict(others <= allowed)} |`,
    `| the same, the decision's report aside (written before anything is deleted, read back by the prune: ${n(recordRequests)} requests) | ${n(others - recordRequests)} | ${verdict(others - recordRequests <= allowed)} |`,
  ];
  return lines;
}
