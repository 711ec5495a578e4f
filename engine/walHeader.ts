// What makes a file a WAL file PostgreSQL could replay, checked before wal-push archives it:
// a segment (or .partial) starts with a long page header whose magic, size and position agree
// with its name and size; a timeline history or backup history file is the text PostgreSQL
// writes. A file with a WAL-like name that is none of these (random bytes, a truncated copy, a
// segment renamed to another position) is refused, so it can never take the name, and the
// WalConflict, that the real segment needs. Pure functions over bytes: no I/O here.
import { ErrorType } from '../common/types.js';
import { permanent } from './errors.js';

/** XLOG_PAGE_MAGIC of each supported major version (src/include/access/xlog_internal.h). */
export const WAL_PAGE_MAGIC: Readonly<Record<number, number>> = {
  0xd101: 12,
  0xd106: 13,
  0xd10d: 14,
  0xd110: 15,
  0xd113: 16,
  0xd116: 17,
};

/** XLogLongPageHeaderData, as PostgreSQL lays it out (native byte order, MAXALIGN 8). */
const LONG_HEADER_BYTES = 40;
const XLP_LONG_HEADER = 0x0002;
/** XLP_ALL_FLAGS: any other bit set means this is not a page header. */
const XLP_ALL_FLAGS = 0x000f;
const MIN_SEGMENT = 1024 * 1024;
const MAX_SEGMENT = 1024 * 1024 * 1024;
/** Text files (history, backup label copies) are small; anything bigger is not one. */
export const MAX_TEXT_FILE_BYTES = 1024 * 1024;

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;
const BACKUP = /^([0-9A-F]{8}[0-9A-F]{8}[0-9A-F]{8})\.([0-9A-F]{8})\.backup$/;

export type WalFileKind = 'segment' | 'partial' | 'history' | 'backup';

export interface WalSegmentHeader {
  /** The major version whose magic the page carries. */
  version: number;
  timeline: number;
  /** The segment's start, as an LSN (xlp_pageaddr of its first page). */
  pageAddress: bigint;
  /** Decimal, as pg_controldata and pg_control_system() show it. */
  systemIdentifier: string;
  segmentSize: number;
  blockSize: number;
}

/** One line of a timeline history file: the parent timeline and where it ended. */
export interface TimelineSwitch {
  parent: number;
  switchpoint: string;
}

export type WalFileVerdict = { ok: true; kind: WalFileKind; header?: WalSegmentHeader; switches?: TimelineSwitch[] } | { ok: false; problem: string };

/** Which kind of WAL file a name is, or undefined for a name PostgreSQL never archives. */
export function walFileKind(name: string): WalFileKind | undefined {
  const segment = SEGMENT.exec(name);
  if (segment) return segment[4] ? 'partial' : 'segment';
  if (HISTORY.test(name)) return 'history';
  if (BACKUP.test(name)) return 'backup';
  return undefined;
}

/** The LSN a segment of this name starts at, for a segment size; undefined when the name cannot be one. */
export function segmentStartLsn(name: string, segmentSize: number): bigint | undefined {
  const match = SEGMENT.exec(name);
  if (!match) return undefined;
  const perLogId = 0x100000000n / BigInt(segmentSize);
  const log = BigInt(parseInt(match[2], 16));
  const seg = BigInt(parseInt(match[3], 16));
  if (seg >= perLogId) return undefined;
  return (log * perLogId + seg) * BigInt(segmentSize);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Reads the first page's long header, in the byte order PostgreSQL wrote it (this host's). */
export function readLongHeader(bytes: Buffer): { magic: number; info: number; timeline: number; pageAddress: bigint; systemIdentifier: bigint; segmentSize: number; blockSize: number } | undefined {
  if (bytes.length < LONG_HEADER_BYTES) return undefined;
  const le = bytes.readUInt16LE(0) in WAL_PAGE_MAGIC || !(bytes.readUInt16BE(0) in WAL_PAGE_MAGIC);
  const u16 = (at: number) => (le ? bytes.readUInt16LE(at) : bytes.readUInt16BE(at));
  const u32 = (at: number) => (le ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at));
  const u64 = (at: number) => (le ? bytes.readBigUInt64LE(at) : bytes.readBigUInt64BE(at));
  return { magic: u16(0), info: u16(2), timeline: u32(4), pageAddress: u64(8), systemIdentifier: u64(24), segmentSize: u32(32), blockSize: u32(36) };
}

/**
 * Checks a segment or .partial file: `head` is at least its first 40 bytes, `fileSize` its
 * size. The header's timeline may be lower than the name's: the first segment of a new
 * timeline is a copy of the old timeline's segment up to the switch point, first page included.
 */
export function checkSegment(name: string, head: Buffer, fileSize: number): WalFileVerdict {
  const kind = walFileKind(name);
  if (kind !== 'segment' && kind !== 'partial') return { ok: false, problem: 'the name is not a WAL segment name' };
  if (!isPowerOfTwo(fileSize) || fileSize < MIN_SEGMENT || fileSize > MAX_SEGMENT) {
    return { ok: false, problem: `its size, ${fileSize} bytes, is no WAL segment size (a power of two from 1 MiB to 1 GiB, normally 16 MiB)` };
  }
  const header = readLongHeader(head);
  if (!header) return { ok: false, problem: 'it is too short to hold a WAL page header' };
  const version = WAL_PAGE_MAGIC[header.magic];
  if (version === undefined) {
    // Not even the bytes found: until the magic matches, the file may be anything, a secret included.
    return { ok: false, problem: 'its first page has no WAL page magic of PostgreSQL 12 to 17' };
  }
  if (!(header.info & XLP_LONG_HEADER) || header.info & ~XLP_ALL_FLAGS) {
    return { ok: false, problem: `its first page does not carry a long page header (xlp_info 0x${header.info.toString(16)})` };
  }
  if (header.segmentSize !== fileSize) return { ok: false, problem: `its header says segments are ${header.segmentSize} bytes, the file has ${fileSize}` };
  if (!isPowerOfTwo(header.blockSize) || header.blockSize < 1024 || header.blockSize > 65536 || fileSize % header.blockSize !== 0) {
    return { ok: false, problem: `its header's WAL block size ${header.blockSize} is not a power of two from 1 KiB to 64 KiB dividing the segment` };
  }
  const nameTimeline = parseInt(name.slice(0, 8), 16);
  if (nameTimeline === 0 || header.timeline === 0 || header.timeline > nameTimeline) {
    return { ok: false, problem: `its name says timeline ${nameTimeline}, its first page timeline ${header.timeline}` };
  }
  const start = segmentStartLsn(name, fileSize);
  if (start === undefined) return { ok: false, problem: `its name is no position of a ${fileSize}-byte segment` };
  if (header.pageAddress !== start) {
    return { ok: false, problem: `its name says it starts at ${formatLsn(start)}, its first page says ${formatLsn(header.pageAddress)}` };
  }
  if (header.systemIdentifier === 0n) return { ok: false, problem: 'its header has no database system identifier' };
  return {
    ok: true,
    kind,
    header: { version, timeline: header.timeline, pageAddress: header.pageAddress, systemIdentifier: header.systemIdentifier.toString(), segmentSize: header.segmentSize, blockSize: header.blockSize },
  };
}

export function parseLsn(lsn: string): bigint {
  const [high, low] = lsnParts(lsn);
  return (BigInt(high) << 32n) + BigInt(low);
}

/** An LSN's two halves as PostgreSQL writes them (1-8 hex digits each); anything else is refused, never read in part. */
function lsnParts(lsn: string): [number, number] {
  if (typeof lsn !== 'string' || !/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(lsn)) throw permanent(ErrorType.InvalidInput, `${JSON.stringify(lsn)} is not an LSN (expected e.g. 0/16B3748)`);
  const [high, low] = lsn.split('/').map((part) => parseInt(part, 16));
  return [high, low];
}

/**
 * A segment whose first page belongs to an older timeline than its name is the first segment
 * of the name's timeline only if that timeline's history says it branched from the page's
 * timeline inside this segment. `switches` is that history (undefined when it is unknown).
 */
export function checkBranchSegment(name: string, header: WalSegmentHeader, switches: TimelineSwitch[] | undefined): string | undefined {
  const timeline = parseInt(name.slice(0, 8), 16);
  if (header.timeline === timeline) return undefined;
  if (!switches) return `its first page is timeline ${header.timeline}'s, and the history of timeline ${timeline} is not archived to show it branched there`;
  const last = switches.at(-1)!;
  const start = header.pageAddress;
  const switchpoint = parseLsn(last.switchpoint);
  if (!switches.some((s) => s.parent === header.timeline) || switchpoint < start || switchpoint > start + BigInt(header.segmentSize)) {
    return `its first page is timeline ${header.timeline}'s, but timeline ${timeline} did not branch inside this segment`;
  }
  return undefined;
}

function decodeText(bytes: Buffer): string | undefined {
  if (bytes.length > MAX_TEXT_FILE_BYTES || bytes.includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

const LSN = /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i;

/**
 * Checks a timeline history file: lines "parentTLI<TAB>switchpoint<TAB>reason", blank lines and
 * comments, as readTimeLineHistory() reads them; parents below the file's timeline, ascending.
 */
export function checkHistory(name: string, bytes: Buffer): WalFileVerdict {
  const match = HISTORY.exec(name);
  if (!match) return { ok: false, problem: 'the name is not a timeline history file name' };
  const timeline = parseInt(match[1], 16);
  const text = decodeText(bytes);
  if (text === undefined) return { ok: false, problem: `it is not a text file of at most ${MAX_TEXT_FILE_BYTES} bytes` };
  let previous = 0;
  const switches: TimelineSwitch[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [tli, lsn] = line.split(/\s+/);
    const parent = /^\d+$/.test(tli) ? Number(tli) : NaN;
    if (!(parent > previous && parent < timeline) || !LSN.test(lsn ?? '')) {
      return { ok: false, problem: `line ${index + 1} is not "parent timeline, switch point, reason" with parent timelines ascending below ${timeline}` };
    }
    previous = parent;
    switches.push({ parent, switchpoint: lsn.toUpperCase() });
  }
  if (switches.length === 0) return { ok: false, problem: 'it names no parent timeline' };
  return { ok: true, kind: 'history', switches };
}

/** Checks a backup history file: the backup label's text, its START WAL LOCATION in the segment the name gives. */
export function checkBackupHistory(name: string, bytes: Buffer): WalFileVerdict {
  const match = BACKUP.exec(name);
  if (!match) return { ok: false, problem: 'the name is not a backup history file name' };
  const text = decodeText(bytes);
  if (text === undefined) return { ok: false, problem: `it is not a text file of at most ${MAX_TEXT_FILE_BYTES} bytes` };
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(text);
  if (!start || !LSN.test(start[1])) return { ok: false, problem: 'it has no "START WAL LOCATION: <lsn> (file <segment>)" line' };
  if (start[2] !== match[1]) return { ok: false, problem: `its START WAL LOCATION is in segment ${start[2]}, its name says ${match[1]}` };
  const low = parseInt(start[1].split('/')[1], 16);
  // The name's last part is the start LSN's offset within its segment; segments are at least 1 MiB.
  if ((low & (MIN_SEGMENT - 1)) !== (parseInt(match[2], 16) & (MIN_SEGMENT - 1))) {
    return { ok: false, problem: `its START WAL LOCATION ${start[1]} does not lie at the offset its name gives (${match[2]})` };
  }
  if (!/^STOP WAL LOCATION: [0-9A-F]+\/[0-9A-F]+ \(file [0-9A-F]{24}\)$/m.test(text)) return { ok: false, problem: 'it has no "STOP WAL LOCATION" line' };
  return { ok: true, kind: 'backup' };
}

/** Checks any file wal-push may archive, by its name: `bytes` is the whole file (at most a segment). */
export function checkWalFile(name: string, bytes: Buffer): WalFileVerdict {
  switch (walFileKind(name)) {
    case 'segment':
    case 'partial':
      return checkSegment(name, bytes, bytes.length);
    case 'history':
      return checkHistory(name, bytes);
    case 'backup':
      return checkBackupHistory(name, bytes);
    default:
      return { ok: false, problem: 'the name is not one PostgreSQL archives (a segment, .partial, .history or .backup file)' };
  }
}

/** The name of the segment holding an LSN on a timeline, for segments of `segmentSize` bytes (16 MiB unless the cluster was made with another). */
export function segmentOf(timeline: number, lsn: string, segmentSize = 0x1000000): string {
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > 0xffffffff) throw permanent(ErrorType.InvalidInput, `timeline ${timeline} is not one PostgreSQL makes (1 to FFFFFFFF)`);
  if (!isPowerOfTwo(segmentSize) || segmentSize < 1 << 20 || segmentSize > 1 << 30) throw permanent(ErrorType.InvalidInput, `${segmentSize} bytes is not a WAL segment size PostgreSQL makes (a power of two, 1 MiB to 1 GiB)`);
  const [high, low] = lsnParts(lsn);
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(high)}${hex(Math.floor(low / segmentSize))}`;
}

/** The end of a 16 MiB WAL segment, as an LSN: the furthest the archive can replay to. */
export function segmentEndLsn(segment: string): string {
  const log = parseInt(segment.slice(8, 16), 16);
  const seg = parseInt(segment.slice(16, 24), 16);
  const end = BigInt(log) * 0x100000000n + BigInt(seg + 1) * 0x1000000n;
  return `${(end >> 32n).toString(16).toUpperCase()}/${(end & 0xffffffffn).toString(16).toUpperCase()}`;
}
