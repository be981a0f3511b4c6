import { describe, expect, it } from 'vitest'
import { backoffBase, backoffDelay } from '../../src/lib/backoff'

describe('backoff', () => {
  it('doubles from 1 s and stops at 10 s', () => {
    const schedule = Array.from({ length: 8 }, (_, i) => backoffBase(i))
    expect(schedule).toEqual([1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000])
    expect(backoffBase(1e9)).toBe(10000)
    expect(backoffBase(-3)).toBe(1000)
  })

  it('is the base schedule when the jitter lands in the middle', () => {
    const mid = () => 0.5
    expect([0, 1, 2, 3, 4].map((a) => backoffDelay(a, { random: mid }))).toEqual([1000, 2000, 4000, 8000, 10000])
  })

  it('spreads each delay by ±20 % without passing the cap', () => {
    for (let a = 0; a < 10; a++) {
      const base = backoffBase(a)
      const lo = backoffDelay(a, { random: () => 0 })
      const hi = backoffDelay(a, { random: () => 0.999999 })
      expect(lo).toBe(Math.round(base * 0.8))
      expect(hi).toBeLessThanOrEqual(10000)
      expect(hi).toBeGreaterThanOrEqual(base)
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(a)
        expect(d).toBeGreaterThanOrEqual(Math.round(base * 0.8))
        expect(d).toBeLessThanOrEqual(Math.min(10000, Math.round(base * 1.2)))
      }
    }
  })
})
