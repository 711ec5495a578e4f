// What an operator asked to restore, resolved on the restoring host: a backup in the catalog
// (by id or `latest`), or a file the old scripts made. Read-only.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGunzip, gunzipSync } from 'node:zlib';
import { ErrorType, type BackupManifest, type SignatureVerdict } from '../common/types.js';
import type { CatalogSource, FileSource, SkippedCopy } from '../common/restoreTypes.js';
import { chooseCopy, componentPrefix, manifestKey, readManifestCopies, scanCatalog } from './catalog.js';
import { classifyDatabaseError, type EngineError, errorText, isEngineError, permanent, transient } from './errors.js';
import { runCommand } from './exec.js';
import { spawnRestore, spawnSqlScript, toolPath, type DatabaseTarget } from './postgres.js';
import { admitted, type Trust } from './manifestSignature.js';
import { explicitWarning, pickLatest, sourceVerdict, type ExpectedSource } from './sourceMatch.js';
import type { Repository } from './storage/repository.js';

/** A backup id: a folder name of safe characters, never `.` or `..` (the folder itself or its parent). */
export const BACKUP_ID = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,200}$/;

/**
 * Finds a backup in the repositories, in their order; `latest` is the newest complete one of
 * the configured source (database and cluster) whose manifest is signed by a trusted key (or,
 * with `trust.allowUnsigned`, not signed at all). A manifest is evidence, not truth: a copy
 * that is damaged, unsigned or wrongly signed, names another backup or differs from the copy
 * used is skipped and reported in the source's `skipped`; an explicit id of another database
 * is refused, and so is a backup with no admitted copy (UnsignedBackup, BadSignature).
 */
export async function resolveCatalogBackup(reference: string, repositories: Repository[], expected: ExpectedSource, trust: Trust): Promise<CatalogSource> {
  const where = repositories.map((r) => r.name).join(', ');
  let chosen: { manifest: BackupManifest; holders: string[]; signature: SignatureVerdict } | undefined;
  const skipped: SkippedCopy[] = [];
  const warnings: string[] = [];
  const admit = (verdict: SignatureVerdict) => admitted(verdict, trust.allowUnsigned);
  if (reference === 'latest') {
    const { copiesById, damaged, unlisted } = await scanCatalog(repositories, 'database', trust.verifier);
    // Repository by repository, in their order: the one that cannot be listed, or its damaged manifests.
    for (const repository of repositories) {
      const u = unlisted.find((x) => x.repository === repository.name);
      if (u) skipped.push({ repository: u.repository, key: componentPrefix('database'), reason: `repository ${u.repository} cannot be listed now: ${errorText(u.error)}`, errorType: ErrorType.StorageUnreachable });
      else skipped.push(...damaged.filter((d) => d.repository === repository.name));
    }
    if (unlisted.length === repositories.length) throw transient(ErrorType.StorageUnreachable, `no repository can be listed now: ${skipped.map((s) => s.reason).join('; ')}`);
    const usable: { manifest: BackupManifest; holders: string[]; signature: SignatureVerdict; skipped: SkippedCopy[] }[] = [];
    const refused: { manifest: BackupManifest; skipped: SkippedCopy[] }[] = [];
    for (const [backupId, copies] of copiesById) {
      const choice = chooseCopy(copies, manifestKey('database', backupId), admit);
      if (choice.chosen) usable.push({ manifest: choice.chosen.manifest, signature: choice.chosen.signature, holders: choice.holders, skipped: choice.skipped });
      else refused.push({ manifest: copies[0].manifest, skipped: choice.skipped });
    }
    // A signed backup of the source, when there is one: --allow-unsigned admits the backups
    // made before signing began, never an unsigned one over a signed one (anyone who can write
    // to a repository can plant an unsigned backup, and date it as they please).
    const signedChoice = pickLatest(usable.filter((u) => u.signature.state === 'signed'), (c) => c.manifest.source, (c) => c.manifest.startedAt, expected);
    const choice = signedChoice.chosen ? signedChoice : pickLatest(usable, (c) => c.manifest.source, (c) => c.manifest.startedAt, expected);
    // Unsigned or wrongly signed backups of this source that would have been `latest`: said, never taken.
    const passedOver = (after: string) =>
      refused.filter((r) => r.manifest.startedAt > after && ['match', 'unchecked'].includes(sourceVerdict(r.manifest.source, expected).kind));
    if (!choice.chosen) {
      const newest = passedOver('').sort((a, b) => a.manifest.startedAt.localeCompare(b.manifest.startedAt)).at(-1);
      if (newest && !choice.refusal) throw signatureRefusal(`there is no signed database backup of the configured source in ${where}; the newest, backup ${newest.manifest.backupId},`, newest.skipped, trust);
    }
    if (choice.refusal) throw permanent(ErrorType.BackupNotFound, `there is no complete database backup of the configured source in ${where}: ${choice.refusal}`);
    if (!choice.chosen) throw permanent(ErrorType.BackupNotFound, `there is no complete database backup in ${where}${damagedNote(skipped)}`);
    if (choice.warning) warnings.push(choice.warning);
    chosen = choice.chosen;
    // The chosen backup's own skipped copies; of the others, the damaged ones (as before) and
    // the refused ones that are newer than it (a planted backup shows here).
    skipped.push(...usable.flatMap((u) => (u === choice.chosen ? u.skipped : u.skipped.filter((s) => s.errorType === ErrorType.ManifestDamaged))));
    for (const r of passedOver(chosen.manifest.startedAt)) {
      skipped.push(...r.skipped.map((s) => ({ ...s, reason: `${s.reason}; newer than ${chosen!.manifest.backupId}, but not taken as latest` })));
    }
    if (signedChoice.chosen) {
      for (const u of usable.filter((u) => u.signature.state === 'unsigned' && u.manifest.startedAt > chosen!.manifest.startedAt && ['match', 'unchecked'].includes(sourceVerdict(u.manifest.source, expected).kind))) {
        warnings.push(`backup ${u.manifest.backupId} is newer than ${chosen.manifest.backupId} but UNSIGNED: not taken as latest although unsigned backups were allowed (name it to restore it)`);
      }
    }
  } else {
    if (!BACKUP_ID.test(reference)) {
      throw permanent(ErrorType.InvalidInput, `"${reference}" is neither a backup id (letters, digits, . _ -), "latest", nor an absolute path to a .backup, .sql.gz or .sql file`);
    }
    const copies = await readManifestCopies(repositories, 'database', reference, trust);
    skipped.push(...copies.skipped);
    if (!copies.manifest) throw noManifest(`backup ${reference}`, skipped, trust, `is not in ${where} (backupctl backups list shows what is)`);
    const verdict = sourceVerdict(copies.manifest.source, expected);
    if (verdict.kind === 'otherDatabase') throw permanent(ErrorType.SourceMismatch, `backup ${reference} ${verdict.reason}: restore it with a configuration whose database.url names that database`);
    const warning = explicitWarning(reference, verdict, expected);
    if (warning) warnings.push(warning);
    chosen = { manifest: copies.manifest, holders: copies.holders, signature: copies.signature! };
  }
  const { manifest, holders, signature } = chosen;
  if (signature.state === 'unsigned') {
    warnings.push(`backup ${manifest.backupId} is UNSIGNED: admitted because unsigned backups were allowed (--allow-unsigned); nothing proves who made it`);
  }
  return {
    kind: 'backup',
    backupId: manifest.backupId,
    takenAt: manifest.source.snapshotTakenAt,
    database: manifest.source.database,
    owner: manifest.source.owner,
    compression: manifest.compression,
    recipientFingerprint: manifest.encryption.recipientFingerprint,
    objects: manifest.objects,
    rowCounts: manifest.rowCounts,
    repositories: holders,
    signature: signature.state === 'signed' ? { state: 'signed', keyId: signature.keyId } : { state: 'unsigned' },
    skipped,
    warnings,
  };
}

/**
 * A backup with no admitted manifest copy: BadSignature when some copy is wrongly signed (never
 * admitted), else UnsignedBackup. Names the backup and every copy's repository and reason.
 */
/**
 * Why a named backup has no usable manifest, from its skipped copies: some repository cannot
 * be read now (StorageUnreachable, retryable: its copy may be the one), every copy refused for
 * its signature (UnsignedBackup, BadSignature), every copy damaged (ManifestDamaged), or none
 * anywhere (BackupNotFound, with `notFound` saying where it was looked for).
 */
export function noManifest(subject: string, skipped: SkippedCopy[], trust: Trust, notFound: string): EngineError {
  if (skipped.some((s) => s.errorType === ErrorType.StorageUnreachable)) {
    return transient(ErrorType.StorageUnreachable, `${subject}: no whole manifest was read, and some repositories cannot be read now: ${skipped.map((s) => s.reason).join('; ')}`);
  }
  if (skipped.some((s) => s.errorType === ErrorType.UnsignedBackup || s.errorType === ErrorType.BadSignature)) return signatureRefusal(subject, skipped, trust);
  if (skipped.length) return permanent(ErrorType.ManifestDamaged, `${subject}: every manifest copy is damaged: ${skipped.map((s) => s.reason).join('; ')}`, { skipped });
  return permanent(ErrorType.BackupNotFound, `${subject} ${notFound}`);
}

export function signatureRefusal(subject: string, skipped: SkippedCopy[], trust: Trust): EngineError {
  const refusals = skipped.filter((s) => s.errorType === ErrorType.UnsignedBackup || s.errorType === ErrorType.BadSignature);
  const bad = refusals.some((s) => s.errorType === ErrorType.BadSignature);
  const copies = refusals.map((s) => s.reason).join('; ');
  if (bad) {
    return permanent(ErrorType.BadSignature, `${subject} has no manifest copy signed by a trusted key, and is refused: ${copies}. A backup of ours signed by another key needs that key's public half in signing.publicKeyFiles`, { skipped });
  }
  const hint = trust.allowUnsigned ? '' : '; if you know where it came from (a backup made before signing), run again with --allow-unsigned';
  return permanent(ErrorType.UnsignedBackup, `${subject} is not signed in any repository, and is refused: ${copies}${hint}`, { skipped });
}

function damagedNote(skipped: SkippedCopy[]): string {
  const damaged = skipped.filter((s) => s.errorType === ErrorType.ManifestDamaged);
  return damaged.length ? `; damaged manifests: ${damaged.map((s) => s.reason).join('; ')}` : '';
}

const FORMATS: { suffix: string; format: FileSource['format']; magic?: Buffer }[] = [
  { suffix: '.sql.gz', format: 'sql.gz', magic: Buffer.from([0x1f, 0x8b]) },
  { suffix: '.backup', format: 'custom', magic: Buffer.from('PGDMP') },
  { suffix: '.dump', format: 'custom', magic: Buffer.from('PGDMP') },
  { suffix: '.sql', format: 'sql' },
];

/**
 * The first lines of `pg_dump` plain output. A cluster dump (pg_dumpall) is refused: it
 * creates roles and databases and connects to them, far beyond the new database.
 */
const PLAIN_DUMP_HEADER = /^(?:\uFEFF)?--[ \t]*\r?\n--[ \t]*PostgreSQL database dump[ \t]*\r?\n/;
const HEAD_BYTES = 64 * 1024;

/** A path for a message: escaped when it holds a control character (a newline must not forge a log line). */
export function shownPath(filePath: string): string {
  return [...filePath].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f) ? JSON.stringify(filePath) : filePath;
}

/**
 * A file made by the old scripts, on this host. Hostile input: the path must be absolute and
 * normalized, no component may be a symbolic link, the file must be a regular file, and its
 * first bytes must be those of its format (custom: `PGDMP`; .sql and .sql.gz: pg_dump's plain
 * header). Errors name the path and the rule, never the file's content.
 */
export async function resolveFile(filePath: string): Promise<FileSource> {
  const bad = (why: string) => permanent(ErrorType.InvalidInput, `restore source ${shownPath(filePath)}: ${why}`);
  if (!path.isAbsolute(filePath)) throw bad('must be an absolute path on the restoring host');
  if (path.normalize(filePath) !== filePath || filePath.endsWith('/')) throw bad('must be a normalized absolute path (no "..", "." or repeated "/")');
  const kind = FORMATS.find((f) => filePath.endsWith(f.suffix));
  if (!kind) throw bad('unknown format; expected a .backup or .dump (pg_dump custom format), .sql.gz or .sql file');
  const unreadable = (err: NodeJS.ErrnoException) => bad(err.code === 'ENOENT' ? 'no such file on the restoring host' : `cannot be read (${err.code})`);
  // Every component, the file included: a link could lead anywhere the worker may read.
  const parts = filePath.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const component = '/' + parts.slice(0, i).join('/');
    const info = await lstat(component).catch((err: NodeJS.ErrnoException) => {
      throw unreadable(err);
    });
    if (info.isSymbolicLink()) throw bad(component === filePath ? 'is a symbolic link; name the file itself' : `passes through the symbolic link ${component}; name the file by its real path`);
    if (i < parts.length && !info.isDirectory()) throw bad(`${component} is not a directory`);
    if (i === parts.length && !info.isFile()) throw bad('is not a regular file');
  }
  // O_NOFOLLOW: a link swapped in since the check is refused; O_NONBLOCK: a FIFO never hangs us.
  const handle = await open(filePath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ELOOP' ? bad('is a symbolic link; name the file itself') : unreadable(err);
  });
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw bad('is not a regular file');
    if (info.size === 0) throw bad('is empty');
    const head = Buffer.alloc(Math.min(HEAD_BYTES, info.size));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const start = head.subarray(0, bytesRead);
    if (kind.magic && !start.subarray(0, kind.magic.length).equals(kind.magic)) {
      throw bad(`does not start like a ${kind.format === 'custom' ? 'pg_dump custom-format archive (PGDMP)' : 'gzip file'}`);
    }
    if (kind.format !== 'custom') {
      let text: string;
      try {
        text = (kind.format === 'sql.gz' ? gunzipSync(start, { finishFlush: zlibConstants.Z_SYNC_FLUSH }) : start).subarray(0, 256).toString('utf8');
      } catch {
        throw bad('is not a readable gzip file');
      }
      if (!PLAIN_DUMP_HEADER.test(text)) throw bad('does not start like pg_dump plain output ("-- PostgreSQL database dump"); only pg_dump files are restored');
    }
    return { kind: 'file', path: filePath, format: kind.format, bytes: info.size };
  } finally {
    await handle.close();
  }
}

/**
 * A plain SQL script for psql's stdin, in psql's restricted mode (`\restrict` with a key of
 * our own, PostgreSQL 15.14+): backslash commands in the file (`\!` runs a shell command,
 * `\connect` reaches other databases) are refused. pg_dump's own `\restrict`/`\unrestrict`
 * lines are blanked, keeping line numbers (line N of the file is line N + 1 of the input).
 */
export function restrictedScript(sql: Readable): Readable {
  const key = randomBytes(24).toString('hex');
  const blank = (line: string) => (/^\\(un)?restrict(\s|$)/.test(line) ? '' : line);
  // Only a short line that starts with a backslash can be one to blank, so at most that much
  // is held back: a row of hundreds of megabytes streams through without being buffered.
  let carry = '';
  let atLineStart = true;
  const filter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const text = carry + chunk.toString('latin1');
      carry = '';
      let out = '';
      let from = 0;
      while (from < text.length) {
        const end = text.indexOf('\n', from);
        if (end === -1) {
          const rest = text.slice(from);
          if (atLineStart && rest.startsWith('\\') && rest.length < 256) carry = rest;
          else {
            out += rest;
            atLineStart = false;
          }
          break;
        }
        const line = text.slice(from, end);
        out += (atLineStart ? blank(line) : line) + '\n';
        atLineStart = true;
        from = end + 1;
      }
      done(null, Buffer.from(out, 'latin1'));
    },
    flush(done) {
      done(null, Buffer.from(blank(carry), 'latin1'));
    },
  });
  const script = new PassThrough();
  script.write(`\\restrict ${key}\n`);
  sql.on('error', (err) => script.destroy(err));
  filter.on('error', (err) => script.destroy(err));
  sql.pipe(filter).pipe(script);
  return script;
}

/** The first minor release of each major version whose psql has `\restrict` (CVE-2025-8714). */
const RESTRICT_SINCE: Record<number, number> = { 13: 22, 14: 19, 15: 14, 16: 10, 17: 6 };

/** Whether psql of this `psql --version` output can refuse a script's backslash commands. */
export function psqlRestricts(versionOutput: string): boolean {
  const match = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(versionOutput);
  if (!match) return false;
  const major = Number(match[1]);
  const minor = Number(match[2] ?? 0);
  if (major >= 18) return true;
  return RESTRICT_SINCE[major] !== undefined && minor >= RESTRICT_SINCE[major];
}

/** Refuses to run a plain SQL file with a psql that could not refuse its backslash commands. */
export async function assertRestrictingPsql(psql: string): Promise<void> {
  const { stdout } = await runCommand(psql, ['--version']);
  if (!psqlRestricts(stdout)) {
    throw permanent(
      ErrorType.RestoreFailed,
      `${stdout.trim()} cannot refuse a file's backslash commands (\\restrict needs the PostgreSQL client tools 13.22, 14.19, 15.14, 16.10, 17.6 or newer): update them to restore plain SQL files`,
    );
  }
}

/**
 * Loads a seed-made file into the target database: a custom-format archive through pg_restore,
 * a SQL script (plain or gzipped) through psql restricted to plain SQL, in one transaction.
 * The file is checked again just before it is read (it may have been swapped since it was
 * resolved). Failures come out as fileRestoreFailure describes them.
 */
export async function loadFile(source: FileSource, target: DatabaseTarget, binDir: string | undefined, jobs: number, signal: AbortSignal): Promise<void> {
  await resolveFile(source.path);
  try {
    if (source.format === 'custom') {
      await spawnRestore(target, binDir, source.path, jobs, signal);
      return;
    }
    await assertRestrictingPsql(toolPath(binDir, 'psql'));
    const file = (await open(source.path, constants.O_RDONLY | constants.O_NOFOLLOW)).createReadStream();
    const psql = spawnSqlScript(target, binDir, undefined, signal);
    let sql: Readable = file;
    let gzipError: Error | undefined;
    if (source.format === 'sql.gz') {
      // A truncated .sql.gz must not end as a clean EOF: psql would commit what it read.
      // A gzip error kills psql, so its single transaction rolls back.
      const gunzip = createGunzip();
      gunzip.on('error', (err) => {
        gzipError = err;
        psql.kill();
      });
      sql = file.pipe(gunzip);
    }
    const feed = pipeline(restrictedScript(sql), psql.stdin!).catch(() => undefined);
    const [applied] = await Promise.allSettled([psql, feed]);
    file.destroy();
    if (gzipError) throw permanent(ErrorType.InvalidInput, `${source.path} is not a whole gzip file: ${gzipError.message}; nothing was committed`);
    if (applied.status === 'rejected') throw applied.reason;
  } catch (err) {
    throw fileRestoreFailure(err, source.path, target.database, source.format === 'custom' ? 0 : 1);
  }
}

/**
 * A failed psql or pg_restore on a seed file, for messages and histories: the error kind and
 * line number only. Quoted values, statement text (LINE, Command was, DETAIL, CONTEXT, QUERY)
 * and backslash commands are left out: they are the file's content, which may be secret.
 */
export function fileRestoreFailure(err: unknown, filePath: string, database: string, lineOffset = 0): EngineError {
  if (isEngineError(err)) return err;
  const classified = classifyDatabaseError(err, 'restore');
  const raw = err && typeof err === 'object' && typeof (err as { stderr?: unknown }).stderr === 'string' ? (err as { stderr: string }).stderr : '';
  const exitCode = (err as { exitCode?: number })?.exitCode;
  const summary = summarizeToolErrors(raw, lineOffset) || `exit code ${exitCode ?? 'unknown'}`;
  const message = `restoring ${filePath} into ${database}: ${summary} (the file's content is not quoted)`;
  if (classified.type === ErrorType.DatabaseUnreachable) return transient(ErrorType.DatabaseUnreachable, message);
  if (classified.type === ErrorType.DiskFull) return permanent(ErrorType.DiskFull, message);
  return permanent(ErrorType.RestoreFailed, message);
}

/** psql's and pg_restore's error lines, kind and line number only; `lineOffset` lines were added before the file. */
export function summarizeToolErrors(stderr: string, lineOffset = 0): string {
  const kept: string[] = [];
  for (const rawLine of stderr.split('\n')) {
    const line = rawLine
      .trim()
      .replace(/"(?:[^"]|"")*"?/g, '"…"')
      .replace(/'(?:[^']|'')*'?/g, "'…'")
      .replace(/\\[^\s"']+/g, '\\…');
    if (/^(LINE \d+|DETAIL|CONTEXT|HINT|QUERY|STATEMENT|Command was)\b/i.test(line.replace(/^psql:.*?:\d+:\s*/, ''))) continue;
    const error = /\b(ERROR|FATAL|PANIC|error):\s+(.*)$/.exec(line);
    if (!error) continue;
    const at = /^psql:.*?:(\d+):/.exec(line);
    kept.push(`${at ? `line ${Number(at[1]) - lineOffset}: ` : ''}${error[1].toUpperCase()}: ${error[2].slice(0, 160)}`);
    if (kept.length === 3) break;
  }
  return kept.join(' | ');
}
