import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createMemoryHistory } from 'vue-router'
import TimelinePage from '../../src/components/TimelinePage.vue'
import ReviewPage from '../../src/components/ReviewPage.vue'
import ExportsPage from '../../src/components/ExportsPage.vue'
import { TOKEN_KEY, type Camera } from '../../src/lib/api'
import { createAppRouter } from '../../src/lib/router'
import type { EventItem, ExportJob, TimelineAnswer } from '../../src/api/review'
import { apiError, json, mockFetch, type Call } from './fakes'

const NOW = Date.now()

function cam(id: number, permission: Camera['permission'], name = `Cam ${id}`): Camera {
  return { id, owner_id: 1, name, resolution: null, status: 'online', created_at: '2025-01-01T00:00:00Z', permission }
}

async function routerAt(path: string) {
  const router = createAppRouter(createMemoryHistory())
  await router.push(path)
  await router.isReady()
  return { global: { plugins: [router] } }
}

async function settle(ms = 20) {
  await flushPromises()
  await new Promise((r) => setTimeout(r, ms))
  await flushPromises()
}

function serve(handler: (c: Call) => Response | null) {
  const m = mockFetch((c) => handler(c) ?? apiError(404, 'not_found', 'no such thing'))
  vi.stubGlobal('fetch', m.fetch)
  return m
}

class FakeEventSource {
  static last: FakeEventSource | null = null
  listeners = new Map<string, Array<(e: MessageEvent) => void>>()
  onopen: (() => void) | null = null
  onerror: (() => void) | null = null
  closed = false
  constructor(readonly url: string) {
    FakeEventSource.last = this
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

beforeEach(() => {
  localStorage.setItem(TOKEN_KEY, 'tok')
  vi.stubGlobal('EventSource', FakeEventSource)
})
afterEach(() => {
  localStorage.clear()
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

const NO_PLAYBACK = 'You can watch this camera live, but you have no access to its recordings. Ask an admin for playback.'

describe('timeline page', () => {
  it('explains a camera without playback, and draws no bar', async () => {
    const { calls } = serve((c) => (c.url === '/api/cameras' ? json(200, [cam(1, 'view')]) : null))
    const w = mount(TimelinePage, { props: { cameraIds: [1], single: true }, ...(await routerAt('/cameras/1/timeline')) })
    await settle()
    expect(w.get('[data-testid="timeline-error"]').text()).toBe(NO_PLAYBACK)
    expect(w.find('[data-testid="timeline-bar"]').exists()).toBe(false)
    expect(calls.some((c) => c.url.includes('/timeline'))).toBe(false)
    expect(w.get('[data-testid="timeline-live-link"]').attributes('href')).toBe('/cameras/1')
    w.unmount()
  })

  it('shows only the message and a way back to live when refused: no controls, no hint', async () => {
    serve((c) => (c.url === '/api/cameras' ? json(200, [cam(1, 'view'), cam(2, 'playback')]) : null))
    const w = mount(TimelinePage, { props: { cameraIds: [1], single: true }, ...(await routerAt('/cameras/1/timeline')) })
    await settle()
    expect(w.get('[data-testid="timeline-error-live"]').attributes('href')).toBe('/cameras/1')
    for (const id of ['zoom-10m', 'day-picker', 'now-button', 'select-range', 'export-name', 'timeline-add-camera'])
      expect(w.find(`[data-testid="${id}"]`).exists()).toBe(false)
    expect(w.find('.hint').exists()).toBe(false)
    w.unmount()
  })

  it('opens at 10 min when the only footage is a short clip a minute ago', async () => {
    const clip = { start: NOW - 100_000, end: NOW - 60_000 }
    const { calls } = serve((c) => {
      if (c.url === '/api/cameras') return json(200, [cam(1, 'playback'), cam(2, 'playback')])
      if (/^\/api\/cameras\/[12]\/timeline/.test(c.url))
        return json(200, { start: NOW - 86_400_000, end: NOW, resolution_ms: 86_400, spans: [clip], events: [], clusters: [] })
      if (/^\/api\/cameras\/[12]\/locks/.test(c.url)) return json(200, [])
      return null
    })
    const w = mount(TimelinePage, { props: { cameraIds: [1, 2], single: false }, ...(await routerAt('/timeline?cameras=1,2')) })
    await settle(250)
    const windows = calls
      .filter((c) => c.url.includes('/timeline?'))
      .map((c) => new URL(c.url, 'http://x').searchParams)
      .map((q) => Number(q.get('end')) - Number(q.get('start')))
    expect(windows).toEqual([86_400_000, 86_400_000, 600_000, 600_000])
    expect(w.get('[data-testid="zoom-10m"]').attributes('aria-pressed')).toBe('true')
    w.unmount()
  })

  it('keeps the hour of a deep link (?at=) without looking at the last day', async () => {
    const { calls } = serve((c) => {
      if (c.url === '/api/cameras') return json(200, [cam(1, 'playback')])
      if (c.url.startsWith('/api/cameras/1/timeline'))
        return json(200, { start: 0, end: 1, resolution_ms: 1, spans: [{ start: NOW - 90_000, end: NOW - 60_000 }], events: [], clusters: [] })
      if (c.url === '/api/cameras/1/locks') return json(200, [])
      return null
    })
    const at = NOW - 2 * 3600_000
    const w = mount(TimelinePage, { props: { cameraIds: [1], single: true }, ...(await routerAt(`/cameras/1/timeline?at=${at}`)) })
    await settle(250)
    const tls = calls.filter((c) => c.url.startsWith('/api/cameras/1/timeline'))
    expect(tls).toHaveLength(1)
    const q = new URL(tls[0]!.url, 'http://x').searchParams
    expect(Number(q.get('end')) - Number(q.get('start'))).toBe(3600_000)
    w.unmount()
  })

  it('shows the same message when the server answers 403', async () => {
    serve((c) => {
      if (c.url === '/api/cameras') return json(200, [cam(1, 'playback')])
      if (c.url.startsWith('/api/cameras/1/timeline')) return apiError(403, 'forbidden', 'no playback')
      if (c.url === '/api/cameras/1/locks') return apiError(403, 'forbidden', 'no playback')
      return null
    })
    const w = mount(TimelinePage, { props: { cameraIds: [1], single: true }, ...(await routerAt('/cameras/1/timeline')) })
    await settle(200)
    expect(w.get('[data-testid="timeline-error"]').text()).toBe(NO_PLAYBACK)
    expect(w.find('[data-testid="timeline-bar"]').exists()).toBe(false)
    w.unmount()
  })

  it('draws spans, gaps, events and clusters, and plays an event from its pre-roll', async () => {
    const start = NOW - 40 * 60_000
    const answer: TimelineAnswer = {
      start: NOW - 3600_000,
      end: NOW,
      resolution_ms: 6000,
      spans: [
        { start: NOW - 50 * 60_000, end: NOW - 30 * 60_000 },
        { start: NOW - 20 * 60_000, end: NOW - 5 * 60_000 },
      ],
      events: [{ id: 77, camera_id: 1, kind: 'motion', zone: 'door', start, end: start + 10_000, score: 3, peak: null, reviewed: false }],
      clusters: [{ start: NOW - 10 * 60_000, end: NOW - 9 * 60_000, count: 5 }],
    }
    const { calls } = serve((c) => {
      if (c.url === '/api/cameras') return json(200, [cam(1, 'control', 'Front door')])
      if (c.url.startsWith('/api/cameras/1/timeline')) return json(200, answer)
      if (c.url === '/api/cameras/1/locks') return json(200, [])
      return null
    })
    const w = mount(TimelinePage, {
      props: { cameraIds: [1], single: true },
      attachTo: document.body,
      ...(await routerAt('/cameras/1/timeline')),
    })
    await settle(200)
    const tls = calls.filter((c) => c.url.startsWith('/api/cameras/1/timeline'))
    // First one coarse look at the last day (to choose the opening zoom)...
    const look = new URL(tls[0]!.url, 'http://x').searchParams
    expect(Number(look.get('end')) - Number(look.get('start'))).toBe(86_400_000)
    // ...then the window: 35 min of the last hour recorded keeps the hour.
    expect(tls).toHaveLength(2)
    const q = new URL(tls[1]!.url, 'http://x').searchParams
    expect(Number(q.get('end')) - Number(q.get('start'))).toBe(3600_000)
    expect(Number(q.get('resolution_ms'))).toBe(6000) // 1 h over 600 px
    expect(w.findAll('[data-testid="timeline-span"]')).toHaveLength(2)
    expect(w.findAll('[data-testid="timeline-gap"]').length).toBeGreaterThanOrEqual(2)
    expect(w.get('[data-testid="timeline-event"]').attributes('data-event-id')).toBe('77')
    expect(w.get('[data-testid="timeline-cluster"]').text()).toBe('5')
    expect(w.find('[data-testid="timeline-cursor"]').exists()).toBe(true)
    expect(w.find('[data-testid="player-video"]').exists()).toBe(false)

    await w.get('[data-testid="timeline-event"]').trigger('click')
    await settle()
    const video = w.get('[data-testid="player-video"]')
    expect(video.attributes('data-camera-id')).toBe('1')
    expect(w.get('[data-testid="timeline-cursor"]').attributes('data-time')).toBe(String(start - 5000))
    for (const s of [1, 2, 4, 8]) expect(w.find(`[data-testid="speed-${s}"]`).exists()).toBe(true)
    expect(w.find('[data-testid="player-clock"]').exists()).toBe(true)

    // Zoom buttons change the window fetched.
    await w.get('[data-testid="zoom-10m"]').trigger('click')
    await settle(250)
    const last = calls.filter((c) => c.url.startsWith('/api/cameras/1/timeline')).pop()!
    const lq = new URL(last.url, 'http://x').searchParams
    expect(Number(lq.get('end')) - Number(lq.get('start'))).toBe(600_000)
    w.unmount()
  })

  it('exports and locks a selected range', async () => {
    const locks: unknown[] = []
    const { calls } = serve((c) => {
      if (c.url === '/api/cameras') return json(200, [cam(1, 'control')])
      if (c.url.startsWith('/api/cameras/1/timeline'))
        return json(200, { start: 0, end: 1, resolution_ms: 1, spans: [], events: [], clusters: [] })
      if (c.url === '/api/cameras/1/locks' && c.method === 'GET') return json(200, locks)
      if (c.url === '/api/cameras/1/locks' && c.method === 'POST') {
        const b = JSON.parse(c.body!)
        const l = { id: 4, camera_id: 1, ...b, created_by: 1, created_at: Date.parse('2026-01-01T00:00:00Z') }
        locks.push(l)
        return json(201, l)
      }
      if (c.url === '/api/exports' && c.method === 'POST') return json(202, { id: 12 })
      return null
    })
    const w = mount(TimelinePage, { props: { cameraIds: [1], single: true }, attachTo: document.body, ...(await routerAt('/cameras/1/timeline')) })
    await settle(200)
    await w.get('[data-testid="select-range"]').trigger('click')
    const bar = w.getComponent({ name: 'TimelineBar' })
    bar.vm.$emit('range', { start: NOW - 20 * 60_000, end: NOW - 10 * 60_000 }, true)
    await settle()
    await w.get('[data-testid="export-name"]').setValue('Parcel')
    await w.get('[data-testid="export-start"]').trigger('click')
    await settle()
    const post = calls.find((c) => c.url === '/api/exports' && c.method === 'POST')!
    expect(JSON.parse(post.body!)).toEqual({ camera_id: 1, start: NOW - 20 * 60_000, end: NOW - 10 * 60_000, name: 'Parcel' })
    expect(w.get('[data-testid="export-link"]').attributes('href')).toBe('/exports')
    await w.get('[data-testid="lock-range"]').trigger('click')
    await settle()
    expect(w.findAll('[data-testid="lock-item"]')).toHaveLength(1)
    w.unmount()
  })
})

function ev(id: number, camera_id: number, start_ms: number, over: Partial<EventItem> = {}): EventItem {
  return { id, camera_id, kind: 'motion', start_ms, end_ms: start_ms + 4000, score: 2, zone: 'yard', reviewed: false, peak_ms: null, ...over }
}

describe('review page', () => {
  it('lists the events of cameras with playback, newest first, and marks them reviewed', async () => {
    const { calls } = serve((c) => {
      if (c.url === '/api/cameras') return json(200, [cam(1, 'playback'), cam(2, 'view'), cam(3, 'control')])
      if (c.url.startsWith('/api/events?camera=1')) return json(200, [ev(10, 1, NOW - 1000), ev(9, 1, NOW - 90_000)])
      if (c.url.startsWith('/api/events?camera=3')) return json(200, [ev(11, 3, NOW - 30_000, { zone: null, kind: 'trigger' })])
      if (c.url === '/api/events/reviewed') return json(200, { updated: 2 })
      return null
    })
    const w = mount(ReviewPage, { attachTo: document.body, ...(await routerAt('/review')) })
    await settle()
    expect(calls.some((c) => c.url.startsWith('/api/events?camera=2'))).toBe(false)
    const rows = w.findAll('[data-testid="event-row"]')
    expect(rows.map((r) => r.attributes('data-event-id'))).toEqual(['10', '11', '9'])
    expect(rows[0]!.get('[data-testid="event-thumb"]').attributes('src')).toBe('/api/events/10/thumbnail.jpg?token=tok')
    expect(rows[0]!.get('[data-testid="event-thumb"]').attributes('loading')).toBe('lazy')

    await rows[0]!.get('[data-testid="event-select"]').setValue(true)
    await rows[2]!.get('[data-testid="event-select"]').setValue(true)
    await w.get('[data-testid="mark-reviewed"]').trigger('click')
    await settle()
    const post = calls.find((c) => c.url === '/api/events/reviewed')!
    expect(JSON.parse(post.body!)).toEqual({ ids: [10, 9], reviewed: true })
    expect(w.findAll('[data-testid="event-row"]').map((r) => r.attributes('data-reviewed'))).toEqual(['true', 'false', 'true'])
    w.unmount()
  })

  it('adds live events from the stream, and plays one with the keyboard', async () => {
    serve((c) => {
      if (c.url === '/api/cameras') return json(200, [cam(1, 'playback')])
      if (c.url.startsWith('/api/events?camera=1')) return json(200, [ev(1, 1, NOW - 60_000)])
      return null
    })
    const w = mount(ReviewPage, { attachTo: document.body, ...(await routerAt('/review')) })
    await settle()
    const es = FakeEventSource.last!
    expect(es.url).toBe('/api/events/stream?token=tok')
    es.onopen?.()
    es.emit('started', ev(2, 1, NOW, { end_ms: null }))
    es.emit('started', ev(3, 5, NOW)) // a camera not listed: ignored
    await flushPromises()
    expect(w.findAll('[data-testid="event-row"]').map((r) => r.attributes('data-event-id'))).toEqual(['2', '1'])
    es.emit('ended', ev(2, 1, NOW, { end_ms: NOW + 8000 }))
    await flushPromises()
    expect(w.get('[data-testid="event-row"]').text()).toContain('8 s')

    window.dispatchEvent(new KeyboardEvent('keydown', { key: 'j' }))
    window.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }))
    await settle()
    const player = w.get('[data-testid="event-player"]')
    expect(player.get('[data-testid="player-video"]').attributes('data-camera-id')).toBe('1')
    expect(player.find('[data-testid="event-export"]').exists()).toBe(true)
    w.unmount()
    expect(es.closed).toBe(true)
  })

  it('says when there is nothing to review', async () => {
    serve((c) => (c.url === '/api/cameras' ? json(200, [cam(1, 'view')]) : null))
    const w = mount(ReviewPage, { ...(await routerAt('/review')) })
    await settle()
    expect(w.get('[data-testid="review-empty"]').text()).toContain('Ask an admin for playback')
    w.unmount()
  })
})

function job(id: number, state: ExportJob['state'], progress = 0): ExportJob {
  return { id, camera_id: 1, name: `Clip ${id}`, start: NOW - 600_000, end: NOW - 300_000, state, progress, bytes: 2048, error: null, created_at: Date.parse('2026-01-01T00:00:00Z') }
}

describe('exports page', () => {
  it('shows progress, polls while running, downloads and deletes', async () => {
    let progress = 0.25
    let state: ExportJob['state'] = 'running'
    const { calls } = serve((c) => {
      if (c.url === '/api/cameras') return json(200, [cam(1, 'playback', 'Porch')])
      if (c.url === '/api/exports' && c.method === 'GET') return json(200, [job(2, state, progress), job(1, 'done', 1)])
      if (c.method === 'DELETE') return new Response(null, { status: 204 })
      return null
    })
    const w = mount(ExportsPage, { ...(await routerAt('/exports')) })
    await settle()
    const rows = () => w.findAll('[data-testid="export-row"]')
    expect(rows().map((r) => r.attributes('data-state'))).toEqual(['running', 'done'])
    expect((rows()[0]!.get('[data-testid="export-progress"]').element as HTMLProgressElement).getAttribute('value')).toBe('25')
    expect(rows()[1]!.get('[data-testid="export-download"]').attributes('href')).toBe('/api/exports/1/file?token=tok')
    expect(rows()[0]!.text()).toContain('Porch')

    progress = 1
    state = 'done'
    await settle(1100)
    expect(rows().map((r) => r.attributes('data-state'))).toEqual(['done', 'done'])
    expect(rows()[0]!.get('[data-testid="export-progress"]').attributes('value')).toBe('100')

    await rows()[1]!.get('[data-testid="export-delete"]').trigger('click')
    await settle()
    expect(calls.some((c) => c.method === 'DELETE' && c.url === '/api/exports/1')).toBe(true)
    expect(rows()).toHaveLength(1)
    w.unmount()
  })

  it('has an empty state and an error state', async () => {
    serve((c) => (c.url === '/api/cameras' ? json(200, []) : c.url === '/api/exports' ? json(200, []) : null))
    const w = mount(ExportsPage, { ...(await routerAt('/exports')) })
    await settle()
    expect(w.find('[data-testid="exports-empty"]').exists()).toBe(true)
    w.unmount()
    serve(() => apiError(500, 'internal', 'disk on fire'))
    const e = mount(ExportsPage, { ...(await routerAt('/exports')) })
    await settle()
    expect(e.get('[data-testid="exports-error"]').text()).toContain('disk on fire')
    e.unmount()
  })
})
