import { describe, expect, it } from 'vitest'
import {
  DAY,
  HOUR,
  MAX_SPAN,
  MINUTE,
  MIN_SPAN,
  clampView,
  clusterMarks,
  dayOf,
  dayWindow,
  eventMarks,
  formatBytes,
  formatClock,
  formatDuration,
  gapRects,
  hitRect,
  mergeSpans,
  openingCursor,
  openingSpan,
  placeTickLabels,
  nextEvent,
  pan,
  pinchView,
  previousEvent,
  rangeOf,
  rectFor,
  resolutionFor,
  spanOf,
  spanRects,
  ticks,
  timeToX,
  wheelFactor,
  windowAround,
  xToTime,
  zoomAround,
  zoomBy,
  type View,
} from '../../src/lib/timeline'

// A local midnight, so tick alignment does not depend on the machine's zone.
const T0 = new Date(2026, 11, 6, 0, 0, 0).getTime()
const v = (start: number, end: number): View => ({ start, end })

describe('time <-> px', () => {
  const view = v(T0, T0 + HOUR)
  it('maps the ends and the middle', () => {
    expect(timeToX(T0, view, 600)).toBe(0)
    expect(timeToX(T0 + HOUR, view, 600)).toBe(600)
    expect(timeToX(T0 + 30 * MINUTE, view, 600)).toBe(300)
    expect(timeToX(T0 - 6 * MINUTE, view, 600)).toBe(-60)
  })
  it('round-trips', () => {
    for (const x of [0, 1, 123.5, 599, 600]) expect(timeToX(xToTime(x, view, 600), view, 600)).toBeCloseTo(x, 6)
    for (const t of [T0, T0 + 1, T0 + 1234567 % HOUR]) expect(xToTime(timeToX(t, view, 600), view, 600)).toBeCloseTo(t, 3)
  })
  it('asks for one bucket per pixel', () => {
    expect(resolutionFor(view, 600)).toBe(6000)
    expect(resolutionFor(v(T0, T0 + DAY), 1000)).toBe(86_400)
    expect(resolutionFor(view, 0)).toBe(HOUR)
    expect(resolutionFor(v(T0, T0 + 10), 600)).toBe(1)
  })
})

describe('zoom', () => {
  const view = v(T0, T0 + 6 * HOUR)
  it('keeps the anchor where it was on screen', () => {
    const anchor = T0 + 1.5 * HOUR // a quarter of the way in
    const z = zoomAround(view, anchor, HOUR)
    expect(spanOf(z)).toBe(HOUR)
    expect((anchor - z.start) / spanOf(z)).toBeCloseTo(0.25, 9)
    const back = zoomAround(z, anchor, 6 * HOUR)
    expect(back.start).toBeCloseTo(view.start, 3)
    expect(back.end).toBeCloseTo(view.end, 3)
  })
  it('zooms around the midpoint of a centred anchor', () => {
    const z = zoomBy(view, T0 + 3 * HOUR, 0.5)
    expect(z).toEqual(v(T0 + 1.5 * HOUR, T0 + 4.5 * HOUR))
  })
  it('clamps the span', () => {
    expect(spanOf(zoomAround(view, T0, 1))).toBe(MIN_SPAN)
    expect(spanOf(zoomAround(view, T0, 100 * DAY))).toBe(MAX_SPAN)
    expect(spanOf(zoomBy(v(T0, T0 + MIN_SPAN), T0, 0.1))).toBe(MIN_SPAN)
  })
  it('clamps into the bounds without resizing', () => {
    const now = T0 + HOUR
    const z = zoomAround(v(T0, T0 + HOUR), T0 + 50 * MINUTE, 6 * HOUR, { max: now })
    expect(z.end).toBe(now)
    expect(spanOf(z)).toBe(6 * HOUR)
    const low = zoomAround(view, T0, 2 * HOUR, { min: T0 + HOUR })
    expect(low.start).toBe(T0 + HOUR)
  })
  it('treats an anchor outside the view as its nearest edge', () => {
    const z = zoomAround(view, T0 - HOUR, HOUR)
    expect(z.start).toBe(T0 - HOUR)
  })
  it('turns wheel movement into a factor', () => {
    expect(wheelFactor(100)).toBe(2)
    expect(wheelFactor(-100)).toBe(0.5)
    expect(wheelFactor(0)).toBe(1)
    expect(wheelFactor(3, 1)).toBeCloseTo(2 ** 0.48, 9) // lines
    expect(wheelFactor(10_000)).toBe(8) // one huge flick is capped
  })
})

describe('windows', () => {
  it('pans and clamps', () => {
    expect(pan(v(T0, T0 + HOUR), HOUR)).toEqual(v(T0 + HOUR, T0 + 2 * HOUR))
    expect(pan(v(T0, T0 + HOUR), 10 * HOUR, { max: T0 + 2 * HOUR })).toEqual(v(T0 + HOUR, T0 + 2 * HOUR))
  })
  it('centres a window', () => {
    expect(windowAround(T0, HOUR)).toEqual(v(T0 - HOUR / 2, T0 + HOUR / 2))
    expect(windowAround(T0, HOUR, { max: T0 })).toEqual(v(T0 - HOUR, T0))
  })
  it('keeps a window wider than its bounds ending at max', () => {
    expect(clampView(v(0, 100), { min: 50, max: 120 })).toEqual(v(20, 120))
  })
  it('reads a day as local midnight to midnight', () => {
    const d = dayWindow('2026-12-06')!
    expect(d.start).toBe(T0)
    expect(d.end).toBe(new Date(2026, 11, 7).getTime())
    expect(dayOf(d.start)).toBe('2026-12-06')
    expect(dayOf(d.end - 1)).toBe('2026-12-06')
    expect(dayWindow('yesterday')).toBeNull()
    expect(dayWindow('')).toBeNull()
  })
  it('orders a range', () => {
    expect(rangeOf(5, 2)).toEqual(v(2, 5))
    expect(rangeOf(2, 5)).toEqual(v(2, 5))
  })
})

describe('pinch', () => {
  const view = v(T0, T0 + HOUR)
  it('spreading two fingers zooms in around their midpoint', () => {
    const p = pinchView(view, 100, 300, 200, 300, 600)
    expect(spanOf(p)).toBeCloseTo(HOUR / 2, 3)
    // The time under the midpoint is still under it.
    expect(xToTime(300, p, 600)).toBeCloseTo(xToTime(300, view, 600), 3)
  })
  it('pinching in zooms out, moving the midpoint pans', () => {
    const out = pinchView(view, 200, 150, 100, 150, 600)
    expect(spanOf(out)).toBeCloseTo(2 * HOUR, 3)
    expect(xToTime(150, out, 600)).toBeCloseTo(xToTime(150, view, 600), 3)
    const moved = pinchView(view, 100, 300, 100, 400, 600)
    expect(spanOf(moved)).toBeCloseTo(HOUR, 3)
    expect(xToTime(400, moved, 600)).toBeCloseTo(xToTime(300, view, 600), 3)
  })
  it('is clamped like other zooms and survives a zero distance', () => {
    expect(spanOf(pinchView(view, 1, 300, 10_000, 300, 600))).toBe(MIN_SPAN)
    expect(spanOf(pinchView(view, 0, 300, 0, 300, 600))).toBe(HOUR)
    expect(pinchView(view, 100, 300, 50, 300, 600, { max: T0 + HOUR }).end).toBeLessThanOrEqual(T0 + HOUR)
  })
})

describe('spans and gaps', () => {
  const view = v(T0, T0 + HOUR) // 600 px: 6 s a pixel
  it('merges overlapping and touching spans', () => {
    expect(mergeSpans([{ start: 10, end: 20 }, { start: 0, end: 5 }, { start: 5, end: 8 }, { start: 15, end: 30 }, { start: 40, end: 40 }])).toEqual([
      { start: 0, end: 8 },
      { start: 10, end: 30 },
    ])
  })
  it('clips rects to the view', () => {
    expect(rectFor(T0 - HOUR, T0 + 30 * MINUTE, view, 600)).toMatchObject({ x: 0, w: 300, start: T0 })
    expect(rectFor(T0 + 2 * HOUR, T0 + 3 * HOUR, view, 600)).toBeNull()
    expect(rectFor(T0 + 10, T0 + 20, view, 600, 1)!.w).toBe(1)
  })
  it('draws spans and the holes between them', () => {
    const spans = [
      { start: T0 + 10 * MINUTE, end: T0 + 20 * MINUTE },
      { start: T0 + 30 * MINUTE, end: T0 + 40 * MINUTE },
    ]
    const s = spanRects(spans, view, 600)
    expect(s.map((r) => [r.x, r.w])).toEqual([
      [100, 100],
      [300, 100],
    ])
    const g = gapRects(spans, view, 600)
    expect(g.map((r) => [r.x, r.w])).toEqual([
      [0, 100],
      [200, 100],
      [400, 200],
    ])
  })
  it('a fully recorded view has no gap, an empty one is one gap', () => {
    expect(gapRects([{ start: T0 - 1, end: T0 + 2 * HOUR }], view, 600)).toEqual([])
    expect(gapRects([], view, 600).map((r) => [r.x, r.w])).toEqual([[0, 600]])
  })
  it('the future is not a gap', () => {
    const now = T0 + 30 * MINUTE
    const g = gapRects([{ start: T0, end: T0 + 20 * MINUTE }], view, 600, now)
    expect(g.map((r) => [r.x, r.w])).toEqual([[200, 100]])
    expect(gapRects([], view, 600, T0 - 1)).toEqual([])
  })
  it('joins spans less than a pixel apart and drops sub-pixel gaps', () => {
    // 2 s files with 1 s holes: one rect, no gap, at 6 s a pixel.
    const files = Array.from({ length: 600 }, (_, i) => ({ start: T0 + i * 3000, end: T0 + i * 3000 + 2000 }))
    const s = spanRects(files, view, 600)
    expect(s).toHaveLength(1)
    expect(s[0]!.x).toBe(0)
    expect(s[0]!.w).toBeCloseTo(300 - 1 / 6, 3)
    expect(gapRects(files, view, 600).map((r) => Math.round(r.x))).toEqual([300])
  })
  it('keeps very short spans visible', () => {
    const s = spanRects([{ start: T0 + 100, end: T0 + 200 }], view, 600)
    expect(s).toHaveLength(1)
    expect(s[0]!.w).toBe(1)
  })
})

describe('events and clusters', () => {
  const view = v(T0, T0 + HOUR)
  it('marks events, at least 4 px wide and centred on their start', () => {
    const m = eventMarks(
      [
        { id: 1, start: T0 + 30 * MINUTE, end: T0 + 30 * MINUTE + 1000 },
        { id: 2, start: T0 + 10 * MINUTE, end: T0 + 20 * MINUTE },
        { id: 3, start: T0 - 2 * HOUR, end: T0 - HOUR },
      ],
      view,
      600,
    )
    expect(m.map((x) => x.id)).toEqual([1, 2])
    expect(m[0]).toMatchObject({ x: 298, w: 4 })
    expect(m[1]).toMatchObject({ x: 100, w: 100 })
  })
  it('runs an ongoing event to now', () => {
    const [m] = eventMarks([{ id: 9, start: T0 + 30 * MINUTE, end: null }], view, 600, T0 + 40 * MINUTE)
    expect(m).toMatchObject({ x: 300, w: 100, id: 9 })
  })
  it('keeps marks at the edge on the bar', () => {
    const [m] = eventMarks([{ id: 1, start: T0 + HOUR, end: T0 + HOUR }], view, 600)
    expect(m!.x).toBe(596)
  })
  it('draws clusters wide enough for their count', () => {
    const [c] = clusterMarks([{ start: T0 + 30 * MINUTE, end: T0 + 30 * MINUTE + 6000, count: 12 }], view, 600)
    expect(c).toMatchObject({ count: 12, w: 14 })
    expect(c!.cx).toBeCloseTo(300.5, 6)
    const [edge] = clusterMarks([{ start: T0, end: T0 + 1000, count: 3 }], view, 600)
    expect(edge!.x).toBe(0)
    expect(clusterMarks([{ start: T0 - 2 * HOUR, end: T0 - HOUR, count: 3 }], view, 600)).toEqual([])
  })
  it('finds the previous and next event', () => {
    const evs = [{ start: 100_000 }, { start: 50_000 }, { start: 200_000 }]
    expect(previousEvent(evs, 150_000)).toEqual({ start: 100_000 })
    expect(previousEvent(evs, 101_000)).toEqual({ start: 50_000 }) // just started: the one before
    expect(previousEvent(evs, 40_000)).toBeNull()
    expect(nextEvent(evs, 100_000)).toEqual({ start: 200_000 })
    expect(nextEvent(evs, 0)).toEqual({ start: 50_000 })
    expect(nextEvent(evs, 200_000)).toBeNull()
  })
})

describe('ticks', () => {
  it('labels every 10 minutes over an hour', () => {
    const t = ticks(v(T0 + 9 * HOUR + 5 * MINUTE, T0 + 10 * HOUR + 5 * MINUTE), 600, 60)
    expect(t.map((x) => x.label)).toEqual(['09:10', '09:20', '09:30', '09:40', '09:50', '10:00'])
    expect(t[0]!.x).toBeCloseTo(50, 6)
    for (let i = 1; i < t.length; i++) expect(t[i]!.x - t[i - 1]!.x).toBeGreaterThanOrEqual(60)
  })
  it('labels hours over a day and marks midnight with the day', () => {
    const t = ticks(v(T0 - 12 * HOUR, T0 + 12 * HOUR), 800, 60)
    expect(t.every((x) => x.x >= 0 && x.x <= 800)).toBe(true)
    const mid = t.find((x) => x.major)!
    expect(mid.t).toBe(T0)
    expect(mid.label).toBe('Sun 6 Dec')
    expect(t.filter((x) => !x.major).every((x) => /^\d\d:00$/.test(x.label))).toBe(true)
  })
  it('shows seconds when zoomed right in', () => {
    const t = ticks(v(T0 + HOUR, T0 + HOUR + MINUTE), 600, 60)
    expect(t[0]!.label).toBe('01:00:00')
    expect(t[1]!.label).toBe('01:00:10')
  })
  it('is empty for an empty bar', () => {
    expect(ticks(v(T0, T0), 600)).toEqual([])
    expect(ticks(v(T0, T0 + HOUR), 0)).toEqual([])
  })
})

describe('formatting', () => {
  it('writes clear times, durations and sizes', () => {
    expect(formatClock(T0 + 3 * HOUR + 4 * MINUTE + 5000)).toBe('03:04:05')
    expect(formatDuration(4200)).toBe('4 s')
    expect(formatDuration(125_000)).toBe('2 min 5 s')
    expect(formatDuration(2 * MINUTE)).toBe('2 min')
    expect(formatDuration(HOUR + 20 * MINUTE)).toBe('1 h 20 min')
    expect(formatDuration(-5)).toBe('0 s')
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(3.4 * 1024 * 1024)).toBe('3.4 MB')
    expect(formatBytes(250 * 1024)).toBe('250 KB')
    expect(formatBytes(-1)).toBe('—')
  })
})

describe('ticks across daylight-saving changes', () => {
  const old = process.env.TZ
  it('keep the local grid (Europe/Berlin)', () => {
    process.env.TZ = 'Europe/Berlin'
    try {
      const spring = dayWindow('2026-03-29')!
      expect(spring.end - spring.start).toBe(23 * HOUR)
      const day = ticks(spring, 1000, 60).map((t) => t.label)
      expect(day[0]).toBe('Sun 29 Mar')
      expect(day).toContain('04:00')
      expect(day).not.toContain('02:00') // never happened
      expect(day[day.length - 1]).toBe('Mon 30 Mar')
      const night = ticks({ start: spring.start + HOUR, end: spring.start + 3 * HOUR }, 1000, 100).map((t) => t.label)
      expect(night).toEqual(['01:00', '01:15', '01:30', '01:45', '03:00', '03:15', '03:30', '03:45', '04:00'])
      const autumn = dayWindow('2026-10-25')!
      expect(autumn.end - autumn.start).toBe(25 * HOUR)
      const twice = ticks({ start: autumn.start + 2 * HOUR, end: autumn.start + 4 * HOUR }, 1000, 100).map((t) => t.label)
      expect(twice).toEqual(['02:00', '02:15', '02:30', '02:45', '02:00', '02:15', '02:30', '02:45', '03:00'])
    } finally {
      if (old === undefined) delete process.env.TZ
      else process.env.TZ = old
    }
  })
})

describe('hit areas', () => {
  it('widens a narrow mark to a fingertip, centred, and keeps it on the bar', () => {
    expect(hitRect({ x: 100, w: 6 }, 375)).toEqual({ x: 81, w: 44 })
    expect(hitRect({ x: 0, w: 6 }, 375)).toEqual({ x: 0, w: 44 })
    expect(hitRect({ x: 371, w: 4 }, 375)).toEqual({ x: 331, w: 44 })
    // A wide mark is its own hit area; a bar narrower than a finger is all hit area.
    expect(hitRect({ x: 10, w: 80 }, 375)).toEqual({ x: 10, w: 80 })
    expect(hitRect({ x: 10, w: 6 }, 30)).toEqual({ x: 0, w: 30 })
  })
})

describe('tick labels', () => {
  const tick = (x: number, label: string) => ({ t: x, x, label, major: false })
  it('centres labels that fit, and starts or ends them at the edges', () => {
    const out = placeTickLabels([tick(5, '11:34'), tick(120, '11:36'), tick(370, '11:42')], 375)
    expect(out.map((t) => [t.align, t.hidden])).toEqual([
      ['start', false],
      ['center', false],
      ['end', false],
    ])
  })
  it('hides a label that would overlap the one before it', () => {
    const out = placeTickLabels([tick(2, '11:34:10'), tick(40, '11:34:20'), tick(120, '11:34:30')], 375)
    expect(out.map((t) => t.hidden)).toEqual([false, true, false])
  })
  it('never puts a label of real ticks outside the bar', () => {
    for (const width of [300, 375, 600, 1224]) {
      const view = { start: T0 + 11 * HOUR + 33 * MINUTE + 20_000, end: T0 + 11 * HOUR + 43 * MINUTE + 20_000 }
      for (const t of placeTickLabels(ticks(view, width, 56), width)) {
        if (t.hidden) continue
        const w = t.label.length * 7.5
        const left = t.align === 'start' ? t.x : t.align === 'end' ? t.x - w : t.x - w / 2
        expect(left).toBeGreaterThanOrEqual(0)
        expect(left + w).toBeLessThanOrEqual(width)
      }
    }
  })
})

describe('opening zoom', () => {
  const now = T0 + 11 * HOUR + 42 * MINUTE
  it('keeps the hour without footage, or when it is well filled', () => {
    expect(openingSpan([], now)).toBe(HOUR)
    expect(openingSpan([{ start: now - 50 * MINUTE, end: now }], now)).toBe(HOUR)
    expect(openingSpan([{ start: now - 5 * HOUR, end: now - 30_000 }], now)).toBe(HOUR)
  })
  it('opens at 10 min for a short clip within the last 10 minutes', () => {
    expect(openingSpan([{ start: now - 100_000, end: now - 60_000 }], now)).toBe(10 * MINUTE)
    // Older, sparse footage elsewhere today does not widen it: the newest span counts.
    expect(openingSpan([{ start: now - 9 * HOUR, end: now - 9 * HOUR + 40_000 }, { start: now - 2 * MINUTE, end: now - MINUTE }], now)).toBe(
      10 * MINUTE,
    )
  })
  it('picks the smallest level holding the whole newest span', () => {
    expect(openingSpan([{ start: now - 30 * MINUTE, end: now - 29 * MINUTE }], now)).toBe(HOUR)
    expect(openingSpan([{ start: now - 3 * HOUR, end: now - 2 * HOUR }], now)).toBe(6 * HOUR)
    expect(openingSpan([{ start: now - 20 * HOUR, end: now - 20 * HOUR + 40_000 }], now)).toBe(DAY)
    // Older than any level: the widest.
    expect(openingSpan([{ start: now - 30 * HOUR, end: now - 29 * HOUR }], now)).toBe(DAY)
  })
  it('puts the cursor where footage is', () => {
    expect(openingCursor([], now)).toBe(now - MINUTE)
    expect(openingCursor([{ start: now - HOUR, end: now }], now)).toBe(now - MINUTE)
    // A short clip: its start (a clip shorter than the resolution comes back widened).
    expect(openingCursor([{ start: now - 20 * MINUTE, end: now - 19 * MINUTE }], now)).toBe(now - 20 * MINUTE)
    // A long span that ended: 30 s before its end.
    expect(openingCursor([{ start: now - 3 * HOUR, end: now - 2 * HOUR }], now)).toBe(now - 2 * HOUR - 30_000)
  })
})
