// How many attempts a long transfer (a backup's streaming pass) gets: the workflows' retry
// policy, and the bound the activities use when they clear earlier attempts' folders.
export const TRANSFER_MAX_ATTEMPTS = 8;
