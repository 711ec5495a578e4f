// Found by the chaos suite (verification + freeze): a worker frozen in the middle of a copy's
// read-back woke with its idle timer overdue; the timer aborted the read while the repository
// was still opening the file, and the stream it then returned, opened with an aborted signal,
// emitted 'error' before anybody listened: the worker process crashed (every activity it ran
// went with it). A repository's read stream now never crashes the process that way; the
// caller's pipeline still gets the error. Run in a process of its own, as a crash would end it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-abortedread-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const script = (repositoryModule: string) => `
import { FilesystemRepository } from ${JSON.stringify(repositoryModule)};
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
const repository = new FilesystemRepository('nas', ${JSON.stringify(dir)});
const aborted = new AbortController();
aborted.abort(new Error('no bytes for 9 s'));
// Opened with an aborted signal, and nobody reads it yet (the caller gave the read up).
const given = await repository.get('object', { signal: aborted.signal });
await new Promise((r) => setTimeout(r, 300));
// A caller that does read it still gets the error.
const seen = await pipeline(given, new Writable({ write: (_c, _e, done) => done() })).then(() => 'no error', (err) => err.message);
console.log(seen);
`;

test("a read stream aborted before its caller listens does not crash the process, and its reader still sees the error", async () => {
  writeFileSync(path.join(dir, 'object'), 'stored bytes');
  const run = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(path.resolve('engine/storage/filesystem.ts'))], { reject: false });
  expect({ exitCode: run.exitCode, stdout: run.stdout.trim(), crash: /Unhandled|AbortError/.test(run.stderr) ? run.stderr.split('\n').slice(0, 3).join(' | ') : '' }).toEqual({
    exitCode: 0,
    stdout: 'The operation was aborted',
    crash: '',
  });
}, 60_000);
