// Test doubles: a scripted `fetch` and an RTCPeerConnection that only records.

import { vi } from 'vitest'

export interface Call {
  url: string
  method: string
  headers: Record<string, string>
  body: string | null
  keepalive: boolean
}

type Handler = (call: Call) => Response | Promise<Response>

function headersOf(init?: RequestInit): Record<string, string> {
  const out: Record<string, string> = {}
  new Headers(init?.headers).forEach((v, k) => {
    out[k.toLowerCase()] = v
  })
  return out
}

/** A `fetch` that answers with `handler` and records every call. */
export function mockFetch(handler: Handler) {
  const calls: Call[] = []
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const call: Call = {
      url: typeof input === 'string' ? input : input instanceof URL ? input.href : input.url,
      method: (init?.method ?? 'GET').toUpperCase(),
      headers: headersOf(init),
      body: typeof init?.body === 'string' ? init.body : null,
      keepalive: init?.keepalive ?? false,
    }
    calls.push(call)
    return handler(call)
  })
  return { fetch: fn as unknown as typeof fetch, calls }
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  })
}

export function sdpAnswer(location: string | null = '/whep/3/sessions/abc', sdp = 'v=0\r\no=answer\r\n'): Response {
  const headers: Record<string, string> = { 'Content-Type': 'application/sdp' }
  if (location) headers.Location = location
  return new Response(sdp, { status: 201, headers })
}

export function apiError(status: number, code: string, message: string, headers: Record<string, string> = {}) {
  return json(status, { error: { code, message } }, headers)
}

export class FakePeerConnection extends EventTarget {
  static instances: FakePeerConnection[] = []
  readonly config: RTCConfiguration
  transceivers: Array<{ kind: string; init?: RTCRtpTransceiverInit }> = []
  localDescription: RTCSessionDescriptionInit | null = null
  remoteDescription: RTCSessionDescriptionInit | null = null
  connectionState: RTCPeerConnectionState = 'new'
  closed = false
  framesDecoded = 0
  /** Video bytes received: grows on every getStats() unless `frozen`. */
  bytesReceived = 0
  frozen = false
  /** Audio received so far: packets, samples, and the codec's MIME type once known. */
  audioPackets = 0
  audioSamples = 0
  audioCodec: string | null = null

  constructor(config: RTCConfiguration = {}) {
    super()
    this.config = config
    FakePeerConnection.instances.push(this)
  }

  addTransceiver(kind: string, init?: RTCRtpTransceiverInit) {
    this.transceivers.push({ kind, init })
    return {} as RTCRtpTransceiver
  }

  async createOffer(): Promise<RTCSessionDescriptionInit> {
    return { type: 'offer', sdp: `v=0\r\no=offer ${FakePeerConnection.instances.indexOf(this)}\r\n` }
  }

  async setLocalDescription(d: RTCSessionDescriptionInit) {
    if (this.closed) throw new Error('closed')
    this.localDescription = d
  }

  async setRemoteDescription(d: RTCSessionDescriptionInit) {
    if (this.closed) throw new Error('closed')
    if (!d.sdp?.startsWith('v=0')) throw new Error('bad sdp')
    this.remoteDescription = d
  }

  async getStats() {
    if (!this.frozen) this.bytesReceived += 1000
    const audio = { type: 'inbound-rtp', kind: 'audio', packetsReceived: this.audioPackets, totalSamplesReceived: this.audioSamples, codecId: 'CA' }
    return new Map<string, unknown>([
      ['a', audio],
      ['v', { type: 'inbound-rtp', kind: 'video', framesDecoded: this.framesDecoded, bytesReceived: this.bytesReceived }],
      ...(this.audioCodec ? [['CA', { type: 'codec', id: 'CA', mimeType: this.audioCodec }] as [string, unknown]] : []),
    ])
  }

  close() {
    this.closed = true
    this.connectionState = 'closed'
  }

  /** Moves to `state` and fires `connectionstatechange`, as a browser would. */
  setState(state: RTCPeerConnectionState) {
    this.connectionState = state
    this.dispatchEvent(new Event('connectionstatechange'))
  }

  static create = (config: RTCConfiguration) => new FakePeerConnection(config) as unknown as RTCPeerConnection

  static reset() {
    FakePeerConnection.instances = []
  }
}

/** Lets pending promise callbacks run. */
export async function flush(times = 10): Promise<void> {
  for (let i = 0; i < times; i++) await Promise.resolve()
}

/** happy-dom's MediaStream is an empty shell; this one holds tracks. */
export class FakeMediaStream {
  private tracks: MediaStreamTrack[] = []
  getTracks() {
    return [...this.tracks]
  }
  addTrack(t: MediaStreamTrack) {
    this.tracks.push(t)
  }
}
