// Reconnect delays: 1 s, 2 s, 4 s, 8 s, then 10 s, each spread by jitter so
// many tiles that lost the server together do not come back in lockstep.

export interface BackoffOptions {
  /** The first delay, in ms. */
  baseMs?: number
  /** The largest delay, in ms, jitter included. */
  maxMs?: number
  /** The spread, as a fraction of the delay: 0.2 means ±20 %. */
  jitter?: number
  /** A number in [0, 1); `Math.random` by default. */
  random?: () => number
}

export const BACKOFF_BASE_MS = 1000
export const BACKOFF_MAX_MS = 10_000
export const BACKOFF_JITTER = 0.2

/** The delay before retry number `attempt` (0 for the first retry), without jitter. */
export function backoffBase(attempt: number, baseMs = BACKOFF_BASE_MS, maxMs = BACKOFF_MAX_MS): number {
  const n = Math.max(0, Math.floor(attempt))
  // 2^n overflows nothing below n = 1023, but stop doubling once past the cap.
  if (n >= 30) return maxMs
  return Math.min(maxMs, baseMs * 2 ** n)
}

/** The delay before retry number `attempt`, with jitter, never above `maxMs` nor below half of `baseMs`. */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const baseMs = opts.baseMs ?? BACKOFF_BASE_MS
  const maxMs = opts.maxMs ?? BACKOFF_MAX_MS
  const jitter = opts.jitter ?? BACKOFF_JITTER
  const random = opts.random ?? Math.random
  const d = backoffBase(attempt, baseMs, maxMs)
  const spread = d * jitter * (2 * random() - 1)
  return Math.round(Math.min(maxMs, Math.max(baseMs / 2, d + spread)))
}
