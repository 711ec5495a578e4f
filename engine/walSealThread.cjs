/* global require, module, setTimeout, clearTimeout, Buffer */
// One WAL file sealed in a worker thread (engine/walSealer.ts, ThreadSealerPool): read whole,
// checksummed and compressed in this thread (zstd through libzstd, gzip through zlib), then
// encrypted by gpg, which writes the sealed file itself; that file is read back and checksummed.
// A 16 MiB segment this way costs about half the CPU of the bash sealer's four processes (zstd's
// command line alone took 30-40 ms more per segment than the library at the same level).
//
// The answer is the bash sealer's (walSealer.ts): `ok <plain sha256> <sealed sha256>`, or
// `error <stage> <message>` (stage: read, compress, encrypt, sealed, ended), so both are read alike.
//
// CommonJS on purpose: a worker thread loads this file as it is, from the sources (tsx, jest)
// and from dist/ alike; the build copies it there.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS by design, see above
const { open } = require('node:fs/promises');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { constants: fsConstants } = require('node:fs');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { createHash } = require('node:crypto');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { spawn } = require('node:child_process');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { constants: osConstants } = require('node:os');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { gzipSync } = require('node:zlib');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const zstd = require('zstd-napi/binding');

const oneLine = (text) => String(text).replace(/\n/g, ' | ').slice(0, 2000);

// One file at a time per thread: its buffers are kept for the next file, not allocated anew.
// Memory is what forking gpg costs here (each spawn copies this process's page tables: 14 ms at
// 330 MiB, 2 ms at 50), and a 16 MiB buffer a segment left to the garbage collector grew it so.
let input = Buffer.alloc(0);
let packedBuffer = Buffer.alloc(0);
const readBuffer = Buffer.allocUnsafe(1024 * 1024);
let cctx;

/** The file's bytes, read whole into this thread's input buffer (at most largestFile of them). */
async function readWhole(file, largestFile) {
  // Non-blocking: a FIFO put in the file's place after its checks would hold the open, and with it
  // one of the process's four libuv threads, for ever (aborting the task ends this thread, not
  // that open). A regular file reads alike either way.
  const handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`${file} is not a regular file`);
    const { size } = info;
    // Grown since its size sent it here: the buffers would keep that size as long as the thread lives.
    if (size > largestFile) throw new Error(`${file} is ${size} bytes, more than a sealing thread takes (${largestFile}); sealed on the next try by a sealer that streams it`);
    if (input.length < size) input = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await handle.read(input, at, size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return input.subarray(0, at);
  } finally {
    await handle.close();
  }
}

function compress(plain, algorithm, level) {
  if (algorithm === 'gzip') return gzipSync(plain, { level: Math.min(level, 9) });
  cctx ??= new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.compressionLevel, level);
  const bound = zstd.compressBound(plain.length);
  if (packedBuffer.length < bound) packedBuffer = Buffer.allocUnsafe(bound);
  return packedBuffer.subarray(0, cctx.compress2(packedBuffer, plain));
}

/**
 * gpg reading `input` on stdin and writing to the open file `fd`: what it said, and how it ended.
 * Its pid is kept in `childPid` (shared with the pool) while it runs: a thread ended by the pool
 * (closed, or its time limit) runs no code of its own, and its gpg would run on, or stay stopped.
 */
function encrypt(argv, input, fd, withinMs, childPid) {
  return new Promise((resolve) => {
    let said = '';
    let killedByWatchdog = false;
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', fd, 'pipe'] });
    if (childPid && child.pid) Atomics.store(childPid, 0, child.pid);
    // Reaped: the pid may be another process's from now on.
    child.on('exit', () => childPid && Atomics.store(childPid, 0, 0));
    // A gpg that never ends (stopped by SIGSTOP, a frozen disk): killed, and the file fails, retryably.
    const watchdog = setTimeout(() => {
      killedByWatchdog = true;
      child.kill('SIGKILL');
    }, withinMs);
    child.stderr.on('data', (chunk) => {
      if (said.length < 4000) said += chunk.toString('utf8');
    });
    // A gpg that died before reading all of it: its end says why. One that ended well without
    // reading all of it wrote the sealed file of a part: refused below.
    let written = false;
    child.stdin.on('error', () => undefined);
    child.stdin.on('finish', () => {
      written = true;
    });
    // Not started (not on PATH, a fork refused): nothing of the key; said so, and retried.
    child.on('error', (err) => {
      clearTimeout(watchdog);
      resolve({ status: 127, said: err.message, notStarted: true });
    });
    child.on('close', (code, signal) => {
      clearTimeout(watchdog);
      const status = code ?? 128 + (osConstants.signals[signal] ?? 0);
      resolve({ status, said: said.trim(), killedByWatchdog, unread: !written });
    });
    child.stdin.end(input);
  });
}

/** The file read whole, its checksum, and it compressed (into this thread's buffer). */
async function readAndPack(task) {
  let plain;
  try {
    plain = await readWhole(task.file, task.largestFile ?? Infinity);
  } catch (err) {
    return { error: `error read ${oneLine(err.message)}` };
  }
  const plainSha256 = createHash('sha256').update(plain).digest('hex');
  try {
    return { plainSha256, packed: compress(plain, task.algorithm, task.level) };
  } catch (err) {
    return { error: `error compress ${task.algorithm} failed: ${oneLine(err.message)}` };
  }
}

/** The sha256 of a file, read a MiB at a time into this thread's buffer. */
async function fileSha256(file) {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    for (;;) {
      const { bytesRead } = await handle.read(readBuffer, 0, readBuffer.length, null);
      if (bytesRead === 0) break;
      hash.update(readBuffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/**
 * task: { file, out, algorithm: 'zstd' | 'gzip', level, encrypt: gpg's argv, withinMs, largestFile, childPid?: Int32Array on a SharedArrayBuffer }.
 * `out` is created here, exclusively (never a file that exists, nor through a link planted there).
 */
module.exports = async function sealWalFile(task) {
  const read = await readAndPack(task);
  if (read.error) return read.error;
  let handle;
  try {
    handle = await open(task.out, 'wx', 0o600);
  } catch (err) {
    return `error sealed ${oneLine(err.message)}`;
  }
  let ended;
  try {
    ended = await encrypt(task.encrypt, read.packed, handle.fd, task.withinMs, task.childPid);
  } finally {
    await handle.close();
  }
  if (ended.killedByWatchdog) return `error ended gpg gave no answer within ${task.withinMs / 1000} s and was killed`;
  if (ended.notStarted) return `error ended could not start ${task.encrypt[0]}: ${oneLine(ended.said)}`;
  if (ended.status !== 0) return `error encrypt gpg exited with ${ended.status} ${oneLine(ended.said)}`;
  if (ended.unread) return `error ended gpg ended before it read all of its input (${read.packed.length} bytes) ${oneLine(ended.said)}`;
  try {
    return `ok ${read.plainSha256} ${await fileSha256(task.out)}`;
  } catch (err) {
    return `error sealed ${oneLine(err.message)}`;
  }
};
