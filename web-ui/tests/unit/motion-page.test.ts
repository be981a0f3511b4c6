import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createMemoryHistory } from 'vue-router'
import MotionPage from '../../src/components/MotionPage.vue'
import { TOKEN_KEY, type User } from '../../src/lib/api'
import { createAppRouter } from '../../src/lib/router'
import type { MotionConfig, MotionSample } from '../../src/api/cameras'
import { apiError, json, mockFetch, type Call } from './fakes'

const admin: User = { id: 1, username: 'root', email: 'r@x', role: 'admin', created_at: '2025-01-01T00:00:00Z' }

const saved: MotionConfig = {
  enabled: true,
  sensitivity: 60,
  min_area_percent: 0.5,
  fps: 5,
  frames_to_start: 2,
  secs_to_end: 3,
  zones: [
    {
      name: 'Road',
      kind: 'exclude',
      points: [
        [0, 0],
        [0.5, 0],
        [0.5, 0.2],
      ],
    },
  ],
}

class FakeEventSource {
  static all: FakeEventSource[] = []
  listeners = new Map<string, Array<(e: MessageEvent) => void>>()
  onopen: (() => void) | null = null
  onerror: (() => void) | null = null
  closed = false
  constructor(readonly url: string) {
    FakeEventSource.all.push(this)
  }
  static get last() {
    return FakeEventSource.all[FakeEventSource.all.length - 1] ?? null
  }
  addEventListener(type: string, fn: (e: MessageEvent) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn])
  }
  emit(type: string, data: unknown) {
    for (const fn of this.listeners.get(type) ?? []) fn(new MessageEvent(type, { data: JSON.stringify(data) }))
  }
  close() {
    this.closed = true
  }
}

function serve(handler: (c: Call) => Response | null = () => null) {
  const m = mockFetch((c) => {
    if (c.url === '/api/auth/me') return json(200, { user: admin })
    const o = handler(c)
    if (o) return o
    if (c.url === '/api/cameras/7/motion' && c.method === 'GET') return json(200, saved)
    if (c.url === '/api/cameras/7/motion' && c.method === 'PUT') return json(200, JSON.parse(c.body!))
    if (c.url === '/api/cameras') {
      return json(200, [{ id: 7, owner_id: 1, name: 'gate', resolution: null, status: 'online', created_at: '2025-01-01T00:00:00Z', permission: 'control' }])
    }
    return apiError(404, 'not_found', 'no such thing')
  })
  vi.stubGlobal('fetch', m.fetch)
  return m
}

async function settle(ms = 20) {
  await flushPromises()
  await new Promise((r) => setTimeout(r, ms))
  await flushPromises()
}

// The picture is drawn 400 × 300 at (10, 20) on the page.
const BOX = { left: 10, top: 20, width: 400, height: 300 }

async function mountPage() {
  const router = createAppRouter(createMemoryHistory())
  await router.push('/cameras/7/motion')
  await router.isReady()
  const w = mount(MotionPage, { props: { cameraId: 7 }, global: { plugins: [router] }, attachTo: document.body })
  await settle()
  const stage = w.get('[data-testid="zone-stage"]').element as HTMLElement
  stage.getBoundingClientRect = () =>
    ({ ...BOX, x: BOX.left, y: BOX.top, right: BOX.left + BOX.width, bottom: BOX.top + BOX.height, toJSON: () => ({}) }) as DOMRect
  return w
}

/** A press on the picture at (px, py) in its own pixels. */
async function pressAt(w: VueWrapper, px: number, py: number) {
  await w.get('[data-testid="zone-svg"]').trigger('pointerdown', { clientX: BOX.left + px, clientY: BOX.top + py, pointerId: 1, button: 0 })
}

beforeEach(() => {
  localStorage.setItem(TOKEN_KEY, 'tok')
  FakeEventSource.all = []
  vi.stubGlobal('EventSource', FakeEventSource)
})
afterEach(() => {
  localStorage.clear()
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('motion page', () => {
  it('loads the settings and shows the picture with the token', async () => {
    serve()
    const w = await mountPage()
    expect(w.get('h1').text()).toBe('Motion detection · gate')
    expect(w.get('[data-testid="motion-snapshot"]').attributes('src')).toMatch(/^\/api\/cameras\/7\/snapshot\.jpg\?t=\d+&token=tok$/)
    expect(w.get('[data-testid="zone-item-0"]').text()).toContain('Road')
    expect(w.get('[data-testid="zone-shape-0"]').classes()).toContain('zone-exclude')
    expect((w.get('[data-testid="slider-sensitivity"]').element as HTMLInputElement).value).toBe('60')
    expect(w.get('[data-testid="readout-min_area_percent"]').text()).toBe('0.5 %')
    w.unmount()
  })

  it('draws an include zone with clicks, closes it on the first corner, and saves it', async () => {
    const { calls } = serve()
    const w = await mountPage()
    await w.get('[data-testid="tool-include"]').trigger('click')
    await pressAt(w, 100, 75)
    await pressAt(w, 300, 75)
    // Two corners are not a zone yet.
    expect((w.get('[data-testid="zone-finish"]').element as HTMLButtonElement).disabled).toBe(true)
    await pressAt(w, 300, 225)
    expect(w.get('[data-testid="zone-draft"]').attributes('points')).toBe('0.25,0.25 0.75,0.25 0.75,0.75')
    // Near the first corner (3 px off): closes the zone instead of adding a corner.
    await pressAt(w, 102, 77)
    expect(w.find('[data-testid="zone-draft"]').exists()).toBe(false)
    expect(w.get('[data-testid="zone-item-1"]').text()).toContain('Zone')
    expect(w.get('[data-testid="zone-shape-1"]').attributes('points')).toBe('0.25,0.25 0.75,0.25 0.75,0.75')
    expect(w.get('[data-testid="zone-shape-1"]').classes()).toContain('zone-include')
    expect(w.get('[data-testid="motion-dirty"]').text()).toBe('Not saved yet.')
    // The new zone is selected: rename it.
    await w.get('[data-testid="zone-name"]').setValue('Driveway')
    await w.get('[data-testid="motion-save"]').trigger('click')
    await settle()
    const put = calls.find((c) => c.method === 'PUT')!
    expect(put.url).toBe('/api/cameras/7/motion')
    expect(JSON.parse(put.body!)).toEqual({
      ...saved,
      zones: [
        saved.zones[0],
        {
          name: 'Driveway',
          kind: 'include',
          points: [
            [0.25, 0.25],
            [0.75, 0.25],
            [0.75, 0.75],
          ],
        },
      ],
    })
    expect(w.get('[data-testid="motion-saved"]').text()).toBe('Saved — applied now, no restart.')
    expect(w.find('[data-testid="motion-dirty"]').exists()).toBe(false)
    w.unmount()
  })

  it('closes a zone with Finish, and drags a corner with the pointer', async () => {
    const { calls } = serve()
    const w = await mountPage()
    await w.get('[data-testid="tool-exclude"]').trigger('click')
    await pressAt(w, 0, 0)
    await pressAt(w, 400, 0)
    await pressAt(w, 200, 150)
    await w.get('[data-testid="zone-finish"]').trigger('click')
    expect(w.get('[data-testid="zone-item-1"]').text()).toContain('Ignore')
    const handle = w.get('[data-testid="handle-2"]')
    expect(handle.attributes('style')).toContain('left: 50%')
    await handle.trigger('pointerdown', { clientX: BOX.left + 200, clientY: BOX.top + 150, pointerId: 5 })
    await handle.trigger('pointermove', { clientX: BOX.left + 100, clientY: BOX.top + 270, pointerId: 5 })
    // Beyond the picture: held at its edge.
    await handle.trigger('pointermove', { clientX: BOX.left + 100, clientY: BOX.top + 400, pointerId: 5 })
    await handle.trigger('pointerup', { pointerId: 5 })
    // After the pointer is up, moves do nothing.
    await handle.trigger('pointermove', { clientX: BOX.left, clientY: BOX.top, pointerId: 5 })
    expect(w.get('[data-testid="zone-shape-1"]').attributes('points')).toBe('0,0 1,0 0.25,1')
    await w.get('[data-testid="motion-save"]').trigger('click')
    await settle()
    const body = JSON.parse(calls.find((c) => c.method === 'PUT')!.body!) as MotionConfig
    expect(body.zones[1]).toEqual({
      name: 'Ignore',
      kind: 'exclude',
      points: [
        [0, 0],
        [1, 0],
        [0.25, 1],
      ],
    })
    w.unmount()
  })

  it('does not save a zone that breaks the rules, and shows the server’s refusal', async () => {
    const { calls } = serve((c) => (c.method === 'PUT' ? apiError(400, 'bad_request', 'motion: sensitivity 0 is outside 1..=100') : null))
    const w = await mountPage()
    await w.get('[data-testid="zone-select-0"]').trigger('click')
    await w.get('[data-testid="zone-name"]').setValue('')
    expect(w.get('[data-testid="zone-error"]').text()).toContain('needs a name')
    await w.get('[data-testid="motion-save"]').trigger('click')
    await settle()
    expect(calls.some((c) => c.method === 'PUT')).toBe(false)
    expect(w.get('[data-testid="motion-save-error"]').text()).toContain('Nothing was saved')
    await w.get('[data-testid="zone-name"]').setValue('Road')
    await w.get('[data-testid="number-sensitivity"]').setValue('0')
    await w.get('[data-testid="motion-save"]').trigger('click')
    await settle()
    expect(JSON.parse(calls.find((c) => c.method === 'PUT')!.body!).sensitivity).toBe(0)
    expect(w.get('[data-testid="motion-save-error"]').text()).toBe('Not saved: motion: sensitivity 0 is outside 1..=100')
    expect(w.find('[data-testid="motion-dirty"]').exists()).toBe(true)
    w.unmount()
  })

  it('deletes a zone', async () => {
    const { calls } = serve()
    const w = await mountPage()
    await w.get('[data-testid="zone-select-0"]').trigger('click')
    await w.get('[data-testid="zone-delete"]').trigger('click')
    expect(w.find('[data-testid="zone-item-0"]').exists()).toBe(false)
    await w.get('[data-testid="motion-save"]').trigger('click')
    await settle()
    expect(JSON.parse(calls.find((c) => c.method === 'PUT')!.body!).zones).toEqual([])
    w.unmount()
  })

  it('follows the live meter while open, draws the moved cells, and stops on leaving', async () => {
    serve()
    const w = await mountPage()
    const es = FakeEventSource.last!
    expect(es.url).toBe('/api/cameras/7/motion/live?token=tok')
    es.onopen?.()
    const sample = (over: Partial<MotionSample>): MotionSample => ({
      at_ms: Date.now(),
      score: 0.1,
      zone: 'frame',
      light_change: false,
      in_event: false,
      cols: 8,
      rows: 6,
      moved: [],
      ...over,
    })
    es.emit('sample', sample({ score: 0.1 }))
    await flushPromises()
    expect(w.get('[data-testid="meter-label"]').text()).toBe('Quiet')
    expect(w.findAll('[data-testid="moved-cell"]')).toHaveLength(0)
    es.emit('sample', sample({ score: 1, in_event: true, moved: [0, 9, 99] }))
    await flushPromises()
    expect(w.get('[data-testid="meter-label"]').text()).toBe('Motion')
    const cells = w.findAll('[data-testid="moved-cell"]')
    // 99 is outside an 8 × 6 grid: dropped.
    expect(cells.map((c) => [c.attributes('x'), c.attributes('y'), c.attributes('width')])).toEqual([
      ['0', '0', '0.125'],
      ['0.125', String(1 / 6), '0.125'],
    ])
    // The bar's scale puts the 0.5 % threshold a third of the way; 1 % is two thirds.
    expect(w.get('[data-testid="meter-threshold"]').attributes('style')).toContain(`left: ${(0.5 / 1.5) * 100}%`)
    expect(w.get('[data-testid="meter-fill"]').attributes('style')).toContain(`width: ${(1 / 1.5) * 100}%`)
    es.emit('sample', sample({ score: 40, light_change: true, moved: [1, 2, 3] }))
    await flushPromises()
    expect(w.get('[data-testid="meter-label"]').text()).toBe('Light change')
    w.unmount()
    expect(es.closed).toBe(true)
  })

  it('says when there is no picture yet, and still lets zones be drawn', async () => {
    serve()
    const w = await mountPage()
    await w.get('[data-testid="motion-snapshot"]').trigger('error')
    expect(w.get('[data-testid="snapshot-missing"]').text()).toContain('No picture from the camera yet')
    const before = w.get('[data-testid="motion-snapshot"]').attributes('src')
    await new Promise((r) => setTimeout(r, 5))
    await w.get('[data-testid="snapshot-refresh"]').trigger('click')
    expect(w.get('[data-testid="motion-snapshot"]').attributes('src')).not.toBe(before)
    await w.get('[data-testid="tool-include"]').trigger('click')
    await pressAt(w, 10, 10)
    expect(w.find('[data-testid="draft-handle-0"]').exists()).toBe(true)
    w.unmount()
  })
})
