// A webhook's headers file (engine/alerts/headersFile.ts): "Name: value" lines, comments and
// blank lines skipped; a bad line is named by its number, never quoted (it may be a token).
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readHeadersFile } from '../../engine/alerts/headersFile.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-headers-'));
function file(text: string, mode = 0o600): string {
  const name = path.join(dir, `h${Math.random().toString(36).slice(2)}`);
  writeFileSync(name, text, { mode });
  return name;
}

test('headers, their values as secrets (and the token of "Bearer <token>" alone)', () => {
  const parsed = readHeadersFile('f', file('# comment\r\nAuthorization: Bearer abcdefgh12345678\r\n\r\nX-Api-Key:k3y-value-long \n'));
  expect(parsed.headers).toEqual({ Authorization: 'Bearer abcdefgh12345678', 'X-Api-Key': 'k3y-value-long' });
  expect(parsed.secrets).toEqual(expect.arrayContaining(['Bearer abcdefgh12345678', 'abcdefgh12345678', 'k3y-value-long']));
});

test('a line that is no header is named by number, its text never shown; a reserved header is refused', () => {
  expect(() => readHeadersFile('alerts.webhooks.ops.headersFile', file('X-Ok: 1\nsupersecrettokenvalue\n'))).toThrow(/alerts\.webhooks\.ops\.headersFile .* line 2: must be "Name: value"/);
  try {
    readHeadersFile('f', file('supersecrettokenvalue\n'));
  } catch (err) {
    expect((err as Error).message).not.toContain('supersecret');
  }
  expect(() => readHeadersFile('f', file('Content-Type: text/plain\n'))).toThrow(/line 1: header Content-Type is set by backupctl/);
});

test('a headers file others can read is refused, as every secret file', () => {
  expect(() => readHeadersFile('alerts.webhooks.ops.headersFile', file('X-Token: abc\n', 0o644))).toThrow(/holds a secret but can be read by every local account/);
});
