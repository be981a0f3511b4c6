import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createMemoryHistory } from 'vue-router'
import CamerasPage from '../../src/components/CamerasPage.vue'
import CameraForm from '../../src/components/CameraForm.vue'
import SetupPage from '../../src/components/SetupPage.vue'
import App from '../../src/App.vue'
import { ApiClient, errorFromResponse, TOKEN_KEY, type Camera, type User } from '../../src/lib/api'
import { createAppRouter } from '../../src/lib/router'
import {
  CamerasApi,
  checkForm,
  formFromSource,
  hasRedactedPassword,
  newSourceFrom,
  patchFrom,
  pusherCommands,
  rebaseForm,
  suggestName,
  type ProbeResult,
  type SourceItem,
} from '../../src/api/cameras'
import type { RecorderStatus, StorageReport } from '../../src/api/manage'
import { apiError, json, mockFetch, type Call } from './fakes'

const admin: User = { id: 1, username: 'root', email: 'r@x', role: 'admin', created_at: '2025-01-01T00:00:00Z' }

function source(id: number, name: string, over: Partial<SourceItem> = {}): SourceItem {
  return {
    id,
    name,
    url: `rtsp://admin:***@10.0.0.${id}:554/stream1`,
    sub_url: null,
    mode: 'continuous',
    transport: 'tcp',
    backend: 'retina',
    max_restarts: null,
    retention: { max_age_days: 14, max_bytes: null },
    pre_roll_secs: 5,
    post_roll_secs: 10,
    from: 'api',
    overridden: [],
    etag: `"e${id}"`,
    ...over,
  }
}

function recorder(id: number, name: string, over: Partial<RecorderStatus> = {}): RecorderStatus {
  return {
    id,
    name,
    state: 'running',
    fps: 25,
    bitrate_kbps: 2048,
    last_frame_age_ms: 40,
    restarts: 0,
    last_error: null,
    codec: 'h264',
    width: 1920,
    height: 1080,
    b_frames: false,
    browser_playable: true,
    frames: 1000,
    bytes: 123456,
    ...over,
  }
}

function cam(id: number, name: string): Camera {
  return { id, owner_id: 1, name, resolution: null, status: 'online', created_at: '2025-01-01T00:00:00Z', permission: 'control' }
}

const storage: StorageReport = {
  cameras: [{ id: 1, name: 'door', recordings: 12, bytes: 5 * 1024 ** 3, oldest_ms: null, newest_ms: null, max_age_days: 14, max_bytes: null }],
  floor_bytes: 1e9,
  free_bytes: 1e11,
  total_bytes: 2e11,
  warnings: [],
}

const probeOk: ProbeResult = {
  codec: 'h264',
  width: 1280,
  height: 720,
  fps: 15,
  audio: [{ codec: 'mpeg4-generic', sample_rate: 16000, channels: 1 }],
  snapshot_jpeg_base64: '/9j/AAAA',
  sub: null,
}

async function routerAt(path: string) {
  const router = createAppRouter(createMemoryHistory())
  await router.push(path)
  await router.isReady()
  return { global: { plugins: [router] } }
}

/** The calls of the page, without the router's role check. */
const own = (calls: Call[]) => calls.filter((c) => c.url !== '/api/auth/me')

async function settle(ms = 20) {
  await flushPromises()
  await new Promise((r) => setTimeout(r, ms))
  await flushPromises()
}

function serve(handler: (c: Call) => Response | null) {
  const m = mockFetch((c) => {
    if (c.url === '/api/auth/me') return json(200, { user: admin })
    return handler(c) ?? apiError(404, 'not_found', 'no such thing')
  })
  vi.stubGlobal('fetch', m.fetch)
  return m
}

const door = source(1, 'door')
const yard = source(2, 'yard', { from: 'config', overridden: ['mode', 'retention.max_bytes'], mode: 'motion' })

function backend(over: (c: Call) => Response | null = () => null) {
  return serve((c) => {
    const o = over(c)
    if (o) return o
    if (c.url === '/api/nvr/cameras' && c.method === 'GET') return json(200, [yard, door])
    if (c.url === '/api/status') return json(200, [recorder(1, 'door'), recorder(2, 'yard', { state: 'stopped', last_error: 'connection refused' })])
    if (c.url === '/api/storage') return json(200, storage)
    if (c.url === '/api/cameras' && c.method === 'GET') return json(200, [cam(1, 'door'), cam(2, 'yard'), cam(3, 'pi-garden')])
    return null
  })
}

beforeEach(() => {
  localStorage.setItem(TOKEN_KEY, 'tok')
})
afterEach(() => {
  localStorage.clear()
  vi.unstubAllGlobals()
  document.body.innerHTML = ''
})

describe('cameras page', () => {
  it('lists the RTSP cameras with state, picture, mode, storage and where they come from', async () => {
    backend()
    const w = mount(CamerasPage, await routerAt('/cameras'))
    await settle()
    const rows = w.findAll('tr.cam-row')
    expect(rows.map((r) => r.attributes('data-testid'))).toEqual(['camera-row-door', 'camera-row-yard'])
    const d = w.get('[data-testid="camera-row-door"]')
    expect(w.get('[data-testid="camera-state-door"]').text()).toBe('Recording')
    expect(w.get('[data-testid="camera-state-door"]').classes()).toContain('tone-ok')
    expect(d.text()).toContain('H264 · 1920×1080')
    expect(d.text()).toContain('2.0 Mbit/s')
    expect(d.text()).toContain('5.0 GB · 12 recordings')
    expect(w.get('[data-testid="camera-mode-door"]').text()).toBe('All the time')
    expect(d.find('[data-testid="from-config"]').exists()).toBe(false)
    const y = w.get('[data-testid="camera-row-yard"]')
    expect(w.get('[data-testid="camera-state-yard"]').text()).toBe('Stopped')
    expect(w.get('[data-testid="camera-error-yard"]').text()).toContain('connection refused')
    expect(y.find('[data-testid="from-config"]').exists()).toBe(true)
    expect(w.get('[data-testid="overridden-yard"]').text()).toBe('overridden: recording, size limit')
    // A stopped camera offers Start, a running one Stop.
    expect(w.find('[data-testid="btn-start-yard"]').exists()).toBe(true)
    expect(w.find('[data-testid="btn-stop-yard"]').exists()).toBe(false)
    expect(w.find('[data-testid="btn-start-door"]').exists()).toBe(false)
    expect(w.get('[data-testid="btn-motion-door"]').attributes('href')).toBe('/cameras/1/motion')
    // The pusher camera is the one without an RTSP source.
    expect(w.find('[data-testid="pusher-row-pi-garden"]').exists()).toBe(true)
    expect(w.find('[data-testid="pusher-row-door"]').exists()).toBe(false)
    w.unmount()
  })

  it('Stop and Trigger call their routes; a refused trigger says why', async () => {
    const { calls } = backend((c) => {
      if (c.url === '/api/cameras/1/stop' && c.method === 'POST') return new Response(null, { status: 202 })
      if (c.url === '/api/cameras/1/trigger') return apiError(409, 'conflict', 'the camera is not recording now')
      return null
    })
    const w = mount(CamerasPage, await routerAt('/cameras'))
    await settle()
    await w.get('[data-testid="btn-stop-door"]').trigger('click')
    await settle()
    expect(calls.filter((c) => c.url === '/api/cameras/1/stop' && c.method === 'POST')).toHaveLength(1)
    expect(w.get('[data-testid="row-message-door"]').text()).toContain('stopping')
    await w.get('[data-testid="btn-trigger-door"]').trigger('click')
    await settle()
    const trig = calls.find((c) => c.url === '/api/cameras/1/trigger')!
    expect(JSON.parse(trig.body!)).toEqual({ seconds: 60 })
    expect(w.get('[data-testid="row-error-door"]').text()).toContain('not recording now')
    w.unmount()
  })

  it('asks before deleting, and sends recordings=keep or recordings=delete', async () => {
    let deleted = false
    const { calls } = backend((c) => {
      if (c.method === 'DELETE' && c.url.startsWith('/api/nvr/cameras/1?')) {
        deleted = true
        return json(200, { recordings_deleted: 12, bytes_deleted: 5 * 1024 ** 3, locked_kept: 2 })
      }
      if (deleted && c.url === '/api/nvr/cameras' && c.method === 'GET') return json(200, [yard])
      return null
    })
    const w = mount(CamerasPage, await routerAt('/cameras'))
    await settle()
    await w.get('[data-testid="btn-delete-door"]').trigger('click')
    const dialog = w.get('[data-testid="delete-dialog-door"]')
    expect(dialog.text()).toContain('Delete camera door?')
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false)
    // Cancel closes it without a call.
    await dialog.get('[data-testid="delete-cancel"]').trigger('click')
    expect(w.find('[data-testid="delete-dialog-door"]').exists()).toBe(false)
    await w.get('[data-testid="btn-delete-door"]').trigger('click')
    await w.get('[data-testid="delete-keep"]').trigger('click')
    await settle()
    expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.url)).toEqual(['/api/nvr/cameras/1?recordings=keep'])
    expect(w.get('[data-testid="cameras-notice"]').text()).toContain('Its recordings are kept')
    expect(w.find('[data-testid="camera-row-door"]').exists()).toBe(false)
    w.unmount()

    deleted = false
    const w2 = mount(CamerasPage, await routerAt('/cameras'))
    await settle()
    await w2.get('[data-testid="btn-delete-door"]').trigger('click')
    await w2.get('[data-testid="delete-recordings"]').trigger('click')
    await settle()
    expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.url)).toEqual([
      '/api/nvr/cameras/1?recordings=keep',
      '/api/nvr/cameras/1?recordings=delete',
    ])
    const notice = w2.get('[data-testid="cameras-notice"]').text()
    expect(notice).toContain('12 recordings (5.0 GB)')
    expect(notice).toContain('2 locked recordings were kept')
    w2.unmount()
  })

  it('a config-file camera is not deleted: the dialog says to turn it off', async () => {
    const { calls } = backend()
    const w = mount(CamerasPage, await routerAt('/cameras'))
    await settle()
    await w.get('[data-testid="btn-delete-yard"]').trigger('click')
    const dialog = w.get('[data-testid="delete-dialog-yard"]')
    expect(dialog.text()).toContain('config file')
    expect(dialog.find('[data-testid="delete-keep"]').exists()).toBe(false)
    await dialog.get('[data-testid="delete-turn-off"]').trigger('click')
    await settle()
    expect(w.find('[data-testid="camera-form"]').exists()).toBe(true)
    expect(w.get('[data-testid="overridden-list"]').text()).toContain('recording, size limit')
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false)
    w.unmount()
  })

  it('creates a pusher camera and shows its key once, with the commands for the Pi', async () => {
    backend((c) =>
      c.url === '/api/cameras' && c.method === 'POST'
        ? json(201, { camera: { id: 9, owner_id: 1, name: 'porch', status: 'offline', created_at: '2025-01-01T00:00:00Z' }, stream_key: 'k3y-abc' })
        : null,
    )
    const w = mount(CamerasPage, await routerAt('/cameras'))
    await settle()
    await w.get('[data-testid="pusher-name"]').setValue('porch')
    await w.get('[data-testid="pusher-create"]').trigger('submit')
    await settle()
    expect((w.get('[data-testid="stream-key"]').element as HTMLInputElement).value).toBe('k3y-abc')
    expect(w.get('[data-testid="stream-key-warning"]').text()).toContain('shown only this once')
    const cmd = w.get('[data-testid="pusher-command"]').text()
    expect(cmd).toContain(`echo 'k3y-abc' > reallive.key && chmod 600 reallive.key`)
    expect(cmd).toContain(`reallive-pusher --source libcamera --server ${window.location.origin} --camera 9 --key-file reallive.key`)
    // The key is in the file, never on the pusher's command line.
    expect(cmd.split('\n')[1]).not.toContain('k3y-abc')
    await w.get('[data-testid="close-key"]').trigger('click')
    expect(w.find('[data-testid="stream-key"]').exists()).toBe(false)
    w.unmount()
  })

  it('offers the GStreamer client when retina says it cannot read a camera, and switches it with If-Match', async () => {
    const hint = 'RTSP: bad interleaved frame (if other players can show this camera, try backend = "gstreamer" for it)'
    let switched = false
    const { calls } = backend((c) => {
      if (c.url === '/api/status') {
        return json(200, [
          recorder(1, 'door', { state: switched ? 'running' : 'retrying', last_error: switched ? null : hint }),
          recorder(2, 'yard', { state: 'stopped', last_error: 'connection refused' }),
        ])
      }
      if (c.url === '/api/nvr/cameras/1' && c.method === 'PATCH') {
        switched = true
        return json(200, source(1, 'door', { backend: 'gstreamer', etag: '"e1g"' }))
      }
      if (switched && c.url === '/api/nvr/cameras' && c.method === 'GET') return json(200, [yard, source(1, 'door', { backend: 'gstreamer', etag: '"e1g"' })])
      return null
    })
    const w = mount(CamerasPage, await routerAt('/cameras'))
    await settle()
    expect(w.get('[data-testid="camera-error-door"]').text()).toContain('try backend = "gstreamer"')
    // Only the camera retina gave up on: another error is not a reason to switch.
    const offers = w.findAll('[data-testid="try-gstreamer"]')
    expect(offers).toHaveLength(1)
    expect(w.get('[data-testid="camera-row-door"]').find('[data-testid="try-gstreamer"]').text()).toBe('Try the GStreamer client')
    expect(w.get('[data-testid="camera-row-yard"]').find('[data-testid="try-gstreamer"]').exists()).toBe(false)
    await offers[0]!.trigger('click')
    await settle()
    const patches = calls.filter((c) => c.method === 'PATCH')
    expect(patches).toHaveLength(1)
    expect(patches[0]!.url).toBe('/api/nvr/cameras/1')
    expect(patches[0]!.headers['if-match']).toBe('"e1"')
    expect(JSON.parse(patches[0]!.body!)).toEqual({ backend: 'gstreamer' })
    expect(w.get('[data-testid="row-message-door"]').text()).toContain('now uses the GStreamer client')
    expect(w.find('[data-testid="try-gstreamer"]').exists()).toBe(false)
    w.unmount()
  })

  it('does not offer the GStreamer client to a camera already on it, and says when someone changed the camera first', async () => {
    const hint = 'RTSP: bad interleaved frame (if other players can show this camera, try backend = "gstreamer" for it)'
    const onGst = source(2, 'yard', { backend: 'gstreamer' })
    const { calls } = backend((c) => {
      if (c.url === '/api/nvr/cameras' && c.method === 'GET') return json(200, [door, onGst])
      if (c.url === '/api/status') return json(200, [recorder(1, 'door', { last_error: hint }), recorder(2, 'yard', { last_error: hint })])
      if (c.method === 'PATCH') return json(412, { error: { code: 'precondition_failed', message: 'the camera changed' } })
      return null
    })
    const w = mount(CamerasPage, await routerAt('/cameras'))
    await settle()
    expect(w.get('[data-testid="camera-row-yard"]').find('[data-testid="try-gstreamer"]').exists()).toBe(false)
    await w.get('[data-testid="camera-row-door"]').get('[data-testid="try-gstreamer"]').trigger('click')
    await settle()
    expect(calls.filter((c) => c.method === 'PATCH')).toHaveLength(1)
    expect(w.get('[data-testid="row-error-door"]').text()).toContain('Someone changed door just now')
    w.unmount()
  })
})

describe('camera form', () => {
  it('a refused password shows the auth message under the URL and keeps what was typed', async () => {
    const { calls } = serve((c) =>
      c.url === '/api/nvr/cameras/probe'
        ? json(422, { error: { code: 'auth', message: 'camera said 401', field: 'url' } })
        : null,
    )
    const w = mount(CameraForm, await routerAt('/cameras'))
    await w.get('[data-testid="field-url"]').setValue('rtsp://admin:wrong@192.168.1.20:554/stream1')
    expect((w.get('[data-testid="field-name"]').element as HTMLInputElement).value).toBe('192-168-1-20')
    await w.get('[data-testid="field-name"]').setValue('front')
    await w.get('[data-testid="field-mode"]').setValue('motion')
    await w.get('[data-testid="probe-btn"]').trigger('click')
    expect(w.find('[data-testid="probe-running"]').exists()).toBe(true)
    await settle()
    const probe = calls.find((c) => c.url === '/api/nvr/cameras/probe')!
    expect(JSON.parse(probe.body!)).toEqual({ url: 'rtsp://admin:wrong@192.168.1.20:554/stream1', transport: 'tcp' })
    const err = w.get('[data-testid="probe-error"]')
    expect(err.text()).toBe('The camera refused the user name or password in the URL.')
    // Under the URL field: in the same field box as the URL input.
    expect(err.element.closest('.field')!.querySelector('[data-testid="field-url"]')).not.toBeNull()
    expect((w.get('[data-testid="field-url"]').element as HTMLInputElement).value).toBe('rtsp://admin:wrong@192.168.1.20:554/stream1')
    expect((w.get('[data-testid="field-name"]').element as HTMLInputElement).value).toBe('front')
    expect((w.get('[data-testid="field-mode"]').element as HTMLSelectElement).value).toBe('motion')
    expect(calls.some((c) => c.url === '/api/nvr/cameras' && c.method === 'POST')).toBe(false)
    w.unmount()
  })

  it('a good probe shows the stream and its picture; saving posts the camera', async () => {
    const { calls } = serve((c) => {
      if (c.url === '/api/nvr/cameras/probe') return json(200, { ...probeOk, sub: { codec: 'h264', width: 640, height: 360, fps: 10 } })
      if (c.url === '/api/nvr/cameras' && c.method === 'POST') return json(201, source(5, 'front'))
      return null
    })
    const w = mount(CameraForm, await routerAt('/cameras'))
    await w.get('[data-testid="field-url"]').setValue('rtsp://u:p@cam.local/main')
    await w.get('[data-testid="field-sub_url"]').setValue('rtsp://u:p@cam.local/sub')
    await w.get('[data-testid="probe-btn"]').trigger('click')
    await settle()
    expect(JSON.parse(own(calls)[0]!.body!)).toEqual({ url: 'rtsp://u:p@cam.local/main', sub_url: 'rtsp://u:p@cam.local/sub', transport: 'tcp' })
    const r = w.get('[data-testid="probe-result"]')
    expect(r.get('[data-testid="probe-video"]').text()).toBe('H264 · 1280×720')
    expect(r.get('[data-testid="probe-fps"]').text()).toBe('15')
    expect(r.get('[data-testid="probe-audio"]').text()).toBe('AAC, 16000 Hz, mono')
    expect(r.get('[data-testid="probe-sub"]').text()).toContain('640×360')
    expect(r.get('[data-testid="probe-snapshot"]').attributes('src')).toBe('data:image/jpeg;base64,/9j/AAAA')
    await w.get('[data-testid="field-name"]').setValue('front')
    await w.get('[data-testid="field-max_age_days"]').setValue('30')
    await w.get('[data-testid="field-max_bytes"]').setValue('2')
    await w.get('form').trigger('submit')
    await settle()
    const post = calls.find((c) => c.url === '/api/nvr/cameras' && c.method === 'POST')!
    expect(JSON.parse(post.body!)).toEqual({
      name: 'front',
      url: 'rtsp://u:p@cam.local/main',
      sub_url: 'rtsp://u:p@cam.local/sub',
      transport: 'tcp',
      backend: 'retina',
      mode: 'continuous',
      retention: { max_age_days: 30, max_bytes: 2 * 1024 ** 3 },
    })
    expect(w.emitted('saved')![0]).toEqual([source(5, 'front'), true])
    w.unmount()
  })

  it('cancels a probe that takes too long, aborting its request', async () => {
    let signal: AbortSignal | null = null
    vi.stubGlobal(
      'fetch',
      vi.fn((url: string, init?: RequestInit) => {
        if (url === '/api/auth/me') return Promise.resolve(json(200, { user: admin }))
        signal = init?.signal ?? null
        // A camera that never answers: only the abort ends it.
        return new Promise<Response>((_, reject) =>
          signal?.addEventListener('abort', () => reject(new DOMException('The user aborted a request.', 'AbortError'))),
        )
      }),
    )
    const w = mount(CameraForm, await routerAt('/cameras'))
    await w.get('[data-testid="field-url"]').setValue('rtsp://cam.local/main')
    await w.get('[data-testid="probe-btn"]').trigger('click')
    await flushPromises()
    expect(w.find('[data-testid="probe-running"]').exists()).toBe(true)
    expect(signal).not.toBeNull()
    expect(signal!.aborted).toBe(false)
    await w.get('[data-testid="probe-cancel"]').trigger('click')
    await settle()
    expect(signal!.aborted).toBe(true)
    expect(w.find('[data-testid="probe-running"]').exists()).toBe(false)
    expect(w.get('[data-testid="probe-error"]').text()).toBe('Test cancelled.')
    expect((w.get('[data-testid="probe-btn"]').element as HTMLButtonElement).disabled).toBe(false)
    expect((w.get('[data-testid="field-url"]').element as HTMLInputElement).value).toBe('rtsp://cam.local/main')
    w.unmount()
  })

  it('puts a server field error under its field, and others above the buttons', async () => {
    let answer = json(409, { error: { code: 'conflict', message: 'the name is taken', field: 'name' } })
    serve((c) => (c.url === '/api/nvr/cameras' && c.method === 'POST' ? answer : null))
    const w = mount(CameraForm, await routerAt('/cameras'))
    await w.get('[data-testid="field-url"]').setValue('rtsp://cam.local/main')
    await w.get('[data-testid="field-name"]').setValue('door')
    await w.get('form').trigger('submit')
    await settle()
    expect(w.get('[data-testid="field-error-name"]').text()).toBe('the name is taken')
    expect(w.find('[data-testid="form-error"]').exists()).toBe(false)
    // The server names `retention` for both limits, the limit in its message.
    answer = json(400, { error: { code: 'invalid_argument', message: 'retention.max_bytes: at least 1 MiB', field: 'retention' } })
    await w.get('form').trigger('submit')
    await settle()
    expect(w.get('[data-testid="field-error-max_bytes"]').text()).toBe('At least 1 MiB')
    expect(w.find('[data-testid="field-error-max_age_days"]').exists()).toBe(false)
    answer = json(400, { error: { code: 'invalid_argument', message: 'url: not an rtsp:// URL', field: 'url' } })
    await w.get('form').trigger('submit')
    await settle()
    expect(w.get('[data-testid="field-error-url"]').text()).toBe('Not an rtsp:// URL')
    answer = json(503, { error: { code: 'unavailable', message: 'the store is busy' } })
    await w.get('form').trigger('submit')
    await settle()
    expect(w.get('[data-testid="form-error"]').text()).toBe('the store is busy')
    expect((w.get('[data-testid="field-name"]').element as HTMLInputElement).value).toBe('door')
    w.unmount()
  })

  it('checks the typed values before sending', async () => {
    const { calls } = serve(() => null)
    const w = mount(CameraForm, await routerAt('/cameras'))
    await w.get('[data-testid="field-url"]').setValue('http://cam.local/x')
    await w.get('[data-testid="field-name"]').setValue('front door')
    await w.get('form').trigger('submit')
    expect(w.get('[data-testid="field-error-url"]').text()).toBe('That is not an rtsp:// URL.')
    expect(w.get('[data-testid="field-error-name"]').text()).toContain('letters, digits')
    expect(own(calls)).toHaveLength(0)
    w.unmount()
  })

  it('edits with If-Match, sending only what changed and never the hidden password', async () => {
    const { calls } = serve((c) =>
      c.method === 'PATCH' ? json(200, source(1, 'door', { mode: 'motion', etag: '"e1b"' })) : null,
    )
    const w = mount(CameraForm, { ...(await routerAt('/cameras')), props: { source: door } })
    expect((w.get('[data-testid="field-url"]').element as HTMLInputElement).value).toBe('rtsp://admin:***@10.0.0.1:554/stream1')
    await w.get('[data-testid="field-mode"]').setValue('motion')
    await w.get('form').trigger('submit')
    await settle()
    const patch = calls.find((c) => c.method === 'PATCH')!
    expect(patch.url).toBe('/api/nvr/cameras/1')
    expect(patch.headers['if-match']).toBe('"e1"')
    expect(patch.headers.authorization).toBe('Bearer tok')
    expect(JSON.parse(patch.body!)).toEqual({ mode: 'motion' })
    expect(w.get('[data-testid="form-done"]').text()).toContain('Saved')
    // The next save uses the new tag.
    await w.get('[data-testid="field-name"]').setValue('door2')
    await w.get('form').trigger('submit')
    await settle()
    const second = calls.filter((c) => c.method === 'PATCH')[1]!
    expect(second.headers['if-match']).toBe('"e1b"')
    expect(JSON.parse(second.body!)).toEqual({ name: 'door2' })
    w.unmount()
  })

  it('refuses to test or save a URL still holding ***', async () => {
    const { calls } = serve(() => null)
    const w = mount(CameraForm, { ...(await routerAt('/cameras')), props: { source: door } })
    await w.get('[data-testid="probe-btn"]').trigger('click')
    expect(w.get('[data-testid="probe-error"]').text()).toContain('password is hidden')
    await w.get('[data-testid="field-url"]').setValue('rtsp://admin:***@10.0.0.1:554/stream2')
    await w.get('form').trigger('submit')
    expect(w.get('[data-testid="field-error-url"]').text()).toContain('in place of ***')
    expect(own(calls)).toHaveLength(0)
    w.unmount()
  })

  it('412: loads their values, keeps what was typed, and saves over theirs next time', async () => {
    const theirs = source(1, 'door', { mode: 'motion', name: 'front-door', transport: 'udp', etag: '"e2"' })
    let patches = 0
    const { calls } = serve((c) => {
      if (c.method === 'PATCH') {
        patches++
        return patches === 1
          ? json(412, { error: { code: 'precondition_failed', message: 'the camera changed' } })
          : json(200, { ...theirs, name: 'gate', etag: '"e3"' })
      }
      if (c.url === '/api/nvr/cameras/1' && c.method === 'GET') return json(200, theirs)
      return null
    })
    const w = mount(CameraForm, { ...(await routerAt('/cameras')), props: { source: door } })
    await w.get('[data-testid="field-name"]').setValue('gate')
    await w.get('[data-testid="field-max_age_days"]').setValue('7')
    await w.get('form').trigger('submit')
    await settle()
    expect(w.get('[data-testid="conflict"]').text()).toBe(
      'Someone else changed this camera while you were editing. Their values are below; your changes are kept in the form — save again to overwrite.',
    )
    // Typed values kept; their value shown beside the one they also changed.
    expect((w.get('[data-testid="field-name"]').element as HTMLInputElement).value).toBe('gate')
    expect(w.get('[data-testid="theirs-name"]').text()).toBe('Their value: front-door')
    expect((w.get('[data-testid="field-max_age_days"]').element as HTMLInputElement).value).toBe('7')
    // Fields not touched here take their values.
    expect((w.get('[data-testid="field-mode"]').element as HTMLSelectElement).value).toBe('motion')
    expect((w.get('[data-testid="field-transport"]').element as HTMLSelectElement).value).toBe('udp')
    await w.get('form').trigger('submit')
    await settle()
    const second = calls.filter((c) => c.method === 'PATCH')[1]!
    expect(second.headers['if-match']).toBe('"e2"')
    expect(JSON.parse(second.body!)).toEqual({ name: 'gate', retention: { max_age_days: 7, max_bytes: null } })
    expect(w.find('[data-testid="conflict"]').exists()).toBe(false)
    w.unmount()
  })

  it('resets a config-file camera’s overrides after asking', async () => {
    const { calls } = serve((c) =>
      c.method === 'DELETE' && c.url === '/api/nvr/cameras/2/overrides' ? json(200, { ...yard, mode: 'continuous', overridden: [], etag: '"x"' }) : null,
    )
    const w = mount(CameraForm, { ...(await routerAt('/cameras')), props: { source: yard } })
    expect(w.get('[data-testid="config-note"]').text()).toContain('config file')
    await w.get('[data-testid="reset-overrides"]').trigger('click')
    expect(own(calls)).toHaveLength(0)
    await w.get('[data-testid="reset-overrides-confirm"]').trigger('click')
    await settle()
    expect(own(calls).map((c) => `${c.method} ${c.url}`)).toEqual(['DELETE /api/nvr/cameras/2/overrides'])
    expect((w.get('[data-testid="field-mode"]').element as HTMLSelectElement).value).toBe('continuous')
    expect(w.find('[data-testid="overridden-list"]').exists()).toBe(false)
    w.unmount()
  })

  it('shows the RTSP client the server has, and PATCHes only a change of it', async () => {
    const { calls } = serve((c) =>
      c.method === 'PATCH' ? json(200, source(1, 'door', { backend: 'gstreamer', etag: '"e1b"' })) : null,
    )
    const w = mount(CameraForm, { ...(await routerAt('/cameras')), props: { source: door } })
    const sel = w.get('[data-testid="field-backend"]')
    expect((sel.element as HTMLSelectElement).value).toBe('retina')
    expect(sel.findAll('option').map((o) => o.text())).toEqual(['RealLive (retina) — recommended', 'GStreamer (compatibility)'])
    // Its hint sits in the same field box, in one row with "How the picture travels".
    expect(sel.element.closest('.field')!.textContent).toContain('Pick GStreamer only for a camera RealLive cannot read')
    expect(sel.element.closest('.field-pair')!.querySelector('[data-testid="field-transport"]')).not.toBeNull()
    await sel.setValue('gstreamer')
    expect(w.get('[data-testid="unsaved"]').text()).toBe('Not saved yet.')
    await w.get('form').trigger('submit')
    await settle()
    const patch = calls.find((c) => c.method === 'PATCH')!
    expect(patch.url).toBe('/api/nvr/cameras/1')
    expect(patch.headers['if-match']).toBe('"e1"')
    expect(JSON.parse(patch.body!)).toEqual({ backend: 'gstreamer' })
    expect((w.get('[data-testid="field-backend"]').element as HTMLSelectElement).value).toBe('gstreamer')
    expect(w.find('[data-testid="unsaved"]').exists()).toBe(false)
    // A camera saved with GStreamer loads with it; another change does not send it again.
    const g = mount(CameraForm, { ...(await routerAt('/cameras')), props: { source: source(3, 'gate', { backend: 'gstreamer' }) } })
    expect((g.get('[data-testid="field-backend"]').element as HTMLSelectElement).value).toBe('gstreamer')
    await g.get('[data-testid="field-mode"]').setValue('off')
    await g.get('form').trigger('submit')
    await settle()
    expect(JSON.parse(calls.filter((c) => c.method === 'PATCH')[1]!.body!)).toEqual({ mode: 'off' })
    g.unmount()
    w.unmount()
  })

  it('a new camera posts the retina client unless GStreamer is picked', async () => {
    let n = 0
    const { calls } = serve((c) => (c.url === '/api/nvr/cameras' && c.method === 'POST' ? json(201, source(5 + n++, 'front')) : null))
    const w = mount(CameraForm, await routerAt('/cameras'))
    expect((w.get('[data-testid="field-backend"]').element as HTMLSelectElement).value).toBe('retina')
    await w.get('[data-testid="field-url"]').setValue('rtsp://cam.local/main')
    await w.get('form').trigger('submit')
    await settle()
    const posts = () => calls.filter((c) => c.url === '/api/nvr/cameras' && c.method === 'POST').map((c) => JSON.parse(c.body!))
    expect(posts()[0]).toEqual({ name: 'cam-local', url: 'rtsp://cam.local/main', transport: 'tcp', backend: 'retina', mode: 'continuous' })
    w.unmount()
    const g = mount(CameraForm, await routerAt('/cameras'))
    await g.get('[data-testid="field-url"]').setValue('rtsp://old.cam/live')
    await g.get('[data-testid="field-backend"]').setValue('gstreamer')
    await g.get('form').trigger('submit')
    await settle()
    expect(posts()[1]!.backend).toBe('gstreamer')
    g.unmount()
  })

  it('an RTSP client error goes under its field; theirs shows after a 412; an override is named', async () => {
    const theirs = source(1, 'door', { backend: 'gstreamer', etag: '"e2"' })
    let patches = 0
    serve((c) => {
      if (c.method === 'PATCH') {
        patches++
        return patches === 1
          ? json(400, { error: { code: 'invalid_argument', message: 'backend: this build has no GStreamer', field: 'backend' } })
          : json(412, { error: { code: 'precondition_failed', message: 'the camera changed' } })
      }
      if (c.url === '/api/nvr/cameras/1' && c.method === 'GET') return json(200, theirs)
      return null
    })
    const w = mount(CameraForm, { ...(await routerAt('/cameras')), props: { source: source(1, 'door', { backend: 'gstreamer' }) } })
    await w.get('[data-testid="field-backend"]').setValue('retina')
    await w.get('form').trigger('submit')
    await settle()
    expect(w.get('[data-testid="field-error-backend"]').text()).toBe('This build has no GStreamer')
    await w.get('form').trigger('submit')
    await settle()
    expect(w.get('[data-testid="conflict"]').text()).toContain('Someone else changed this camera')
    expect((w.get('[data-testid="field-backend"]').element as HTMLSelectElement).value).toBe('retina')
    expect(w.get('[data-testid="theirs-backend"]').text()).toBe('Their value: GStreamer (compatibility)')
    w.unmount()
    const y = mount(CameraForm, {
      ...(await routerAt('/cameras')),
      props: { source: { ...yard, backend: 'gstreamer', overridden: ['backend'] } },
    })
    expect(y.get('[data-testid="overridden-list"]').text()).toContain('RTSP client')
    expect(y.get('[data-testid="field-backend"]').element.closest('.field')!.querySelector('.ovr')?.textContent).toBe('changed here')
    y.unmount()
  })
})

describe('setup page', () => {
  it('adds a camera, then waits for its first picture', async () => {
    serve((c) => {
      if (c.url === '/api/nvr/cameras' && c.method === 'POST') return json(201, source(4, 'front'))
      if (c.url === '/api/cameras') return json(200, [cam(4, 'front')])
      return null
    })
    const w = mount(SetupPage, await routerAt('/setup'))
    expect(w.get('[data-testid="setup-step-1"]').classes()).toContain('current')
    await w.get('[data-testid="field-url"]').setValue('rtsp://10.0.0.4/live')
    await w.get('form').trigger('submit')
    await settle()
    expect(w.get('[data-testid="setup-step-2"]').classes()).toContain('current')
    expect(w.get('[data-testid="setup-waiting"]').text()).toBe('Waiting for the first picture…')
    const tile = w.get('[data-testid="setup-live"] article.tile')
    expect(tile.attributes('data-camera-id')).toBe('4')
    tile.get('video').element.dispatchEvent(new Event('playing'))
    await flushPromises()
    expect(w.find('[data-testid="setup-waiting"]').exists()).toBe(false)
    expect(w.get('[data-testid="setup-done"]').attributes('href')).toBe('/')
    w.unmount()
  })
})

describe('first start', () => {
  async function appAt(path: string, recorders: RecorderStatus[], cameras: Camera[], role: User['role'] = 'admin') {
    const m = mockFetch((c) => {
      if (c.url === '/api/auth/me') return json(200, { user: { ...admin, role } })
      if (c.url === '/api/status') return json(200, recorders)
      if (c.url === '/api/cameras') return json(200, cameras)
      if (c.url === '/api/nvr/cameras') return json(200, [])
      return json(200, [])
    })
    vi.stubGlobal('fetch', m.fetch)
    const router = createAppRouter(createMemoryHistory())
    await router.push(path)
    await router.isReady()
    const w = mount(App, { global: { plugins: [router] }, attachTo: document.body })
    for (let i = 0; i < 30 && router.currentRoute.value.path === path; i++) await settle(10)
    return { w, router, calls: m.calls }
  }

  it('sends an admin on the live page of an NVR without cameras to the setup guide', async () => {
    const { w, router } = await appAt('/', [], [])
    expect(router.currentRoute.value.path).toBe('/setup')
    expect(w.get('[data-testid="nav-cameras"]').attributes('aria-current')).toBe('page')
    w.unmount()
  })

  it('leaves the live page alone when there is a camera, or for others than admins', async () => {
    const one = await appAt('/', [recorder(1, 'door')], [cam(1, 'door')])
    expect(one.router.currentRoute.value.path).toBe('/')
    expect(one.w.get('[data-testid="nav-cameras"]').attributes('href')).toBe('/cameras')
    one.w.unmount()
    // Only a pusher camera: nothing recorded over RTSP, but not a first start.
    const pusher = await appAt('/', [], [cam(3, 'pi')])
    expect(pusher.router.currentRoute.value.path).toBe('/')
    pusher.w.unmount()
    const viewer = await appAt('/', [], [], 'viewer')
    expect(viewer.router.currentRoute.value.path).toBe('/')
    expect(viewer.w.find('[data-testid="nav-cameras"]').exists()).toBe(false)
    expect(viewer.calls.some((c) => c.url === '/api/status')).toBe(false)
    viewer.w.unmount()
  })

  it('leaves other pages alone', async () => {
    const { w, router } = await appAt('/review', [], [])
    expect(router.currentRoute.value.path).toBe('/review')
    w.unmount()
  })
})

describe('camera helpers', () => {
  it('reads the field the server blamed', async () => {
    const e = await errorFromResponse(json(400, { error: { code: 'bad_request', message: 'no', field: 'sub_url' } }))
    expect(e.field).toBe('sub_url')
    expect((await errorFromResponse(json(400, { error: { code: 'x', message: 'y' } }))).field).toBeNull()
  })

  it('suggests a name from the URL host', () => {
    expect(suggestName('rtsp://admin:pw@192.168.1.20:554/stream1')).toBe('192-168-1-20')
    expect(suggestName('rtsp://Front.Cam.local/live')).toBe('Front-Cam-local')
    expect(suggestName('rtsp://[fe80::1]:554/x')).toBe('fe80-1')
    expect(suggestName('not a url')).toBe('')
  })

  it('knows a redacted password', () => {
    expect(hasRedactedPassword('rtsp://admin:***@10.0.0.5/s')).toBe(true)
    expect(hasRedactedPassword('rtsp://***@10.0.0.5/s')).toBe(true)
    expect(hasRedactedPassword('rtsp://admin:pw@10.0.0.5/***')).toBe(false)
  })

  it('patches only changed fields; an emptied sub-stream is null', () => {
    const base = formFromSource(source(1, 'door', { sub_url: 'rtsp://a:***@h/sub' }))
    expect(patchFrom(base, { ...base })).toEqual({})
    expect(patchFrom(base, { ...base, sub_url: '' })).toEqual({ sub_url: null })
    expect(patchFrom(base, { ...base, max_gb: 1.5 })).toEqual({ retention: { max_age_days: 14, max_bytes: 1.5 * 1024 ** 3 } })
    expect(patchFrom(base, { ...base, url: 'rtsp://admin:new@10.0.0.1:554/stream1' })).toEqual({ url: 'rtsp://admin:new@10.0.0.1:554/stream1' })
  })

  it('rebases typed values on theirs', () => {
    const before = formFromSource(door)
    const typed = { ...before, name: 'mine' }
    const latest = formFromSource(source(1, 'theirs', { mode: 'off' }))
    const r = rebaseForm(before, typed, latest)
    expect(r.form.name).toBe('mine')
    expect(r.form.mode).toBe('off')
    expect(r.theirs).toEqual({ name: 'theirs' })
  })

  it('checks roll only in motion mode and builds the new camera', () => {
    const f = { ...formFromSource(door), url: 'rtsp://h/x', pre_roll_secs: 99 }
    expect(checkForm(f, null).pre_roll_secs).toBeUndefined()
    expect(checkForm({ ...f, mode: 'motion' }, null).pre_roll_secs).toBe('Whole seconds, 0 to 60.')
    expect(newSourceFrom({ ...f, mode: 'motion', pre_roll_secs: 3, max_age_days: '' })).toEqual({
      name: 'door',
      url: 'rtsp://h/x',
      transport: 'tcp',
      backend: 'retina',
      mode: 'motion',
      pre_roll_secs: 3,
      post_roll_secs: 10,
    })
  })

  it('quotes the key for the shell', () => {
    expect(pusherCommands(`a'b`, 3, 'https://nvr.example').keyFile).toBe(`echo 'a'\\''b' > reallive.key && chmod 600 reallive.key`)
  })

  it('asks for the snapshot and the live meter with the token in the URL', () => {
    const storage = new Map([[TOKEN_KEY, 't0k']])
    const client = new ApiClient({
      fetch: mockFetch(() => json(200, {})).fetch,
      storage: { getItem: (k) => storage.get(k) ?? null, setItem: () => undefined, removeItem: () => undefined },
    })
    const a = new CamerasApi(client)
    expect(a.snapshotUrl(4, 99)).toBe('/api/cameras/4/snapshot.jpg?t=99&token=t0k')
    expect(a.motionLiveUrl(4)).toBe('/api/cameras/4/motion/live?token=t0k')
  })
})
