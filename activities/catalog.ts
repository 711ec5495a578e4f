// The catalog is the manifests: one JSON file beside every backup, in every repository,
// written last. "The manifest exists" means "this backup is complete and verified", so the
// catalog can be rebuilt from any single repository.
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import type { BackupManifest, Compression, StoredObject } from '../workflows/types.js';
import type { BaseBackupManifest } from '../workflows/pitrTypes.js';
import { compressionSuffix } from './compression.js';
import type { Repository } from './storage/repository.js';

const MANIFEST_NAME = 'manifest.json';

/** What a backup is of: a logical dump of the database, or a physical base backup of its cluster. */
export type Component = 'database' | 'base';

export function backupPrefix(component: Component, backupId: string): string {
  return `${component}/${backupId}/`;
}

export function manifestKey(component: Component, backupId: string): string {
  return backupPrefix(component, backupId) + MANIFEST_NAME;
}

export const OBJECT_NAMES: Record<StoredObject['role'], string> = {
  dump: 'dump.pgcustom',
  globals: 'globals.sql',
  base: 'base.tar',
};

export function objectKey(component: Component, backupId: string, role: StoredObject['role'], compression: Compression): string {
  return `${backupPrefix(component, backupId)}${OBJECT_NAMES[role]}.${compressionSuffix(compression)}.gpg`;
}

export async function writeManifest(repository: Repository, manifest: { component: Component; backupId: string }): Promise<void> {
  const body = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  await repository.put(manifestKey(manifest.component, manifest.backupId), Readable.from([body]), { contentLength: body.length });
}

export interface ManifestOf {
  database: BackupManifest;
  base: BaseBackupManifest;
}

export async function readManifest<C extends Component>(repository: Repository, component: C, backupId: string): Promise<ManifestOf[C] | undefined> {
  const key = manifestKey(component, backupId);
  if (!(await repository.stat(key))) return undefined;
  return JSON.parse(await text(await repository.get(key))) as ManifestOf[C];
}

/** Every complete backup of a component in one repository, oldest first. */
export async function listManifests<C extends Component>(repository: Repository, component: C): Promise<ManifestOf[C][]> {
  const keys = (await repository.list(`${component}/`)).filter((o) => o.key.endsWith(`/${MANIFEST_NAME}`));
  const manifests: ManifestOf[C][] = [];
  for (const { key } of keys) {
    try {
      manifests.push(JSON.parse(await text(await repository.get(key))) as ManifestOf[C]);
    } catch {
      // A manifest that cannot be read is not a backup we can vouch for; monitoring reports it.
    }
  }
  return manifests.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** Verification reports live beside their backup; drill reports in their own folder. */
export function verificationKey(backupId: string, reportId: string): string {
  return `${backupPrefix('database', backupId)}verifications/${reportId}.json`;
}

export function drillKey(reportId: string): string {
  return `drills/${reportId}.json`;
}

export async function writeJson(repository: Repository, key: string, value: object): Promise<void> {
  const body = Buffer.from(JSON.stringify(value, null, 2) + '\n');
  await repository.put(key, Readable.from([body]), { contentLength: body.length });
}

/** The newest verification report of a backup in one repository (report ids sort by time). */
export async function latestVerification<T>(repository: Repository, backupId: string): Promise<T | undefined> {
  const keys = (await repository.list(`${backupPrefix('database', backupId)}verifications/`)).map((o) => o.key).filter((k) => k.endsWith('.json'));
  const newest = keys.sort().at(-1);
  return newest ? (JSON.parse(await text(await repository.get(newest))) as T) : undefined;
}
