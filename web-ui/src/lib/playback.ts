// Recorded playback, with no DOM: mapping a player's media time to wall-clock
// time through the playlist's EXT-X-PROGRAM-DATE-TIME, keeping several
// players in step, and throttling the thumbnail preview.

/** One fragment of a loaded playlist: where it sits on the media timeline and on the wall clock. */
export interface Frag {
  /** Media time of its first frame, in seconds. */
  start: number
  /** In seconds. */
  duration: number
  /** Its EXT-X-PROGRAM-DATE-TIME, Unix ms. */
  pdt: number
}

/** Sorts and keeps only fragments with a wall-clock time. */
export function normalizeFrags(frags: readonly { start: number; duration: number; pdt: number | null | undefined }[]): Frag[] {
  return frags
    .filter((f): f is Frag => typeof f.pdt === 'number' && Number.isFinite(f.pdt) && Number.isFinite(f.start))
    .map((f) => ({ start: f.start, duration: f.duration, pdt: f.pdt }))
    .sort((a, b) => a.start - b.start)
}

/** The fragment holding media time `t` (or the nearest one before it). */
function fragAtMedia(frags: readonly Frag[], t: number): Frag | null {
  let found: Frag | null = null
  for (const f of frags) {
    if (f.start <= t + 1e-6) found = f
    else break
  }
  return found ?? frags[0] ?? null
}

/** Media time (s) to wall time (ms); `null` without fragments. */
export function mediaToWall(frags: readonly Frag[], t: number): number | null {
  const f = fragAtMedia(frags, t)
  if (!f) return null
  return f.pdt + (t - f.start) * 1000
}

/**
 * Wall time (ms) to media time (s): inside a fragment, its offset; in a gap
 * between fragments, the start of the next one; `null` outside the playlist.
 */
export function wallToMedia(frags: readonly Frag[], wall: number): number | null {
  if (frags.length === 0) return null
  const first = frags[0]!
  if (wall < first.pdt) return null
  for (let i = 0; i < frags.length; i++) {
    const f = frags[i]!
    const end = f.pdt + f.duration * 1000
    if (wall >= f.pdt && wall < end) return f.start + (wall - f.pdt) / 1000
    const next = frags[i + 1]
    if (next && wall >= end && wall < next.pdt) return next.start
  }
  const last = frags[frags.length - 1]!
  if (wall <= last.pdt + last.duration * 1000) return last.start + last.duration
  return null
}

/** How to bring a follower back in step with the master clock. */
export type Correction = { kind: 'none' } | { kind: 'seek'; to: number } | { kind: 'rate'; rate: number }

/** Past this drift a follower seeks. */
export const SEEK_DRIFT_MS = 500
/** Below this drift a follower is left alone. */
export const IGNORE_DRIFT_MS = 60
/** The playbackRate nudge for smaller drifts. */
export const RATE_NUDGE = 0.05

/**
 * A follower at wall time `follower` while the master is at `master`, both
 * playing at `baseRate`: seek when over 0.5 s apart, else speed up or slow down
 * by 5 % (for about a second), else nothing.
 */
export function correction(master: number, follower: number, baseRate = 1): Correction {
  const drift = follower - master
  if (Math.abs(drift) > SEEK_DRIFT_MS) return { kind: 'seek', to: master }
  if (Math.abs(drift) <= IGNORE_DRIFT_MS) return { kind: 'none' }
  return { kind: 'rate', rate: baseRate * (drift > 0 ? 1 - RATE_NUDGE : 1 + RATE_NUDGE) }
}

/**
 * Calls `fn` at most once every `ms`: the first call at once, the last one of a
 * burst when the wait is over, so the final value is never lost.
 */
export function throttle<A extends unknown[]>(
  fn: (...args: A) => void,
  ms: number,
  now: () => number = () => Date.now(),
  schedule: (f: () => void, ms: number) => unknown = (f, d) => setTimeout(f, d),
  cancel: (h: unknown) => void = (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
): ((...args: A) => void) & { cancel: () => void; flush: () => void } {
  let last = -Infinity
  let pending: A | null = null
  let timer: unknown = null
  const run = () => {
    timer = null
    if (!pending) return
    const args = pending
    pending = null
    last = now()
    fn(...args)
  }
  const wrapped = (...args: A) => {
    pending = args
    const wait = last + ms - now()
    if (wait <= 0 && timer == null) run()
    else if (timer == null) timer = schedule(run, Math.max(0, wait))
  }
  wrapped.cancel = () => {
    if (timer != null) cancel(timer)
    timer = null
    pending = null
  }
  wrapped.flush = () => {
    if (timer != null) cancel(timer)
    run()
  }
  return wrapped
}

/** The playback speeds offered. */
export const SPEEDS = [1, 2, 4, 8] as const

/** Whether the browser plays HLS itself and can tell the wall clock (Safari, iOS). */
export function prefersNativeHls(video: Pick<HTMLVideoElement, 'canPlayType'>): boolean {
  const can = video.canPlayType('application/vnd.apple.mpegurl')
  return can !== '' && typeof (video as unknown as { getStartDate?: unknown }).getStartDate === 'function'
}
