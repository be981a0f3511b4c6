import { describe, expect, it, vi } from 'vitest'
import { ApiClient, ApiError, TOKEN_KEY, errorFromResponse, parseRetryAfter } from '../../src/lib/api'
import { apiError, json, mockFetch } from './fakes'

function memoryStorage(initial: Record<string, string> = {}) {
  const m = new Map(Object.entries(initial))
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
    map: m,
  }
}

const user = { id: 1, username: 'alice', email: null, role: 'viewer', created_at: '2025-01-01T00:00:00Z' }

describe('errorFromResponse', () => {
  it('reads the server error body', async () => {
    const e = await errorFromResponse(apiError(403, 'forbidden', 'no access'))
    expect(e).toBeInstanceOf(ApiError)
    expect(e.status).toBe(403)
    expect(e.code).toBe('forbidden')
    expect(e.message).toBe('no access')
    expect(e.retryAfter).toBeNull()
  })

  it('falls back to the status for bodies that are not the error shape', async () => {
    const html = await errorFromResponse(new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }))
    expect(html.code).toBe('http_502')
    expect(html.message).toBe('Bad Gateway')
    const plain = await errorFromResponse(new Response('upstream timed out', { status: 504 }))
    expect(plain.message).toBe('upstream timed out')
    const other = await errorFromResponse(json(500, { oops: true }))
    expect(other.code).toBe('http_500')
  })
})

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('7')).toBe(7)
    expect(parseRetryAfter(' 30 ')).toBe(30)
    const now = Date.parse('2025-01-01T00:00:00Z')
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:12 GMT', now)).toBe(12)
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0)
    expect(parseRetryAfter(null)).toBeNull()
    expect(parseRetryAfter('soon')).toBeNull()
  })
})

describe('ApiClient', () => {
  it('signs out on the server, then forgets the token, even when the server fails', async () => {
    for (const answer of [() => new Response(null, { status: 204 }), () => json(500, { oops: true })]) {
      const storage = memoryStorage({ [TOKEN_KEY]: 'tok-9' })
      const { fetch, calls } = mockFetch(answer)
      const c = new ApiClient({ fetch, storage })
      await c.logout()
      expect(calls[0]!.url).toBe('/api/auth/logout')
      expect(calls[0]!.method).toBe('POST')
      expect(calls[0]!.headers.authorization).toBe('Bearer tok-9')
      expect(c.token).toBeNull()
      expect(storage.map.has(TOKEN_KEY)).toBe(false)
    }
  })

  it('logs in without a token and stores the one it gets', async () => {
    const storage = memoryStorage()
    const { fetch, calls } = mockFetch(() =>
      json(200, { token: 'tok-1', expires_at: '2030-01-01T00:00:00Z', user }),
    )
    const c = new ApiClient({ fetch, storage })
    const r = await c.login('alice', 's3cret')
    expect(r.user.username).toBe('alice')
    expect(calls[0]!.url).toBe('/api/auth/login')
    expect(calls[0]!.method).toBe('POST')
    expect(calls[0]!.headers['content-type']).toBe('application/json')
    expect(calls[0]!.headers.authorization).toBeUndefined()
    expect(JSON.parse(calls[0]!.body!)).toEqual({ username: 'alice', password: 's3cret' })
    expect(storage.map.get(TOKEN_KEY)).toBe('tok-1')
    expect(c.token).toBe('tok-1')
  })

  it('shows a wrong password as the server said, without signing anyone out', async () => {
    const storage = memoryStorage()
    const { fetch } = mockFetch(() => apiError(401, 'unauthenticated', 'invalid username or password'))
    const c = new ApiClient({ fetch, storage })
    const onOut = vi.fn()
    c.onUnauthorized(onOut)
    const e = await c.login('alice', 'nope').catch((x: unknown) => x)
    expect(e).toBeInstanceOf(ApiError)
    expect((e as ApiError).status).toBe(401)
    expect((e as ApiError).message).toBe('invalid username or password')
    expect(onOut).not.toHaveBeenCalled()
  })

  it('reports 429 with Retry-After in seconds', async () => {
    const { fetch } = mockFetch(() =>
      apiError(429, 'rate_limited', 'too many attempts', { 'Retry-After': '42' }),
    )
    const c = new ApiClient({ fetch, storage: memoryStorage() })
    const e = (await c.login('alice', 'x').catch((x: unknown) => x)) as ApiError
    expect(e.status).toBe(429)
    expect(e.retryAfter).toBe(42)
    expect(e.code).toBe('rate_limited')
  })

  it('sends the bearer token and returns the cameras', async () => {
    const storage = memoryStorage({ [TOKEN_KEY]: 'tok-2' })
    const cams = [{ id: 3, owner_id: 1, name: 'Door', resolution: null, status: 'online', created_at: 'x', permission: 'view' }]
    const { fetch, calls } = mockFetch(() => json(200, cams))
    const c = new ApiClient({ fetch, storage })
    expect(await c.cameras()).toEqual(cams)
    expect(calls[0]!.url).toBe('/api/cameras')
    expect(calls[0]!.headers.authorization).toBe('Bearer tok-2')
  })

  it('drops an expired token and tells the app', async () => {
    const storage = memoryStorage({ [TOKEN_KEY]: 'old' })
    const { fetch } = mockFetch(() => apiError(401, 'unauthenticated', 'token expired'))
    const c = new ApiClient({ fetch, storage })
    const onOut = vi.fn()
    c.onUnauthorized(onOut)
    await expect(c.me()).rejects.toMatchObject({ status: 401, message: 'token expired' })
    expect(onOut).toHaveBeenCalledOnce()
    expect(storage.map.has(TOKEN_KEY)).toBe(false)
    expect(c.token).toBeNull()
  })

  it('does not call the server without a token', async () => {
    const { fetch, calls } = mockFetch(() => json(200, []))
    const c = new ApiClient({ fetch, storage: memoryStorage() })
    const onOut = vi.fn()
    c.onUnauthorized(onOut)
    await expect(c.cameras()).rejects.toMatchObject({ status: 401 })
    expect(calls).toHaveLength(0)
    expect(onOut).toHaveBeenCalledOnce()
  })

  it('turns a network failure into status 0', async () => {
    const fetch = vi.fn(async () => {
      throw new TypeError('Failed to fetch')
    }) as unknown as typeof globalThis.fetch
    const c = new ApiClient({ fetch, storage: memoryStorage({ [TOKEN_KEY]: 't' }) })
    await expect(c.cameras()).rejects.toMatchObject({ status: 0, code: 'network' })
    expect(c.token).toBe('t')
  })

  it('reads the ICE servers of a camera', async () => {
    const { fetch, calls } = mockFetch(() =>
      json(200, { camera_id: 3, whep_url: '/whep/3', signaling_url: '/ws', ice_servers: [{ urls: ['stun:127.0.0.1:3478'] }] }),
    )
    const c = new ApiClient({ fetch, storage: memoryStorage({ [TOKEN_KEY]: 't' }) })
    expect((await c.streamInfo(3)).ice_servers).toEqual([{ urls: ['stun:127.0.0.1:3478'] }])
    expect(calls[0]!.url).toBe('/api/cameras/3/stream')
  })
})
