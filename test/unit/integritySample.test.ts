// The monitor's integrity sample (engine/integritySample.ts): the slot arithmetic that reads
// every object once per period with no list kept, and the sample itself on a real filesystem
// repository: a flipped byte, a missing object, objects found bad re-read at every look, the
// byte budget, and manifests that do not vouch.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { validateConfig, type Config } from '../../common/config.js';
import type { IntegrityCursor } from '../../common/monitorTypes.js';
import type { BackupManifest } from '../../common/types.js';
import { manifestKey, writeManifest } from '../../engine/catalog.js';
import { dueSlots, sampleIntegrity, slotCount, slotOf } from '../../engine/integritySample.js';
import { FilesystemRepository } from '../../engine/storage/filesystem.js';

const INTERVAL = 900;
const WIDTH = INTERVAL * 1000;
/** Some time well after the epoch, at the start of a slot window. */
const T0 = Math.floor(Date.parse('2026-11-01T00:00:00Z') / WIDTH) * WIDTH;
const keys = Array.from({ length: 2000 }, (_, i) => `database/2026110${i % 9}_000000-${i.toString(16).padStart(8, '0')}/dump.pgcustom.zst.gpg`);

describe('slot arithmetic', () => {
  test('N is the period over the interval, at least one', () => {
    expect(slotCount(30, 900)).toBe(2880);
    expect(slotCount(1, 3600)).toBe(24);
    expect(slotCount(0.00001, 900)).toBe(1);
  });

  test('looks on time: over N looks every object is due exactly once, spread over the slots', () => {
    const n = 48;
    const counts = new Map<string, number>();
    const perLook: number[] = [];
    let previous: number | undefined;
    for (let look = 0; look < n; look++) {
      const now = T0 + look * WIDTH + 1234;
      const due = dueSlots(now, previous, INTERVAL, n);
      expect(due.size).toBe(1);
      const taken = keys.filter((k) => due.has(slotOf('nas', k, n)));
      taken.forEach((k) => counts.set(k, (counts.get(k) ?? 0) + 1));
      perLook.push(taken.length);
      previous = now;
    }
    expect(keys.filter((k) => counts.get(k) !== 1)).toEqual([]);
    // Spread: no look takes more than three times its share.
    expect(Math.max(...perLook)).toBeLessThan((3 * keys.length) / n);
  });

  test('looks late (a minute and the look\'s own time past each interval): no slot skipped nor taken twice', () => {
    const n = 96;
    const taken = new Map<number, number>();
    let previous: number | undefined = T0;
    let now = T0;
    let skippedByOwnSlotOnly = 0;
    while (now < T0 + 3 * n * WIDTH) {
      const lastSlot = Math.floor(now / WIDTH);
      now += WIDTH + 60_000 + ((now / 1000) % 17) * 1000;
      const due = dueSlots(now, previous, INTERVAL, n);
      for (const s of due) taken.set(s, (taken.get(s) ?? 0) + 1);
      if (Math.floor(now / WIDTH) - lastSlot > 1) skippedByOwnSlotOnly++;
      previous = now;
    }
    // Every slot of the span (T0, now] once per time the span passes it.
    const span = Math.floor(now / WIDTH) - Math.floor(T0 / WIDTH);
    const expected = new Map<number, number>();
    for (let k = Math.floor(T0 / WIDTH) + 1; k <= Math.floor(now / WIDTH); k++) expected.set(k % n, (expected.get(k % n) ?? 0) + 1);
    expect(new Map([...taken].sort((a, b) => a[0] - b[0]))).toEqual(new Map([...expected].sort((a, b) => a[0] - b[0])));
    expect([...taken.values()].reduce((a, b) => a + b, 0)).toBe(span);
    // The case the range exists for: a look taking its own slot only would have missed these.
    expect(skippedByOwnSlotOnly).toBeGreaterThan(0);
  });

  test('after a long outage a look takes every slot once, not more; a look in the same slot as the previous takes none', () => {
    expect(dueSlots(T0 + 1000 * WIDTH, T0, INTERVAL, 48).size).toBe(48);
    expect(dueSlots(T0 + 5000, T0 + 1000, INTERVAL, 48).size).toBe(0);
    // A previous look in the future (a clock set back): the look's own slot.
    expect([...dueSlots(T0, T0 + 10 * WIDTH, INTERVAL, 48)]).toEqual([(T0 / WIDTH) % 48]);
  });

  test('an object written later is due within one period of looks', () => {
    const n = 48;
    const late = 'database/20261130_000000-0badcafe/dump.pgcustom.zst.gpg';
    let previous: number | undefined = T0 + 17 * WIDTH; // written after this look
    const dueAt: number[] = [];
    for (let look = 18; look < 18 + n; look++) {
      const now = T0 + look * WIDTH;
      if (dueSlots(now, previous, INTERVAL, n).has(slotOf('s3', late, n))) dueAt.push(look);
      previous = now;
    }
    expect(dueAt).toHaveLength(1);
  });

  test('the slot depends on the repository too: copies of one object are not all read at the same look', () => {
    const n = 2880;
    const same = keys.filter((k) => slotOf('nas', k, n) === slotOf('s3', k, n));
    expect(same.length).toBeLessThan(keys.length / 100);
  });
});

describe('the sample on a filesystem repository', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'integrity-sample-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function configOf(integrity: { periodDays: number; maxBytesPerLook?: number }, signingRequired = false): Config {
    return validateConfig(
      {
        host: 'db1',
        database: { url: 'postgres://backup@127.0.0.1:5432/app' },
        repositories: { nas: { type: 'filesystem', path: path.join(dir, 'nas') } },
        encryption: { publicKeyFile: path.join(dir, 'unused.asc') },
        signing: { required: signingRequired },
        monitor: { intervalSeconds: INTERVAL, integrity },
      },
      'integrity test config',
    );
  }

  /** A backup as the pipeline leaves it: two objects with their true sizes and sha256, then the manifest. */
  async function backup(nas: FilesystemRepository, backupId: string): Promise<string[]> {
    const objects = [];
    for (const [role, name] of [
      ['globals', 'globals.sql'],
      ['dump', 'dump.pgcustom'],
    ] as const) {
      const key = `database/${backupId}/${name}.zst.gpg`;
      const body = Buffer.from(`${role} of ${backupId} `.repeat(50));
      writeFileSync(path.join(nas.root, key), body, { flag: 'w' });
      objects.push({ role, key, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex'), plainBytes: body.length });
    }
    const startedAt = `${backupId.slice(0, 4)}-${backupId.slice(4, 6)}-${backupId.slice(6, 8)}T00:00:00.000Z`;
    await writeManifest(nas, {
      formatVersion: 1,
      component: 'database',
      backupId,
      workflowId: backupId,
      runId: 'run',
      startedAt,
      finishedAt: startedAt,
      source: { database: 'app', snapshotTakenAt: startedAt },
      compression: 'zstd',
      encryption: { type: 'openpgp', recipientFingerprint: 'F'.repeat(40) },
      objects,
      rowCounts: {},
      copies: [],
    } as unknown as BackupManifest);
    return objects.map((o) => o.key);
  }

  async function nasWith(ids: string[]): Promise<{ nas: FilesystemRepository; keys: string[] }> {
    const nas = new FilesystemRepository('nas', path.join(dir, 'nas'));
    const all: string[] = [];
    for (const id of ids) {
      mkdirSync(path.join(nas.root, 'database', id), { recursive: true });
      all.push(...(await backup(nas, id)));
    }
    return { nas, keys: all };
  }

  const reader = () => ({ signal: new AbortController().signal, idleMs: 10_000, onBytes: () => undefined });
  /** A time whose look takes slot `slot` of `n` (and no other, given the previous look just before). */
  const timeOfSlot = (slot: number, n: number, round = 1000) => (round * n + slot) * WIDTH + 5_000;
  const look = (config: Config, nas: FilesystemRepository, now: number, cursor?: IntegrityCursor) => sampleIntegrity(config, [nas], { now, intervalSeconds: INTERVAL, cursor, reader: reader() });
  const flip = (nas: FilesystemRepository, key: string) => {
    const file = path.join(nas.root, key);
    const bytes = readFileSync(file);
    bytes[7] ^= 0xff;
    writeFileSync(file, bytes);
  };

  test('N = 1: every look reads every object; a flipped byte is integrity.corrupt, with both hashes\' prefixes; put back, it is gone', async () => {
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa', '20261102_000000-bbbbbbbb']);
    const config = configOf({ periodDays: 0.0001 });
    const clean = (await look(config, nas, T0))!;
    expect(clean.summary).toMatchObject({ slots: 1, dueObjects: 4, checkedObjects: 4, skippedObjects: 0, unjudgedObjects: 0 });
    expect(clean.problems).toEqual([]);

    const good = readFileSync(path.join(nas.root, keys[1]));
    flip(nas, keys[1]);
    const bad = (await look(config, nas, T0 + WIDTH, clean.cursor))!;
    expect(bad.problems.map((p) => p.key)).toEqual([`integrity.corrupt:nas:${keys[1]}`]);
    const found = createHash('sha256').update(readFileSync(path.join(nas.root, keys[1]))).digest('hex');
    expect(bad.problems[0].message).toContain(`sha256 ${found.slice(0, 12)}`);
    expect(bad.problems[0].message).toContain(`sha256 ${createHash('sha256').update(good).digest('hex').slice(0, 12)}`);
    expect(bad.problems[0].message).toContain('backup 20261101_000000-aaaaaaaa');
    expect(bad.cursor.recheck).toEqual([`integrity.corrupt:nas:${keys[1]}`]);
    expect(bad.summary.lastCorruption).toEqual({ key: `integrity.corrupt:nas:${keys[1]}`, foundAt: new Date(T0 + WIDTH).toISOString() });

    writeFileSync(path.join(nas.root, keys[1]), good);
    const fixed = (await look(config, nas, T0 + 2 * WIDTH, bad.cursor))!;
    expect(fixed.problems).toEqual([]);
    expect(fixed.cursor.recheck).toEqual([]);
    // The last corruption found is still told (the status file's field).
    expect(fixed.cursor.lastCorruption).toEqual(bad.summary.lastCorruption);
  });

  test('large N: the flipped object is found at its slot\'s look only; then it is re-read at every look until put back', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `202611${String(i + 1).padStart(2, '0')}_000000-${String(i).repeat(8)}`);
    const { nas, keys } = await nasWith(ids);
    const config = configOf({ periodDays: 1 }); // N = 96
    const n = slotCount(1, INTERVAL);
    const target = keys[5];
    const slot = slotOf('nas', target, n);
    const good = readFileSync(path.join(nas.root, target));
    flip(nas, target);
    const found: number[] = [];
    let cursor: IntegrityCursor | undefined;
    let readTotal = 0;
    // One period of looks, on time, starting just after the target's slot: it is found at the last.
    for (let i = 1; i <= n; i++) {
      const result = (await look(config, nas, timeOfSlot((slot + i) % n, n, 1000 + Math.floor((slot + i) / n)), cursor))!;
      readTotal += result.summary.checkedObjects;
      if (result.problems.some((p) => p.key === `integrity.corrupt:nas:${target}`)) found.push((slot + i) % n);
      cursor = result.cursor;
      if (found.length) break;
    }
    expect(found).toEqual([slot]);
    // Every object of the repository once over the period (the target's look is the last).
    expect(readTotal).toBe(keys.length);

    // Looks at other slots: still there (re-read), told as the same problem.
    for (let i = 1; i <= 3; i++) {
      const result = (await look(config, nas, timeOfSlot((slot + i) % n, n, 2000), cursor))!;
      expect(result.problems.map((p) => p.key)).toEqual([`integrity.corrupt:nas:${target}`]);
      cursor = result.cursor;
    }
    // Without the cursor the next look (another slot) would not see it: the cursor is what keeps it open.
    expect((await look(config, nas, timeOfSlot((slot + 4) % n, n, 3000)))!.problems).toEqual([]);

    writeFileSync(path.join(nas.root, target), good);
    const fixed = (await look(config, nas, timeOfSlot((slot + 4) % n, n, 2000), cursor))!;
    expect(fixed.problems).toEqual([]);
    expect(fixed.cursor.recheck).toEqual([]);
  });

  test('an object listed in a manifest and absent is integrity.missing; with its manifest gone too (retention), nothing', async () => {
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa']);
    const config = configOf({ periodDays: 0.0001 });
    unlinkSync(path.join(nas.root, keys[0]));
    const result = (await look(config, nas, T0))!;
    expect(result.problems.map((p) => p.key)).toEqual([`integrity.missing:nas:${keys[0]}`]);
    expect(result.problems[0].message).toContain('MISSING');
    unlinkSync(path.join(nas.root, manifestKey('database', '20261101_000000-aaaaaaaa')));
    expect((await look(config, nas, T0 + WIDTH, result.cursor))!.problems).toEqual([]);
  });

  test('large N: a look reads only the manifests that may name an object due; an object gone is found at its manifest\'s slot', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `202611${String(i + 1).padStart(2, '0')}_000000-${String(i).repeat(8)}`);
    const { nas, keys } = await nasWith(ids);
    const config = configOf({ periodDays: 1 });
    const n = slotCount(1, INTERVAL);
    let manifestReads = 0;
    const get = nas.get.bind(nas);
    nas.get = async (key, options) => {
      if (key.endsWith('/manifest.json')) manifestReads++;
      return get(key, options);
    };
    const gone = keys[6];
    unlinkSync(path.join(nas.root, gone));
    const foundAt: number[] = [];
    for (let s = 0; s < n; s++) {
      const result = (await look(config, nas, timeOfSlot(s, n)))!;
      if (result.problems.some((p) => p.key === `integrity.missing:nas:${gone}`)) foundAt.push(s);
    }
    // Each manifest at most at the looks of its own slot and its objects' (3 a backup), not at all 96.
    expect(manifestReads).toBeGreaterThanOrEqual(ids.length);
    expect(manifestReads).toBeLessThanOrEqual(3 * ids.length);
    const manifestSlot = slotOf('nas', manifestKey('database', ids[3]), n);
    expect(foundAt).toContain(manifestSlot);
    expect(foundAt.every((s) => s === manifestSlot || s === slotOf('nas', gone, n))).toBe(true);
  });

  test('the byte budget: what it cuts is not read and is told (integrity.budget); an object found bad and not re-read stays open', async () => {
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa', '20261102_000000-bbbbbbbb']);
    const size = readFileSync(path.join(nas.root, keys[0])).length;
    flip(nas, keys[3]);
    const first = (await look(configOf({ periodDays: 0.0001 }), nas, T0))!;
    expect(first.problems.map((p) => p.key)).toEqual([`integrity.corrupt:nas:${keys[3]}`]);
    // Room for one object: the one found bad is read first.
    const tight = configOf({ periodDays: 0.0001, maxBytesPerLook: size + 10 });
    const cut = (await look(tight, nas, T0 + WIDTH, first.cursor))!;
    expect(cut.summary).toMatchObject({ dueObjects: 4, checkedObjects: 1, skippedObjects: 3 });
    expect(cut.problems.map((p) => p.key)).toEqual([`integrity.corrupt:nas:${keys[3]}`, 'integrity.budget']);
    expect(cut.problems[1].message).toContain('3 objects');
    // No room at all: the bad one is not read, and its problem is carried, not resolved.
    const none = (await look(configOf({ periodDays: 0.0001, maxBytesPerLook: 1 }), nas, T0 + 2 * WIDTH, cut.cursor))!;
    expect(none.summary.checkedObjects).toBe(0);
    expect(none.problems.map((p) => p.key)).toEqual([`integrity.corrupt:nas:${keys[3]}`, 'integrity.budget']);
    expect(none.problems[0].message).toContain('not re-read at this look');
    expect(none.cursor.recheck).toEqual([`integrity.corrupt:nas:${keys[3]}`]);
  });

  test('an unsigned manifest where signing is required vouches for nothing: its objects are not judged', async () => {
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa']);
    flip(nas, keys[0]);
    const result = (await look(configOf({ periodDays: 0.0001 }, true), nas, T0))!;
    expect(result.problems).toEqual([]);
    expect(result.summary).toMatchObject({ dueObjects: 0, unjudgedObjects: 2 });
  });

  test('an object that reads back longer than it is listed (a body swapped under the listing, a file still growing) is read no further than its size: corrupt, not hashed to the end', async () => {
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa']);
    const size = readFileSync(path.join(nas.root, keys[1])).length;
    // The listing says the right size; the read goes on (64 MiB here, for ever behind a link to /dev/zero or a stalling proxy).
    const endless = Object.assign(Object.create(nas) as FilesystemRepository, {
      get: async (key: string) =>
        key === keys[1]
          ? Readable.from(
              (function* () {
                yield readFileSync(path.join(nas.root, key));
                for (let i = 0; i < 64; i++) yield Buffer.alloc(1024 * 1024);
              })(),
            )
          : nas.get(key),
    });
    let read = 0;
    const result = (await sampleIntegrity(configOf({ periodDays: 0.0001 }), [endless], {
      now: T0,
      intervalSeconds: INTERVAL,
      reader: { signal: new AbortController().signal, idleMs: 10_000, onBytes: (n) => (read += n) },
    }))!;
    expect(result.problems.map((p) => p.key)).toEqual([`integrity.corrupt:nas:${keys[1]}`]);
    expect(result.problems[0].message).toContain(`more than ${size} bytes`);
    // Both objects, and no more than one chunk past the longer one's size.
    expect(read).toBeLessThanOrEqual(2 * size + 1024 * 1024);
  });

  test('the recheck list is shared fairly between repositories: a flood of bad objects in one does not push out one found bad in another that cannot be read now', async () => {
    const usb = new FilesystemRepository('usb', path.join(dir, 'usb'));
    const flooded: string[] = [];
    for (let i = 0; i < 260; i++) {
      const id = `20261101_000000-${i.toString(16).padStart(8, '0')}`;
      mkdirSync(path.join(usb.root, 'database', id), { recursive: true });
      flooded.push(...(await backup(usb, id)));
    }
    flooded.forEach((key) => flip(usb, key));
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa']);
    // The NAS is offline at this look; what was found bad in it before is carried.
    const offline = Object.assign(Object.create(nas) as FilesystemRepository, {
      list: async () => {
        throw new Error('NAS offline');
      },
    });
    const before = `integrity.corrupt:nas:${keys[1]}`;
    const cursor: IntegrityCursor = { sampledThrough: new Date(T0 - WIDTH).toISOString(), recheck: [before] };
    const result = (await sampleIntegrity(configOf({ periodDays: 0.0001 }), [offline, usb], { now: T0, intervalSeconds: INTERVAL, cursor, reader: reader() }))!;
    expect(result.summary.unsampled.map((u) => u.repository)).toEqual(['nas']);
    expect(result.problems.filter((p) => p.key.startsWith('integrity.corrupt:usb:'))).toHaveLength(520);
    expect(result.cursor.recheck).toHaveLength(500);
    expect(result.cursor.recheck).toContain(before);
  });

  /** The repository, its reads of `which` keys opening and then moving no byte (a store stalled mid-read). */
  const stalling = (nas: FilesystemRepository, which: (key: string) => boolean) =>
    Object.assign(Object.create(nas) as FilesystemRepository, { get: async (key: string) => (which(key) ? new Readable({ read: () => undefined }) : nas.get(key)) });

  test('a manifest read that stalls does not hang the look: the repository is not sampled now, and what was found bad in it before stays open', async () => {
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa', '20261102_000000-bbbbbbbb']);
    flip(nas, keys[3]);
    const config = configOf({ periodDays: 0.0001 });
    const first = (await look(config, nas, T0))!;
    expect(first.cursor.recheck).toEqual([`integrity.corrupt:nas:${keys[3]}`]);
    const stalled = stalling(nas, (key) => key.endsWith('/manifest.json'));
    const result = (await sampleIntegrity(config, [stalled], { now: T0 + WIDTH, intervalSeconds: INTERVAL, cursor: first.cursor, reader: { ...reader(), idleMs: 100 } }))!;
    expect(result.summary.unsampled).toEqual([{ repository: 'nas', reason: expect.stringContaining('no bytes for') }]);
    expect(result.problems.map((p) => p.key)).toEqual([`integrity.corrupt:nas:${keys[3]}`]);
    expect(result.problems[0].message).toContain('not re-read at this look');
    expect(result.cursor.recheck).toEqual([`integrity.corrupt:nas:${keys[3]}`]);
  }, 20_000);

  test('a WAL entry read that stalls does not hang the look either', async () => {
    const { nas } = await nasWith(['20261101_000000-aaaaaaaa']);
    const segment = '000000010000000000000001';
    const body = Buffer.from('segment bytes '.repeat(100));
    mkdirSync(path.join(nas.root, 'wal'), { recursive: true });
    writeFileSync(path.join(nas.root, 'wal', `${segment}.zst.gpg`), body);
    const entry = { segment, key: `wal/${segment}.zst.gpg`, compression: 'zstd', bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') };
    writeFileSync(path.join(nas.root, 'wal', `${segment}.json`), JSON.stringify(entry));
    const config = configOf({ periodDays: 0.0001 });
    expect((await look(config, nas, T0))!.summary).toMatchObject({ dueObjects: 3, checkedObjects: 3 });
    const stalled = stalling(nas, (key) => key.startsWith('wal/') && key.endsWith('.json'));
    const result = (await sampleIntegrity(config, [stalled], { now: T0, intervalSeconds: INTERVAL, reader: { ...reader(), idleMs: 100 } }))!;
    expect(result.summary.unsampled).toEqual([{ repository: 'nas', reason: expect.stringContaining('no bytes for') }]);
  }, 20_000);

  test('an object read that stalls (the store unreachable for a moment) is no corruption: the rest of that repository is not read now, said under its own key, and what was found bad in it before stays open', async () => {
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa', '20261102_000000-bbbbbbbb']);
    flip(nas, keys[3]);
    const config = configOf({ periodDays: 0.0001 });
    const first = (await look(config, nas, T0))!;
    expect(first.cursor.recheck).toEqual([`integrity.corrupt:nas:${keys[3]}`]);
    const stalled = stalling(nas, (key) => key.endsWith('.gpg'));
    const result = (await sampleIntegrity(config, [stalled], { now: T0 + WIDTH, intervalSeconds: INTERVAL, cursor: first.cursor, reader: { ...reader(), idleMs: 100 } }))!;
    expect(result.problems.map((p) => p.key)).toEqual(['integrity.unreadable:nas', `integrity.corrupt:nas:${keys[3]}`]);
    expect(result.problems[0].message).toContain('no bytes for');
    expect(result.problems[1].message).toContain('not re-read at this look');
    expect(result.summary).toMatchObject({ checkedObjects: 0, unsampled: [{ repository: 'nas', reason: expect.stringContaining('no bytes for') }] });
    expect(result.cursor.recheck).toEqual([`integrity.corrupt:nas:${keys[3]}`]);
  }, 20_000);

  test('a manifest far larger than any manifest is not read into memory: damaged, its backup not judged', async () => {
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa']);
    flip(nas, keys[1]);
    const manifest = path.join(nas.root, manifestKey('database', '20261101_000000-aaaaaaaa'));
    writeFileSync(manifest, Buffer.concat([readFileSync(manifest), Buffer.alloc(5 * 1024 * 1024, 0x20)]));
    let read = 0;
    const result = (await sampleIntegrity(configOf({ periodDays: 0.0001 }), [nas], { now: T0, intervalSeconds: INTERVAL, reader: { ...reader(), onBytes: (n) => (read += n) } }))!;
    expect(result.problems).toEqual([]);
    expect(result.summary.dueObjects).toBe(0);
    expect(read).toBe(0);
  });

  test('an admitted manifest naming a key no repository can hold (odd characters, `..`): not judged, and the look goes on', async () => {
    const { nas, keys } = await nasWith(['20261101_000000-aaaaaaaa', '20261102_000000-bbbbbbbb']);
    flip(nas, keys[3]);
    // Unsigned backups are admitted here (signing.required false): anyone who can write to the share can plant one.
    const file = path.join(nas.root, manifestKey('database', '20261101_000000-aaaaaaaa'));
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    manifest.objects.push({ ...manifest.objects[0], key: 'database/20261101_000000-aaaaaaaa/..' }, { ...manifest.objects[0], key: 'database/20261101_000000-aaaaaaaa/a b' });
    writeFileSync(file, JSON.stringify(manifest));
    const result = (await look(configOf({ periodDays: 0.0001 }), nas, T0))!;
    expect(result.problems.map((p) => p.key)).toEqual([`integrity.corrupt:nas:${keys[3]}`]);
    expect(result.summary.unjudgedObjects).toBe(2);
  });

  test('periodDays 0: off', async () => {
    const { nas } = await nasWith(['20261101_000000-aaaaaaaa']);
    expect(await look(configOf({ periodDays: 0 }), nas, T0)).toBeUndefined();
  });
});

test("deploy/backupctl.example.yaml's monitor block, uncommented, is valid and says the defaults", () => {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../deploy/backupctl.example.yaml');
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const from = lines.findIndex((l) => l.startsWith('# monitor:'));
  expect(from).toBeGreaterThan(0);
  const block = lines.slice(from).filter((l, i) => l.startsWith('#') && lines.slice(from, from + i + 1).every((m) => m.startsWith('#'))).map((l) => l.replace(/^# ?/, '')).join('\n');
  const example = validateConfig({ ...YAML.parse(text), ...YAML.parse(block) }, file);
  const defaults = validateConfig(YAML.parse(text), file);
  expect(example.monitor.integrity).toEqual(defaults.monitor.integrity);
  expect(example.monitor.intervalSeconds).toBe(defaults.monitor.intervalSeconds);
  expect(defaults.monitor.integrity).toEqual({ periodDays: 30, maxBytesPerLook: 10 * 1024 ** 3 });
});
