import { describe, expect, it, vi } from 'vitest'
import {
  correction,
  mediaToWall,
  normalizeFrags,
  prefersNativeHls,
  throttle,
  wallToMedia,
} from '../../src/lib/playback'

// Two 4 s files with a 10 s hole between them (hls.js lays them end to end on
// the media timeline; EXT-X-PROGRAM-DATE-TIME keeps the wall clock).
const W = 1_700_000_000_000
const frags = normalizeFrags([
  { start: 4, duration: 4, pdt: W + 14_000 },
  { start: 0, duration: 4, pdt: W },
  { start: 8, duration: 2, pdt: null },
])

describe('media time <-> wall clock', () => {
  it('keeps only fragments with a date, in order', () => {
    expect(frags.map((f) => f.start)).toEqual([0, 4])
  })
  it('maps media time through its fragment', () => {
    expect(mediaToWall(frags, 0)).toBe(W)
    expect(mediaToWall(frags, 2.5)).toBe(W + 2500)
    expect(mediaToWall(frags, 4)).toBe(W + 14_000)
    expect(mediaToWall(frags, 5)).toBe(W + 15_000)
    expect(mediaToWall([], 5)).toBeNull()
  })
  it('maps wall time back, jumping a hole to the next recording', () => {
    expect(wallToMedia(frags, W + 1000)).toBe(1)
    expect(wallToMedia(frags, W + 9000)).toBe(4) // in the hole
    expect(wallToMedia(frags, W + 16_500)).toBe(6.5)
    expect(wallToMedia(frags, W + 18_000)).toBe(8) // the very end
    expect(wallToMedia(frags, W - 1)).toBeNull()
    expect(wallToMedia(frags, W + 60_000)).toBeNull()
    expect(wallToMedia([], W)).toBeNull()
  })
  it('round-trips inside fragments', () => {
    for (const t of [0, 1.25, 3.9, 4, 7.5]) expect(wallToMedia(frags, mediaToWall(frags, t)!)).toBeCloseTo(t, 6)
  })
})

describe('keeping players in step', () => {
  it('seeks past half a second', () => {
    expect(correction(W, W + 700)).toEqual({ kind: 'seek', to: W })
    expect(correction(W, W - 501)).toEqual({ kind: 'seek', to: W })
  })
  it('nudges the rate by 5 % below that', () => {
    expect(correction(W, W + 300)).toEqual({ kind: 'rate', rate: 0.95 })
    expect(correction(W, W - 300)).toEqual({ kind: 'rate', rate: 1.05 })
    expect(correction(W, W - 300, 4)).toEqual({ kind: 'rate', rate: 4.2 })
  })
  it('leaves a close follower alone', () => {
    expect(correction(W, W + 40)).toEqual({ kind: 'none' })
    expect(correction(W, W)).toEqual({ kind: 'none' })
  })
})

describe('throttle', () => {
  it('runs at once, then at most every interval, ending on the last value', () => {
    vi.useFakeTimers()
    try {
      const seen: number[] = []
      const f = throttle((n: number) => seen.push(n), 100)
      f(1)
      f(2)
      f(3)
      expect(seen).toEqual([1])
      vi.advanceTimersByTime(99)
      expect(seen).toEqual([1])
      vi.advanceTimersByTime(1)
      expect(seen).toEqual([1, 3])
      vi.advanceTimersByTime(500)
      f(4)
      expect(seen).toEqual([1, 3, 4])
      f(5)
      f.cancel()
      vi.advanceTimersByTime(500)
      expect(seen).toEqual([1, 3, 4])
      f(6)
      f(7)
      f.flush()
      expect(seen).toEqual([1, 3, 4, 6, 7])
    } finally {
      vi.useRealTimers()
    }
  })
  it('keeps up with a fast drag: every value within 150 ms', () => {
    vi.useFakeTimers()
    try {
      const at: number[] = []
      const f = throttle(() => at.push(Date.now()), 100)
      const t0 = Date.now()
      for (let i = 0; i < 100; i++) {
        f()
        vi.advanceTimersByTime(16) // 60 Hz pointer moves
      }
      const gaps = at.slice(1).map((t, i) => t - at[i]!)
      expect(Math.max(...gaps)).toBeLessThanOrEqual(150)
      expect(at[0]).toBe(t0)
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('native HLS', () => {
  it('only where the browser plays it and knows its start date', () => {
    const safari = { canPlayType: () => 'maybe', getStartDate: () => new Date() } as unknown as HTMLVideoElement
    const chrome = { canPlayType: () => '' } as unknown as HTMLVideoElement
    const halfway = { canPlayType: () => 'maybe' } as unknown as HTMLVideoElement
    expect(prefersNativeHls(safari)).toBe(true)
    expect(prefersNativeHls(chrome)).toBe(false)
    expect(prefersNativeHls(halfway)).toBe(false)
  })
})
