// Keeps one camera playing: opens a WHEP session, watches its peer connection,
// and replaces it (DELETEing the old one first) with exponential backoff when
// it fails, until stopped.

import { ApiError, type ApiClient } from './api'
import { backoffDelay } from './backoff'
import { WhepError, WhepSession, type PeerConnectionFactory } from './whep'

export type PlayerState = 'connecting' | 'live' | 'reconnecting' | 'offline' | 'stopped'

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
  random?: () => number
}

/** The players alive now, for the test hook. */
export const activePlayers = new Set<LivePlayer>()

export class LivePlayer {
  readonly cameraId: number
  state: PlayerState = 'connecting'
  detail = ''
  session: WhepSession | null = null
  private readonly opts: PlayerOptions
  private attempt = 0
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private graceTimer: ReturnType<typeof setTimeout> | null = null
  private connectTimer: ReturnType<typeof setTimeout> | null = null
  private stallTimer: ReturnType<typeof setInterval> | null = null
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
    void this.dropSession()
    this.opts.onStream?.(null)
    this.setState('stopped', '')
  }

  /** `framesDecoded` of the session's inbound video, 0 without one. */
  async framesDecoded(): Promise<number> {
    const pc = this.session?.pc
    if (!pc || this.session?.isClosed) return 0
    try {
      const report = await pc.getStats()
      let frames = 0
      report.forEach((s: { type?: string; kind?: string; mediaType?: string; framesDecoded?: number }) => {
        if (s.type === 'inbound-rtp' && (s.kind ?? s.mediaType) === 'video') {
          frames = Math.max(frames, s.framesDecoded ?? 0)
        }
      })
      return frames
    } catch {
      return 0
    }
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
    if (this.stallTimer != null) clearInterval(this.stallTimer)
    this.stallTimer = null
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
          if (gen === this.generation && track.kind === 'video') this.opts.onStream?.(stream)
        },
      })
      this.session = session
      this.watch(session, gen)
      await session.start()
      if (gen !== this.generation) return
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
      if (e instanceof WhepError && e.offline) this.fail('camera offline', 'offline')
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
        this.setState('live', '')
        this.watchForStall(pc, gen)
      } else if (s === 'failed' || s === 'closed') {
        this.fail(`connection ${s}`)
      } else if (s === 'disconnected' && this.graceTimer == null) {
        this.setState('reconnecting', 'connection interrupted')
        this.graceTimer = setTimeout(() => {
          this.graceTimer = null
          if (gen === this.generation && pc.connectionState !== 'connected') this.fail('connection lost')
        }, this.opts.disconnectGraceMs ?? 3000)
      }
    }
    pc.addEventListener('connectionstatechange', onChange)
  }

  /** Replaces a connected session whose video stopped arriving. */
  private watchForStall(pc: RTCPeerConnection, gen: number): void {
    const stallMs = this.opts.stallMs ?? 2500
    if (stallMs <= 0 || this.stallTimer != null || typeof pc.getStats !== 'function') return
    let lastBytes = -1
    let lastChange = Date.now()
    const step = Math.min(1000, stallMs)
    this.stallTimer = setInterval(() => {
      if (gen !== this.generation || this.stopped) return
      void pc
        .getStats()
        .then((report) => {
          let bytes = 0
          report.forEach((st: { type?: string; kind?: string; mediaType?: string; bytesReceived?: number }) => {
            if (st.type === 'inbound-rtp' && (st.kind ?? st.mediaType) === 'video') bytes += st.bytesReceived ?? 0
          })
          const now = Date.now()
          if (bytes !== lastBytes) {
            lastBytes = bytes
            lastChange = now
          } else if (now - lastChange >= stallMs && gen === this.generation) {
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
    const delay = backoffDelay(this.attempt, { random: this.opts.random })
    this.attempt++
    this.setState(state, reason)
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      void this.connect()
    }, delay)
  }
}
