import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import TimelineBar from '../../src/components/TimelineBar.vue'
import { TOKEN_KEY } from '../../src/lib/api'
import { HOUR, MINUTE, spanOf, xToTime, type View } from '../../src/lib/timeline'

const T0 = new Date(2026, 11, 6, 3, 0, 0).getTime()
const view: View = { start: T0, end: T0 + HOUR }

function bar(over: Record<string, unknown> = {}) {
  return mount(TimelineBar, {
    props: {
      cameraId: 4,
      view,
      spans: [{ start: T0 + 10 * MINUTE, end: T0 + 50 * MINUTE }],
      events: [{ id: 31, camera_id: 4, kind: 'motion', zone: null, start: T0 + 20 * MINUTE, end: T0 + 21 * MINUTE, score: null, peak: null, reviewed: false }],
      clusters: [{ start: T0 + 40 * MINUTE, end: T0 + 41 * MINUTE, count: 7 }],
      cursor: T0 + 30 * MINUTE,
      now: T0 + 55 * MINUTE,
      maxTime: T0 + 2 * HOUR,
      ...over,
    },
  })
}

function pointer(type: string, x: number, id = 1, pointerType = 'touch') {
  return new PointerEvent(type, { clientX: x, clientY: 30, pointerId: id, pointerType, bubbles: true, button: 0 })
}

beforeEach(() => localStorage.setItem(TOKEN_KEY, 'tok'))
afterEach(() => localStorage.clear())

describe('timeline bar', () => {
  it('draws what it is given', () => {
    const w = bar()
    expect(w.findAll('[data-testid="timeline-span"]')).toHaveLength(1)
    // Before the span, and from its end to now; after now nothing.
    expect(w.findAll('[data-testid="timeline-gap"]')).toHaveLength(2)
    expect(w.get('[data-testid="timeline-event"]').attributes('data-event-id')).toBe('31')
    expect(w.get('[data-testid="timeline-cluster"]').text()).toBe('7')
    expect(w.get('[data-testid="timeline-cursor"] line').attributes('x1')).toBe('300')
    expect(w.get('[data-testid="timeline-bar"]').attributes('aria-valuetext')).toBe('03:30:00')
    w.unmount()
  })

  it('gives a mark a 44 px hit area above the track, and keeps the cursor off the marks\' lane', () => {
    // A phone-wide bar (the default 600 px in happy-dom): a 10 s event is a 6 px flag.
    const w = bar({
      events: [{ id: 8, camera_id: 4, kind: 'motion', zone: null, start: T0 + 30 * MINUTE, end: T0 + 30 * MINUTE + 10_000, score: null, peak: null, reviewed: false }],
    })
    const mark = w.get('[data-testid="timeline-event"] .tmark')
    const hit = w.get('[data-testid="timeline-event"] .thit')
    expect(Number(mark.attributes('width'))).toBe(6)
    expect(Number(hit.attributes('width'))).toBe(44)
    expect(Number(hit.attributes('height'))).toBeGreaterThanOrEqual(24)
    // Centred on the drawn mark.
    const mid = (el: typeof mark) => Number(el.attributes('x')) + Number(el.attributes('width')) / 2
    expect(mid(hit)).toBeCloseTo(mid(mark), 6)
    // The cursor (same instant) starts below the flag: they never overlap.
    const flagBottom = Number(mark.attributes('y')) + Number(mark.attributes('height'))
    expect(Number(w.get('[data-testid="timeline-cursor"] line').attributes('y1'))).toBeGreaterThan(flagBottom)
    w.unmount()
  })

  it('keeps every tick label inside the bar', () => {
    // 03:00 to 04:00 over 600 px: the first tick sits on the left edge.
    const w = bar()
    const labels = w.findAll('.tick-label')
    expect(labels.length).toBeGreaterThan(3)
    expect(labels[0]!.classes()).toContain('align-start')
    for (const l of labels.slice(1, -1)) expect(l.classes()).toContain('align-center')
    w.unmount()
  })

  it('scrubs with one finger, shows a thumbnail, and plays where it is let go', async () => {
    const w = bar()
    const svg = w.get('[data-testid="timeline-bar"]').element
    svg.dispatchEvent(pointer('pointerdown', 120))
    await w.vm.$nextTick()
    expect(w.find('[data-testid="timeline-thumb"]').exists()).toBe(true)
    const img = w.get('[data-testid="timeline-thumb"] img')
    expect(img.attributes('src')).toBe(`/api/cameras/4/thumbnail.jpg?at=${T0 + 12 * MINUTE}&token=tok`)
    svg.dispatchEvent(pointer('pointermove', 240))
    svg.dispatchEvent(pointer('pointerup', 240))
    await w.vm.$nextTick()
    expect(w.find('[data-testid="timeline-thumb"]').exists()).toBe(false)
    const scrubs = w.emitted('scrub')!
    expect(scrubs[0]).toEqual([T0 + 12 * MINUTE, 'start'])
    expect(scrubs[1]).toEqual([T0 + 24 * MINUTE, 'move'])
    expect(scrubs[2]).toEqual([T0 + 24 * MINUTE, 'end'])
    w.unmount()
  })

  it('never scrubs into the future', () => {
    const w = bar()
    const svg = w.get('[data-testid="timeline-bar"]').element
    svg.dispatchEvent(pointer('pointerdown', 590))
    svg.dispatchEvent(pointer('pointerup', 590))
    expect(w.emitted('scrub')!.at(-1)).toEqual([T0 + 55 * MINUTE, 'end'])
    w.unmount()
  })

  it('pinches with two fingers around their midpoint, without playing', () => {
    const w = bar()
    const svg = w.get('[data-testid="timeline-bar"]').element
    svg.dispatchEvent(pointer('pointerdown', 250, 1))
    svg.dispatchEvent(pointer('pointerdown', 350, 2))
    svg.dispatchEvent(pointer('pointermove', 200, 1))
    svg.dispatchEvent(pointer('pointermove', 400, 2))
    const v = w.emitted('view')!.at(-1)![0] as View
    expect(spanOf(v)).toBeCloseTo(HOUR / 2, 3)
    expect(xToTime(300, v, 600)).toBeCloseTo(xToTime(300, view, 600), 3)
    svg.dispatchEvent(pointer('pointerup', 200, 1))
    svg.dispatchEvent(pointer('pointerup', 400, 2))
    expect((w.emitted('scrub') ?? []).some((s) => s[1] === 'end')).toBe(false)
    w.unmount()
  })

  it('selects a range when asked to', () => {
    const w = bar({ selecting: true })
    const svg = w.get('[data-testid="timeline-bar"]').element
    svg.dispatchEvent(pointer('pointerdown', 300, 1, 'mouse'))
    svg.dispatchEvent(pointer('pointermove', 100, 1, 'mouse'))
    svg.dispatchEvent(pointer('pointerup', 100, 1, 'mouse'))
    expect(w.emitted('range')!.at(-1)).toEqual([{ start: T0 + 10 * MINUTE, end: T0 + 30 * MINUTE }, true])
    expect(w.emitted('scrub')).toBeUndefined()
    // Across an event mark too: while selecting, marks do not play.
    const mark = w.get('[data-testid="timeline-event"]').element
    mark.dispatchEvent(pointer('pointerdown', 200, 2, 'mouse'))
    svg.dispatchEvent(pointer('pointermove', 260, 2, 'mouse'))
    svg.dispatchEvent(pointer('pointerup', 260, 2, 'mouse'))
    mark.dispatchEvent(new MouseEvent('click', { bubbles: true }))
    expect(w.emitted('range')!.at(-1)).toEqual([{ start: T0 + 20 * MINUTE, end: T0 + 26 * MINUTE }, true])
    expect(w.emitted('event')).toBeUndefined()
    w.unmount()
  })

  it('zooms with the wheel around the pointer, and reports marks', async () => {
    const w = bar()
    const wheel = new WheelEvent('wheel', { deltaY: -100, clientX: 150, bubbles: true, cancelable: true })
    // happy-dom leaves out the mouse fields of a WheelEvent.
    if (!Number.isFinite(wheel.clientX)) Object.defineProperty(wheel, 'clientX', { value: 150 })
    w.get('[data-testid="timeline-bar"]').element.dispatchEvent(wheel)
    expect(wheel.defaultPrevented).toBe(true)
    expect(w.emitted('zoom')![0]).toEqual([T0 + 15 * MINUTE, 0.5])
    await w.get('[data-testid="timeline-event"]').trigger('click')
    expect(w.emitted('event')![0]).toEqual([31])
    await w.get('[data-testid="timeline-cluster"]').trigger('click')
    expect(w.emitted('cluster')![0]).toEqual([{ start: T0 + 40 * MINUTE, end: T0 + 41 * MINUTE, count: 7 }])
    w.unmount()
  })
})
