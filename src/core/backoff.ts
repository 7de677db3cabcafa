/**
 * Capped exponential backoff with jitter: the wait before retry `attempt` (0 for the first) is
 * `firstMs · 2^attempt`, at most `capMs`, scaled by a random factor in [0.5, 1) so that clients
 * failing together do not retry together.
 */
export function backoffDelay(attempt: number, firstMs: number, capMs: number, random: () => number = Math.random): number {
  // The exponent is clamped so that a long outage cannot overflow to Infinity (the cap rules long before).
  return Math.min(capMs, firstMs * 2 ** Math.min(Math.max(attempt, 0), 30)) * (0.5 + random() / 2);
}
