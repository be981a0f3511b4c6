// A WHEP (WebRTC-HTTP Egress Protocol) playback session: one recvonly
// RTCPeerConnection, one POST of its offer, one DELETE of the session URL.
// The server is ICE-lite and learns the browser's address from its checks, so
// the offer goes out at once, without waiting for ICE gathering.

export class WhepError extends Error {
  /** HTTP status; 0 when the request never got an answer. */
  readonly status: number
  readonly code: string

  constructor(status: number, code: string, message: string) {
    super(message)
    this.name = 'WhepError'
    this.status = status
    this.code = code
  }

  /** The camera has no publisher right now. */
  get offline(): boolean {
    return this.status === 503 && !this.transcodeLimit
  }

  /** This browser needs the camera transcoded, and the server transcodes
   * as many cameras as it may: a limit, not an offline camera. */
  get transcodeLimit(): boolean {
    return this.code === 'transcode_limit'
  }

  /** The token is expired or revoked. */
  get unauthorized(): boolean {
    return this.status === 401
  }
}

export type PeerConnectionFactory = (config: RTCConfiguration) => RTCPeerConnection

export interface WhepOptions {
  /** The WHEP endpoint, relative or absolute: `/whep/3`. */
  url: string
  /** The bearer token, sent on the POST and the DELETE. */
  token: string | null
  iceServers?: RTCIceServer[]
  fetch?: typeof fetch
  createPeerConnection?: PeerConnectionFactory
  /** What relative URLs are resolved against; the page's URL by default. */
  baseUrl?: string
  /** Called when a track arrives, once it is in [`WhepSession.stream`]. */
  onTrack?: (track: MediaStreamTrack, stream: MediaStream | null) => void
}

function pageUrl(): string {
  const href = globalThis.location?.href
  return href && /^https?:/.test(href) ? href : 'http://localhost/'
}

/**
 * Resolves the `Location` header against the URL that was POSTed to. Same-origin
 * results come back as path + query, so they stay relative like every other call.
 */
export function resolveLocation(location: string, postUrl: string, baseUrl: string = pageUrl()): string {
  const post = new URL(postUrl, baseUrl)
  const loc = new URL(location, post)
  const base = new URL(baseUrl)
  return loc.origin === base.origin ? loc.pathname + loc.search : loc.href
}

async function readError(res: Response): Promise<WhepError> {
  let code = `http_${res.status}`
  let message = res.statusText || `HTTP ${res.status}`
  try {
    const text = await res.text()
    try {
      const err = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error
      if (typeof err?.code === 'string') code = err.code
      if (typeof err?.message === 'string') message = err.message
    } catch {
      const t = text.trim()
      if (t && t.length <= 200 && !t.startsWith('<')) message = t
    }
  } catch {
    // Keep the status line.
  }
  return new WhepError(res.status, code, message)
}

export class WhepSession {
  readonly pc: RTCPeerConnection
  /** The tracks received so far, in one stream for a `<video>`. */
  readonly stream: MediaStream | null
  /** The session URL from `Location`, once the server accepted the offer. */
  location: string | null = null
  /** The codec the server transcodes the camera to for this browser (it
   * could not play the camera's own stream), from `X-Reallive-Transcoded`;
   * null when the picture is the camera's own. */
  transcoded: string | null = null
  private readonly opts: WhepOptions
  private readonly fetchFn: typeof fetch
  private closed = false

  constructor(opts: WhepOptions) {
    this.opts = opts
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init))
    const create = opts.createPeerConnection ?? ((c: RTCConfiguration) => new RTCPeerConnection(c))
    this.pc = create({ iceServers: opts.iceServers ?? [], bundlePolicy: 'max-bundle' })
    this.stream = typeof MediaStream === 'function' ? new MediaStream() : null
    this.pc.addEventListener('track', (ev: RTCTrackEvent) => {
      if (this.stream && !this.stream.getTracks().includes(ev.track)) this.stream.addTrack(ev.track)
      opts.onTrack?.(ev.track, this.stream)
    })
  }

  get isClosed(): boolean {
    return this.closed
  }

  /**
   * Sends the offer and applies the answer. Throws [`WhepError`] on any failure.
   * A session closed while its POST is in flight DELETEs what the server made.
   */
  async start(): Promise<void> {
    const pc = this.pc
    pc.addTransceiver('video', { direction: 'recvonly' })
    pc.addTransceiver('audio', { direction: 'recvonly' })
    const offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    const sdp = pc.localDescription?.sdp ?? offer.sdp ?? ''
    if (this.closed) throw new WhepError(0, 'closed', 'session closed')

    const headers: Record<string, string> = {
      'Content-Type': 'application/sdp',
      Accept: 'application/sdp',
    }
    if (this.opts.token) headers.Authorization = `Bearer ${this.opts.token}`

    let res: Response
    try {
      res = await this.fetchFn(this.opts.url, { method: 'POST', headers, body: sdp, cache: 'no-store' })
    } catch {
      throw new WhepError(0, 'network', 'cannot reach the server')
    }
    if (res.status !== 201 && !res.ok) throw await readError(res)

    this.transcoded = res.headers.get('X-Reallive-Transcoded')
    const location = res.headers.get('Location')
    if (location) this.location = resolveLocation(location, this.opts.url, this.opts.baseUrl)
    const answer = await res.text()
    if (this.closed) {
      // Closed while the POST was in flight: the server made a session; end it.
      void this.deleteSession()
      throw new WhepError(0, 'closed', 'session closed')
    }
    if (!answer.trim()) throw new WhepError(res.status, 'bad_answer', 'the server sent no SDP answer')
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: answer })
    } catch (e) {
      throw new WhepError(res.status, 'bad_answer', `unusable SDP answer: ${(e as Error).message ?? e}`)
    }
  }

  private async deleteSession(): Promise<void> {
    const loc = this.location
    if (!loc) return
    this.location = null
    const headers: Record<string, string> = {}
    if (this.opts.token) headers.Authorization = `Bearer ${this.opts.token}`
    try {
      // keepalive lets the DELETE outlive a page that is going away.
      await this.fetchFn(loc, { method: 'DELETE', headers, keepalive: true })
    } catch {
      // The server times idle sessions out anyway.
    }
  }

  /** Ends the session: DELETEs it on the server (if it was made) and closes the peer connection. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    try {
      this.pc.close()
    } catch {
      // Already closed.
    }
    try {
      for (const t of this.stream?.getTracks() ?? []) t.stop()
    } catch {
      // Nothing to stop.
    }
    await this.deleteSession()
  }
}
