// What the catalog answers (engine/catalog.ts, engine/sourceMatch.ts): which of a backup's
// manifest copies is used, which backup is `latest` of the configured source, which
// verification report is a backup's newest, and the order a scan gives.
import { generateKeyPairSync } from 'node:crypto';
import { chooseCopy, latestVerification, manifestKey, reportRefusal, scanManifests, verificationKey, type ManifestCopy } from '../../engine/catalog.js';
import { admitted, keyIdOf, signManifest, type Verifier } from '../../engine/manifestSignature.js';
import { explicitWarning, pickLatest, sourceVerdict, type ExpectedSource, type RecordedSource } from '../../engine/sourceMatch.js';
import type { BackupManifest, SignatureVerdict } from '../../common/types.js';
import { MemoryRepository } from '../fixtures/memoryRepository.js';

const KEY = manifestKey('database', 'b1');
const signed: SignatureVerdict = { state: 'signed', keyId: 'k'.repeat(64) };
const unsigned: SignatureVerdict = { state: 'unsigned' };
const bad: SignatureVerdict = { state: 'bad-signature', reason: 'signed by key 0123, which host h does not trust' };
const copy = (repository: string, signature: SignatureVerdict, rowCount = 3): ManifestCopy<'database'> => ({
  repository,
  signature,
  manifest: { backupId: 'b1', rowCounts: { auth_user: rowCount } } as unknown as BackupManifest,
});
const strict = (v: SignatureVerdict) => admitted(v, false);
const allowingUnsigned = (v: SignatureVerdict) => admitted(v, true);

describe("which of a backup's manifest copies is used", () => {
  test('identical signed copies: the first is used, every one holds it', () => {
    const choice = chooseCopy([copy('local', signed), copy('nas', signed), copy('s3', signed)], KEY, strict);
    expect(choice.chosen?.repository).toBe('local');
    expect(choice.holders).toEqual(['local', 'nas', 's3']);
    expect(choice.skipped).toEqual([]);
  });

  test('a signed copy is used before an unsigned one, even one earlier in repository order; the unsigned one is reported', () => {
    const choice = chooseCopy([copy('local', unsigned), copy('nas', signed)], KEY, allowingUnsigned);
    expect(choice.chosen?.repository).toBe('nas');
    expect(choice.holders).toEqual(['nas']);
    expect(choice.skipped).toEqual([{ repository: 'local', key: KEY, errorType: 'UnsignedBackup', reason: expect.stringMatching(/^manifest database\/b1\/manifest.json in local is not signed/) }]);
  });

  test('a copy that differs from the one used is reported, naming where the used one is', () => {
    const choice = chooseCopy([copy('local', signed, 3), copy('nas', signed, 9999), copy('s3', signed, 3)], KEY, strict);
    expect(choice.holders).toEqual(['local', 's3']);
    expect(choice.skipped).toEqual([
      { repository: 'nas', key: KEY, errorType: 'ManifestDamaged', reason: 'manifest database/b1/manifest.json in nas differs from the copy in local; the copy in local is used' },
    ]);
  });

  test('nothing admitted: none is used, each is reported with its own refusal', () => {
    const choice = chooseCopy([copy('local', unsigned), copy('nas', bad)], KEY, strict);
    expect(choice.chosen).toBeUndefined();
    expect(choice.holders).toEqual([]);
    expect(choice.skipped.map((s) => [s.repository, s.errorType])).toEqual([
      ['local', 'UnsignedBackup'],
      ['nas', 'BadSignature'],
    ]);
    expect(choice.skipped[1].reason).toBe(`manifest ${KEY} in nas ${bad.reason}`);
    expect(chooseCopy([], KEY, strict)).toEqual({ chosen: undefined, holders: [], skipped: [] });
  });

  test('when every copy is shown (the listing), the best proven stands for the backup: signed, then unsigned, then wrongly signed', () => {
    const all = () => true;
    expect(chooseCopy([copy('local', bad), copy('nas', unsigned), copy('s3', signed)], KEY, all).chosen?.repository).toBe('s3');
    expect(chooseCopy([copy('local', bad), copy('nas', unsigned)], KEY, all).chosen?.repository).toBe('nas');
    const onlyBad = chooseCopy([copy('local', bad), copy('nas', bad)], KEY, all);
    expect(onlyBad.chosen?.repository).toBe('local');
    expect(onlyBad.holders).toEqual(['local', 'nas']);
  });
});

describe('which backup is latest of the configured source', () => {
  interface Item {
    id: string;
    startedAt: string;
    source: RecordedSource;
  }
  const CLUSTER = '7000000000000000001';
  const OTHER = '7000000000000000002';
  const known: ExpectedSource = { database: 'app', systemIdentifier: CLUSTER, from: 'the live cluster' };
  const unknown: ExpectedSource = { database: 'app', from: 'unknown', unreadable: 'connect ECONNREFUSED 10.0.0.5:5432' };
  // systemIdentifier null: a manifest that records no cluster.
  const item = (id: string, startedAt: string, database = 'app', systemIdentifier: string | null = CLUSTER): Item => ({ id, startedAt, source: { database, systemIdentifier: systemIdentifier ?? undefined } });
  const pick = (items: Item[], expected: ExpectedSource) => {
    const choice = pickLatest(items, (i) => i.source, (i) => i.startedAt, expected);
    return { ...choice, chosen: choice.chosen?.id };
  };

  test('the newest by start time among backups of the configured database and cluster, whatever the order given', () => {
    const items = [item('tue', '2026-11-24T02:00:00.000Z'), item('thu', '2026-11-26T02:00:00.000Z'), item('wed', '2026-11-25T02:00:00.000Z')];
    expect(pick(items, known)).toEqual({ chosen: 'thu' });
    expect(pick([...items].reverse(), known)).toEqual({ chosen: 'thu' });
  });

  test("a newer backup of another database or cluster, or one that records no cluster, is never latest", () => {
    const items = [
      item('ours', '2026-11-24T02:00:00.000Z'),
      item('other-db', '2026-11-26T02:00:00.000Z', 'billing'),
      item('other-cluster', '2026-11-26T03:00:00.000Z', 'app', OTHER),
      item('unrecorded', '2026-11-26T04:00:00.000Z', 'app', null),
    ];
    expect(pick(items, known)).toEqual({ chosen: 'ours' });
  });

  test('none of ours: nothing chosen, and the refusal counts what was ignored and why', () => {
    const items = [item('other-db', '2026-11-26T02:00:00.000Z', 'billing'), item('other-cluster', '2026-11-26T03:00:00.000Z', 'app', OTHER), item('unrecorded', '2026-11-26T04:00:00.000Z', 'app', null)];
    const choice = pick(items, known);
    expect(choice.chosen).toBeUndefined();
    expect(choice.refusal).toBe(
      `no backup matches the configured source; ignored: 1 of other databases; 1 of database "app" from other clusters (not ${CLUSTER}, the live cluster; set restore.sourceSystemIdentifier when restoring onto a new cluster); 1 that record no cluster (usable by explicit id only)`,
    );
    expect(pick([], known)).toEqual({});
  });

  test('the configured cluster unknown now: backups of one cluster are taken with a warning; of several, refused', () => {
    const one = pick([item('a', '2026-11-24T02:00:00.000Z'), item('b', '2026-11-25T02:00:00.000Z')], unknown);
    expect(one.chosen).toBe('b');
    expect(one.warning).toBe(
      `the configured cluster's system identifier is unknown (connect ECONNREFUSED 10.0.0.5:5432); every backup of database "app" comes from cluster ${CLUSTER}, so the newest of those was taken`,
    );
    const several = pick([item('a', '2026-11-24T02:00:00.000Z'), item('b', '2026-11-25T02:00:00.000Z', 'app', OTHER)], unknown);
    expect(several.chosen).toBeUndefined();
    expect(several.refusal).toContain(`come from 2 clusters (system identifiers ${CLUSTER}, ${OTHER})`);
    expect(several.refusal).toContain('set restore.sourceSystemIdentifier or name a backup id');
  });

  test('how a recorded source compares, and what naming a backup explicitly must say', () => {
    expect(sourceVerdict({ database: 'app', systemIdentifier: CLUSTER }, known)).toEqual({ kind: 'match' });
    expect(sourceVerdict({ systemIdentifier: CLUSTER }, known)).toEqual({ kind: 'match' }); // a base backup: the whole cluster
    expect(sourceVerdict({ database: 'billing', systemIdentifier: CLUSTER }, known)).toMatchObject({ kind: 'otherDatabase', reason: expect.stringContaining('"billing", not of the configured "app"') });
    expect(sourceVerdict({ database: 'app', systemIdentifier: OTHER }, known)).toMatchObject({ kind: 'otherCluster', reason: expect.stringContaining(`${OTHER}, not ${CLUSTER} (the live cluster)`) });
    expect(sourceVerdict({ database: 'app' }, known)).toEqual({ kind: 'unrecorded' });
    expect(sourceVerdict({ database: 'app', systemIdentifier: OTHER }, unknown)).toEqual({ kind: 'unchecked', systemIdentifier: OTHER });
    expect(explicitWarning('b1', { kind: 'match' }, known)).toBeUndefined();
    expect(explicitWarning('b1', { kind: 'unrecorded' }, known)).toContain('records no cluster system identifier');
    expect(explicitWarning('b1', { kind: 'unchecked', systemIdentifier: OTHER }, unknown)).toContain(`was made on cluster ${OTHER}; the configured cluster's identifier is unknown (connect ECONNREFUSED`);
    expect(explicitWarning('b1', sourceVerdict({ database: 'app', systemIdentifier: OTHER }, known), known)).toMatch(/used because it was named explicitly$/);
  });
});

describe("a backup's newest verification report", () => {
  const NOW = Date.parse('2026-11-26T12:00:00.000Z');
  const report = (reportId: string, finishedAt: string, backupId = 'b1') => ({ reportId, backupId, finishedAt, ok: true });

  test.each([
    ['a report of this backup, dated before now', report('20261126_020000-0a1b2c3d', '2026-11-26T02:10:00.000Z'), undefined],
    ['dated within the allowed clock skew (10 minutes ahead)', report('20261126_121000-0a1b2c3d', '2026-11-26T12:10:00.000Z'), undefined],
    ['finished one second past the allowed skew', report('20261126_120000-0a1b2c3d', '2026-11-26T12:10:01.000Z'), 'is dated in the future (planted?)'],
    ['its id dated past the allowed skew', report('20261126_121001-0a1b2c3d', '2026-11-26T12:00:00.000Z'), 'is dated in the future (planted?)'],
    ['of another backup', report('20261126_020000-0a1b2c3d', '2026-11-26T02:10:00.000Z', 'b2'), 'is a report of another backup'],
    ['an id that is not its file name', report('20261126_020000-0a1b2c3e', '2026-11-26T02:10:00.000Z'), 'is not the report its file name says'],
    ['an id that names no time', report('yesterday', '2026-11-26T02:10:00.000Z'), 'has no valid date'],
    // Found in review (issue 10): Date.UTC rolled November 31st over to December 1st.
    ['an id naming a day that does not exist', report('20261131_020000-0a1b2c3d', '2026-11-26T02:10:00.000Z'), 'has no valid date'],
    ['an id naming hour 24', report('20261125_240000-0a1b2c3d', '2026-11-26T02:10:00.000Z'), 'has no valid date'],
    ['no valid finish time', report('20261126_020000-0a1b2c3d', 'soon'), 'has no valid date'],
    ['not an object', null, 'is not the report its file name says'],
  ])('%s', (_name, value, refusal) => {
    const reportId = (value as { reportId?: string } | null)?.reportId ?? 'x';
    // The file a report is read from is named by the id the report should have.
    const key = verificationKey('b1', reportId.startsWith('2026') ? reportId.replace('0a1b2c3e', '0a1b2c3d') : reportId);
    expect(reportRefusal(value, 'b1', key, NOW)).toBe(refusal);
  });

  test('the newest report not refused; planted, unreadable and foreign ones are passed over', async () => {
    const local = new MemoryRepository('local');
    const put = (reportId: string, value: unknown) => local.set(verificationKey('b1', reportId), value);
    put('20261124_020000-00000001', report('20261124_020000-00000001', '2026-11-24T02:10:00.000Z'));
    put('20261125_020000-00000002', report('20261125_020000-00000002', '2026-11-25T02:10:00.000Z'));
    put('20261125_030000-00000003', '{ not json');
    put('20261126_030000-00000004', report('20261126_030000-00000004', '2026-11-26T03:10:00.000Z', 'b2'));
    put('20991231_235959-00000005', report('20991231_235959-00000005', '2099-12-31T23:59:59.000Z'));
    local.set('database/b1/verifications/notes.txt', 'not a report');
    await expect(latestVerification(local, 'b1', NOW)).resolves.toMatchObject({ reportId: '20261125_020000-00000002' });
    await expect(latestVerification(local, 'b2', NOW)).resolves.toBeUndefined();
  });
});

test('a scan lists whole manifests oldest first, each with its verdict; damaged ones apart; other keys ignored', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const signer = { keyId: keyIdOf(publicKey), privateKey };
  const verifier: Verifier = { keys: [{ keyId: signer.keyId, publicKey, file: '/keys/signing.pem' }], host: 'h' };
  const manifest = (backupId: string, startedAt: string) => ({
    formatVersion: 1,
    backupId,
    component: 'database',
    runId: 'run',
    startedAt,
    finishedAt: startedAt,
    compression: 'zstd',
    encryption: { recipientFingerprint: 'F'.repeat(40) },
    source: { database: 'app', snapshotTakenAt: startedAt },
    rowCounts: {},
    objects: [{ role: 'dump', key: `database/${backupId}/dump.pgcustom.zst.gpg`, bytes: 1, sha256: 'a'.repeat(64) }],
  });
  const local = new MemoryRepository('local')
    // Key order is not time order: "a-newest" sorts first.
    .set(manifestKey('database', 'a-newest'), signManifest(manifest('a-newest', '2026-11-26T02:00:00.000Z'), signer))
    .set(manifestKey('database', 'b-oldest'), manifest('b-oldest', '2026-11-24T02:00:00.000Z'))
    .set(manifestKey('database', 'c-middle'), signManifest(manifest('c-middle', '2026-11-25T02:00:00.000Z'), signer))
    .set(manifestKey('database', 'd-broken'), '{"formatVersion": 1, "backupId": "d-bro')
    .set('database/c-middle/verifications/manifest.json', '{}')
    .set(manifestKey('base', 'not-a-database-backup'), manifest('not-a-database-backup', '2026-11-27T02:00:00.000Z'));
  const scan = await scanManifests(local, 'database', verifier);
  expect(scan.manifests.map((s) => [s.manifest.backupId, s.signature.state])).toEqual([
    ['b-oldest', 'unsigned'],
    ['c-middle', 'signed'],
    ['a-newest', 'signed'],
  ]);
  expect(scan.damaged).toEqual([expect.objectContaining({ repository: 'local', key: manifestKey('database', 'd-broken'), errorType: 'ManifestDamaged', reason: expect.stringContaining('is not valid JSON') })]);
});
