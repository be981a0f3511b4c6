import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { createMemoryHistory } from 'vue-router'
import UsersPage from '../../src/components/UsersPage.vue'
import AccountPage from '../../src/components/AccountPage.vue'
import SystemPage from '../../src/components/SystemPage.vue'
import LogsPage from '../../src/components/LogsPage.vue'
import { TOKEN_KEY, type Camera, type User } from '../../src/lib/api'
import { createAppRouter } from '../../src/lib/router'
import type { LogLine, SystemReport, WorkerDetail } from '../../src/api/manage'
import { apiError, json, mockFetch, type Call } from './fakes'

const NOW = Date.now()

function user(id: number, username: string, role: User['role']): User {
  return { id, username, email: `${username}@x`, role, created_at: '2025-01-01T00:00:00Z' }
}
const admin = user(1, 'root', 'admin')

function cam(id: number, name = `Cam ${id}`, owner_id = 1): Camera {
  return { id, owner_id, name, resolution: null, status: 'online', created_at: '2025-01-01T00:00:00Z', permission: 'control' }
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
  const m = mockFetch((c) => {
    if (c.url === '/api/auth/me') return json(200, { user: admin })
    return handler(c) ?? apiError(404, 'not_found', 'no such thing')
  })
  vi.stubGlobal('fetch', m.fetch)
  return m
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

describe('users page', () => {
  const people = [admin, user(2, 'bob', 'operator'), user(3, 'carol', 'viewer')]

  function backend(over: (c: Call) => Response | null = () => null) {
    return serve((c) => {
      const o = over(c)
      if (o) return o
      if (c.url === '/api/users' && c.method === 'GET') return json(200, people)
      if (c.url === '/api/cameras') return json(200, [cam(10, 'Door'), cam(20, 'Yard', 2)])
      if (c.url === '/api/cameras/10/grants' && c.method === 'GET') return json(200, [{ user_id: 3, username: 'carol', permission: 'view' }])
      if (c.url === '/api/cameras/20/grants' && c.method === 'GET') return json(200, [])
      return null
    })
  }

  it('lists users and protects the last admin, saying why', async () => {
    backend()
    const w = mount(UsersPage, await routerAt('/users'))
    await settle()
    const rows = w.findAll('[data-testid="user-row"]')
    expect(rows.map((r) => r.attributes('data-user-id'))).toEqual(['1', '2', '3'])
    const root = rows[0]!
    expect(root.get('[data-testid="user-delete"]').attributes('disabled')).toBeDefined()
    expect(root.get('[data-testid="user-role"]').attributes('disabled')).toBeDefined()
    expect(root.get('[data-testid="user-protected"]').text()).toContain('only admin')
    expect(rows[1]!.get('[data-testid="user-delete"]').attributes('disabled')).toBeUndefined()
    w.unmount()
  })

  it('draws the matrix and saves a cell as it changes, one call each', async () => {
    const { calls } = backend((c) => {
      if (c.method === 'POST' && c.url === '/api/cameras/10/grants') return json(201, { user_id: 2, username: 'bob', permission: 'playback' })
      if (c.method === 'DELETE' && c.url === '/api/cameras/10/grants/3') return new Response(null, { status: 204 })
      return null
    })
    const w = mount(UsersPage, await routerAt('/users'))
    await settle()
    const cell = (u: number, c: number) => w.get(`[data-testid="grant-cell"][data-user-id="${u}"][data-camera-id="${c}"]`)
    expect(cell(1, 10).attributes('data-kind')).toBe('admin')
    expect(cell(2, 20).attributes('data-kind')).toBe('owner')
    expect(cell(3, 10).attributes('data-level')).toBe('view')
    await cell(2, 10).get('select').setValue('playback')
    await settle()
    const post = calls.find((c) => c.method === 'POST')!
    expect(JSON.parse(post.body!)).toEqual({ user_id: 2, permission: 'playback' })
    expect(cell(2, 10).attributes('data-level')).toBe('playback')
    await cell(3, 10).get('select').setValue('none')
    await settle()
    expect(calls.some((c) => c.method === 'DELETE' && c.url === '/api/cameras/10/grants/3')).toBe(true)
    expect(cell(3, 10).attributes('data-level')).toBe('none')
    w.unmount()
  })

  it('shows a refused change in its cell and puts the cell back', async () => {
    backend((c) => (c.method === 'POST' ? apiError(400, 'bad_request', 'no such user') : null))
    const w = mount(UsersPage, await routerAt('/users'))
    await settle()
    const cell = () => w.get('[data-testid="grant-cell"][data-user-id="3"][data-camera-id="10"]')
    await cell().get('select').setValue('control')
    await settle()
    expect(cell().attributes('data-level')).toBe('view')
    expect((cell().get('select').element as HTMLSelectElement).value).toBe('view')
    expect(cell().get('[data-testid="grant-error"]').text()).toBe('no such user')
    w.unmount()
  })

  it('creates a user and deletes one after asking', async () => {
    const { calls } = backend((c) => {
      if (c.method === 'POST' && c.url === '/api/users') return json(201, user(4, 'dave', 'viewer'))
      if (c.method === 'DELETE' && c.url === '/api/users/3') return new Response(null, { status: 204 })
      return null
    })
    const w = mount(UsersPage, await routerAt('/users'))
    await settle()
    await w.get('[data-testid="create-username"]').setValue('dave')
    await w.get('[data-testid="create-email"]').setValue('d@x')
    await w.get('[data-testid="create-password"]').setValue('short')
    await w.get('form.create').trigger('submit')
    expect(w.get('[data-testid="create-error"]').text()).toContain('at least 10')
    await w.get('[data-testid="create-password"]').setValue('long enough pw')
    await w.get('form.create').trigger('submit')
    await settle()
    expect(JSON.parse(calls.find((c) => c.method === 'POST')!.body!)).toEqual({
      username: 'dave',
      email: 'd@x',
      password: 'long enough pw',
      role: 'viewer',
    })
    expect(w.findAll('[data-testid="user-row"]')).toHaveLength(4)
    const carol = () => w.get('[data-testid="user-row"][data-user-id="3"]')
    await carol().get('[data-testid="user-delete"]').trigger('click')
    await carol().get('[data-testid="user-delete-confirm"]').trigger('click')
    await settle()
    expect(w.find('[data-testid="user-row"][data-user-id="3"]').exists()).toBe(false)
    w.unmount()
  })
})

describe('account page', () => {
  it('changes the password and keeps the new token', async () => {
    const { calls } = serve((c) =>
      c.url === '/api/auth/password' ? json(200, { token: 'tok-new', expires_at: '2030-01-01T00:00:00Z', user: admin }) : null,
    )
    const w = mount(AccountPage, await routerAt('/account'))
    await settle()
    expect(w.get('[data-testid="account-who"]').text()).toContain('root')
    await w.get('[data-testid="password-current"]').setValue('old password')
    await w.get('[data-testid="password-new"]').setValue('new password 1')
    await w.get('[data-testid="password-confirm"]').setValue('new password 2')
    expect(w.get('[data-testid="password-problem"]').text()).toContain('not the same')
    expect(w.get('[data-testid="password-save"]').attributes('disabled')).toBeDefined()
    await w.get('[data-testid="password-confirm"]').setValue('new password 1')
    await w.get('form').trigger('submit')
    await settle()
    const call = calls.find((c) => c.url === '/api/auth/password')!
    expect(call.headers.authorization).toBe('Bearer tok')
    expect(JSON.parse(call.body!)).toEqual({ current_password: 'old password', new_password: 'new password 1' })
    expect(localStorage.getItem(TOKEN_KEY)).toBe('tok-new')
    expect(w.find('[data-testid="password-done"]').exists()).toBe(true)
    w.unmount()
  })

  it('a wrong current password is an error on the form, not a sign-out', async () => {
    serve((c) => (c.url === '/api/auth/password' ? apiError(401, 'unauthenticated', 'wrong password') : null))
    const w = mount(AccountPage, await routerAt('/account'))
    await settle()
    await w.get('[data-testid="password-current"]').setValue('bad')
    await w.get('[data-testid="password-new"]').setValue('new password 1')
    await w.get('[data-testid="password-confirm"]').setValue('new password 1')
    await w.get('form').trigger('submit')
    await settle()
    expect(w.get('[data-testid="password-error"]').text()).toContain('current password is wrong')
    expect(localStorage.getItem(TOKEN_KEY)).toBe('tok')
    w.unmount()
  })

  it('logs out everywhere after asking, and forgets the token', async () => {
    const { calls } = serve((c) => (c.url === '/api/auth/logout-all' ? new Response(null, { status: 204 }) : null))
    const opts = await routerAt('/account')
    const router = opts.global.plugins[0]!
    const w = mount(AccountPage, opts)
    await settle()
    await w.get('[data-testid="logout-all"]').trigger('click')
    expect(calls.some((c) => c.url === '/api/auth/logout-all')).toBe(false)
    await w.get('[data-testid="logout-all-confirm"]').trigger('click')
    await settle()
    expect(calls.find((c) => c.url === '/api/auth/logout-all')!.method).toBe('POST')
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull()
    expect(router.currentRoute.value.name).toBe('login')
    w.unmount()
  })
})

describe('system page', () => {
  const samples = Array.from({ length: 30 }, (_, i) => ({
    at_ms: NOW - (30 - i) * 10_000,
    fps: i < 20 ? 25 : 0,
    bitrate_kbps: i < 20 ? 2000 : 0,
    state: i < 20 ? 'running' : 'backoff',
  }))
  const report: SystemReport = {
    version: '0.18.0',
    uptime_secs: 93_780,
    pid: 42,
    cpu_percent: 12.34,
    rss_bytes: 50 * 1024 * 1024,
    threads: 9,
    db_bytes: 3 * 1024 * 1024,
    cameras: [{ id: 7, name: 'Gate', samples }],
  }
  const worker: WorkerDetail = {
    id: 7,
    name: 'Gate',
    state: 'backoff',
    restarts: 3,
    fps: 0,
    bitrate_kbps: 0,
    bytes: 0,
    frames: 0,
    b_frames: false,
    browser_playable: true,
    codec: 'h264',
    width: 1280,
    height: 720,
    last_error: 'connection refused',
    history: [
      { at_ms: NOW - 100_000, state: 'running', reason: 'first frame' },
      { at_ms: NOW - 50_000, state: 'backoff', reason: 'connection refused' },
    ],
  }

  it('shows each camera with its state, history and sparklines, storage and the process', async () => {
    serve((c) => {
      if (c.url === '/api/system') return json(200, report)
      if (c.url === '/api/workers/7') return json(200, worker)
      if (c.url === '/api/storage')
        return json(200, {
          cameras: [{ id: 7, name: 'Gate', bytes: 500, recordings: 2, max_bytes: 1000 }],
          floor_bytes: 100,
          free_bytes: 50,
          total_bytes: 1000,
          warnings: ['free space under the floor'],
        })
      if (c.url === '/api/transcoding/status')
        return json(200, { enabled: false, state: 'off', running: [], completed: 0, failed: 0, max_jobs: 1, bytes_before: 0, bytes_after: 0, bytes_saved: 0 })
      return null
    })
    const w = mount(SystemPage, await routerAt('/system'))
    await settle()
    const card = w.get('[data-testid="system-camera"][data-camera-id="7"]')
    expect(card.get('[data-testid="camera-state"]').text()).toBe('Retrying')
    expect(card.text()).toContain('3 restarts')
    expect(card.get('[data-testid="camera-last-error"]').text()).toContain('connection refused')
    const changes = card.findAll('[data-testid="state-change"]')
    expect(changes.map((c) => c.text())).toEqual([expect.stringContaining('connection refused'), expect.stringContaining('first frame')])
    expect(card.get('[data-testid="state-history"]').attributes('open')).toBeDefined()
    expect(card.get('[data-testid="spark-fps"] path').attributes('d')).toMatch(/^M[\d.]+ [\d.]+L/)
    expect(card.findAll('[data-testid="state-strip"] rect').length).toBe(2)
    expect(w.get('[data-testid="system-storage"]').text()).toContain('Low on space')
    expect(w.get('[data-testid="storage-warnings"]').text()).toContain('under the floor')
    expect(w.get('[data-testid="system-transcoding"]').text()).toContain('Off')
    expect(w.get('[data-testid="system-uptime"]').text()).toBe('1 d 2 h')
    w.unmount()
  })

  it('a server without recorders says so; a missing route does not hide the rest', async () => {
    serve((c) => {
      if (c.url === '/api/storage') return json(200, { cameras: [], floor_bytes: 0, free_bytes: 10, total_bytes: 20, warnings: [] })
      return null
    })
    const w = mount(SystemPage, await routerAt('/system'))
    await settle()
    expect(w.get('[data-testid="system-error"]').text()).toContain('does not report')
    expect(w.find('[data-testid="system-storage"]').exists()).toBe(true)
    w.unmount()
    serve((c) => (c.url === '/api/system' ? json(200, { ...report, cameras: [] }) : null))
    const w2 = mount(SystemPage, await routerAt('/system'))
    await settle()
    expect(w2.find('[data-testid="system-no-cameras"]').exists()).toBe(true)
    expect(w2.find('[data-testid="system-process"]').exists()).toBe(true)
    w2.unmount()
  })

  it('stops a camera, shows the stop in its state changes, and starts it again', async () => {
    let state: 'running' | 'stopped' | 'starting' = 'running'
    const history = [{ at_ms: NOW - 100_000, state: 'running', reason: 'first frame' }]
    let workerCalls = 0
    const { calls } = serve((c) => {
      if (c.url === '/api/system') return json(200, report)
      if (c.url === '/api/workers/7') {
        workerCalls++
        return json(200, { ...worker, state, last_error: null, history: [...history] })
      }
      if (c.url === '/api/cameras/7/stop' && c.method === 'POST') {
        // The recorder takes the request on its own time: the first look after still says running.
        setTimeout(() => {
          state = 'stopped'
          history.push({ at_ms: Date.now(), state: 'stopped', reason: 'stopped by request' })
        }, 30)
        return new Response(null, { status: 202 })
      }
      if (c.url === '/api/cameras/7/start' && c.method === 'POST') {
        state = 'starting'
        history.push({ at_ms: Date.now(), state: 'starting', reason: 'started by request' })
        return new Response(null, { status: 202 })
      }
      return null
    })
    const w = mount(SystemPage, await routerAt('/system'))
    await settle()
    const card = () => w.get('[data-testid="system-camera"][data-camera-id="7"]')
    expect(card().get('[data-testid="camera-state"]').text()).toBe('Recording')
    expect(card().find('[data-testid="system-start"]').exists()).toBe(false)
    const stop = card().get('[data-testid="system-stop"]')
    expect(stop.attributes('data-camera-id')).toBe('7')
    const before = workerCalls
    await stop.trigger('click')
    await settle(700)
    expect(calls.filter((c) => c.url === '/api/cameras/7/stop').map((c) => c.method)).toEqual(['POST'])
    expect(workerCalls - before).toBeGreaterThanOrEqual(2)
    expect(card().get('[data-testid="camera-state"]').text()).toBe('Stopped')
    expect(card().get('[data-testid="state-change"]').text()).toContain('stopped by request')
    expect(card().get('[data-testid="state-history"]').attributes('open')).toBeDefined()
    expect(card().get('[data-testid="system-action-done"]').text()).toContain('Stopped')
    expect(card().find('[data-testid="system-stop"]').exists()).toBe(false)

    await card().get('[data-testid="system-start"]').trigger('click')
    await settle()
    expect(calls.filter((c) => c.url === '/api/cameras/7/start').map((c) => c.method)).toEqual(['POST'])
    expect(card().get('[data-testid="camera-state"]').text()).toBe('Starting')
    expect(card().findAll('[data-testid="state-change"]').map((c) => c.text())).toEqual([
      expect.stringContaining('started by request'),
      expect.stringContaining('stopped by request'),
      expect.stringContaining('first frame'),
    ])
    expect(card().find('[data-testid="system-stop"]').exists()).toBe(true)
    w.unmount()
  })

  it('says why a stop was refused, next to that camera, and changes nothing', async () => {
    serve((c) => {
      if (c.url === '/api/system') return json(200, report)
      if (c.url === '/api/workers/7') return json(200, { ...worker, state: 'running' })
      if (c.url === '/api/cameras/7/stop') return apiError(403, 'forbidden', 'needs control')
      return null
    })
    const w = mount(SystemPage, await routerAt('/system'))
    await settle()
    const card = w.get('[data-testid="system-camera"][data-camera-id="7"]')
    await card.get('[data-testid="system-stop"]').trigger('click')
    await settle()
    expect(card.get('[data-testid="system-action-error"]').text()).toContain('full control')
    expect(card.get('[data-testid="camera-state"]').text()).toBe('Recording')
    expect(card.get('[data-testid="system-stop"]').attributes('disabled')).toBeUndefined()
    w.unmount()
  })
})

describe('logs page', () => {
  const line = (seq: number, level: LogLine['level'] = 'INFO', camera: number | null = null): LogLine => ({
    seq,
    at_ms: NOW - 1000 + seq,
    level,
    target: 'reallive_nvr::recorder',
    camera,
    message: `line ${seq} camera=camera-${camera ?? 0}`,
  })

  it('loads the lines, follows the stream, and catches up after a resync', async () => {
    const { calls } = serve((c) => {
      if (c.url === '/api/cameras') return json(200, [cam(5, 'Porch')])
      if (c.url === '/api/logs?level=info') return json(200, [line(1), line(2, 'WARN', 5)])
      if (c.url === '/api/logs?level=info&since=3') return json(200, [line(3), line(4), line(5)])
      if (c.url === '/api/logs?level=warn&camera=5') return json(200, [line(2, 'WARN', 5)])
      return null
    })
    const w = mount(LogsPage, await routerAt('/logs'))
    await settle()
    const seqs = () => w.findAll('[data-testid="log-line"]').map((l) => Number(l.attributes('data-seq')))
    expect(seqs()).toEqual([1, 2])
    expect(w.findAll('[data-testid="log-line"]')[1]!.text()).toContain('Porch')
    const es = FakeEventSource.last!
    expect(es.url).toBe('/api/logs/stream?level=info&token=tok')
    es.onopen?.()
    es.emit('line', line(3))
    es.emit('line', line(2)) // already shown
    await settle()
    expect(seqs()).toEqual([1, 2, 3])
    es.emit('resync', {})
    await settle()
    expect(seqs()).toEqual([1, 2, 3, 4, 5])

    await w.get('[data-testid="log-level"]').setValue('WARN')
    await w.get('[data-testid="log-camera"]').setValue('5')
    await settle()
    expect(es.closed).toBe(true)
    expect(seqs()).toEqual([2])
    expect(FakeEventSource.last!.url).toBe('/api/logs/stream?level=warn&camera=5&token=tok')
    expect(calls.some((c) => c.url === '/api/logs?level=warn&camera=5')).toBe(true)

    await w.get('[data-testid="log-follow"]').setValue(false)
    await settle()
    expect(FakeEventSource.last!.closed).toBe(true)
    expect(w.get('[data-testid="log-stream-state"]').text()).toBe('Paused')
    expect(w.find('[data-testid="log-refresh"]').exists()).toBe(true)
    w.unmount()
  })

  it('says when there is nothing, and when it cannot load', async () => {
    serve((c) => (c.url === '/api/logs?level=info' ? json(200, []) : c.url === '/api/cameras' ? json(200, []) : null))
    const w = mount(LogsPage, await routerAt('/logs'))
    await settle()
    expect(w.find('[data-testid="logs-empty"]').exists()).toBe(true)
    w.unmount()
    serve((c) => (c.url.startsWith('/api/logs') ? apiError(403, 'forbidden', 'admins only') : null))
    const w2 = mount(LogsPage, await routerAt('/logs'))
    await settle()
    expect(w2.get('[data-testid="logs-error"]').text()).toContain('Only an admin')
    w2.unmount()
  })
})
