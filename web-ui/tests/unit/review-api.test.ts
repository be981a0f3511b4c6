import { describe, expect, it, vi } from 'vitest'
import { ApiClient, TOKEN_KEY } from '../../src/lib/api'
import { ReviewApi, eventRange } from '../../src/api/review'
import { apiError, json, mockFetch } from './fakes'

function client(handler: Parameters<typeof mockFetch>[0], token: string | null = 'tok 1') {
  const m = new Map<string, string>(token ? [[TOKEN_KEY, token]] : [])
  const storage = { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k) }
  const { fetch, calls } = mockFetch(handler)
  const c = new ApiClient({ fetch, storage })
  return { c, r: new ReviewApi(c), calls }
}

describe('review calls', () => {
  it('asks for a timeline window with its resolution', async () => {
    const { r, calls } = client(() => json(200, { start: 0, end: 1, resolution_ms: 1, spans: [], events: [], clusters: [] }))
    await r.timeline(3, 1000.4, 3_601_000.2, 5999.6)
    expect(calls[0]!.url).toBe('/api/cameras/3/timeline?start=1000&end=3601001&resolution_ms=6000')
    expect(calls[0]!.headers.authorization).toBe('Bearer tok 1')
  })

  it('lists events with only the filters set', async () => {
    const { r, calls } = client(() => json(200, []))
    await r.events({ camera: 2, limit: 100, reviewed: false, kind: 'motion', zone: 'door way' })
    expect(calls[0]!.url).toBe('/api/events?camera=2&limit=100&reviewed=false&kind=motion&zone=door+way')
    await r.events({ camera: 2, zone: '' })
    expect(calls[1]!.url).toBe('/api/events?camera=2')
  })

  it('marks reviewed, exports and locks with JSON bodies', async () => {
    const { r, calls } = client((c) => {
      if (c.method === 'DELETE') return new Response(null, { status: 204 })
      if (c.url === '/api/exports') return json(202, { id: 5 })
      if (c.url === '/api/events/reviewed') return json(200, { updated: 2 })
      return json(201, { id: 9, camera_id: 3, start: 1, end: 2, note: 'n', created_by: 1, created_at: 'x' })
    })
    expect(await r.markReviewed({ ids: [1, 2], reviewed: true })).toEqual({ updated: 2 })
    expect(JSON.parse(calls[0]!.body!)).toEqual({ ids: [1, 2], reviewed: true })
    expect(await r.createExport({ camera_id: 3, start: 1, end: 2, name: 'x' })).toEqual({ id: 5 })
    expect(calls[1]!.method).toBe('POST')
    await r.createLock(3, { start: 1, end: 2, note: 'n' })
    expect(calls[2]!.url).toBe('/api/cameras/3/locks')
    await r.deleteLock(3, 9)
    expect(`${calls[3]!.method} ${calls[3]!.url}`).toBe('DELETE /api/cameras/3/locks/9')
    await r.deleteExport(5)
    expect(`${calls[4]!.method} ${calls[4]!.url}`).toBe('DELETE /api/exports/5')
  })

  it('puts the token in media URLs, encoded', () => {
    const { r } = client(() => json(200, {}), 'a+b/c')
    expect(r.thumbnailUrl(3, 1234.9)).toBe('/api/cameras/3/thumbnail.jpg?at=1234&token=a%2Bb%2Fc')
    expect(r.eventThumbnailUrl(8)).toBe('/api/events/8/thumbnail.jpg?token=a%2Bb%2Fc')
    expect(r.exportFileUrl(4)).toBe('/api/exports/4/file?token=a%2Bb%2Fc')
    expect(r.eventStreamUrl()).toBe('/api/events/stream?token=a%2Bb%2Fc')
    expect(r.vodUrl(3, 10, 20, true)).toBe('/api/cameras/3/vod.m3u8?start=10&end=20&token=a%2Bb%2Fc')
    // hls.js sends the header instead: no token in its URL.
    expect(r.vodUrl(3, 10, 20, false)).toBe('/api/cameras/3/vod.m3u8?start=10&end=20')
  })

  it('a 401 on a review call signs out', async () => {
    const { c, r } = client(() => apiError(401, 'unauthenticated', 'expired'))
    const out = vi.fn()
    c.onUnauthorized(out)
    await expect(r.exports()).rejects.toMatchObject({ status: 401 })
    expect(out).toHaveBeenCalledOnce()
    expect(c.token).toBeNull()
  })
})

describe('event range', () => {
  it('runs from 5 s before to 5 s after', () => {
    expect(eventRange(100_000, 130_000, 1_000_000)).toEqual({ start: 95_000, end: 135_000 })
  })
  it('an ongoing event plays to now', () => {
    expect(eventRange(100_000, null, 120_000)).toEqual({ start: 95_000, end: 120_000 })
  })
})
