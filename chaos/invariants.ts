// What must hold after every chaos run, whatever the fault: read straight from the
// repositories, the S3 server (not through the fault proxy), PostgreSQL and the process table,
// never through backupctl's own code paths, so a bug there cannot vouch for itself.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { tableChecksums } from '../test/fixtures/postgres.js';
import { RECOVERY_PREFIX, livePostmaster, recoveryFolders, strayServers } from './recoveries.js';
import { BUCKET, HOST, LIVE_DB, type ChaosStack } from './stack.js';
import { spoolProblems } from './walInvariants.js';

/** Every file under a folder, as paths relative to it. */
function walk(root: string, prefix = ''): string[] {
  const dir = path.join(root, prefix);
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const rel = path.join(prefix, entry.name);
    return entry.isDirectory() ? walk(root, rel) : [rel];
  });
}

async function s3Keys(stack: ChaosStack, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await stack.s3.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${HOST}/${prefix}`, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!.slice(HOST.length + 1));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

async function s3Bytes(stack: ChaosStack, key: string): Promise<Buffer> {
  const answer = await stack.s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${HOST}/${key}` }));
  return Buffer.from(await answer.Body!.transformToByteArray());
}

export interface Repo {
  name: string;
  keys(prefix: string): Promise<string[]>;
  bytes(key: string): Promise<Buffer>;
}

export function repositories(stack: ChaosStack): Repo[] {
  const fsRepo = (name: string, root: string): Repo => ({
    name,
    keys: async (prefix) => walk(root, prefix),
    bytes: async (key) => readFileSync(path.join(root, key)),
  });
  return [fsRepo('local', stack.repositories.local), fsRepo('nas', stack.repositories.nas), { name: 's3', keys: (p) => s3Keys(stack, p), bytes: (k) => s3Bytes(stack, k) }];
}

interface StoredObjectLike {
  key: string;
  bytes: number;
  sha256: string;
}

/**
 * A completed backup: in every repository a manifest naming this id, and every object it
 * names whole (size and sha256). Returns the problems found.
 */
export async function completeBackupProblems(stack: ChaosStack, component: 'database' | 'base', backupId: string): Promise<string[]> {
  const problems: string[] = [];
  for (const repo of repositories(stack)) {
    let manifest: { backupId?: string; objects?: StoredObjectLike[] };
    try {
      manifest = JSON.parse((await repo.bytes(`${component}/${backupId}/manifest.json`)).toString('utf8'));
    } catch (err) {
      problems.push(`${repo.name}: no readable manifest for completed ${component} backup ${backupId} (${(err as Error).message.slice(0, 80)})`);
      continue;
    }
    if (manifest.backupId !== backupId) problems.push(`${repo.name}: manifest of ${backupId} names ${manifest.backupId}`);
    for (const object of manifest.objects ?? []) {
      try {
        const bytes = await repo.bytes(object.key);
        const sha = createHash('sha256').update(bytes).digest('hex');
        if (bytes.length !== object.bytes || sha !== object.sha256) problems.push(`${repo.name}: ${object.key} is ${bytes.length} bytes, sha256 ${sha.slice(0, 12)}; manifest says ${object.bytes}, ${object.sha256.slice(0, 12)}`);
      } catch (err) {
        problems.push(`${repo.name}: ${object.key} unreadable (${(err as Error).message.slice(0, 80)})`);
      }
    }
  }
  return problems;
}

/** A failed backup left nothing under its id: no manifest, no claim, no attempt folder. */
export async function failedBackupProblems(stack: ChaosStack, component: 'database' | 'base', backupId: string, unwritable: string[] = []): Promise<string[]> {
  const problems: string[] = [];
  // A repository the fault made unwritable cannot be cleaned by the run: what is left there is
  // the leftover sweep's (backupctl sweep), not a violation.
  for (const repo of repositories(stack).filter((r) => !unwritable.includes(r.name))) {
    const left = await repo.keys(`${component}/${backupId}/`);
    if (left.length) problems.push(`${repo.name}: failed ${component} backup ${backupId} left ${left.length} object(s): ${left.slice(0, 3).join(', ')}`);
  }
  return problems;
}

/**
 * Decrypts and decompresses the dump of a completed backup from one repository with gpg and
 * zstd (not backupctl), restores it with pg_restore into a scratch database, and compares the
 * fingerprint with the live database's before the runs.
 */
export async function restoresIdentical(stack: ChaosStack, backupId: string, repo: Repo): Promise<string[]> {
  const manifest = JSON.parse((await repo.bytes(`database/${backupId}/manifest.json`)).toString('utf8')) as { objects: (StoredObjectLike & { role: string })[] };
  const dump = manifest.objects.find((o) => o.role === 'dump');
  if (!dump) return [`backup ${backupId} has no dump object`];
  const scratch = `chaos_check_${createHash('sha256').update(backupId).digest('hex').slice(0, 8)}`;
  await stack.cluster.query('postgres', `DROP DATABASE IF EXISTS ${scratch}`);
  await stack.cluster.query('postgres', `CREATE DATABASE ${scratch}`);
  try {
    const encrypted = await repo.bytes(dump.key);
    const plain = await execa('gpg', ['--batch', '--quiet', '--homedir', stack.keys.privateHome, '--decrypt'], { input: encrypted, encoding: 'buffer', stripFinalNewline: false });
    const archive = await execa('zstd', ['-d', '-c'], { input: plain.stdout, encoding: 'buffer', stripFinalNewline: false });
    await execa(path.join(stack.cluster.binDir, 'pg_restore'), ['--exit-on-error', '--no-owner', `--dbname=${scratch}`], { input: archive.stdout, env: stack.cluster.env(scratch) });
    const sums = await tableChecksums(stack.cluster, scratch);
    const differ = differsFromSource(stack, sums);
    return differ.length ? [`backup ${backupId} (${repo.name} copy) restores with different data in ${differ.join(', ')}`] : [];
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    return [`backup ${backupId} (${repo.name} copy) does not restore with gpg, zstd and pg_restore: ${(err as Error).message.split('\n')[0].slice(0, 160)}${stderr ? ` (${stderr.slice(0, 300)})` : ''}`];
  } finally {
    await stack.cluster.query('postgres', `DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
  }
}

/**
 * The relations whose fingerprint differs from the source's. A sequence may be ahead by up to
 * the stack's slack (values a crash recovery skipped: legitimate, and never behind, which would
 * hand out ids already used), never behind.
 */
export function differsFromSource(stack: Pick<ChaosStack, 'sourceSums' | 'sequenceSlack'>, sums: Record<string, string>): string[] {
  return Object.keys(stack.sourceSums).filter((t) => {
    if (sums[t] === stack.sourceSums[t]) return false;
    if (!t.startsWith('sequence:') || sums[t] === undefined) return true;
    const [was, wasCalled] = stack.sourceSums[t].split(':');
    const [now, nowCalled] = sums[t].split(':');
    const ahead = Number(now) - Number(was);
    return !(nowCalled === 'true' && (wasCalled === 'true' ? ahead > 0 : ahead >= 0) && ahead <= stack.sequenceSlack);
  });
}

export interface GlobalState {
  liveOid: number | undefined;
}

export async function liveOid(stack: ChaosStack): Promise<number | undefined> {
  const { rows } = await stack.cluster.query<{ oid: number }>('postgres', 'SELECT oid::int FROM pg_database WHERE datname = $1', [LIVE_DB]);
  return rows[0]?.oid;
}

/** Multipart uploads still open in the bucket (read with the server's admin identity). */
export async function openUploadProblems(stack: ChaosStack): Promise<string[]> {
  const uploads = await stack.s3.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET })).catch((err: Error) => ({ error: err.message }));
  if ('error' in uploads) return [`listing multipart uploads failed: ${uploads.error}`];
  return uploads.Uploads?.length ? [`${uploads.Uploads.length} multipart upload(s) left open: ${uploads.Uploads.map((u) => u.Key).slice(0, 3).join(', ')}`] : [];
}

/**
 * What must hold after every run: no restore or scratch database left, no staged plaintext,
 * no recovery folder and no recovery server, no unfinished writes in the repositories (but in
 * `sweptLater`, the repositories the fault left unwritable), no open multipart upload (none
 * when a sweep follows: they are all checked after it, see chaos/faultSweep.ts), the WAL spool
 * without a gap and holding all PostgreSQL archived, the application's services running, the
 * live database present and equal to the source, no temp folder of a dead worker, no tool
 * process outside a live worker (or the live cluster's archive_command).
 */
export async function globalProblems(stack: ChaosStack, liveWorkerPids: number[], options: { sweptLater?: string[] } = {}): Promise<string[]> {
  const sweepFollows = (options.sweptLater ?? []).length > 0;
  const problems: string[] = [];
  const marked = await stack.cluster.query<{ datname: string }>('postgres', "SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE 'backupctl run=%'");
  for (const { datname } of marked.rows) problems.push(`database ${datname} (made by a run) left on the server`);
  for (const recovery of recoveryFolders(stack)) problems.push(`recovery folder ${recovery.folder} left (server ${recovery.serverPid ? `running, pid ${recovery.serverPid}` : 'stopped'})`);
  problems.push(...strayServers(stack));
  const staged = await stagedAfterGrace(stack);
  if (staged.length) problems.push(`staging folder holds ${staged.join(', ')}`);
  problems.push(...unfinishedWriteProblems(stack, options.sweptLater));
  if (!sweepFollows) problems.push(...(await openUploadProblems(stack)));
  problems.push(...(await spoolProblems(stack).catch((err: Error) => [`checking the WAL spool failed: ${err.message}`])));
  const services = stack.servicesState();
  if (services !== 'running') problems.push(`the application's services are ${services}`);
  const sums = await tableChecksums(stack.cluster, LIVE_DB).catch((err: Error) => ({ error: err.message }));
  if ('error' in sums) problems.push(`the live database cannot be read: ${String(sums.error).slice(0, 120)}`);
  else {
    const differ = differsFromSource(stack, sums);
    if (differ.length) problems.push(`the live database differs from the source in ${differ.join(', ')}`);
  }
  problems.push(...(await deadFoldersAfterGrace(stack)));
  // A tool process may take a moment to exit after its activity failed: an orphan is one still
  // there two seconds later.
  const owners = () => [...liveWorkerPids, ...[livePostmaster(stack)].filter((p): p is number => p !== undefined)];
  const first = await strayProcesses(stack, owners());
  if (first.length) {
    await new Promise((r) => setTimeout(r, 2000));
    const again = await strayProcesses(stack, owners());
    problems.push(...again.filter((p) => first.some((f) => f.split(',')[0] === p.split(',')[0])));
  }
  return problems;
}

/**
 * Temp files of unfinished writes (`.partial`) in the file repositories, but for those in
 * `sweptLater`: a repository the fault left unwritable, where a put that failed could not
 * remove its own temp file (the share turned read-only between its last write and its
 * rename). Those are the leftover sweep's, which the harness runs once the fault has healed,
 * and are judged after it (sweptAfterFault), not before.
 */
export function unfinishedWriteProblems(stack: Pick<ChaosStack, 'repositories' | 'cluster'>, sweptLater: string[] = []): string[] {
  const problems: string[] = [];
  for (const [name, root] of Object.entries(stack.repositories)) {
    if (sweptLater.includes(name)) continue;
    const partial = walk(root).filter((f) => f.endsWith('.partial') && !(name === 'local' && archivingNow(stack, f)));
    if (partial.length) problems.push(`${name}: unfinished writes ${partial.slice(0, 3).join(', ')}`);
  }
  return problems;
}

/**
 * Whether a spool file being written is PostgreSQL's archive_command at work: the WAL file it
 * belongs to is still waiting to be archived (archive_status/<name>.ready). PostgreSQL archives
 * at any time, whatever the run; what a killed push left is cleared by the next push of the file.
 */
function archivingNow(stack: Pick<ChaosStack, 'cluster'>, file: string): boolean {
  const name = /^wal\/([0-9A-F]{8}(?:\.history|[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?))\./.exec(file)?.[1];
  return Boolean(name && existsSync(path.join(stack.cluster.dataDir, 'pg_wal', 'archive_status', `${name}.ready`)));
}

/**
 * A superseded attempt of a live worker stuck in a storage read (an S3 request that is never
 * answered) learns of it only when the read gives up: S3 requests are abandoned after 60 s
 * without a byte (S3_IDLE_TIMEOUT_MS), and the attempt then removes its staging folder. So a
 * folder of a live worker counts as left only once that bound (and a margin) has passed; one of
 * a dead process at once.
 */
async function stagedAfterGrace(stack: ChaosStack): Promise<string[]> {
  const list = () => readdirSync(stack.stagingDir).filter((name) => !name.startsWith(RECOVERY_PREFIX));
  const deadline = Date.now() + 75_000;
  for (;;) {
    const staged = list();
    const live = staged.filter((name) => processAlive(Number(/^backupctl-[a-z]+-(\d+)-/.exec(name)?.[1] ?? 0)));
    if (live.length === 0 || Date.now() > deadline) return staged;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function processAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Temp folders of dead processes still there after a grace: a worker's are removed when the
 * new worker starts (at once: the fault starts it), but a wal-push killed by PostgreSQL's
 * immediate shutdown leaves its gpg home to the next wal-push, which the archiver runs within
 * seconds of its restart (it retries the segment the dead one did not finish).
 */
async function deadFoldersAfterGrace(stack: ChaosStack): Promise<string[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = deadWorkerFolders(stack);
    if (found.length === 0 || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Temp folders named for a process (tempDirs.ts: backupctl-<kind>-<pid>-<host>-) whose process
 * is gone, where our processes make them (TMPDIR, restore.workDir): not what other work on
 * this machine leaves in /tmp.
 */
function deadWorkerFolders(stack: ChaosStack): string[] {
  const problems: string[] = [];
  for (const root of [stack.tmpDir, stack.stagingDir]) {
    if (!existsSync(root)) continue;
    for (const name of readdirSync(root)) {
      const match = /^backupctl-([a-z]+)-(\d+)-[0-9a-f]{8}-/.exec(name);
      if (!match) continue;
      const pid = Number(match[2]);
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch (err) {
        alive = (err as NodeJS.ErrnoException).code === 'EPERM';
      }
      // A live pid may be a reused one; the worker's sweep judges those by age. Dead is dead.
      if (!alive && statSync(path.join(root, name), { throwIfNoEntry: false })) problems.push(`${path.join(root, name)} of dead process ${pid} left behind`);
    }
  }
  return problems;
}

/** Every program the engine runs (engine/: runCommand, spawnStreaming), by its process name. */
const TOOLS = new Set(['pg_dump', 'pg_dumpall', 'pg_restore', 'pg_basebackup', 'pg_amcheck', 'pg_ctl', 'gpg', 'zstd', 'psql', 'tar', 'cat']);

/**
 * A backup tool process of this stack (it inherited the stack's TMPDIR: other work on this
 * machine runs its own gpg and pg_dump) that no live worker (nor this runner, nor PostgreSQL)
 * is an ancestor of: an orphan.
 */
export async function strayProcesses(stack: ChaosStack, liveWorkerPids: number[]): Promise<string[]> {
  const { stdout } = await execa('ps', ['-eo', 'pid=,ppid=,comm=']);
  const parent = new Map<number, number>();
  const tools: Array<{ pid: number; comm: string }> = [];
  for (const line of stdout.split('\n')) {
    const [pid, ppid, comm] = line.trim().split(/\s+/);
    parent.set(Number(pid), Number(ppid));
    if (TOOLS.has(comm) && ofStack(stack, Number(pid))) tools.push({ pid: Number(pid), comm });
  }
  const owners = new Set([...liveWorkerPids, process.pid]);
  const problems: string[] = [];
  for (const tool of tools) {
    let at: number | undefined = tool.pid;
    for (let depth = 0; at && at > 1 && !owners.has(at) && depth < 64; depth++) at = parent.get(at);
    if (!at || !owners.has(at)) problems.push(`${tool.comm} (pid ${tool.pid}, parent ${parent.get(tool.pid)}: ${argsOf(tool.pid)}) runs outside any live worker`);
  }
  return problems;
}

function ofStack(stack: ChaosStack, pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`TMPDIR=${stack.tmpDir}`);
  } catch {
    return false;
  }
}

function argsOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 160);
  } catch {
    return '(gone)';
  }
}
