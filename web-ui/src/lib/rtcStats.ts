// The one reader of a WebRTC `getStats()` report for what a live player
// receives: the player's stall watchdog, its sound detection and the test hook
// all read the same numbers from here.

/** What the receiving side of one peer connection got so far. */
export interface InboundStats {
  /** Video frames the decoder produced. */
  framesDecoded: number
  /** Video payload bytes received: grows while video arrives. */
  videoBytes: number
  /** Audio RTP packets received: 0 when the camera sends no sound. */
  audioPackets: number
  /** Audio samples received (`totalSamplesReceived`), 0 without audio. */
  audioSamples: number
  /** The audio codec's MIME type (`audio/opus`), `null` until known. */
  audioCodec: string | null
}

/** The fields of a stats entry this module reads; a browser sends many more. */
interface StatsEntry {
  type?: string
  id?: string
  /** `kind` in current browsers, `mediaType` in older ones. */
  kind?: string
  mediaType?: string
  framesDecoded?: number
  bytesReceived?: number
  packetsReceived?: number
  totalSamplesReceived?: number
  codecId?: string
  mimeType?: string
}

/** An `RTCStatsReport`, or a `Map` standing in for one. */
export interface StatsLike {
  forEach(fn: (entry: StatsEntry) => void): void
}

export const NO_INBOUND: Readonly<InboundStats> = Object.freeze({
  framesDecoded: 0,
  videoBytes: 0,
  audioPackets: 0,
  audioSamples: 0,
  audioCodec: null,
})

/**
 * Sums the report's `inbound-rtp` entries by kind. Bundled sessions carry one
 * entry per kind; several (a renegotiation) add up, except `framesDecoded`,
 * where the busiest decoder counts.
 */
export function readInbound(report: StatsLike): InboundStats {
  const out: InboundStats = { ...NO_INBOUND }
  const codecs = new Map<string, string>()
  let audioCodecId: string | undefined
  report.forEach((s) => {
    if (s.type === 'codec' && s.id && s.mimeType) codecs.set(s.id, s.mimeType)
    if (s.type !== 'inbound-rtp') return
    const kind = s.kind ?? s.mediaType
    if (kind === 'video') {
      out.framesDecoded = Math.max(out.framesDecoded, s.framesDecoded ?? 0)
      out.videoBytes += s.bytesReceived ?? 0
    } else if (kind === 'audio') {
      out.audioPackets += s.packetsReceived ?? 0
      out.audioSamples += s.totalSamplesReceived ?? 0
      audioCodecId ??= s.codecId
    }
  })
  // The codec entry may come before or after the RTP entry that names it.
  if (audioCodecId != null) out.audioCodec = codecs.get(audioCodecId) ?? null
  return out
}
