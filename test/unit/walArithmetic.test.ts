// LSN and segment arithmetic (engine/walHeader.ts, activities/pitr.ts,
// workflows/recoveryTargets.ts) and the checks of what wal-push archives: names, the long page
// header of a segment, timeline history and backup history files. Headers are built here byte
// by byte; test/walSafety.test.ts runs the same checks over a real cluster's WAL.
import { segmentEndLsn, segmentOf } from '../../engine/walHeader.js';
import {
  checkBackupHistory,
  checkBranchSegment,
  checkHistory,
  checkSegment,
  checkWalFile,
  formatLsn,
  MAX_TEXT_FILE_BYTES,
  parseLsn,
  segmentStartLsn,
  walFileKind,
  type WalSegmentHeader,
} from '../../engine/walHeader.js';
import { WAL_FILE_NAME } from '../../engine/walArchive.js';
import { lsnValue } from '../../workflows/recoveryTargets.js';

const MiB = 1024 * 1024;
const SEG = 16 * MiB;

describe('LSNs', () => {
  test.each([
    ['0/0', 0n],
    ['0/FFFFFFFF', 0xffffffffn],
    ['1/0', 0x100000000n],
    ['1A/FF000000', 0x1aff000000n],
    ['FFFFFFFF/FFFFFFFF', 0xffffffffffffffffn],
  ])('%s is %s, and reads back', (text, value) => {
    expect(parseLsn(text)).toBe(value);
    expect(lsnValue(text)).toBe(value);
    expect(formatLsn(value)).toBe(text);
  });

  test('upper or lower case, leading zeros or none: the same position; written in upper case without padding', () => {
    expect(parseLsn('1a/ff000000')).toBe(parseLsn('1A/FF000000'));
    expect(lsnValue('0000001A/0FF00000')).toBe(lsnValue('1a/ff00000'));
    expect(formatLsn(parseLsn('00000000/0000A000'))).toBe('0/A000');
  });

  test('order is numeric, not textual: 0/A000000 comes after 0/9000000, 1/0 after 0/FFFFFFFF', () => {
    expect(lsnValue('0/A000000') > lsnValue('0/9000000')).toBe(true);
    expect('0/A000000' > '0/9000000').toBe(true); // what a string compare would also say here, but:
    expect(lsnValue('0/10000000') > lsnValue('0/9000000')).toBe(true);
    expect('0/10000000' > '0/9000000').toBe(false);
    expect(lsnValue('1/0') > lsnValue('0/FFFFFFFF')).toBe(true);
  });

  test('lsnValue refuses what is not hexadecimal rather than reading part of it', () => {
    for (const bad of ['zz', '1/zz', '1G/0', '', '1', '/']) expect(() => lsnValue(bad)).toThrow();
  });
});

describe('segments of 16 MiB', () => {
  test.each([
    [1, '0/0', '000000010000000000000000'],
    [1, '0/2000028', '000000010000000000000002'],
    [1, '0/FFFFFF', '000000010000000000000000'],
    [1, '0/1000000', '000000010000000000000001'],
    [1, '0/FFFFFFFF', '0000000100000000000000FF'],
    [1, '1/0', '000000010000000100000000'],
    [3, '1a/ff000000', '000000030000001A000000FF'],
    [0x1a, 'ABCDEF12/34567890', '0000001AABCDEF1200000034'],
  ])('timeline %s, LSN %s: segment %s', (timeline, lsn, segment) => {
    expect(segmentOf(timeline, lsn)).toBe(segment);
  });

  test('a segment starts where its name says and ends where the next one starts (crossing a log id too)', () => {
    const samples = ['0/0', '0/2000028', '0/FFFFFF', '0/1000000', '0/9FFFFFF', '0/FEFFFFFF', '0/FF000000', '0/FFFFFFFF', '1/0', '7/12345678', 'FFFFFFFF/FEFFFFFF'];
    for (const lsn of samples) {
      const segment = segmentOf(1, lsn);
      const start = segmentStartLsn(segment, SEG)!;
      const end = parseLsn(segmentEndLsn(segment));
      expect({ lsn, inside: start <= parseLsn(lsn) && parseLsn(lsn) < end, size: end - start }).toEqual({ lsn, inside: true, size: BigInt(SEG) });
      // The segment after it holds the end LSN.
      const next = segmentOf(1, segmentEndLsn(segment));
      expect(segmentStartLsn(next, SEG)).toBe(end);
    }
    expect(segmentOf(1, segmentEndLsn('0000000100000000000000FF'))).toBe('000000010000000100000000');
    expect(segmentEndLsn('000000010000000000000000')).toBe('0/1000000');
    expect(segmentEndLsn('00000002000000000000000C')).toBe('0/D000000'); // the timeline does not move positions
  });

  test('where a segment starts, for each segment size: a name past the last segment of a log id is no position', () => {
    expect(segmentStartLsn('0000000100000000000000FF', SEG)).toBe(0xff000000n);
    expect(segmentStartLsn('000000010000000000000100', SEG)).toBeUndefined();
    expect(segmentStartLsn('000000010000000200000003', SEG)).toBe(0x203000000n);
    expect(segmentStartLsn('000000010000000000000003', 1024 * MiB)).toBe(0xc0000000n);
    expect(segmentStartLsn('000000010000000000000004', 1024 * MiB)).toBeUndefined();
    expect(segmentStartLsn('0000000100000000000003FF', MiB)).toBe(0x3ff00000n);
    expect(segmentStartLsn('000000010000000000000FFF', MiB)).toBe(0xfff00000n);
    expect(segmentStartLsn('000000010000000000001000', MiB)).toBeUndefined();
    expect(segmentStartLsn('00000002.history', SEG)).toBeUndefined();
    expect(segmentStartLsn('000000010000000000000001.partial', SEG)).toBe(0x1000000n);
  });
});

test.each([
  ['000000010000000000000001', 'segment'],
  ['0000000A00000001000000FF', 'segment'],
  ['000000010000000000000001.partial', 'partial'],
  ['00000002.history', 'history'],
  ['000000010000000000000002.00000028.backup', 'backup'],
  ['00000001000000000000000a', undefined],
  ['00000001000000000000000', undefined],
  ['0000000100000000000000001', undefined],
  ['0000000a.history', undefined],
  ['00000002.history.partial', undefined],
  ['000000010000000000000002.00000028.BACKUP', undefined],
  ['000000010000000000000002.backup', undefined],
  ['archive_status', undefined],
  ['../000000010000000000000001', undefined],
])('%s is a %s file', (name, kind) => {
  expect(walFileKind(name)).toBe(kind);
  // wal-push and wal-fetch take the names the archive's own pattern takes: the same ones.
  expect(WAL_FILE_NAME.test(name)).toBe(kind !== undefined);
});

describe("a segment's long page header", () => {
  const NAME = '000000020000000100000003';
  const START = segmentStartLsn(NAME, SEG)!;
  interface Fields {
    magic: number;
    info: number;
    timeline: number;
    pageAddress: bigint;
    systemIdentifier: bigint;
    segmentSize: number;
    blockSize: number;
  }
  const valid: Fields = { magic: 0xd110, info: 0x0002, timeline: 2, pageAddress: START, systemIdentifier: 7300000000000000001n, segmentSize: SEG, blockSize: 8192 };
  /** XLogLongPageHeaderData as a little-endian host writes it (or a big-endian one). */
  function header(changes: Partial<Fields> = {}, bigEndian = false): Buffer {
    const f = { ...valid, ...changes };
    const b = Buffer.alloc(40);
    const [u16, u32, u64] = bigEndian ? (['writeUInt16BE', 'writeUInt32BE', 'writeBigUInt64BE'] as const) : (['writeUInt16LE', 'writeUInt32LE', 'writeBigUInt64LE'] as const);
    b[u16](f.magic, 0);
    b[u16](f.info, 2);
    b[u32](f.timeline, 4);
    b[u64](f.pageAddress, 8);
    b[u64](f.systemIdentifier, 24);
    b[u32](f.segmentSize, 32);
    b[u32](f.blockSize, 36);
    return b;
  }
  const problem = (name: string, head: Buffer, size = SEG) => {
    const verdict = checkSegment(name, head, size);
    return verdict.ok ? 'ok' : verdict.problem;
  };

  test("a whole header is read: version by its magic, timeline, position, cluster, sizes; in this host's byte order or the other", () => {
    const expected: WalSegmentHeader = { version: 15, timeline: 2, pageAddress: START, systemIdentifier: '7300000000000000001', segmentSize: SEG, blockSize: 8192 };
    expect(checkSegment(NAME, header(), SEG)).toEqual({ ok: true, kind: 'segment', header: expected });
    expect(checkSegment(NAME, header({}, true), SEG)).toEqual({ ok: true, kind: 'segment', header: expected });
    expect(checkSegment(`${NAME}.partial`, header(), SEG)).toMatchObject({ ok: true, kind: 'partial' });
    for (const [magic, version] of [[0xd101, 12], [0xd106, 13], [0xd10d, 14], [0xd113, 16], [0xd116, 17]]) {
      expect(checkSegment(NAME, header({ magic }), SEG)).toMatchObject({ ok: true, header: { version } });
    }
    // Every flag PostgreSQL may set beside the long-header bit.
    expect(problem(NAME, header({ info: 0x000f }))).toBe('ok');
    // A block size other than 8 kB, a segment size other than 16 MiB.
    expect(problem(NAME, header({ blockSize: 32768 }))).toBe('ok');
    const big = '000000020000000100000000';
    expect(problem(big, header({ segmentSize: 64 * MiB, pageAddress: segmentStartLsn(big, 64 * MiB)! }), 64 * MiB)).toBe('ok');
  });

  test.each([
    ['a name that is no segment', '00000002.history', header(), SEG, /the name is not a WAL segment name/],
    ['a size that is no power of two', NAME, header(), SEG - 1, /its size, 16777215 bytes, is no WAL segment size/],
    ['below 1 MiB', NAME, header({ segmentSize: MiB / 2 }), MiB / 2, /is no WAL segment size/],
    ['above 1 GiB', NAME, header({ segmentSize: 2048 * MiB }), 2048 * MiB, /is no WAL segment size/],
    ['too short for a header', NAME, header().subarray(0, 39), SEG, /too short to hold a WAL page header/],
    ['an unknown magic (PostgreSQL 11)', NAME, header({ magic: 0xd098 }), SEG, /no WAL page magic of PostgreSQL 12 to 17/],
    ['no long-header flag', NAME, header({ info: 0x0001 }), SEG, /does not carry a long page header \(xlp_info 0x1\)/],
    ['a flag PostgreSQL never sets', NAME, header({ info: 0x0012 }), SEG, /does not carry a long page header \(xlp_info 0x12\)/],
    ['a segment size the file does not have', NAME, header({ segmentSize: 32 * MiB }), SEG, /header says segments are 33554432 bytes, the file has 16777216/],
    ['a block size that is no power of two', NAME, header({ blockSize: 8000 }), SEG, /WAL block size 8000 is not a power of two/],
    ['a block size above 64 kB', NAME, header({ blockSize: 128 * 1024 }), SEG, /WAL block size 131072/],
    ['a block size below 1 kB', NAME, header({ blockSize: 512 }), SEG, /WAL block size 512/],
    ['timeline 0 in the name', `00000000${NAME.slice(8)}`, header({ timeline: 0 }), SEG, /its name says timeline 0/],
    ['timeline 0 in the header', NAME, header({ timeline: 0 }), SEG, /its name says timeline 2, its first page timeline 0/],
    ['a later timeline in the header than in the name', NAME, header({ timeline: 3 }), SEG, /its name says timeline 2, its first page timeline 3/],
    ['a name past the last segment of its log id', '000000020000000100000100', header(), SEG, /its name is no position of a 16777216-byte segment/],
    ['another position in the header (a renamed segment)', NAME, header({ pageAddress: START + BigInt(SEG) }), SEG, /its name says it starts at 1\/3000000, its first page says 1\/4000000/],
    ['no system identifier', NAME, header({ systemIdentifier: 0n }), SEG, /has no database system identifier/],
  ])('refused: %s', (_case, name, head, size, why) => {
    expect(problem(name, head, size)).toMatch(why);
  });

  test("an earlier timeline in the header is the first segment of a new timeline: accepted here, proved by the history", () => {
    const verdict = checkSegment(NAME, header({ timeline: 1 }), SEG);
    expect(verdict).toMatchObject({ ok: true, header: { timeline: 1 } });
    const first = (verdict as { header: WalSegmentHeader }).header;
    // Timeline 2 branched from 1 inside this segment (1/3000000 .. 1/4000000).
    expect(checkBranchSegment(NAME, first, [{ parent: 1, switchpoint: '1/30000A0' }])).toBeUndefined();
    expect(checkBranchSegment(NAME, first, undefined)).toBe("its first page is timeline 1's, and the history of timeline 2 is not archived to show it branched there");
    expect(checkBranchSegment(NAME, first, [{ parent: 1, switchpoint: '1/2FFFFFF' }])).toBe("its first page is timeline 1's, but timeline 2 did not branch inside this segment");
    expect(checkBranchSegment(NAME, first, [{ parent: 1, switchpoint: '1/4000001' }])).toMatch(/did not branch inside this segment/);
    // A history of another parent does not prove it either.
    expect(checkBranchSegment(NAME, first, [{ parent: 3, switchpoint: '1/30000A0' }])).toMatch(/did not branch inside this segment/);
    // Its own timeline's first page needs no history.
    expect(checkBranchSegment(NAME, { ...first, timeline: 2 }, undefined)).toBeUndefined();
  });

  test('a segment checked whole by its name: the file size is the segment size', () => {
    const name = '000000010000000000000005';
    const bytes = Buffer.alloc(MiB);
    header({ timeline: 1, pageAddress: segmentStartLsn(name, MiB)!, segmentSize: MiB }).copy(bytes);
    expect(checkWalFile(name, bytes)).toMatchObject({ ok: true, kind: 'segment', header: { segmentSize: MiB } });
    expect(checkWalFile(name, bytes.subarray(0, MiB / 2))).toMatchObject({ ok: false, problem: expect.stringMatching(/no WAL segment size/) });
    expect(checkWalFile('backup_label', bytes)).toEqual({ ok: false, problem: 'the name is not one PostgreSQL archives (a segment, .partial, .history or .backup file)' });
  });
});

describe('timeline history files', () => {
  const check = (name: string, text: string | Buffer) => checkHistory(name, typeof text === 'string' ? Buffer.from(text) : text);

  test('each parent timeline and where it ended, as PostgreSQL reads them: comments and blank lines skipped', () => {
    const text = '1\t0/3000150\tno recovery target specified\n\n# a comment\n2\t1/a0000d8\tat restore point "before-upgrade"\n';
    expect(check('00000003.history', text)).toEqual({
      ok: true,
      kind: 'history',
      switches: [
        { parent: 1, switchpoint: '0/3000150' },
        { parent: 2, switchpoint: '1/A0000D8' },
      ],
    });
    expect(check('0000000A.history', '9\t0/3000000\n')).toMatchObject({ ok: true, switches: [{ parent: 9 }] });
  });

  test.each([
    ['a parent that is not below the file timeline', '00000002.history', '2\t0/3000000\treason\n', /line 1 is not "parent timeline, switch point, reason" with parent timelines ascending below 2/],
    ['parents not ascending', '00000004.history', '2\t0/3000000\n1\t0/4000000\n', /line 2 is not/],
    ['a repeated parent', '00000004.history', '1\t0/3000000\n1\t0/4000000\n', /line 2 is not/],
    ['no switch point', '00000002.history', '1\n', /line 1 is not/],
    ['a switch point that is no LSN', '00000002.history', '1\tsoon\n', /line 1 is not/],
    ['a switch point with 9 hex digits', '00000002.history', '1\t0/123456789\n', /line 1 is not/],
    ['a parent that is no number', '00000002.history', 'one\t0/3000000\n', /line 1 is not/],
    ['only comments', '00000003.history', '# nothing\n\n', /names no parent timeline/],
    ['a name that is no history file', '00000003.HISTORY', '1\t0/3000000\n', /the name is not a timeline history file name/],
  ])('refused: %s', (_case, name, text, why) => {
    expect(check(name, text)).toEqual({ ok: false, problem: expect.stringMatching(why) });
  });

  test('what is no text, or too big to be one, is refused before it is read', () => {
    expect(check('00000002.history', Buffer.from([0x31, 0x09, 0x00, 0x0a]))).toEqual({ ok: false, problem: `it is not a text file of at most ${MAX_TEXT_FILE_BYTES} bytes` });
    expect(check('00000002.history', Buffer.from([0x31, 0x09, 0xff, 0xfe, 0x0a]))).toMatchObject({ ok: false, problem: expect.stringContaining('not a text file') });
    expect(check('00000002.history', Buffer.alloc(MAX_TEXT_FILE_BYTES + 1, 0x0a))).toMatchObject({ ok: false, problem: expect.stringContaining('not a text file') });
    expect(check('00000002.history', Buffer.concat([Buffer.alloc(MAX_TEXT_FILE_BYTES - 20, 0x0a), Buffer.from('1\t0/3000000\treason\n')]))).toMatchObject({ ok: true });
  });
});

describe('backup history files', () => {
  const NAME = '000000010000000000000002.00000028.backup';
  const label = (start = '0/2000028 (file 000000010000000000000002)', stop = 'STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)') =>
    Buffer.from(`START WAL LOCATION: ${start}\n${stop}\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-26 02:00:00 UTC\nLABEL: pg_basebackup base backup\nSTART TIMELINE: 1\nSTOP TIME: 2026-11-26 02:00:01 UTC\nSTOP TIMELINE: 1\n`);

  test("a backup label whose start lies in the name's segment, at the name's offset", () => {
    expect(checkBackupHistory(NAME, label())).toEqual({ ok: true, kind: 'backup' });
    expect(checkWalFile(NAME, label())).toEqual({ ok: true, kind: 'backup' });
    // Offsets are compared within the smallest segment (1 MiB), whatever the segment size.
    expect(checkBackupHistory('000000010000000000000002.01200028.backup', label('0/2200028 (file 000000010000000000000002)'))).toEqual({ ok: true, kind: 'backup' });
  });

  test.each([
    ['a start in another segment', NAME, label('0/3000028 (file 000000010000000000000003)'), 'its START WAL LOCATION is in segment 000000010000000000000003, its name says 000000010000000000000002'],
    ['a start at another offset', NAME, label('0/2000060 (file 000000010000000000000002)'), 'its START WAL LOCATION 0/2000060 does not lie at the offset its name gives (00000028)'],
    ['no start line', NAME, Buffer.from('STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n'), 'it has no "START WAL LOCATION: <lsn> (file <segment>)" line'],
    ['no stop line', NAME, label(undefined, 'STOP WAL LOCATION: later'), 'it has no "STOP WAL LOCATION" line'],
    ['a name that is no backup history file', '000000010000000000000002.backup', label(), 'the name is not a backup history file name'],
    ['bytes that are no text', NAME, Buffer.from([0, 1, 2]), `it is not a text file of at most ${MAX_TEXT_FILE_BYTES} bytes`],
  ])('refused: %s', (_case, name, bytes, problem) => {
    expect(checkBackupHistory(name, bytes)).toEqual({ ok: false, problem });
  });
});

describe('what is no LSN is refused, never read as part of one', () => {
  test.each(['1g/0', '0/', '/0', '0/1/2', '123456789/0', '0/123456789', '-1/0', ' 0/0', 'x'])('parseLsn(%j) and segmentOf(1, %j) throw', (text) => {
    expect(() => parseLsn(text)).toThrow(/is not an LSN/);
    expect(() => segmentOf(1, text)).toThrow(/is not an LSN/);
  });
  test('segmentOf refuses a timeline outside 1..0xFFFFFFFF', () => {
    expect(() => segmentOf(0, '0/0')).toThrow(/timeline/);
    expect(() => segmentOf(2 ** 32, '0/0')).toThrow(/timeline/);
  });
});

describe('segmentOf with a segment size: the segment a base backup starts in, which retention keeps WAL from', () => {
  test('for 16 MiB and 1 GiB segments, and back again through segmentStartLsn', () => {
    expect(segmentOf(1, '0/2000028', 16 * 1024 * 1024)).toBe('000000010000000000000002');
    expect(segmentOf(2, '1/B374D848')).toBe('0000000200000001000000B3');
    expect(segmentOf(1, '1/B374D848', 1024 * 1024 * 1024)).toBe('000000010000000100000002');
    for (const size of [1 << 20, 16 << 20, 1 << 30]) {
      for (const lsn of ['0/0', '3/FFFFFFFF', '1A/7F000000']) {
        const name = segmentOf(1, lsn, size);
        const start = segmentStartLsn(name, size)!;
        const [hi, lo] = lsn.split('/').map((h) => BigInt(parseInt(h, 16)));
        const position = (hi << 32n) + lo;
        expect(start <= position && position < start + BigInt(size)).toBe(true);
      }
    }
  });

  test('an LSN, timeline or size that is not one is refused', () => {
    expect(() => segmentOf(1, 'nonsense', 16 << 20)).toThrow();
    expect(() => segmentOf(0, '0/1', 16 << 20)).toThrow(/timeline 0/);
    expect(() => segmentOf(1, '0/1', 3_000_000)).toThrow(/not a WAL segment size/);
  });
});
