// A read-only hook for end-to-end tests: `window.__reallive.stats()` lists each
// live player with the frames its video decoder has produced so far and the
// audio it received (samples, codec), and
// `window.__reallive.paths()` what carries each one's media (the selected ICE
// candidate pair's local end: host, srflx or relay; UDP or TCP), and
// `window.__reallive.hls()` how far behind live each HLS fallback plays.

import { activeLiveHls } from './liveHls'
import { activePlayers, type PlayerState } from './player'

export interface CameraStats {
  cameraId: number
  state: PlayerState
  framesDecoded: number
  /** The audio `inbound-rtp`'s `totalSamplesReceived`; 0 without audio. */
  audioSamples: number
  /** The audio codec's MIME type (`audio/opus`); `null` without audio. */
  audioCodec: string | null
}

export async function collectStats(): Promise<CameraStats[]> {
  const players = [...activePlayers]
  return Promise.all(
    players.map(async (p) => {
      const s = await p.inboundStats()
      return {
        cameraId: p.cameraId,
        state: p.state,
        framesDecoded: s.framesDecoded,
        audioSamples: s.audioSamples,
        audioCodec: s.audioCodec,
      }
    }),
  )
}

/** The local end of a player's selected ICE candidate pair. */
export interface CameraPath {
  cameraId: number
  /** `host`, `srflx`, `prflx` or `relay`. */
  candidateType: string | null
  /** `udp` or `tcp`: how this browser sends. */
  protocol: string | null
  /** For a relay candidate: how the browser reaches the TURN server. */
  relayProtocol: string | null
}

interface StatsEntry {
  type?: string
  id?: string
  selectedCandidatePairId?: string
  localCandidateId?: string
  nominated?: boolean
  state?: string
  candidateType?: string
  protocol?: string
  relayProtocol?: string
}

/** The selected pair's local candidate, from a `getStats()` report. */
export function selectedPath(report: Iterable<StatsEntry>): Omit<CameraPath, 'cameraId'> {
  const entries = [...report]
  const byId = new Map(entries.map((e) => [e.id, e]))
  const transport = entries.find((e) => e.type === 'transport' && e.selectedCandidatePairId)
  const pair =
    byId.get(transport?.selectedCandidatePairId) ??
    entries.find((e) => e.type === 'candidate-pair' && e.nominated && e.state === 'succeeded')
  const local = pair ? byId.get(pair.localCandidateId) : undefined
  return {
    candidateType: local?.candidateType ?? null,
    protocol: local?.protocol ?? null,
    relayProtocol: local?.relayProtocol ?? null,
  }
}

export async function collectPaths(): Promise<CameraPath[]> {
  return Promise.all(
    [...activePlayers].map(async (p) => {
      const pc = p.session?.pc
      let report: Iterable<StatsEntry> = []
      try {
        if (pc) report = ((await pc.getStats()) as Map<string, StatsEntry>).values()
      } catch {
        // A closed connection has no path.
      }
      return { cameraId: p.cameraId, ...selectedPath(report) }
    }),
  )
}

/** How far behind live an HLS fallback plays, as hls.js sees it. */
export interface HlsLatency {
  /** Wall clock now minus the PROGRAM-DATE-TIME of the frame playing, ms. */
  behindLiveMs: number | null
  /** hls.js `latency`: seconds from the playhead to the playlist's live edge. */
  latency: number
  /** hls.js `targetLatency` (the playlist's PART-HOLD-BACK in LL mode), s. */
  targetLatency: number | null
  lowLatencyMode: boolean
}

export function collectHls(now: number = Date.now()): HlsLatency[] {
  return [...activeLiveHls].map((h) => {
    const playing = h.playingDate
    return {
      behindLiveMs: playing ? now - playing.getTime() : null,
      latency: h.latency,
      targetLatency: h.targetLatency,
      lowLatencyMode: h.lowLatencyMode,
    }
  })
}

declare global {
  interface Window {
    readonly __reallive?: {
      readonly stats: () => Promise<CameraStats[]>
      readonly paths: () => Promise<CameraPath[]>
      readonly hls: () => HlsLatency[]
    }
  }
}

export function installTestHook(target: Window = window): void {
  if (Object.prototype.hasOwnProperty.call(target, '__reallive')) return
  Object.defineProperty(target, '__reallive', {
    value: Object.freeze({ stats: collectStats, paths: collectPaths, hls: () => collectHls() }),
    writable: false,
    configurable: false,
    enumerable: false,
  })
}
