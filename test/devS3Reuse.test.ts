// The dev stack reuses an S3 API already answering on its port (an earlier `backupctl dev`):
// client/dev/seaweedfs.ts. Something else answering there (another user's server, a test's
// SeaweedFS without identities, anything that says 200) must not receive the stack's backups.
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDevS3 } from '../client/dev/seaweedfs.js';
import { listen } from '../client/listen.js';

test('an S3 API on the port that takes any signature is not the stack\'s own: refused, nothing sent to it', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'backupctl-devs3-'));
  const seen: string[] = [];
  // Says yes to everything, as an S3 server without credentials does.
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(200, { 'Content-Type': 'application/xml' });
    res.end(req.method === 'HEAD' ? undefined : '<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Owner><ID>x</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>');
  });
  const foreign = await listen(server, '127.0.0.1', 0);
  try {
    await expect(startDevS3(dir, Number(new URL(foreign.url).port), 'backupctl-dev')).rejects.toThrow(/not this stack's SeaweedFS/);
    // It was asked who it is, and given no bucket to make or fill.
    expect(seen.filter((line) => !line.startsWith('GET /?') && line !== 'GET /')).toEqual([]);
  } finally {
    await foreign.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
