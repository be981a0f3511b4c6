import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { mount } from '@vue/test-utils'
import { nextTick, ref } from 'vue'
import { createMemoryHistory } from 'vue-router'
import CameraTile from '../../src/components/CameraTile.vue'
import SoundButton from '../../src/components/SoundButton.vue'
import { useSound } from '../../src/composables/useSound'
import { TOKEN_KEY, type Camera } from '../../src/lib/api'
import { activePlayers } from '../../src/lib/player'
import { createAppRouter } from '../../src/lib/router'
import {
  chosenSound,
  elementHasAudio,
  forgetSoundChoices,
  playOrMute,
  shouldMute,
  soundButton,
  tracksHaveAudio,
  type AudioPresence,
} from '../../src/lib/sound'
import { FakePeerConnection, flush, json, mockFetch, sdpAnswer } from './fakes'

beforeEach(() => forgetSoundChoices())

describe('soundButton', () => {
  it.each<[AudioPresence, boolean, boolean, { shown: boolean; disabled: boolean; label: string }]>([
    // Nothing known yet: no button, whatever the choice.
    ['unknown', false, false, { shown: false, disabled: true, label: 'No sound' }],
    ['unknown', true, true, { shown: false, disabled: true, label: 'No sound' }],
    // Sound: the button says what a tap does.
    ['present', false, false, { shown: true, disabled: false, label: 'Unmute' }],
    ['present', true, false, { shown: true, disabled: false, label: 'Mute' }],
    ['present', false, true, { shown: true, disabled: false, label: 'Unmute' }],
    // No sound: nothing in the grid, a disabled "No sound" full size.
    ['none', false, false, { shown: false, disabled: true, label: 'No sound' }],
    ['none', true, true, { shown: true, disabled: true, label: 'No sound' }],
  ])('%s, on=%s, explain=%s', (presence, on, explain, view) => {
    expect(soundButton(presence, on, explain)).toEqual(view)
  })

  it('mutes unless there is sound and the user asked for it', () => {
    expect(shouldMute('present', true)).toBe(false)
    expect(shouldMute('present', false)).toBe(true)
    expect(shouldMute('unknown', true)).toBe(true)
    expect(shouldMute('none', true)).toBe(true)
  })
})

describe('finding sound in HLS', () => {
  it.each([
    [{ video: { codec: 'avc1.64001f' }, audio: { codec: 'mp4a.40.2' } }, true],
    [{ video: { codec: 'avc1.64001f' }, audio: { codec: 'opus' } }, true],
    [{ video: { codec: 'avc1.64001f' } }, false],
    [{ audiovideo: { codec: 'avc1.64001f,mp4a.40.2' } }, true],
    [{ audiovideo: { codec: 'avc1.64001f' } }, false],
  ])('hls.js tracks %j: %s', (tracks, has) => {
    expect(tracksHaveAudio(tracks)).toBe(has)
  })

  it('asks the element as each engine answers, and says "not known" before metadata', () => {
    const withReady = (fields: Record<string, unknown>, readyState = 4) => {
      const v = document.createElement('video')
      Object.defineProperty(v, 'readyState', { value: readyState })
      for (const [k, val] of Object.entries(fields)) Object.defineProperty(v, k, { value: val })
      return v
    }
    expect(elementHasAudio(withReady({ audioTracks: { length: 1 } }))).toBe(true)
    expect(elementHasAudio(withReady({ audioTracks: { length: 0 } }))).toBe(false)
    expect(elementHasAudio(withReady({ mozHasAudio: false }))).toBe(false)
    expect(elementHasAudio(withReady({ webkitAudioDecodedByteCount: 4096 }))).toBe(true)
    expect(elementHasAudio(withReady({ webkitAudioDecodedByteCount: 0 }))).toBeNull()
    expect(elementHasAudio(withReady({ audioTracks: { length: 1 } }, 0))).toBeNull()
  })
})

describe('useSound', () => {
  function player(key: string) {
    const video = ref(document.createElement('video'))
    video.value.muted = true
    return { video, sound: useSound(() => key, video) }
  }

  it('starts muted, unmutes on toggle once there is sound, and leaves other players alone', () => {
    const a = player('live:1')
    const b = player('live:2')
    expect(a.sound.on.value).toBe(false)
    expect(a.sound.muted.value).toBe(true)

    // A toggle before sound is known is remembered, but nothing plays yet.
    a.sound.presence.value = 'present'
    b.sound.presence.value = 'present'
    expect(a.video.value.muted).toBe(true)
    a.sound.toggle()
    expect(a.sound.on.value).toBe(true)
    expect(a.video.value.muted).toBe(false)
    expect(b.video.value.muted).toBe(true)
    expect(b.sound.on.value).toBe(false)

    // The stream loses its sound: muted again, the choice kept.
    a.sound.presence.value = 'none'
    expect(a.video.value.muted).toBe(true)
    a.sound.presence.value = 'present'
    expect(a.video.value.muted).toBe(false)

    a.sound.toggle()
    expect(a.video.value.muted).toBe(true)
    expect(chosenSound('live:1')).toBe(false)
  })

  it('remembers the choice per camera for the page, not across cameras', () => {
    const a = player('live:1')
    a.sound.toggle()
    expect(player('live:1').sound.on.value).toBe(true)
    expect(player('live:2').sound.on.value).toBe(false)
    expect(player('recording:1').sound.on.value).toBe(false)
  })

  it('goes back to muted when the browser refuses to play with sound', async () => {
    const v = document.createElement('video')
    v.muted = false
    const refused = Object.assign(new Error('play() needs a gesture'), { name: 'NotAllowedError' })
    const play = vi.fn().mockRejectedValueOnce(refused).mockResolvedValue(undefined)
    Object.defineProperty(v, 'play', { value: play })
    const onMuted = vi.fn()
    playOrMute(v, onMuted)
    await flush()
    expect(v.muted).toBe(true)
    expect(onMuted).toHaveBeenCalledOnce()
    expect(play).toHaveBeenCalledTimes(2)
  })
})

describe('SoundButton', () => {
  it('is a labelled button big enough to tap, hidden until there is sound', async () => {
    const w = mount(SoundButton, { props: { presence: 'unknown', on: false } })
    expect(w.find('button').exists()).toBe(false)
    await w.setProps({ presence: 'present' })
    const b = w.get('[data-testid="sound-toggle"]')
    expect(b.attributes('aria-label')).toBe('Unmute')
    expect(b.text()).toBe('Unmute')
    expect(b.find('svg').attributes('aria-hidden')).toBe('true')
    await b.trigger('click')
    expect(w.emitted('toggle')).toHaveLength(1)
    await w.setProps({ on: true })
    expect(w.get('button').attributes('aria-label')).toBe('Mute')
    expect(w.get('button').attributes('data-sound')).toBe('on')
    await w.setProps({ presence: 'none', on: false, explainSilence: true })
    expect(w.get('button').attributes('disabled')).toBeDefined()
    expect(w.get('button').attributes('aria-label')).toBe('No sound')
  })
})

describe('a live tile’s sound', () => {
  const cam = (id: number): Camera => ({
    id,
    owner_id: 1,
    name: `Cam ${id}`,
    resolution: null,
    status: 'online',
    created_at: '2025-01-01T00:00:00Z',
    permission: 'view',
  })

  afterEach(() => {
    for (const p of [...activePlayers]) p.stop()
    localStorage.clear()
    vi.useRealTimers()
    vi.unstubAllGlobals()
  })

  async function tiles(focused = false) {
    localStorage.setItem(TOKEN_KEY, 'tok')
    const { fetch } = mockFetch((c) => {
      if (c.url.endsWith('/stream')) return json(200, { ice_servers: [] })
      if (c.method === 'DELETE') return new Response(null, { status: 204 })
      return sdpAnswer(`/whep/x/sessions/${FakePeerConnection.instances.length}`)
    })
    vi.stubGlobal('fetch', fetch)
    vi.stubGlobal('RTCPeerConnection', FakePeerConnection)
    FakePeerConnection.reset()
    const router = createAppRouter(createMemoryHistory())
    await router.push('/')
    await router.isReady()
    vi.useFakeTimers()
    const ws = [1, 2].map((id) => {
      const w = mount(CameraTile, { props: { camera: cam(id), focused }, global: { plugins: [router] } })
      Object.defineProperty(w.get('video').element, 'srcObject', { value: null, writable: true })
      return w
    })
    await flush(30)
    // Both connect and decode; camera 1 sends sound, camera 2 has no microphone.
    const [pc1, pc2] = FakePeerConnection.instances as [FakePeerConnection, FakePeerConnection]
    for (const pc of [pc1, pc2]) {
      pc.dispatchEvent(Object.assign(new Event('track'), { track: { kind: 'video' } }))
      pc.setState('connected')
      pc.framesDecoded = 30
    }
    pc1.dispatchEvent(Object.assign(new Event('track'), { track: { kind: 'audio', readyState: 'live' } }))
    pc1.audioPackets = 40
    await vi.advanceTimersByTimeAsync(1000)
    await nextTick()
    return [ws[0]!, ws[1]!] as const
  }

  it('shows Unmute on the tile with sound only, and unmutes that tile alone', async () => {
    const [one, two] = await tiles()
    const v1 = one.get('video').element as HTMLVideoElement
    const v2 = two.get('video').element as HTMLVideoElement
    expect(v1.muted).toBe(true)
    expect(two.find('[data-testid="sound-toggle"]').exists()).toBe(false)
    const b = one.get('[data-testid="sound-toggle"]')
    expect(b.attributes('aria-label')).toBe('Unmute')
    expect(b.classes()).toContain('compact')

    await b.trigger('click')
    expect(v1.muted).toBe(false)
    expect(v2.muted).toBe(true)
    expect(one.get('[data-testid="sound-toggle"]').attributes('aria-label')).toBe('Mute')
    await one.get('[data-testid="sound-toggle"]').trigger('click')
    expect(v1.muted).toBe(true)
    one.unmount()
    two.unmount()
  })

  it('says "No sound" on a full-size player whose camera has none', async () => {
    const [one, two] = await tiles(true)
    await vi.advanceTimersByTimeAsync(3000)
    await nextTick()
    expect(one.get('[data-testid="sound-toggle"]').attributes('aria-label')).toBe('Unmute')
    const silent = two.get('[data-testid="sound-toggle"]')
    expect(silent.attributes('aria-label')).toBe('No sound')
    expect(silent.attributes('disabled')).toBeDefined()
    one.unmount()
    two.unmount()
  })
})
