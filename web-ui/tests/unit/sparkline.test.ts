import { describe, expect, it } from 'vitest'
import { sparkMax, sparkPath, stateLabel, stateSegments, stateTone } from '../../src/lib/sparkline'

const o = { width: 100, height: 20, pad: 0 }

describe('sparkPath', () => {
  it('draws an empty series as nothing', () => {
    expect(sparkPath([], o)).toBe('')
    expect(sparkPath([{ t: 0, v: null }], o)).toBe('')
  })

  it('maps time to x and value to y, top is the largest value', () => {
    const d = sparkPath(
      [
        { t: 0, v: 0 },
        { t: 10_000, v: 10 },
        { t: 20_000, v: 5 },
      ],
      o,
    )
    expect(d).toBe('M0 20L50 0L100 10')
  })

  it('uses the given window and top, clamping values', () => {
    const d = sparkPath(
      [
        { t: 50, v: 30 },
        { t: 100, v: -5 },
      ],
      { ...o, start: 0, end: 100, max: 20, gapMs: 1000 },
    )
    expect(d).toBe('M50 0L100 20')
  })

  it('breaks the line at a missing value and at a long gap', () => {
    const pts = [
      { t: 0, v: 1 },
      { t: 10, v: 1 },
      { t: 20, v: null },
      { t: 30, v: 1 },
      { t: 40, v: 1 },
      { t: 100, v: 1 },
    ]
    const d = sparkPath(pts, { ...o, gapMs: 25, max: 1 })
    expect(d.match(/M/g)).toHaveLength(3)
    expect(d.startsWith('M0 0L10 0M30 0L40 0M')).toBe(true)
  })

  it('draws a lone point as a short dash, inside the box', () => {
    const d = sparkPath([{ t: 5, v: 2 }], { ...o, max: 4 })
    expect(d).toBe('M98 10L100 10')
  })

  it('keeps a flat low line low (minMax)', () => {
    expect(sparkPath([{ t: 0, v: 0.5 }, { t: 1, v: 0.5 }], { ...o, minMax: 1 })).toBe('M0 10L100 10')
    expect(sparkMax([{ t: 0, v: 3 }, { t: 1, v: null }, { t: 2, v: 7 }])).toBe(7)
    expect(sparkMax([])).toBeNull()
  })

  it('sorts samples by time', () => {
    expect(sparkPath([{ t: 10, v: 1 }, { t: 0, v: 0 }], { ...o, max: 1 })).toBe('M0 20L100 0')
  })
})

describe('state strip', () => {
  it('merges runs of one state and splits at changes and holes', () => {
    const s = [
      { at_ms: 0, state: 'running' },
      { at_ms: 10_000, state: 'running' },
      { at_ms: 20_000, state: 'backoff' },
      { at_ms: 30_000, state: 'running' },
      { at_ms: 200_000, state: 'running' },
    ]
    expect(stateSegments(s)).toEqual([
      { state: 'running', start: 0, end: 20_000 },
      { state: 'backoff', start: 20_000, end: 30_000 },
      { state: 'running', start: 30_000, end: 55_000 },
      { state: 'running', start: 200_000, end: 210_000 },
    ])
    expect(stateSegments([])).toEqual([])
  })

  it('reads states in plain words and tones', () => {
    expect(stateTone('running')).toBe('ok')
    expect(stateTone('backoff')).toBe('warn')
    expect(stateTone('unhealthy')).toBe('bad')
    expect(stateTone('stopped')).toBe('off')
    expect(stateLabel('running')).toBe('Recording')
    expect(stateLabel('unhealthy')).toBe('No picture')
    expect(stateLabel('weird')).toBe('Weird')
    expect(stateLabel('')).toBe('Unknown')
  })
})
