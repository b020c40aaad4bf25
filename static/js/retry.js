// How long a phone waits before it retries an order: the bakery's one retry policy. bakery/client.py
// (RetryPolicy.wait, for `manage.py tunnel`) computes the same; tests/test_retry_policy.py holds both
// to one table. Its parameters (base, cap, how many retries) come from settings.CLIENT_RETRY_*, which
// the pages hand to phone.js in data-* attributes. Pure functions, so node can load this file too.
//
// Retry n waits between max(Retry-After, ceiling / 2) and that plus ceiling / 2, where the ceiling is
// min(cap, base * 2^(n-1)): exponential backoff with "equal jitter", its floor raised to the server's
// Retry-After. A Retry-After is a minimum, never an exact time: a room of 200 phones told
// "Retry-After: 2" by the same 503 would otherwise all come back in the same millisecond and be
// refused together again. Waiting max(backoff, Retry-After) loses the jitter exactly then (every
// backoff shorter than the Retry-After collapses onto it), and Retry-After plus the whole backoff
// waits longer than spreading needs, so the window keeps its width and only moves later.

// The answers that say when to come back: the key is still being worked on (409), too many orders
// or tunnel holds (429), the bakery's database is away and nothing was written (503).
export const RETRY_AFTER_STATUSES = [409, 429, 503];

// Retry-After as seconds, or null. The bakery sends whole seconds; a date, a negative number or
// anything else is not understood, and then the backoff alone decides.
export function retryAfterSeconds(value) {
  const match = /^[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*$/.exec(value ?? "");
  return match ? Number(match[1]) : null;
}

// policy: {base, cap} in seconds; retry: 1 for the first retry; status: the answer's status (null
// when there was none); retryAfter: its Retry-After header (null when absent); random: in [0, 1).
export function retryWaitSeconds(policy, retry, status, retryAfter, random = Math.random()) {
  const ceiling = Math.min(policy.cap, policy.base * 2 ** (retry - 1));
  const asked = RETRY_AFTER_STATUSES.includes(status) ? retryAfterSeconds(retryAfter) : null;
  return Math.max(asked ?? 0, ceiling / 2) + random * (ceiling / 2);
}
