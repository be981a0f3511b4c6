// Plays a camera's live HLS playlist in a `<video>`: the stand-in for WebRTC
// when it cannot connect (UDP and TCP blocked, no TURN). hls.js is loaded on
// demand, as for recordings; a browser without MSE that plays HLS itself
// (older iOS Safari) gets the playlist as `src`, token in the URL.

import type Hls from 'hls.js'
import type { BufferCodecsData, ErrorData, HlsConfig } from 'hls.js'
import { api as defaultApi, type ApiClient } from './api'
import { elementHasAudio, tracksHaveAudio, type AudioPresence } from './sound'

/**
 * Live settings: LL-HLS (the server lists 200 ms parts and holds blocking
 * reloads, docs/design/ll-hls.md), start at the live edge, keep little in
 * memory on a phone. No `liveSyncDuration(Count)`: set, it would override
 * the playlist's PART-HOLD-BACK, which is what keeps the fallback about a
 * second behind live rather than three segments.
 */
export const LIVE_HLS_CONFIG: Partial<HlsConfig> = {
  lowLatencyMode: true,
  startPosition: -1,
  maxBufferLength: 10,
  backBufferLength: 10,
  // Catch up (up to 1.25x) after a stall instead of staying further behind.
  maxLiveSyncPlaybackRate: 1.25,
}

/** The hls.js players of the live fallbacks now attached (for the test hook). */
export const activeLiveHls = new Set<Hls>()

export interface LiveHlsOptions {
  /** Whose token goes with the requests; the app's client by default. */
  api?: ApiClient
  /** The video shows frames (again). */
  onPlaying?: () => void
  /** Playback failed for good. `status` is the HTTP status of the refused
   * request, 0 when there was none (network, decoding, no player). */
  onError?: (message: string, status: number) => void
  /** Whether the playlist's media carries sound, once known. */
  onAudio?: (audio: AudioPresence) => void
}

const MPEGURL = 'application/vnd.apple.mpegurl'

/**
 * Plays the live playlist at `path` (no token in it) in `video`, muted (the
 * caller may unmute it once `onAudio` says there is sound).
 * Returns the detach function: it destroys hls.js (or empties the native
 * player) and silences every callback.
 */
export function attachLiveHls(video: HTMLVideoElement, path: string, opts: LiveHlsOptions = {}): () => void {
  const client = opts.api ?? defaultApi
  let hls: Hls | null = null
  let native = false
  let detached = false
  const fail = (message: string, status: number) => {
    if (!detached) opts.onError?.(message, status)
  }
  const onPlaying = () => {
    if (!detached) opts.onPlaying?.()
  }
  const onNativeError = () => {
    if (native) fail('the browser could not play the live video', 0)
  }
  let audioKnown = false
  const audio = (a: AudioPresence) => {
    if (detached || audioKnown) return
    audioKnown = true
    opts.onAudio?.(a)
  }
  // The browser's own player tells only through the element, and only once it played a little.
  const onNativeProgress = () => {
    if (!native || audioKnown) return
    const has = elementHasAudio(video)
    if (has != null) audio(has ? 'present' : 'none')
  }
  video.addEventListener('playing', onPlaying)
  video.addEventListener('error', onNativeError)
  video.addEventListener('timeupdate', onNativeProgress)
  // A `srcObject` (the WebRTC stream) wins over `src`.
  video.srcObject = null
  video.muted = true

  void (async () => {
    let Ctor: typeof Hls | null = null
    try {
      Ctor = (await import('hls.js/light')).default
    } catch {
      // The chunk did not load (the server restarted on a new build?); the
      // browser's own player may still do.
    }
    if (detached) return
    if (Ctor?.isSupported()) {
      try {
        hls = startHlsJs(Ctor, video, path, client, fail, audio)
        activeLiveHls.add(hls)
      } catch {
        // hls.js refused its settings or the element: a tile must not wait forever.
        fail('the video player could not start', 0)
      }
    } else if (video.canPlayType(MPEGURL) !== '') {
      native = true
      video.src = client.mediaUrl(path)
      play(video)
    } else {
      fail(Ctor ? 'this browser cannot play HLS' : 'the video player could not be loaded', 0)
    }
  })()

  return () => {
    detached = true
    video.removeEventListener('playing', onPlaying)
    video.removeEventListener('error', onNativeError)
    video.removeEventListener('timeupdate', onNativeProgress)
    if (hls) {
      activeLiveHls.delete(hls)
      hls.destroy()
      hls = null
    }
    if (native) {
      native = false
      video.removeAttribute('src')
      try {
        video.load()
      } catch {
        // happy-dom and old browsers: nothing to reset.
      }
    }
  }
}

function play(video: HTMLVideoElement): void {
  video.play().catch(() => {
    // Muted autoplay is allowed; a refusal leaves the last frame.
  })
}

function startHlsJs(
  Ctor: typeof Hls,
  video: HTMLVideoElement,
  path: string,
  client: ApiClient,
  fail: (message: string, status: number) => void,
  audio: (a: AudioPresence) => void,
): Hls {
  const h = new Ctor({
    ...LIVE_HLS_CONFIG,
    // Segment URLs in the playlist carry no token: the header goes on each.
    xhrSetup: (xhr) => {
      for (const [k, v] of Object.entries(client.authHeaders())) xhr.setRequestHeader(k, v)
    },
  })
  let recovered = false
  h.on(Ctor.Events.MANIFEST_PARSED, () => play(video))
  h.on(Ctor.Events.BUFFER_CODECS, (_e, data: BufferCodecsData) => audio(tracksHaveAudio(data) ? 'present' : 'none'))
  h.on(Ctor.Events.ERROR, (_e, data: ErrorData) => {
    if (!data.fatal) return
    // A decoding hiccup gets one second chance; a second one is for good.
    if (data.type === Ctor.ErrorTypes.MEDIA_ERROR && !recovered) {
      recovered = true
      h.recoverMediaError()
      return
    }
    const status = data.response?.code ?? 0
    if (data.type === Ctor.ErrorTypes.MEDIA_ERROR) fail('the live video could not be decoded', 0)
    else if (status > 0) fail(`the server answered HTTP ${status}`, status)
    else fail('the live video could not be loaded', 0)
  })
  h.loadSource(path)
  h.attachMedia(video)
  return h
}
