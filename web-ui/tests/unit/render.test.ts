import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import CameraTile from '../../src/components/CameraTile.vue'
import LivePage from '../../src/components/LivePage.vue'
import { TOKEN_KEY, type Camera } from '../../src/lib/api'
import { activePlayers } from '../../src/lib/player'
import { createMemoryHistory } from 'vue-router'
import { createAppRouter } from '../../src/lib/router'
import { FakePeerConnection, apiError, json, mockFetch } from './fakes'

const EVIL = '<img src=x onerror=alert(1)>'

function camera(over: Partial<Camera> = {}): Camera {
  return {
    id: 7,
    owner_id: 1,
    name: EVIL,
    resolution: '<b>1280x720</b>',
    status: 'online',
    created_at: '2025-01-01T00:00:00Z',
    permission: 'view',
    ...over,
  }
}

beforeEach(() => {
  localStorage.setItem(TOKEN_KEY, 'tok')
  FakePeerConnection.reset()
  vi.stubGlobal('RTCPeerConnection', FakePeerConnection)
})
afterEach(() => {
  for (const p of [...activePlayers]) p.stop()
  localStorage.clear()
  vi.unstubAllGlobals()
})

async function withRouter(path = '/') {
  const router = createAppRouter(createMemoryHistory())
  await router.push(path)
  await router.isReady()
  return { global: { plugins: [router] } }
}

describe('camera names are text, never HTML', () => {
  it('in a tile', async () => {
    const w = mount(CameraTile, { props: { camera: camera(), connect: false }, ...(await withRouter()) })
    expect(w.find('img').exists()).toBe(false)
    expect(w.find('.tile-name').text()).toBe(EVIL)
    expect(w.find('.tile-name').element.innerHTML).toContain('&lt;img')
    expect(w.find('video').attributes('aria-label')).toBe(`Live video of ${EVIL}`)
    expect(w.find('.badge').text()).toBe('connecting')
    w.unmount()
  })

  it('in the grid and the full-size view', async () => {
    const { fetch } = mockFetch((c) => {
      if (c.url === '/api/cameras') return json(200, [camera(), camera({ id: 8, name: '<script>alert(2)</script>' })])
      if (c.url.endsWith('/stream')) return json(200, { ice_servers: [] })
      return apiError(503, 'unavailable', 'no publisher')
    })
    vi.stubGlobal('fetch', fetch)
    const grid = mount(LivePage, { props: { focusedId: null }, attachTo: document.body, ...(await withRouter()) })
    await flushPromises()
    expect(grid.findAll('.tile')).toHaveLength(2)
    expect(grid.find('img').exists()).toBe(false)
    expect(grid.find('script').exists()).toBe(false)
    expect(grid.findAll('.tile-name').map((n) => n.text())).toEqual([EVIL, '<script>alert(2)</script>'])
    expect(grid.find('.tile-link').attributes('href')).toBe('/cameras/7')

    await grid.setProps({ focusedId: 7 })
    expect(grid.findAll('.tile')).toHaveLength(1)
    expect(grid.find('h1').text()).toBe(EVIL)
    expect(grid.find('.meta').text()).toBe('<b>1280x720</b>')
    expect(grid.find('img').exists()).toBe(false)
    expect(grid.find('b').exists()).toBe(false)
    grid.unmount()
    expect(activePlayers.size).toBe(0)
  })
})

describe('live tiles link to recordings', () => {
  it('only when the camera may be played back', async () => {
    const g = await withRouter()
    const view = mount(CameraTile, { props: { camera: camera({ permission: 'view' }), connect: false }, ...g })
    expect(view.find('[data-testid="tile-timeline-link"]').exists()).toBe(false)
    view.unmount()
    for (const permission of ['playback', 'control'] as const) {
      const w = mount(CameraTile, { props: { camera: camera({ permission }), connect: false }, ...g })
      expect(w.find('[data-testid="tile-timeline-link"]').attributes('href')).toBe('/cameras/7/timeline')
      w.unmount()
    }
  })
})
