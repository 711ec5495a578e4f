// A webhook's extra headers (its tokens) come from a file of "Name: value" lines, so the
// configuration holds no secret. Blank lines and lines starting with # are skipped. A bad line
// is named by its number only: its text may be a token.
import { readFileSync } from 'node:fs';
import { ErrorType } from '../../common/types.js';
import { permanent } from '../errors.js';
import { assertSecretFileMode } from '../secretFiles.js';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Set by us (the body is JSON of our length) or by the HTTP client itself.
const RESERVED = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'expect', 'upgrade', 'keep-alive', 'te', 'trailer']);

export interface HeadersFile {
  headers: Record<string, string>;
  /** The values, and each long word of them (a "Bearer <token>" echoed as the token alone). */
  secrets: string[];
}

export function readHeadersFile(field: string, file: string): HeadersFile {
  assertSecretFileMode(field, file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw permanent(ErrorType.InvalidConfig, `${field} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const headers: Record<string, string> = {};
  const secrets: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (!line.trim() || line.trimStart().startsWith('#')) return;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    if (!TOKEN.test(name)) throw permanent(ErrorType.InvalidConfig, `${field} ${file} line ${i + 1}: must be "Name: value" (a header name of letters, digits and - then a colon)`);
    if (RESERVED.has(name.toLowerCase())) throw permanent(ErrorType.InvalidConfig, `${field} ${file} line ${i + 1}: header ${name} is set by backupctl or the HTTP client, not by this file`);
    const value = line.slice(colon + 1).trim();
    headers[name] = value;
    secrets.push(value, ...value.split(/\s+/).filter((word) => word.length >= 8));
  });
  return { headers, secrets };
}
