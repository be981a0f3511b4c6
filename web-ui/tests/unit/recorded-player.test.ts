import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import RecordedPlayer from '../../src/components/RecordedPlayer.vue'
import { TOKEN_KEY, api } from '../../src/lib/api'
import { formatClock } from '../../src/lib/timeline'

const { FakeHls } = vi.hoisted(() => {
  type Handler = (event: string, data: unknown) => void
  class FakeHls {
    static instances: FakeHls[] = []
    static isSupported = () => true
    static Events = { LEVEL_LOADED: 'hlsLevelLoaded', ERROR: 'hlsError', BUFFER_CODECS: 'hlsBufferCodecs' }
    static ErrorTypes = { MEDIA_ERROR: 'mediaError', NETWORK_ERROR: 'networkError' }
    handlers = new Map<string, Handler>()
    url = ''
    media: HTMLVideoElement | null = null
    started: number | null = null
    destroyed = false
    constructor(readonly config: { xhrSetup: (xhr: { setRequestHeader: (k: string, v: string) => void }, url: string) => void; autoStartLoad: boolean }) {
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
    startLoad(t: number) {
      this.started = t
    }
    destroy() {
      this.destroyed = true
    }
    recoverMediaError() {}
    emit(ev: string, data: unknown) {
      this.handlers.get(ev)?.(ev, data)
    }
  }
  return { FakeHls }
})
vi.mock('hls.js/light', () => ({ default: FakeHls }))

const W = new Date(2026, 11, 6, 3, 12, 0).getTime()

beforeEach(() => {
  localStorage.setItem(TOKEN_KEY, 'tok')
  FakeHls.instances = []
})
afterEach(() => localStorage.clear())

async function player(props: Record<string, unknown> = {}) {
  const w = mount(RecordedPlayer, { props: { cameraId: 3, at: W + 3000, until: W + 20_000, ...props } })
  await flushPromises()
  await new Promise((r) => setTimeout(r, 0))
  await flushPromises()
  return w
}

describe('recorded player', () => {
  it('loads the range through hls.js with the bearer token and starts at the keyframe at or before the instant', async () => {
    const w = await player({ events: [{ start: W + 60_000 }] })
    const hls = FakeHls.instances[0]!
    expect(hls.url).toBe(`/api/cameras/3/vod.m3u8?start=${W + 3000}&end=${W + 20_000}`)
    expect(hls.config.autoStartLoad).toBe(false)
    const headers: Record<string, string> = {}
    hls.config.xhrSetup({ setRequestHeader: (k, v) => void (headers[k] = v) }, '/api/cameras/3/files/a.m4s')
    expect(headers).toEqual({ Authorization: 'Bearer tok' })
    const video = w.get('[data-testid="player-video"]')
    expect(video.attributes('data-camera-id')).toBe('3')
    expect((video.element as HTMLVideoElement).muted).toBe(true)
    expect(video.attributes('playsinline')).toBeDefined()

    // The range begins at the keyframe 3 s before; a 10 s hole follows the first file.
    hls.emit('hlsLevelLoaded', {
      details: {
        fragments: [
          { start: 0, duration: 4, programDateTime: W },
          { start: 4, duration: 4, programDateTime: W + 14_000 },
        ],
      },
    })
    // The instant (3 s in) is inside the first segment: play from its
    // keyframe, not from a seek into a segment not yet buffered.
    expect(hls.started).toBe(0)

    const v = video.element as HTMLVideoElement
    Object.defineProperty(v, 'currentTime', { value: 5, configurable: true, writable: true })
    await video.trigger('timeupdate')
    expect(w.get('[data-testid="player-clock"]').text()).toContain(formatClock(W + 15_000))
    // Day, time and label are separate elements, with spaces between them.
    const clock = w.get('[data-testid="player-clock"]')
    expect(clock.findAll('span').map((s) => s.classes()[0])).toEqual(['clock-day', 'clock-time', 'clock-rec'])
    expect(clock.element.textContent!.trim().replace(/\s+/g, ' ')).toMatch(/^\w{3} \d{1,2} \w{3} \d\d:\d\d:\d\d Recorded$/)
    expect(w.emitted('time')!.at(-1)).toEqual([W + 15_000])
    expect((w.vm as unknown as { wallTime: () => number }).wallTime()).toBe(W + 15_000)

    await w.get('[data-testid="speed-8"]').trigger('click')
    expect(v.playbackRate).toBe(8)
    expect(w.emitted('speed')).toEqual([[8]])
    expect(w.get('[data-testid="speed-8"]').attributes('aria-pressed')).toBe('true')

    // Next event: 5 s before it; outside the loaded range, so a new playlist.
    await w.get('[data-testid="next-event"]').trigger('click')
    await flushPromises()
    await new Promise((r) => setTimeout(r, 0))
    expect(w.emitted('jumped')).toEqual([[W + 55_000]])
    expect(hls.destroyed).toBe(true)
    expect(FakeHls.instances[1]!.url).toContain(`start=${W + 55_000}`)
    expect(w.find('[data-testid="fullscreen"]').exists()).toBe(true)
    w.unmount()
  })

  it('starts muted, offers Unmute once hls.js finds an audio track, and says "No sound" without one', async () => {
    const w = await player()
    const v = w.get('[data-testid="player-video"]').element as HTMLVideoElement
    expect(v.muted).toBe(true)
    expect(w.find('[data-testid="sound-toggle"]').exists()).toBe(false)
    FakeHls.instances[0]!.emit('hlsBufferCodecs', { video: { codec: 'avc1.64001f' }, audio: { codec: 'mp4a.40.2' } })
    await flushPromises()
    const b = w.get('[data-testid="sound-toggle"]')
    expect(b.attributes('aria-label')).toBe('Unmute')
    await b.trigger('click')
    expect(v.muted).toBe(false)
    expect(w.get('[data-testid="sound-toggle"]').attributes('aria-label')).toBe('Mute')
    w.unmount()

    // Another camera's recording, without sound: its own choice, muted.
    const silent = await player({ cameraId: 4 })
    FakeHls.instances.at(-1)!.emit('hlsBufferCodecs', { video: { codec: 'avc1.64001f' } })
    await flushPromises()
    expect((silent.get('[data-testid="player-video"]').element as HTMLVideoElement).muted).toBe(true)
    expect(silent.get('[data-testid="sound-toggle"]').attributes('aria-label')).toBe('No sound')
    silent.unmount()
  })

  it('says plainly when nothing was recorded', async () => {
    const w = await player()
    FakeHls.instances[0]!.emit('hlsError', { fatal: true, type: 'networkError', details: 'manifestLoadError', response: { code: 404 } })
    await flushPromises()
    expect(w.get('[data-testid="player-message"]').text()).toBe('Nothing was recorded at this time.')
    w.unmount()
  })

  it('signs out on 401', async () => {
    const out = vi.fn()
    const off = api.onUnauthorized(out)
    const w = await player()
    FakeHls.instances[0]!.emit('hlsError', { fatal: true, type: 'networkError', details: 'manifestLoadError', response: { code: 401 } })
    expect(out).toHaveBeenCalledOnce()
    expect(api.token).toBeNull()
    off()
    w.unmount()
  })
})
