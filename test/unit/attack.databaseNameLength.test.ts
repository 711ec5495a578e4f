// Attack (hostile review of names, restore --replace): the names a restore makes from the live
// database's (the restored database, `<live>_restore_<stamp>`; the kept one,
// `<live>_pre_restore_<stamp>`) must be at most 63 bytes, or PostgreSQL truncates them
// (NAMEDATALEN) and every later look-up by the full name misses: the swap's check of the kept
// name, its reopening (the old live database left refusing connections), the drop of a failed
// restore's database. databaseName (workflows/restoreInput.ts) shortens the base BEFORE it
// lower-cases it, and lower-casing lengthens some letters: 'İ' (U+0130) becomes 'i' + U+0307,
// two characters, each then an ASCII byte. A live database named with 31 of them (62 bytes,
// a valid name) gives a 90-byte kept name.
//
// Fixed: databaseName lower-cases and replaces first, then shortens (every character is then
// one ASCII byte).
import { DATABASE_NAME, databaseName } from '../../workflows/restoreInput.js';

const LIVES = ['İ'.repeat(31), 'İstanbul_'.repeat(7), 'a'.repeat(63), 'Straße_'.repeat(9), '𝔘'.repeat(15), 'shop "quoted"; DROP'];
const SUFFIXES = ['_restore_20261128_195622', '_pre_restore_20261128_195622'];

test('every name made from a live database name is a name we create: at most 63 bytes, lower case', () => {
  for (const live of LIVES) for (const suffix of SUFFIXES) expect({ live, name: databaseName(live, suffix) }).toEqual({ live, name: expect.stringMatching(DATABASE_NAME) });
});

test('names made from ASCII live database names (the usual ones) already are', () => {
  for (const live of LIVES.filter((l) => /^[ -~]*$/.test(l))) for (const suffix of SUFFIXES) expect(databaseName(live, suffix)).toMatch(DATABASE_NAME);
});
