import { beforeEach, describe, expect, it } from 'vitest'
import { WhepError, WhepSession, resolveLocation } from '../../src/lib/whep'
import { FakePeerConnection, apiError, mockFetch, sdpAnswer } from './fakes'

const BASE = 'http://cams.example:8080/'

function session(fetch: typeof globalThis.fetch, extra: Partial<ConstructorParameters<typeof WhepSession>[0]> = {}) {
  return new WhepSession({
    url: '/whep/3',
    token: 'tok',
    fetch,
    createPeerConnection: FakePeerConnection.create,
    baseUrl: BASE,
    ...extra,
  })
}

beforeEach(() => FakePeerConnection.reset())

describe('resolveLocation', () => {
  it('keeps same-origin session URLs relative', () => {
    expect(resolveLocation('/whep/3/sessions/abc', '/whep/3', BASE)).toBe('/whep/3/sessions/abc')
    expect(resolveLocation('3/sessions/abc', '/whep/3', BASE)).toBe('/whep/3/sessions/abc')
    expect(resolveLocation('sessions/abc?x=1', '/whep/3/', BASE)).toBe('/whep/3/sessions/abc?x=1')
    expect(resolveLocation('http://cams.example:8080/whep/3/s/1', '/whep/3', BASE)).toBe('/whep/3/s/1')
    expect(resolveLocation('http://other.example/s/1', '/whep/3', BASE)).toBe('http://other.example/s/1')
  })
})

describe('WhepSession', () => {
  it('POSTs a recvonly offer with the right headers and applies the answer', async () => {
    const { fetch, calls } = mockFetch(() => sdpAnswer('/whep/3/sessions/abc', 'v=0\r\no=answer\r\n'))
    const s = session(fetch, { iceServers: [{ urls: ['stun:127.0.0.1:3478'] }] })
    await s.start()
    const pc = FakePeerConnection.instances[0]!
    expect(pc.config.iceServers).toEqual([{ urls: ['stun:127.0.0.1:3478'] }])
    expect(pc.transceivers).toEqual([
      { kind: 'video', init: { direction: 'recvonly' } },
      { kind: 'audio', init: { direction: 'recvonly' } },
    ])
    expect(calls).toHaveLength(1)
    const post = calls[0]!
    expect(post.url).toBe('/whep/3')
    expect(post.method).toBe('POST')
    expect(post.headers['content-type']).toBe('application/sdp')
    expect(post.headers.authorization).toBe('Bearer tok')
    expect(post.body).toBe(pc.localDescription!.sdp)
    expect(post.body).toMatch(/^v=0/)
    expect(pc.remoteDescription).toEqual({ type: 'answer', sdp: 'v=0\r\no=answer\r\n' })
    expect(s.location).toBe('/whep/3/sessions/abc')
  })

  it('uses no ICE servers unless given some', () => {
    const { fetch } = mockFetch(() => sdpAnswer())
    session(fetch)
    expect(FakePeerConnection.instances[0]!.config.iceServers).toEqual([])
  })

  it('DELETEs the session URL with the token on close, once', async () => {
    const { fetch, calls } = mockFetch((c) => (c.method === 'POST' ? sdpAnswer('/whep/3/sessions/abc') : new Response(null, { status: 204 })))
    const s = session(fetch)
    await s.start()
    await s.close()
    await s.close()
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/abc'])
    expect(calls[1]!.headers.authorization).toBe('Bearer tok')
    expect(calls[1]!.keepalive).toBe(true)
    expect(FakePeerConnection.instances[0]!.closed).toBe(true)
  })

  it('DELETEs what the server made when closed while the POST was in flight', async () => {
    let answer: (r: Response) => void = () => {}
    const { fetch, calls } = mockFetch((c) =>
      c.method === 'POST' ? new Promise<Response>((r) => (answer = r)) : new Response(null, { status: 204 }),
    )
    const s = session(fetch)
    const started = s.start()
    await new Promise((r) => setTimeout(r, 0))
    await s.close()
    expect(calls.map((c) => c.method)).toEqual(['POST'])
    answer(sdpAnswer('/whep/3/sessions/late'))
    await expect(started).rejects.toBeInstanceOf(WhepError)
    await new Promise((r) => setTimeout(r, 0))
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/late'])
  })

  it.each([
    [401, 'unauthenticated', 'token expired'],
    [404, 'not_found', 'camera not found'],
    [503, 'unavailable', 'camera offline'],
  ])('reports HTTP %i as a WhepError and sends no DELETE', async (status, code, message) => {
    const { fetch, calls } = mockFetch(() => apiError(status, code, message))
    const s = session(fetch)
    const e = (await s.start().catch((x: unknown) => x)) as WhepError
    expect(e).toBeInstanceOf(WhepError)
    expect(e.status).toBe(status)
    expect(e.code).toBe(code)
    expect(e.message).toBe(message)
    expect(e.offline).toBe(status === 503)
    expect(e.unauthorized).toBe(status === 401)
    await s.close()
    expect(calls).toHaveLength(1)
  })

  it('reports a network failure as status 0', async () => {
    const fetch = (async () => {
      throw new TypeError('Failed to fetch')
    }) as typeof globalThis.fetch
    const e = (await session(fetch).start().catch((x: unknown) => x)) as WhepError
    expect(e).toBeInstanceOf(WhepError)
    expect(e.status).toBe(0)
  })

  it('rejects an empty answer but still knows the session to DELETE', async () => {
    const { fetch, calls } = mockFetch((c) => (c.method === 'POST' ? sdpAnswer('/whep/3/sessions/x', '') : new Response(null, { status: 204 })))
    const s = session(fetch)
    await expect(s.start()).rejects.toMatchObject({ code: 'bad_answer' })
    await s.close()
    expect(calls.map((c) => c.method)).toEqual(['POST', 'DELETE'])
  })
})
