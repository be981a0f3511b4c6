// Keeps one camera playing: opens a WHEP session, watches its peer connection,
// and replaces it (DELETEing the old one first) with exponential backoff when
// it fails, until stopped. When no session connects for a while (UDP and TCP
// blocked, no TURN), it offers the camera's live HLS playlist as a stand-in
// and keeps trying WebRTC behind it.

import { ApiError, type ApiClient } from './api'
import { backoffDelay } from './backoff'
import { NO_INBOUND, readInbound, type InboundStats } from './rtcStats'
import type { AudioPresence } from './sound'
import { WhepError, WhepSession, type PeerConnectionFactory } from './whep'

export type PlayerState = 'connecting' | 'live' | 'reconnecting' | 'offline' | 'stopped'

/** What stands in for WebRTC while it cannot connect. */
export type Fallback =
  /** Nothing: WebRTC plays, or has not had `hlsFallbackMs` yet. */
  | { kind: 'off' }
  /** Play this live playlist: a path, without the token. */
  | { kind: 'hls'; url: string }
  /** WebRTC could not connect and this server has no playlist to offer
   * (it does not record, or refused): WebRTC alone, until it connects. */
  | { kind: 'unavailable' }

export interface PlayerOptions {
  cameraId: number
  api: ApiClient
  /** Called on every state change. */
  onState?: (state: PlayerState, detail: string) => void
  /** Called with the stream of each new session, for the `<video>`. */
  onStream?: (stream: MediaStream | null) => void
  createPeerConnection?: PeerConnectionFactory
  /** How long `disconnected` may last before the session is replaced. */
  disconnectGraceMs?: number
  /** How long a new session may take to connect before it is replaced. */
  connectTimeoutMs?: number
  /** How long a connected session may receive no video before it is
   * replaced. A server restart or a dead path shows up here seconds before
   * ICE gives up. 0 turns the watchdog off. */
  stallMs?: number
  /** How long WebRTC may fail to connect (since start, or since it was last
   * live) before the live HLS playlist stands in. 0 turns it off. */
  hlsFallbackMs?: number
  /** Called whenever the fallback changes. Leaving `hls` for WebRTC, the
   * session's stream follows on `onStream`. */
  onFallback?: (fallback: Fallback) => void
  /** Called when the session's sound is found (or found missing); back to
   * `unknown` with each new session. */
  onAudio?: (audio: AudioPresence) => void
  /** Called with each new session: whether the server transcodes the
   * camera for this browser (it cannot play the camera's own stream). */
  onTranscoded?: (transcoded: boolean) => void
  /** Called when the server refuses this browser for a limit (its live
   * transcodes are all taken), with its words; `null` once a session is
   * accepted. The player keeps trying. */
  onRefused?: (message: string | null) => void
  random?: () => number
}

/** How long a session may show video without audio packets before it counts
 * as silent: Opus starts with the video, so a second or two is plenty. */
const AUDIO_WAIT_MS = 3000

/** The players alive now, for the test hook. */
export const activePlayers = new Set<LivePlayer>()

export class LivePlayer {
  readonly cameraId: number
  state: PlayerState = 'connecting'
  detail = ''
  session: WhepSession | null = null
  fallback: Fallback = { kind: 'off' }
  /** Whether the current session carries sound. */
  audio: AudioPresence = 'unknown'
  private readonly opts: PlayerOptions
  private attempt = 0
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private graceTimer: ReturnType<typeof setTimeout> | null = null
  private connectTimer: ReturnType<typeof setTimeout> | null = null
  /** Reads the connected session's stats: stalls and sound. */
  private statsTimer: ReturnType<typeof setInterval> | null = null
  /** Polls a connected session for decoded frames before leaving HLS. */
  private switchTimer: ReturnType<typeof setInterval> | null = null
  /** Outlives sessions: it measures the whole outage, not one attempt. */
  private fallbackTimer: ReturnType<typeof setTimeout> | null = null
  private iceServers: RTCIceServer[] | null = null
  private everLive = false
  private stopped = false
  /** Bumped on every new session, so stale callbacks do nothing. */
  private generation = 0

  constructor(opts: PlayerOptions) {
    this.opts = opts
    this.cameraId = opts.cameraId
  }

  start(): void {
    if (this.stopped) return
    activePlayers.add(this)
    this.armFallback()
    void this.connect()
  }

  /** Retries at once, if waiting to retry (say, the camera just came online). */
  nudge(): void {
    if (this.stopped || this.retryTimer == null) return
    clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.attempt = 0
    void this.connect()
  }

  /** Stops for good: ends the session and cancels every timer. */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.generation++
    activePlayers.delete(this)
    this.clearTimers()
    if (this.fallbackTimer != null) clearTimeout(this.fallbackTimer)
    this.fallbackTimer = null
    void this.dropSession()
    this.setFallback({ kind: 'off' })
    this.setAudio('unknown')
    this.opts.onStream?.(null)
    this.setState('stopped', '')
  }

  /**
   * The stand-in playlist failed for good, with HTTP `status` (0 for none):
   * 401 signs out; 403 and 404 leave WebRTC alone; anything else asks for
   * the playlist again after `hlsFallbackMs`.
   */
  hlsFailed(status: number): void {
    if (this.stopped || this.fallback.kind !== 'hls') return
    this.setFallback({ kind: 'off' })
    this.emitStream()
    this.settleFallback(status, null)
  }

  /** What the current session received so far; zeros without one. */
  async inboundStats(): Promise<InboundStats> {
    const pc = this.session?.pc
    if (!pc || this.session?.isClosed) return { ...NO_INBOUND }
    try {
      return readInbound(await pc.getStats())
    } catch {
      return { ...NO_INBOUND }
    }
  }

  /** `framesDecoded` of the session's inbound video, 0 without one. */
  async framesDecoded(): Promise<number> {
    return (await this.inboundStats()).framesDecoded
  }

  private setState(state: PlayerState, detail: string): void {
    if (this.state === state && this.detail === detail) return
    this.state = state
    this.detail = detail
    this.opts.onState?.(state, detail)
  }

  private clearTimers(): void {
    for (const t of [this.retryTimer, this.graceTimer, this.connectTimer]) if (t != null) clearTimeout(t)
    this.retryTimer = this.graceTimer = this.connectTimer = null
    for (const t of [this.statsTimer, this.switchTimer]) if (t != null) clearInterval(t)
    this.statsTimer = this.switchTimer = null
  }

  private setAudio(audio: AudioPresence): void {
    if (this.audio === audio) return
    this.audio = audio
    this.opts.onAudio?.(audio)
  }

  /**
   * Sound needs both an audio track in the stream (the server answered the
   * audio m-line) and packets on it: a camera without a microphone may still
   * get a track that never carries anything.
   */
  private noteAudio(session: WhepSession, s: InboundStats, liveMs: number): void {
    const track = session.stream?.getTracks().some((t) => t.kind === 'audio' && t.readyState !== 'ended') ?? false
    if (track && s.audioPackets > 0) this.setAudio('present')
    else if (s.framesDecoded > 0 && (!track || liveMs >= AUDIO_WAIT_MS)) this.setAudio('none')
  }

  private setFallback(f: Fallback): void {
    // One camera, one playlist: the kind says it all.
    if (f.kind === this.fallback.kind) return
    this.fallback = f
    this.opts.onFallback?.(f)
  }

  /** Hands the current session's stream to the `<video>` that HLS had. */
  private emitStream(): void {
    const stream = this.session?.stream
    if (stream) this.opts.onStream?.(stream)
  }

  /** Starts the outage clock, unless it runs already or a fallback was settled. */
  private armFallback(): void {
    const ms = this.opts.hlsFallbackMs ?? 5000
    if (ms <= 0 || this.stopped || this.fallbackTimer != null || this.fallback.kind !== 'off') return
    this.fallbackTimer = setTimeout(() => {
      this.fallbackTimer = null
      void this.tryFallback()
    }, ms)
  }

  /** Nothing to fall back from, or a fallback settled already. */
  private fallbackMoot(): boolean {
    return this.stopped || this.state === 'live' || this.fallback.kind !== 'off'
  }

  private async tryFallback(): Promise<void> {
    if (this.fallbackMoot()) return
    // An offline camera's newest recording is old video: no stand-in for live.
    if (this.state === 'offline') {
      this.armFallback()
      return
    }
    const url = `/api/cameras/${encodeURIComponent(this.cameraId)}/live.m3u8`
    let status = 0
    try {
      const res = await this.opts.api.fetch(url, { headers: this.opts.api.authHeaders(), cache: 'no-store' })
      status = res.status
      void res.body?.cancel().catch(() => {})
    } catch {
      // Unreachable: status 0, ask again later.
    }
    // Live meanwhile, or live and lost again (a new clock runs): not this outage's answer.
    if (this.fallbackMoot() || this.fallbackTimer != null) return
    this.settleFallback(status, url)
  }

  private settleFallback(status: number, url: string | null): void {
    if (status === 401) {
      this.opts.api.handleUnauthorized()
      this.stop()
    } else if (status === 403 || status === 404) {
      this.setFallback({ kind: 'unavailable' })
    } else if (url != null && status >= 200 && status < 300) {
      this.setFallback({ kind: 'hls', url })
    } else {
      this.armFallback()
    }
  }

  private async dropSession(): Promise<void> {
    const s = this.session
    this.session = null
    if (s) await s.close()
  }

  private async loadIceServers(): Promise<RTCIceServer[]> {
    if (this.iceServers) return this.iceServers
    try {
      const info = await this.opts.api.streamInfo(this.cameraId)
      this.iceServers = (info.ice_servers ?? []).map((s) => {
        const server: RTCIceServer = { urls: s.urls }
        if (s.username != null) server.username = s.username
        if (s.credential != null) server.credential = s.credential
        return server
      })
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) throw e
      // Host candidates on the server suffice; try again next session.
      return []
    }
    return this.iceServers
  }

  private async connect(): Promise<void> {
    if (this.stopped) return
    const gen = ++this.generation
    this.clearTimers()
    await this.dropSession()
    if (gen !== this.generation) return
    this.setAudio('unknown')
    // An offline camera stays "offline" while we knock, instead of flickering.
    if (this.state !== 'offline') {
      this.setState(this.everLive || this.attempt > 0 ? 'reconnecting' : 'connecting', this.detail)
    }

    try {
      const iceServers = await this.loadIceServers()
      if (gen !== this.generation) return
      const session = new WhepSession({
        url: `/whep/${encodeURIComponent(this.cameraId)}`,
        token: this.opts.api.token,
        iceServers,
        fetch: this.opts.api.fetch,
        createPeerConnection: this.opts.createPeerConnection,
        onTrack: (track, stream) => {
          // Under HLS the `<video>` is taken until this session shows frames.
          if (gen === this.generation && track.kind === 'video' && this.fallback.kind !== 'hls') this.opts.onStream?.(stream)
        },
      })
      this.session = session
      this.watch(session, gen)
      await session.start()
      if (gen !== this.generation) return
      this.opts.onRefused?.(null)
      this.opts.onTranscoded?.(session.transcoded != null)
      this.connectTimer = setTimeout(() => {
        if (gen === this.generation && this.state !== 'live') this.fail('did not connect in time')
      }, this.opts.connectTimeoutMs ?? 15_000)
    } catch (e) {
      if (gen !== this.generation || this.stopped) return
      if ((e instanceof WhepError || e instanceof ApiError) && e.status === 401) {
        // The token is gone: the app goes to the login page and unmounts us.
        if (e instanceof WhepError) this.opts.api.handleUnauthorized()
        this.stop()
        return
      }
      if (e instanceof WhepError && e.transcodeLimit) {
        this.opts.onRefused?.(e.message)
        this.fail('the server is transcoding all it can')
      } else if (e instanceof WhepError && e.offline) this.fail('camera offline', 'offline')
      else if (e instanceof WhepError && e.status === 404) this.fail('camera not available', 'offline')
      else this.fail(e instanceof Error ? e.message : String(e))
    }
  }

  private watch(session: WhepSession, gen: number): void {
    const pc = session.pc
    const onChange = () => {
      if (gen !== this.generation || this.stopped) return
      const s = pc.connectionState
      if (s === 'connected') {
        if (this.graceTimer != null) clearTimeout(this.graceTimer)
        if (this.connectTimer != null) clearTimeout(this.connectTimer)
        this.graceTimer = this.connectTimer = null
        this.attempt = 0
        this.everLive = true
        if (this.fallbackTimer != null) clearTimeout(this.fallbackTimer)
        this.fallbackTimer = null
        this.setState('live', '')
        this.watchStats(session, gen)
        if (this.fallback.kind === 'hls') this.leaveHlsOnFrames(gen)
        else this.setFallback({ kind: 'off' })
      } else if (s === 'failed' || s === 'closed') {
        this.fail(`connection ${s}`)
      } else if (s === 'disconnected' && this.graceTimer == null) {
        this.setState('reconnecting', 'connection interrupted')
        this.armFallback()
        this.graceTimer = setTimeout(() => {
          this.graceTimer = null
          if (gen === this.generation && pc.connectionState !== 'connected') this.fail('connection lost')
        }, this.opts.disconnectGraceMs ?? 3000)
      }
    }
    pc.addEventListener('connectionstatechange', onChange)
  }

  /**
   * Goes back from HLS to WebRTC once the connected session has decoded a
   * frame: `connected` alone can still mean a black picture.
   */
  private leaveHlsOnFrames(gen: number): void {
    if (this.switchTimer != null) return
    this.switchTimer = setInterval(() => {
      void this.framesDecoded().then((frames) => {
        if (gen !== this.generation || this.stopped || frames === 0 || this.fallback.kind !== 'hls') return
        if (this.switchTimer != null) clearInterval(this.switchTimer)
        this.switchTimer = null
        this.setFallback({ kind: 'off' })
        this.emitStream()
      })
    }, 250)
  }

  /**
   * Reads a connected session's stats: replaces it when its video stopped
   * arriving, and tells whether it carries sound.
   */
  private watchStats(session: WhepSession, gen: number): void {
    const pc = session.pc
    if (this.statsTimer != null || typeof pc.getStats !== 'function') return
    const stallMs = this.opts.stallMs ?? 2500
    let lastBytes = -1
    const since = Date.now()
    let lastChange = since
    const step = stallMs > 0 ? Math.min(1000, stallMs) : 1000
    this.statsTimer = setInterval(() => {
      if (gen !== this.generation || this.stopped) return
      void pc
        .getStats()
        .then((report) => {
          if (gen !== this.generation || this.stopped) return
          const s = readInbound(report)
          const now = Date.now()
          this.noteAudio(session, s, now - since)
          if (stallMs <= 0) return
          if (s.videoBytes !== lastBytes) {
            lastBytes = s.videoBytes
            lastChange = now
          } else if (now - lastChange >= stallMs) {
            this.fail('no video for a while')
          }
        })
        .catch(() => {})
    }, step)
  }

  /** Ends the current session and schedules the next try. */
  private fail(reason: string, state: 'reconnecting' | 'offline' = 'reconnecting'): void {
    if (this.stopped) return
    this.generation++
    this.clearTimers()
    void this.dropSession()
    this.setAudio('unknown')
    const delay = backoffDelay(this.attempt, { random: this.opts.random })
    this.attempt++
    // The live playlist of a camera that went offline would replay its last seconds.
    if (state === 'offline' && this.fallback.kind === 'hls') this.setFallback({ kind: 'off' })
    this.armFallback()
    this.setState(state, reason)
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      void this.connect()
    }, delay)
  }
}
