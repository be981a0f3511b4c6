import { describe, expect, it } from 'vitest'
import { readInbound } from '../../src/lib/rtcStats'

/** An RTCStatsReport as Chromium sends one: maplike, keyed by id, many more entries than read. */
function report(entries: Record<string, unknown>[]): Map<string, Record<string, unknown>> {
  return new Map(entries.map((e, i) => [String(e.id ?? i), e]))
}

describe('readInbound', () => {
  it('reads video frames and bytes, audio packets, samples and the codec it names', () => {
    const r = report([
      { id: 'T01', type: 'transport', bytesReceived: 999_999 },
      // The codec entry before the RTP entry that names it, as Chromium orders them.
      { id: 'CIT01_111', type: 'codec', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
      { id: 'CIT01_96', type: 'codec', mimeType: 'video/H264', clockRate: 90000 },
      { id: 'IT01V', type: 'inbound-rtp', kind: 'video', codecId: 'CIT01_96', framesDecoded: 120, bytesReceived: 500_000, packetsReceived: 600 },
      { id: 'IT01A', type: 'inbound-rtp', kind: 'audio', codecId: 'CIT01_111', packetsReceived: 200, totalSamplesReceived: 192_000, bytesReceived: 16_000 },
      { id: 'OT01A', type: 'remote-outbound-rtp', kind: 'audio', packetsSent: 5000 },
    ])
    expect(readInbound(r)).toEqual({
      framesDecoded: 120,
      videoBytes: 500_000,
      audioPackets: 200,
      audioSamples: 192_000,
      audioCodec: 'audio/opus',
    })
  })

  it('gives zeros and no codec for a camera without sound', () => {
    const r = report([
      { id: 'IT01V', type: 'inbound-rtp', kind: 'video', framesDecoded: 7, bytesReceived: 900 },
      // The recvonly audio transceiver: an entry may exist, with nothing in it.
      { id: 'IT01A', type: 'inbound-rtp', kind: 'audio' },
    ])
    expect(readInbound(r)).toMatchObject({ framesDecoded: 7, audioPackets: 0, audioSamples: 0, audioCodec: null })
    expect(readInbound(report([]))).toEqual({ framesDecoded: 0, videoBytes: 0, audioPackets: 0, audioSamples: 0, audioCodec: null })
  })

  it('reads older browsers’ mediaType, and a codec id without its entry as unknown', () => {
    const r = report([
      { id: 'v', type: 'inbound-rtp', mediaType: 'video', framesDecoded: 3 },
      { id: 'a', type: 'inbound-rtp', mediaType: 'audio', codecId: 'gone', packetsReceived: 4, totalSamplesReceived: 3840 },
    ])
    expect(readInbound(r)).toMatchObject({ framesDecoded: 3, audioPackets: 4, audioSamples: 3840, audioCodec: null })
  })
})
