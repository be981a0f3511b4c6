import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiClient, TOKEN_KEY } from '../../src/lib/api'
import { LivePlayer, activePlayers, type Fallback, type PlayerState } from '../../src/lib/player'
import type { AudioPresence } from '../../src/lib/sound'
import { collectStats } from '../../src/lib/testHook'
import { FakePeerConnection, apiError, flush, json, mockFetch, sdpAnswer, type Call } from './fakes'

function storage() {
  const m = new Map([[TOKEN_KEY, 'tok']])
  return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k) }
}

const PLAYLIST = '/api/cameras/3/live.m3u8'

function setup(
  whep: (call: Call, n: number) => Response | Promise<Response>,
  playlist: () => Response = () => new Response('#EXTM3U\n', { status: 200 }),
) {
  let n = 0
  const { fetch, calls } = mockFetch((c) => {
    if (c.url.endsWith('/stream')) return json(200, { ice_servers: [] })
    if (c.url === PLAYLIST) return playlist()
    if (c.method === 'DELETE') return new Response(null, { status: 204 })
    return whep(c, n++)
  })
  const api = new ApiClient({ fetch, storage: storage() })
  const states: PlayerState[] = []
  /** Fallbacks and streams, in the order the tile gets them. */
  const events: string[] = []
  const streams: (MediaStream | null)[] = []
  const audio: AudioPresence[] = []
  const player = new LivePlayer({
    cameraId: 3,
    api,
    createPeerConnection: FakePeerConnection.create,
    random: () => 0.5,
    onState: (s) => states.push(s),
    onFallback: (f: Fallback) => events.push(f.kind === 'hls' ? `hls ${f.url}` : f.kind),
    onAudio: (a) => audio.push(a),
    onStream: (s) => {
      streams.push(s)
      events.push(s ? 'stream' : 'no stream')
    },
  })
  const log = () => calls.filter((c) => c.url.startsWith('/whep')).map((c) => `${c.method} ${c.url}`)
  const probes = () => calls.filter((c) => c.url === PLAYLIST)
  return { api, player, states, calls, log, events, streams, probes, audio }
}

/** The browser got the session's video track. */
function addVideoTrack(pc: FakePeerConnection) {
  pc.dispatchEvent(Object.assign(new Event('track'), { track: { kind: 'video' } }))
}

/** The browser got the session's audio track (the server answered the audio m-line). */
function addAudioTrack(pc: FakePeerConnection) {
  pc.dispatchEvent(Object.assign(new Event('track'), { track: { kind: 'audio', readyState: 'live' } }))
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
    expect(await collectStats()).toEqual([{ cameraId: 3, state: 'live', framesDecoded: 75, audioSamples: 0, audioCodec: null }])
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

  it('tells a transcode limit from an offline camera, and a transcoded session from the camera\'s own', async () => {
    const limit = 'this browser cannot play this camera\'s video as it is, and the server is already converting 1 camera(s) for browsers, its limit'
    const transcoded = (loc: string) => {
      const r = sdpAnswer(loc)
      r.headers.set('X-Reallive-Transcoded', 'h264')
      return r
    }
    const { player, states } = setup((_, n) => (n === 0 ? apiError(503, 'transcode_limit', limit, { 'Retry-After': '10' }) : transcoded('/whep/3/sessions/t')))
    const refusals: (string | null)[] = []
    const marks: boolean[] = []
    Object.assign(player['opts'], { onRefused: (m: string | null) => refusals.push(m), onTranscoded: (t: boolean) => marks.push(t) })
    player.start()
    await flush(30)
    expect(states.at(-1)).toBe('reconnecting')
    expect(player.detail).not.toContain('offline')
    expect(refusals).toEqual([limit])
    await vi.advanceTimersByTimeAsync(1000)
    await flush(30)
    expect(refusals).toEqual([limit, null])
    expect(marks).toEqual([true])
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

describe('LivePlayer sound', () => {
  const sessions = (_: Call, n: number) => sdpAnswer(`/whep/3/sessions/${n}`)

  it('finds sound once the audio track carries packets, and the test hook reports samples and codec', async () => {
    const { player, audio } = setup(sessions)
    player.start()
    await flush(30)
    const pc = FakePeerConnection.instances[0]!
    addVideoTrack(pc)
    addAudioTrack(pc)
    pc.setState('connected')
    pc.framesDecoded = 30
    await vi.advanceTimersByTimeAsync(1000)
    // Video, a track, but no packets yet: not known.
    expect(audio).toEqual([])
    expect(player.audio).toBe('unknown')
    pc.audioPackets = 50
    pc.audioSamples = 48_000
    pc.audioCodec = 'audio/opus'
    await vi.advanceTimersByTimeAsync(1000)
    expect(audio).toEqual(['present'])
    expect(await collectStats()).toEqual([{ cameraId: 3, state: 'live', framesDecoded: 30, audioSamples: 48_000, audioCodec: 'audio/opus' }])

    // A new session knows nothing about its sound yet.
    pc.setState('failed')
    expect(audio).toEqual(['present', 'unknown'])
  })

  it('calls a session silent without an audio track at once, and with a track that stays empty after 3 s', async () => {
    const { player, audio } = setup(sessions)
    player.start()
    await flush(30)
    const pc = FakePeerConnection.instances[0]!
    addVideoTrack(pc)
    pc.setState('connected')
    await vi.advanceTimersByTimeAsync(1000)
    // No picture yet: not known.
    expect(audio).toEqual([])
    pc.framesDecoded = 10
    await vi.advanceTimersByTimeAsync(1000)
    expect(audio).toEqual(['none'])
    expect((await collectStats())[0]).toMatchObject({ audioSamples: 0, audioCodec: null })
    player.stop()
    expect(audio).toEqual(['none', 'unknown'])

    const second = setup(sessions)
    second.player.start()
    await flush(30)
    const pc2 = FakePeerConnection.instances.at(-1)!
    addVideoTrack(pc2)
    addAudioTrack(pc2)
    pc2.setState('connected')
    pc2.framesDecoded = 10
    await vi.advanceTimersByTimeAsync(2000)
    expect(second.audio).toEqual([])
    await vi.advanceTimersByTimeAsync(1000)
    expect(second.audio).toEqual(['none'])
  })
})

describe('LivePlayer HLS fallback', () => {
  const sessions = (_: Call, n: number) => sdpAnswer(`/whep/3/sessions/${n}`)

  it('offers the live playlist when WebRTC has not connected after 5 s, and keeps trying WebRTC', async () => {
    const { player, events, probes, log } = setup(sessions)
    player.start()
    await flush(30)
    addVideoTrack(FakePeerConnection.instances[0]!)
    expect(events).toEqual(['stream'])
    await vi.advanceTimersByTimeAsync(4999)
    expect(probes()).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(1)
    await flush(30)
    expect(probes()).toHaveLength(1)
    expect(probes()[0]!.headers.authorization).toBe('Bearer tok')
    expect(events).toEqual(['stream', `hls ${PLAYLIST}`])
    expect(player.fallback).toEqual({ kind: 'hls', url: PLAYLIST })
    // WebRTC goes on behind HLS: the stuck session is replaced after 15 s...
    await vi.advanceTimersByTimeAsync(11_000)
    expect(log()).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/0', 'POST /whep/3'])
    // ...and the new session's stream does not take the <video> from HLS.
    addVideoTrack(FakePeerConnection.instances[1]!)
    expect(events).toEqual(['stream', `hls ${PLAYLIST}`])
    expect(probes()).toHaveLength(1)
  })

  it('does not fall back when WebRTC connects in time; the clock restarts when it is lost', async () => {
    const { player, events, probes } = setup(sessions)
    player.start()
    await flush(30)
    await vi.advanceTimersByTimeAsync(4000)
    const pc = FakePeerConnection.instances[0]!
    pc.setState('connected')
    await vi.advanceTimersByTimeAsync(30_000)
    expect(probes()).toHaveLength(0)
    expect(events).toEqual([])
    // Lost: 5 s from here, not from start(), the playlist stands in.
    pc.setState('failed')
    await vi.advanceTimersByTimeAsync(4900)
    expect(probes()).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(100)
    await flush(30)
    expect(events).toEqual([`hls ${PLAYLIST}`])
  })

  it('goes back to WebRTC once a later session is connected and decodes frames', async () => {
    const { player, events, streams } = setup(sessions)
    player.start()
    await flush(30)
    await vi.advanceTimersByTimeAsync(5000)
    await flush(30)
    expect(player.fallback.kind).toBe('hls')
    await vi.advanceTimersByTimeAsync(11_000)
    const pc = FakePeerConnection.instances[1]!
    addVideoTrack(pc)
    pc.setState('connected')
    expect(player.state).toBe('live')
    // Connected but no picture yet: HLS stays.
    await vi.advanceTimersByTimeAsync(1000)
    expect(player.fallback.kind).toBe('hls')
    expect(events).toEqual([`hls ${PLAYLIST}`])
    pc.framesDecoded = 3
    await vi.advanceTimersByTimeAsync(250)
    expect(events).toEqual([`hls ${PLAYLIST}`, 'off', 'stream'])
    expect(streams.at(-1)).toBe(player.session!.stream)
    expect(player.fallback.kind).toBe('off')
  })

  it.each([403, 404])('stays on WebRTC alone when the playlist answers %i', async (status) => {
    const { player, events, probes, log, states } = setup(sessions, () => apiError(status, 'not_found', 'nothing recorded'))
    player.start()
    await flush(30)
    await vi.advanceTimersByTimeAsync(5000)
    await flush(30)
    expect(events).toEqual(['unavailable'])
    await vi.advanceTimersByTimeAsync(60_000)
    expect(probes()).toHaveLength(1)
    expect(log().filter((l) => l.startsWith('POST')).length).toBeGreaterThan(2)
    expect(states.at(-1)).toBe('reconnecting')
    expect(player.detail).toBe('did not connect in time')
  })

  it('stops everything, HLS included, when WHEP answers 401', async () => {
    const { api, player, events, probes } = setup((_, n) => (n === 0 ? sdpAnswer('/whep/3/sessions/0') : apiError(401, 'unauthenticated', 'token expired')))
    player.start()
    await flush(30)
    await vi.advanceTimersByTimeAsync(5000)
    await flush(30)
    expect(player.fallback.kind).toBe('hls')
    // The stuck session is replaced at 15 s; its successor meets the 401.
    await vi.advanceTimersByTimeAsync(11_000)
    await flush(30)
    expect(player.state).toBe('stopped')
    expect(api.token).toBeNull()
    expect(events).toEqual([`hls ${PLAYLIST}`, 'off', 'no stream'])
    await vi.advanceTimersByTimeAsync(60_000)
    expect(probes()).toHaveLength(1)
  })

  it('signs out and stops when the playlist answers 401', async () => {
    const { api, player, log } = setup(sessions, () => apiError(401, 'unauthenticated', 'token expired'))
    const out = vi.fn()
    api.onUnauthorized(out)
    player.start()
    await flush(30)
    await vi.advanceTimersByTimeAsync(5000)
    await flush(30)
    expect(out).toHaveBeenCalledOnce()
    expect(player.state).toBe('stopped')
    await vi.advanceTimersByTimeAsync(60_000)
    expect(log()).toEqual(['POST /whep/3', 'DELETE /whep/3/sessions/0'])
  })

  it('hands the video back when HLS fails, and offers the playlist again later', async () => {
    const { player, events, probes } = setup(sessions)
    player.start()
    await flush(30)
    addVideoTrack(FakePeerConnection.instances[0]!)
    await vi.advanceTimersByTimeAsync(5000)
    await flush(30)
    player.hlsFailed(0)
    expect(events).toEqual(['stream', `hls ${PLAYLIST}`, 'off', 'stream'])
    await vi.advanceTimersByTimeAsync(5000)
    await flush(30)
    expect(probes()).toHaveLength(2)
    expect(events.at(-1)).toBe(`hls ${PLAYLIST}`)
    // Refused segments (no playback permission): WebRTC alone from now.
    player.hlsFailed(403)
    await vi.advanceTimersByTimeAsync(30_000)
    expect(events.slice(-2)).toEqual(['stream', 'unavailable'])
    expect(probes()).toHaveLength(2)
  })

  it('offers no stand-in for an offline camera: its playlist is old video', async () => {
    const { player, events, probes } = setup(() => apiError(503, 'unavailable', 'no publisher'))
    player.start()
    await flush(30)
    await vi.advanceTimersByTimeAsync(30_000)
    expect(player.state).toBe('offline')
    expect(probes()).toHaveLength(0)
    expect(events).toEqual([])
  })
})
