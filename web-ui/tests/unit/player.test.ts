import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiClient, TOKEN_KEY } from '../../src/lib/api'
import { LivePlayer, activePlayers, type PlayerState } from '../../src/lib/player'
import { collectStats } from '../../src/lib/testHook'
import { FakePeerConnection, apiError, flush, json, mockFetch, sdpAnswer, type Call } from './fakes'

function storage() {
  const m = new Map([[TOKEN_KEY, 'tok']])
  return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k) }
}

function setup(whep: (call: Call, n: number) => Response | Promise<Response>) {
  let n = 0
  const { fetch, calls } = mockFetch((c) => {
    if (c.url.endsWith('/stream')) return json(200, { ice_servers: [] })
    if (c.method === 'DELETE') return new Response(null, { status: 204 })
    return whep(c, n++)
  })
  const api = new ApiClient({ fetch, storage: storage() })
  const states: PlayerState[] = []
  const player = new LivePlayer({
    cameraId: 3,
    api,
    createPeerConnection: FakePeerConnection.create,
    random: () => 0.5,
    onState: (s) => states.push(s),
  })
  const log = () => calls.filter((c) => c.url.startsWith('/whep')).map((c) => `${c.method} ${c.url}`)
  return { api, player, states, calls, log }
}

beforeEach(() => {
  FakePeerConnection.reset()
  vi.useFakeTimers()
})
afterEach(() => {
  for (const p of [...activePlayers]) p.stop()
  vi.useRealTimers()
})

describe('LivePlayer', () => {
  it('goes live when the peer connection connects, and reports frames', async () => {
    const { player, states } = setup((_, n) => sdpAnswer(`/whep/3/sessions/${n}`))
    player.start()
    await flush(30)
    const pc = FakePeerConnection.instances[0]!
    pc.setState('connecting')
    pc.setState('connected')
    pc.framesDecoded = 75
    expect(states).toEqual(['live'])
    expect(await collectStats()).toEqual([{ cameraId: 3, state: 'live', framesDecoded: 75 }])
  })

  it('replaces a connected session whose video stops arriving', async () => {
    const { player, states, log } = setup((_, n) => sdpAnswer(`/whep/3/sessions/${n}`))
    player.start()
    await flush(30)
    const pc = FakePeerConnection.instances[0]!
    pc.setState('connected')
    await vi.advanceTimersByTimeAsync(5000)
    expect(log()).toEqual(['POST /whep/3'])
    // The server went away: ICE still says connected, but nothing arrives.
    pc.frozen = true
    await vi.advanceTimersByTimeAsync(3500)
    expect(states.at(-1)).toBe('reconnecting')
    await vi.advanceTimersByTimeAsync(1500)
    expect(log()).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/0', 'POST /whep/3'])
  })

  it('retries an offline camera with backoff: 1 s, 2 s, 4 s', async () => {
    const { player, states, log } = setup((_, n) => (n < 3 ? apiError(503, 'unavailable', 'no publisher') : sdpAnswer('/whep/3/sessions/ok')))
    player.start()
    await flush(30)
    expect(states.at(-1)).toBe('offline')
    expect(log()).toEqual(['POST /whep/3'])
    await vi.advanceTimersByTimeAsync(999)
    expect(log()).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(log()).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(1999)
    expect(log()).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(1)
    expect(log()).toHaveLength(3)
    await vi.advanceTimersByTimeAsync(4000)
    expect(log()).toEqual(['POST /whep/3', 'POST /whep/3', 'POST /whep/3', 'POST /whep/3'])
    FakePeerConnection.instances.at(-1)!.setState('connected')
    expect(player.state).toBe('live')
  })

  it('replaces a failed connection, DELETEing the old session first', async () => {
    const { player, log, states } = setup((_, n) => sdpAnswer(`/whep/3/sessions/${n}`))
    player.start()
    await flush(30)
    FakePeerConnection.instances[0]!.setState('connected')
    FakePeerConnection.instances[0]!.setState('failed')
    expect(states).toEqual(['live', 'reconnecting'])
    await flush(30)
    expect(log()).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/0'])
    expect(FakePeerConnection.instances[0]!.closed).toBe(true)
    await vi.advanceTimersByTimeAsync(1000)
    expect(log()).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/0', 'POST /whep/3'])
    FakePeerConnection.instances[1]!.setState('connected')
    expect(player.state).toBe('live')
  })

  it('waits a grace period on disconnected before replacing', async () => {
    const { player, log } = setup((_, n) => sdpAnswer(`/whep/3/sessions/${n}`))
    player.start()
    await flush(30)
    const pc = FakePeerConnection.instances[0]!
    pc.setState('connected')
    pc.setState('disconnected')
    expect(player.state).toBe('reconnecting')
    await vi.advanceTimersByTimeAsync(2000)
    pc.setState('connected')
    expect(player.state).toBe('live')
    await vi.advanceTimersByTimeAsync(5000)
    expect(log()).toEqual(['POST /whep/3'])
    pc.setState('disconnected')
    await vi.advanceTimersByTimeAsync(3000)
    expect(log()).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/0'])
  })

  it('replaces a session that never connects', async () => {
    const { player, log } = setup((_, n) => sdpAnswer(`/whep/3/sessions/${n}`))
    player.start()
    await flush(30)
    await vi.advanceTimersByTimeAsync(15_000)
    expect(log()).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/0'])
  })

  it('stops for good on unmount: DELETE, no more retries', async () => {
    const { player, log } = setup((_, n) => sdpAnswer(`/whep/3/sessions/${n}`))
    player.start()
    await flush(30)
    FakePeerConnection.instances[0]!.setState('connected')
    player.stop()
    await flush(30)
    await vi.advanceTimersByTimeAsync(60_000)
    expect(log()).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/0'])
    expect(activePlayers.size).toBe(0)
    expect(player.state).toBe('stopped')
  })

  it('signs out on 401 and stops', async () => {
    const { api, player, log } = setup(() => apiError(401, 'unauthenticated', 'token expired'))
    const out = vi.fn()
    api.onUnauthorized(out)
    player.start()
    await flush(30)
    await vi.advanceTimersByTimeAsync(60_000)
    expect(out).toHaveBeenCalledOnce()
    expect(api.token).toBeNull()
    expect(player.state).toBe('stopped')
    expect(log()).toEqual(['POST /whep/3'])
  })

  it('retries at once when nudged (the camera came online)', async () => {
    const { player, log } = setup((_, n) => (n === 0 ? apiError(503, 'unavailable', 'x') : sdpAnswer('/whep/3/sessions/1')))
    player.start()
    await flush(30)
    expect(player.state).toBe('offline')
    player.nudge()
    await flush(30)
    expect(log()).toEqual(['POST /whep/3', 'POST /whep/3'])
  })
})
