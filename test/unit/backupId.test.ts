// Backup ids are made from workflow ids one to one: no two workflow ids share a backup id.
import { ApplicationFailure } from '@temporalio/common';
import { assertSafeKey } from '../../engine/storage/repository.js';
import { MAX_BACKUP_ID_LENGTH, backupIdOf, legacyBackupIdOf } from '../../workflows/backupId.js';

/** Reads a backup id back into its workflow id: the proof that the encoding loses nothing. */
function decode(id: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < id.length; i++) {
    if (id[i] === '_') {
      bytes.push(parseInt(id.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(id.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

const tricky = [
  'backup-database-2026-11-26',
  'dup x',
  'dup/x',
  'dup-x',
  'dup_x',
  'dup__x',
  'dup_20x',
  '.',
  '..',
  '...',
  "it's \"quoted\"",
  '../../etc/passwd',
  'Zoë 🎓',
  'a\u0000b',
  'tab\there',
];

test('distinct workflow ids give distinct backup ids, each a safe storage key segment that reads back', () => {
  const ids = tricky.map(backupIdOf);
  expect(new Set(ids).size).toBe(tricky.length);
  for (const [i, id] of ids.entries()) {
    expect(() => assertSafeKey(`database/${id}/manifest.json`)).not.toThrow();
    expect(decode(id)).toBe(tricky[i]);
  }
  // The collision the old mapping had.
  expect(legacyBackupIdOf('dup x')).toBe(legacyBackupIdOf('dup/x'));
  expect(backupIdOf('dup x')).not.toBe(backupIdOf('dup/x'));
  // Plain ids keep their names.
  expect(backupIdOf('backup-database-2026-11-26')).toBe('backup-database-2026-11-26');
});

test('a workflow id too long for a backup id is refused, not cut (cutting made two ids one)', () => {
  const long = 'x'.repeat(MAX_BACKUP_ID_LENGTH + 1);
  expect(legacyBackupIdOf(long)).toBe(legacyBackupIdOf(long + 'y'));
  let failure: unknown;
  try {
    backupIdOf(long);
  } catch (err) {
    failure = err;
  }
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
  expect((failure as Error).message).toMatch(/at most 200/);
  expect(backupIdOf('x'.repeat(MAX_BACKUP_ID_LENGTH))).toHaveLength(MAX_BACKUP_ID_LENGTH);
});

test('the CLI refuses such a workflow id before it starts anything', async () => {
  const { backupWorkflowIdOption, InputRefused } = await import('../../client/workflowRun.js');
  expect(() => backupWorkflowIdOption('x'.repeat(MAX_BACKUP_ID_LENGTH + 1))).toThrow(InputRefused);
  expect(() => backupWorkflowIdOption('dup x')).not.toThrow();
  expect(() => backupWorkflowIdOption(undefined)).not.toThrow();
});
