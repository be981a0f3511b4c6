import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { createMemoryHistory } from 'vue-router'
import CameraTile from '../../src/components/CameraTile.vue'
import { TOKEN_KEY, api, type Camera } from '../../src/lib/api'
import { LIVE_HLS_CONFIG, activeLiveHls, attachLiveHls } from '../../src/lib/liveHls'
import { activePlayers } from '../../src/lib/player'
import { createAppRouter } from '../../src/lib/router'
import { FakePeerConnection, apiError, flush, json, mockFetch, sdpAnswer } from './fakes'

const { FakeHls } = vi.hoisted(() => {
  type Handler = (event: string, data: unknown) => void
  class FakeHls {
    static instances: FakeHls[] = []
    static supported = true
    /** The next constructor throws, as hls.js does on settings it refuses. */
    static failNext = false
    static isSupported = () => FakeHls.supported
    static Events = { MANIFEST_PARSED: 'hlsManifestParsed', ERROR: 'hlsError', BUFFER_CODECS: 'hlsBufferCodecs' }
    static ErrorTypes = { MEDIA_ERROR: 'mediaError', NETWORK_ERROR: 'networkError' }
    handlers = new Map<string, Handler>()
    url = ''
    media: HTMLVideoElement | null = null
    destroyed = false
    recoveries = 0
    constructor(
      readonly config: {
        xhrSetup: (xhr: { setRequestHeader: (k: string, v: string) => void }, url: string) => void
        maxBufferLength: number
        backBufferLength: number
        lowLatencyMode: boolean
        startPosition: number
      },
    ) {
      if (FakeHls.failNext) {
        FakeHls.failNext = false
        throw new Error('Illegal hls.js config')
      }
      FakeHls.instances.push(this)
    }
    on(ev: string, fn: Handler) {
      this.handlers.set(ev, fn)
    }
    loadSource(url: string) {
      this.url = url
    }
    attachMedia(v: HTMLVideoElement) {
      this.media = v
    }
    destroy() {
      this.destroyed = true
    }
    recoverMediaError() {
      this.recoveries++
    }
    emit(ev: string, data: unknown) {
      this.handlers.get(ev)?.(ev, data)
    }
  }
  return { FakeHls }
})
vi.mock('hls.js/light', () => ({ default: FakeHls }))

const PLAYLIST = '/api/cameras/7/live.m3u8'
const networkError = (code: number) => ({ fatal: true, type: 'networkError', details: 'fragLoadError', response: { code } })

/** Lets the dynamic import of hls.js settle. */
async function loaded(): Promise<void> {
  await import('hls.js/light')
  await flush(20)
}

beforeEach(() => {
  localStorage.setItem(TOKEN_KEY, 'tok')
  FakeHls.instances = []
  FakeHls.supported = true
})
afterEach(() => {
  for (const p of [...activePlayers]) p.stop()
  localStorage.clear()
  vi.useRealTimers()
  vi.unstubAllGlobals()
})

describe('attachLiveHls', () => {
  it('plays the playlist through hls.js at the live edge, bearer token on every request, small buffers', async () => {
    const video = document.createElement('video')
    const detach = attachLiveHls(video, PLAYLIST)
    await loaded()
    const hls = FakeHls.instances[0]!
    expect(hls.url).toBe(PLAYLIST)
    expect(hls.media).toBe(video)
    expect(video.muted).toBe(true)
    expect(hls.config).toMatchObject({ maxBufferLength: 10, backBufferLength: 10, lowLatencyMode: true, startPosition: -1 })
    // The playlist's PART-HOLD-BACK sets the latency: nothing overrides it.
    expect(hls.config).not.toHaveProperty('liveSyncDuration')
    expect(hls.config).not.toHaveProperty('liveSyncDurationCount')
    const headers: Record<string, string> = {}
    hls.config.xhrSetup({ setRequestHeader: (k, v) => void (headers[k] = v) }, '/api/cameras/7/files/a.mp4')
    expect(headers).toEqual({ Authorization: 'Bearer tok' })
    expect(activeLiveHls.has(hls as never)).toBe(true)
    detach()
    expect(hls.destroyed).toBe(true)
    expect(activeLiveHls.size).toBe(0)
  })

  it('says whether the playlist carries sound, once, and nothing after detach', async () => {
    const onAudio = vi.fn()
    const detach = attachLiveHls(document.createElement('video'), PLAYLIST, { onAudio })
    await loaded()
    const hls = FakeHls.instances[0]!
    hls.emit('hlsBufferCodecs', { video: { codec: 'avc1.64001f' }, audio: { codec: 'opus' } })
    hls.emit('hlsBufferCodecs', { video: { codec: 'avc1.64001f' } })
    expect(onAudio).toHaveBeenCalledExactlyOnceWith('present')
    detach()

    const later = vi.fn()
    const detach2 = attachLiveHls(document.createElement('video'), PLAYLIST, { onAudio: later })
    await loaded()
    detach2()
    FakeHls.instances[1]!.emit('hlsBufferCodecs', { video: { codec: 'avc1.64001f' } })
    expect(later).not.toHaveBeenCalled()
  })

  it('uses live settings that hls.js itself accepts', async () => {
    const { default: RealHls } = await vi.importActual<typeof import('hls.js')>('hls.js/light')
    const hls = new RealHls(LIVE_HLS_CONFIG)
    expect(hls.config).toMatchObject(LIVE_HLS_CONFIG)
    hls.destroy()
  })

  it('says so when hls.js will not start', async () => {
    FakeHls.failNext = true
    const onError = vi.fn()
    attachLiveHls(document.createElement('video'), PLAYLIST, { onError })
    await loaded()
    expect(onError).toHaveBeenCalledExactlyOnceWith('the video player could not start', 0)
  })

  it('says why it failed: one second chance after a decoding error, none after a refused request', async () => {
    const onError = vi.fn()
    attachLiveHls(document.createElement('video'), PLAYLIST, { onError })
    await loaded()
    const hls = FakeHls.instances[0]!
    hls.emit('hlsError', { fatal: false, type: 'networkError', details: 'fragLoadError' })
    hls.emit('hlsError', { fatal: true, type: 'mediaError', details: 'bufferAppendError' })
    expect(hls.recoveries).toBe(1)
    expect(onError).not.toHaveBeenCalled()
    hls.emit('hlsError', { fatal: true, type: 'mediaError', details: 'bufferAppendError' })
    expect(hls.recoveries).toBe(1)
    expect(onError).toHaveBeenCalledExactlyOnceWith('the live video could not be decoded', 0)

    const onRefused = vi.fn()
    const detach = attachLiveHls(document.createElement('video'), PLAYLIST, { onError: onRefused })
    await loaded()
    const refused = FakeHls.instances[1]!
    refused.emit('hlsError', networkError(403))
    expect(onRefused).toHaveBeenCalledExactlyOnceWith('the server answered HTTP 403', 403)
    // Detached: silence.
    detach()
    refused.emit('hlsError', networkError(500))
    expect(onRefused).toHaveBeenCalledOnce()
  })

  it("uses the browser's own HLS where hls.js cannot run, the token in the URL", async () => {
    FakeHls.supported = false
    const video = document.createElement('video')
    video.canPlayType = (t: string) => (t === 'application/vnd.apple.mpegurl' ? 'maybe' : '')
    const detach = attachLiveHls(video, PLAYLIST)
    await loaded()
    expect(FakeHls.instances).toHaveLength(0)
    expect(video.getAttribute('src')).toBe(`${PLAYLIST}?token=tok`)
    detach()
    expect(video.getAttribute('src')).toBeNull()
  })

  it('says so when the browser plays HLS in no way', async () => {
    FakeHls.supported = false
    const video = document.createElement('video')
    video.canPlayType = () => ''
    const onError = vi.fn()
    attachLiveHls(video, PLAYLIST, { onError })
    await loaded()
    expect(onError).toHaveBeenCalledExactlyOnceWith('this browser cannot play HLS', 0)
  })
})

describe('a live tile without WebRTC', () => {
  const camera: Camera = {
    id: 7,
    owner_id: 1,
    name: 'Porch',
    resolution: '1280x720',
    status: 'online',
    created_at: '2025-01-01T00:00:00Z',
    // The live playlist's segments are recordings: playback is needed.
    permission: 'playback',
  }

  async function tile(
    playlist: () => Response = () => new Response('#EXTM3U\n', { status: 200 }),
    permission: Camera['permission'] = 'playback',
  ) {
    const { fetch, calls } = mockFetch((c) => {
      if (c.url.endsWith('/stream')) return json(200, { ice_servers: [] })
      if (c.url === PLAYLIST) return playlist()
      if (c.method === 'DELETE') return new Response(null, { status: 204 })
      return sdpAnswer(`/whep/7/sessions/${FakePeerConnection.instances.length}`)
    })
    vi.stubGlobal('fetch', fetch)
    vi.stubGlobal('RTCPeerConnection', FakePeerConnection)
    FakePeerConnection.reset()
    const router = createAppRouter(createMemoryHistory())
    await router.push('/')
    await router.isReady()
    vi.useFakeTimers()
    // No jitter: the backoff's 1 s is 1 s.
    vi.spyOn(Math, 'random').mockReturnValue(0.5)
    const w = mount(CameraTile, { props: { camera: { ...camera, permission } }, global: { plugins: [router] } })
    // happy-dom takes only its own MediaStream; the fakes' one will do here.
    Object.defineProperty(w.get('video').element, 'srcObject', { value: null, writable: true })
    await flush(30)
    return { w, calls }
  }

  it('does not fall back for a view-only user, whose segments would be refused', async () => {
    const { w, calls } = await tile(undefined, 'view')
    await vi.advanceTimersByTimeAsync(12_000)
    expect(calls.some((c) => c.url === PLAYLIST)).toBe(false)
    expect(w.text()).not.toContain('HLS')
  })

  it('plays HLS after 5 s, says so, and goes back to WebRTC when it connects', async () => {
    const { w } = await tile()
    const badge = () => w.get('[data-testid="tile-badge"]').text()
    const video = w.get('video').element as HTMLVideoElement
    expect(badge()).toBe('connecting')
    expect(w.find('[data-testid="tile-note"]').exists()).toBe(false)
    // The first session's track arrives before ICE gets anywhere.
    const first = FakePeerConnection.instances[0]!
    first.dispatchEvent(Object.assign(new Event('track'), { track: { kind: 'video' } }))
    expect(video.srcObject).not.toBeNull()
    await vi.advanceTimersByTimeAsync(5000)
    await loaded()
    const hls = FakeHls.instances[0]!
    expect(hls.url).toBe(PLAYLIST)
    expect(hls.media).toBe(video)
    // A stream in `srcObject` would hide what hls.js plays.
    expect(video.srcObject).toBeNull()
    expect(video.muted).toBe(true)
    expect(w.get('.overlay').text()).toBe('Starting HLS…')
    video.dispatchEvent(new Event('playing'))
    await flush()
    expect(badge()).toBe('live · HLS')
    expect(w.find('.overlay').exists()).toBe(false)
    expect(w.get('[data-testid="tile-note"]').text()).toBe('WebRTC could not connect; playing HLS (a second or two behind)')
    expect(w.get('.tile').attributes('data-source')).toBe('hls')

    // The next session connects and shows frames: HLS goes, WebRTC plays.
    await vi.advanceTimersByTimeAsync(11_000)
    const pc = FakePeerConnection.instances.at(-1)!
    pc.setState('connected')
    pc.framesDecoded = 5
    await vi.advanceTimersByTimeAsync(250)
    expect(hls.destroyed).toBe(true)
    expect(video.srcObject).toBe(activePlayers.values().next().value!.session!.stream)
    expect(badge()).toBe('live')
    expect(w.find('[data-testid="tile-note"]').exists()).toBe(false)
    expect(w.get('.tile').attributes('data-source')).toBe('webrtc')
    w.unmount()
  })

  it('says when HLS failed too, and keeps trying WebRTC', async () => {
    const { w, calls } = await tile()
    await vi.advanceTimersByTimeAsync(5000)
    await loaded()
    const hls = FakeHls.instances[0]!
    hls.emit('hlsError', networkError(503))
    await flush()
    expect(hls.destroyed).toBe(true)
    expect(w.get('[data-testid="tile-badge"]').text()).toBe('connecting')
    expect(w.get('[data-testid="tile-note"]').text()).toBe(
      'WebRTC could not connect, and HLS failed too: the server answered HTTP 503. Still trying.',
    )
    const posts = () => calls.filter((c) => c.method === 'POST' && c.url === '/whep/7').length
    const before = posts()
    await vi.advanceTimersByTimeAsync(12_000)
    expect(posts()).toBeGreaterThan(before)
    w.unmount()
  })

  it('gives the WebRTC reason when this server has no playlist', async () => {
    const { w } = await tile(() => apiError(404, 'not_found', 'nothing recorded'))
    await vi.advanceTimersByTimeAsync(5000)
    expect(w.get('[data-testid="tile-note"]').text()).toBe('WebRTC could not connect. Still trying.')
    await vi.advanceTimersByTimeAsync(10_000)
    expect(w.get('[data-testid="tile-badge"]').text()).toBe('reconnecting')
    expect(w.get('[data-testid="tile-note"]').text()).toBe('WebRTC could not connect (did not connect in time). Still trying.')
    expect(FakeHls.instances).toHaveLength(0)
    w.unmount()
  })

  it('destroys hls.js when the tile goes away', async () => {
    const { w } = await tile()
    await vi.advanceTimersByTimeAsync(5000)
    await loaded()
    w.unmount()
    expect(FakeHls.instances[0]!.destroyed).toBe(true)
    expect(activePlayers.size).toBe(0)
    expect(api.token).toBe('tok')
  })
})
