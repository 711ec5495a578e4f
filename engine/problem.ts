// A problem found by a check: `key` names it for as long as it lasts (the same from one look to
// the next, so it can be opened once, reminded of and resolved); `message` says what is wrong now.
export interface Problem {
  key: string;
  message: string;
}
