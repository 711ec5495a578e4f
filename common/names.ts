// Names both sides must agree on: the workflows that make scratch databases, and the sweep
// that finds them later. Pure: bundled into the workflow sandbox.

/** A short, stable tag of a workflow id (FNV-1a), for scratch database names. */
export function shortTag(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

/** The scratch database a verification or a drill restores into, named after its workflow id. */
export function scratchDatabaseName(kind: 'verify' | 'drill', workflowId: string): string {
  return `backupctl_${kind}_${shortTag(workflowId)}`;
}
