// Found in review (issue 9): the sweep's search for unfinished writes walked every repository
// (a file repository's whole tree of our folders) without one heartbeat, under a 20 s heartbeat
// timeout: on a large share the step timed out, attempt after attempt, and the sweep found
// nothing at all. It now beats before and after each repository.
import { findUploads } from '../../engine/leftovers.js';
import type { Repository } from '../../engine/storage/repository.js';

test('the search for unfinished writes beats around each repository it walks', async () => {
  const events: string[] = [];
  const repository = (name: string) =>
    ({
      name,
      kind: 'filesystem',
      async listUnfinishedUploads() {
        events.push(`walk ${name}`);
        return [];
      },
    }) as unknown as Repository;
  await findUploads([repository('local'), repository('nas')], { leftovers: [], notExamined: [] }, Date.now(), () => events.push('beat'));
  expect(events).toEqual(['beat', 'walk local', 'beat', 'beat', 'walk nas', 'beat']);
});
