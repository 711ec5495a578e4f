// The monitor's integrity sample on real components (test/fixtures/monitorStack.ts: Temporal,
// PostgreSQL, SeaweedFS, a filesystem NAS, aiosmtpd, webhooks): real backups, then bytes
// flipped in one stored object on the NAS and one in S3, behind the backup tool's back. The
// monitor looks every 2 s with a period of one look (N = 1: every object at every look), so
// each corruption must be told exactly once per channel, and exactly once resolved when the
// good bytes are back. Then, with the period of a day (N = 96 slots of 15 minutes), the sample
// of each slot's look is taken on the same real repositories: the corrupt object is found at
// its slot's look and at no other.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type { Config } from '../common/config.js';
import type { IntegrityCursor } from '../common/monitorTypes.js';
import { listManifests } from '../engine/catalog.js';
import { sampleIntegrity, slotCount, slotOf } from '../engine/integritySample.js';
import { openRepositories } from '../engine/storage/index.js';
import type { Repository } from '../engine/storage/repository.js';
import { startMonitorStack, type MonitorStack } from './fixtures/monitorStack.js';
import { freePort } from './fixtures/ports.js';

const HOST = 'integ';
const LOOK_SECONDS = 2;

let stack: MonitorStack;
let repositories: Repository[];
let statusFile: string;
let dumpKey: string;
let globalsKey: string;

let metricsPort: number;

beforeAll(async () => {
  metricsPort = await freePort();
  stack = await startMonitorStack({
    host: HOST,
    workflowId: 'monitor-integrity-test',
    intervalSeconds: LOOK_SECONDS,
    failedRunsSeconds: 1,
    configure: (raw) => {
      statusFile = path.join(raw.repositories.local.path, '..', 'status.json');
      // One slot: every object at every look.
      raw.monitor = { ...raw.monitor, statusFile, integrity: { periodDays: LOOK_SECONDS / 86_400 } };
      raw.metrics = { port: metricsPort };
    },
  });
  repositories = openRepositories(stack.config);
  await stack.backup('integrity-backup-1');
  const [manifest] = await listManifests(repositories.find((r) => r.name === 'nas')!, 'database');
  dumpKey = manifest.objects.find((o) => o.role === 'dump')!.key;
  globalsKey = manifest.objects.find((o) => o.role === 'globals')!.key;
  // The monitor has looked at the backup whole.
  await stack.moreLooks(2);
}, 180_000);

afterAll(async () => {
  await stack?.stop();
});

const repository = (name: string) => repositories.find((r) => r.name === name)!;
const nasFile = (key: string) => path.join(stack.config.repositories.nas.type === 'filesystem' ? stack.config.repositories.nas.path : '', key);
const flipped = (bytes: Buffer) => {
  const copy = Buffer.from(bytes);
  copy[Math.floor(copy.length / 2)] ^= 0x5a;
  return copy;
};
const openIntegrityKeys = async () => Object.keys((await stack.state()).open).filter((k) => k.startsWith('integrity.'));

test('whole backups: the sample reads every object at every look, finds nothing, and says so in the status file', async () => {
  expect(await openIntegrityKeys()).toEqual([]);
  expect((await stack.told()).filter((t) => t.key.startsWith('integrity.'))).toEqual([]);
  const status = JSON.parse(readFileSync(statusFile, 'utf8'));
  // CommonJS modules: their export is also their `default` property.
  const Ajv = (await import('ajv/dist/2020.js')).default.default;
  const addFormats = (await import('ajv-formats')).default.default;
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  const validate = ajv.compile(JSON.parse(readFileSync(path.resolve('docs/status.schema.json'), 'utf8')));
  expect(validate(status) ? [] : validate.errors).toEqual([]);
  // Two objects (dump, globals) in each of three repositories.
  expect(status.integrity).toMatchObject({ slots: 1, dueObjects: 6, checkedObjects: 6, skippedObjects: 0, unjudgedObjects: 0, unsampled: [], lastCorruption: null });
  expect(status.integrity.checkedBytes).toBeGreaterThan(0);
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  expect(metrics).toMatch(/^backupctl_integrity_objects\{state="read"\} 6$/m);
  expect(metrics).toMatch(/^backupctl_integrity_read_bytes [1-9]\d*$/m);
  expect(metrics).toMatch(/^backupctl_integrity_last_corruption_timestamp_seconds 0$/m); // never
});

test('bytes flipped in the dump on the NAS: integrity.corrupt opened once per channel; the good bytes back: resolved once', async () => {
  const key = `integrity.corrupt:nas:${dumpKey}`;
  const good = readFileSync(nasFile(dumpKey));
  writeFileSync(nasFile(dumpKey), flipped(good));
  try {
    await stack.until('the corruption told', () => stack.everywhere(key, 'opened'));
    await stack.moreLooks(3);
    expect(await stack.count(key, 'opened')).toEqual({ email: 1, ops: 1, slack: 1 });
    expect(await openIntegrityKeys()).toEqual([key]);
    const alert = JSON.parse((await stack.told()).find((t) => t.channel === 'ops' && t.key === key)!.raw);
    expect(alert).toMatchObject({ severity: 'critical', event: 'opened' });
    expect(alert.title).toContain('CORRUPT');
    expect(JSON.parse(readFileSync(statusFile, 'utf8')).integrity.lastCorruption).toMatchObject({ key });
    expect(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()).toMatch(/^backupctl_integrity_last_corruption_timestamp_seconds [1-9][\d.e+]*$/m);
  } finally {
    writeFileSync(nasFile(dumpKey), good);
  }
  await stack.until('the corruption resolved', () => stack.everywhere(key, 'resolved'));
  await stack.moreLooks(3);
  expect(await stack.count(key, 'opened')).toEqual({ email: 1, ops: 1, slack: 1 });
  expect(await stack.count(key, 'resolved')).toEqual({ email: 1, ops: 1, slack: 1 });
  expect(await openIntegrityKeys()).toEqual([]);
}, 90_000);

test('an object in S3 overwritten with flipped bytes: told once, resolved once when put back', async () => {
  const s3 = repository('s3');
  const key = `integrity.corrupt:s3:${globalsKey}`;
  const good = await buffer(await s3.get(globalsKey));
  await s3.put(globalsKey, Readable.from([flipped(good)]), { contentLength: good.length });
  try {
    await stack.until('the S3 corruption told', () => stack.everywhere(key, 'opened'));
    await stack.moreLooks(3);
    expect(await stack.count(key, 'opened')).toEqual({ email: 1, ops: 1, slack: 1 });
    expect(await openIntegrityKeys()).toEqual([key]);
  } finally {
    await s3.put(globalsKey, Readable.from([good]), { contentLength: good.length });
  }
  await stack.until('the S3 corruption resolved', () => stack.everywhere(key, 'resolved'));
  await stack.moreLooks(3);
  expect(await stack.count(key, 'opened')).toEqual({ email: 1, ops: 1, slack: 1 });
  expect(await stack.count(key, 'resolved')).toEqual({ email: 1, ops: 1, slack: 1 });
  // Nothing else of the kind was ever told.
  expect([...new Set((await stack.told()).filter((t) => t.key.startsWith('integrity.')).map((t) => t.key))].sort()).toEqual([`integrity.corrupt:nas:${dumpKey}`, key].sort());
}, 90_000);

test('a period of a day (96 slots): over one period of looks the corrupt NAS object is found at its slot\'s look only, and every object is read once', async () => {
  await stack.handle.terminate('the sample is driven by hand from here');
  const interval = 900;
  const config: Config = { ...stack.config, monitor: { ...stack.config.monitor, integrity: { periodDays: 1, maxBytesPerLook: 1024 ** 3 } } };
  const n = slotCount(1, interval);
  expect(n).toBe(96);
  const good = readFileSync(nasFile(dumpKey));
  writeFileSync(nasFile(dumpKey), flipped(good));
  try {
    const slot = slotOf('nas', dumpKey, n);
    const width = interval * 1000;
    const base = Math.floor(Date.now() / width / n) * n * width;
    let cursor: IntegrityCursor | undefined;
    const foundAt: number[] = [];
    let read = 0;
    // Every slot once, in order, starting just after the corrupt object's.
    for (let i = 1; i <= n; i++) {
      const s = (slot + i) % n;
      const result = (await sampleIntegrity(config, repositories, { now: base + (n + slot + i) * width + 1000, intervalSeconds: interval, cursor, reader: { signal: new AbortController().signal, idleMs: 30_000, onBytes: () => undefined } }))!;
      expect(result.summary.slotsTaken).toBe(1);
      read += result.summary.checkedObjects;
      if (result.problems.some((p) => p.key === `integrity.corrupt:nas:${dumpKey}`)) foundAt.push(s);
      cursor = result.cursor;
    }
    expect(foundAt).toEqual([slot]);
    expect(read).toBe(6);
  } finally {
    writeFileSync(nasFile(dumpKey), good);
  }
}, 120_000);
