#!/usr/bin/env python3
"""Writes the named seeds of the rtsp_ingest fuzz target into
fuzz/corpus/rtsp_ingest/: what a camera sends after PLAY, as RTP in `$`
interleaved frames on channel 0 (RTCP on 1), packetised from the first
frames of crates/store/testdata's ball clips (H.264 constrained baseline,
two slices a picture; H.265 one slice), 30 fps at 90 kHz.

The first byte of each seed is the target's mode (fuzz_targets/rtsp_ingest.rs):
bit 0 H.265, bit 1 parameter sets in the SDP, bits 2-3 the SDP's tracks.

    python3 fuzz/gen_rtsp_ingest.py
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "crates", "store", "testdata")
OUT = os.path.join(HERE, "corpus", "rtsp_ingest")

H265, SPROP = 1, 2
AUDIO_FIRST, AUDIO_AFTER, AUDIO_ONLY = 4, 8, 12

SSRC = 0x5EED1234
TICKS = 3000  # 30 fps at 90 kHz
MAX_PAYLOAD = 120  # small, so that slices go as fragmentation units


def nal_units(path):
    """The NAL units of an Annex-B file, without start codes."""
    data = open(path, "rb").read()
    units, i = [], 0
    starts = []
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        unit = data[s:e].rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def h264_type(n):
    return n[0] & 0x1F


def h265_type(n):
    return (n[0] >> 1) & 0x3F


def h264_pictures(units):
    """Access units as lists of NAL units, split at each AUD (type 9)."""
    aus = []
    for n in units:
        if h264_type(n) == 9 or not aus:
            aus.append([])
        aus[-1].append(n)
    return aus


def h265_pictures(units):
    """Access units: the non-VCL units before a picture, then its slice."""
    aus, pending = [], []
    for n in units:
        pending.append(n)
        if h265_type(n) < 32:  # VCL: one slice a picture in this clip
            aus.append(pending)
            pending = []
    return aus


class Rtp:
    def __init__(self, seq, ts0, pt=96):
        self.seq, self.ts0, self.pt = seq, ts0, pt

    def packet(self, frame, payload, marker):
        head = struct.pack(
            ">BBHII",
            0x80,
            (0x80 if marker else 0) | self.pt,
            self.seq & 0xFFFF,
            (self.ts0 + frame * TICKS) & 0xFFFFFFFF,
            SSRC,
        )
        self.seq += 1
        return head + payload


def interleaved(packet, channel=0, extra=0):
    """A `$` frame; `extra` makes its length wrong."""
    return b"$" + bytes([channel]) + struct.pack(">H", len(packet) + extra) + packet


def h264_payloads(nal):
    """RTP payloads of one NAL unit: single, or FU-A fragments."""
    if len(nal) <= MAX_PAYLOAD:
        return [nal]
    hdr, body = nal[0], nal[1:]
    out = []
    for i in range(0, len(body), MAX_PAYLOAD - 2):
        chunk = body[i : i + MAX_PAYLOAD - 2]
        s = 0x80 if i == 0 else 0
        e = 0x40 if i + MAX_PAYLOAD - 2 >= len(body) else 0
        out.append(bytes([(hdr & 0xE0) | 28, s | e | (hdr & 0x1F)]) + chunk)
    return out


def stap_a(nals):
    nri = max(n[0] & 0x60 for n in nals)
    return bytes([nri | 24]) + b"".join(struct.pack(">H", len(n)) + n for n in nals)


def h265_payloads(nal):
    """RTP payloads of one NAL unit: single, or FU (type 49) fragments."""
    if len(nal) <= MAX_PAYLOAD:
        return [nal]
    t, body = h265_type(nal), nal[2:]
    ph = bytes([(nal[0] & 0x81) | (49 << 1), nal[1]])
    out = []
    for i in range(0, len(body), MAX_PAYLOAD - 3):
        chunk = body[i : i + MAX_PAYLOAD - 3]
        s = 0x80 if i == 0 else 0
        e = 0x40 if i + MAX_PAYLOAD - 3 >= len(body) else 0
        out.append(ph + bytes([s | e | t]) + chunk)
    return out


def h265_ap(nals):
    return bytes([48 << 1, 1]) + b"".join(struct.pack(">H", len(n)) + n for n in nals)


def sender_report(ts):
    """RTCP SR (PT 200) for the stream, no report blocks."""
    return struct.pack(">BBHIIIIII", 0x80, 200, 6, SSRC, 0xE8E0_0000, 0, ts, 10, 2000)


def packets_h264(aus, frames, inband, aud=False, stap=True):
    """(picture index, RTP payloads) for the pictures `frames` of `aus`."""
    out = []
    for f in frames:
        payloads = []
        params = [n for n in aus[f] if h264_type(n) in (7, 8)]
        if inband and params:
            if stap:
                payloads.append(stap_a(params))
            else:
                payloads.extend(params)
        for n in aus[f]:
            t = h264_type(n)
            if t in (1, 5) or (aud and t == 9):
                payloads.extend(h264_payloads(n))
        out.append((f, payloads))
    return out


def packets_h265(aus, frames, inband):
    out = []
    for f in frames:
        payloads = []
        params = [n for n in aus[f] if h265_type(n) in (32, 33, 34)]
        if inband and params:
            payloads.append(h265_ap(params))
        for n in aus[f]:
            if h265_type(n) < 32:
                payloads.extend(h265_payloads(n))
        out.append((f, payloads))
    return out


def stream(pictures, rtp, hole=None, wrong_length=None, truncate_before=None, sr_after=None):
    """The byte stream, the last packet of each picture marked: `hole`
    (picture, packet index) is left out, the
    `$` length of `wrong_length`'s packet is 4 too long, a truncated RTP
    header goes before picture `truncate_before`, an RTCP SR after
    picture `sr_after`."""
    out = b""
    for f, payloads in pictures:
        if f == truncate_before:
            out += interleaved(rtp.packet(f, b"", False)[:8])
            rtp.seq -= 1
        for i, p in enumerate(payloads):
            pkt = rtp.packet(f, p, i == len(payloads) - 1)
            if (f, i) == hole:
                continue
            out += interleaved(pkt, extra=4 if (f, i) == wrong_length else 0)
        if f == sr_after:
            out += interleaved(sender_report((rtp.ts0 + f * TICKS) & 0xFFFFFFFF), channel=1)
    return out


def loss_overflow(slice_nal):
    """Four unmarked packets of one timestamp, each after a hole of half
    the sequence space: the lost-packet count of the access unit passes
    65535."""
    out = b""
    for seq in (0, 0x8000, 0x0001, 0x8002):
        rtp = Rtp(seq, 0)
        out += interleaved(rtp.packet(0, slice_nal, False))
    return out


def loss_wraps_to_zero(aus):
    """An IDR, then a picture that loses 0x7fff + 0x8000 + 1 packets, then
    a P picture."""
    rtp = Rtp(100, 0)
    out = stream(packets_h264(aus, [0], False), rtp)
    s = rtp.seq
    for seq in (s, s + 0x8000, s + 1, s + 3):
        out += interleaved(Rtp(seq & 0xFFFF, 0).packet(1, aus[1][1], False))
    out += interleaved(Rtp((s + 4) & 0xFFFF, 0).packet(2, aus[2][1], True))
    return out


def main():
    h264 = h264_pictures(nal_units(os.path.join(TESTDATA, "ball-160x120-30f.h264")))
    h265 = h265_pictures(nal_units(os.path.join(TESTDATA, "ball-160x120-10f.h265")))
    gop = [0, 1, 2, 3, 4]
    two_gops = [0, 1, 2, 3, 10, 11]
    seeds = {
        # SPS/PPS only in the SDP; IDR slices as FU-A, P slices single.
        "h264-sdp-params": (SPROP, stream(packets_h264(h264, gop, False), Rtp(1000, 0x12345678))),
        # SPS/PPS only in band (a STAP-A, then single NAL units), AUDs,
        # an RTCP sender report, two GOPs, sequence numbers that wrap.
        "h264-inband-params": (
            0,
            stream(
                packets_h264(h264, [0, 1, 2, 3], True, aud=True)
                + packets_h264(h264, [10, 11], True, aud=True, stap=False),
                Rtp(65530, 0xFFFF0000),
                sr_after=1,
            ),
        ),
        # A packet of picture 2 is lost: 2 and 3 are dropped, 10 recovers.
        "h264-seq-hole": (
            SPROP,
            stream(packets_h264(h264, two_gops, False), Rtp(2000, 90000), hole=(2, 0)),
        ),
        # Picture 2's `$` frame says 4 bytes more than it holds.
        "h264-wrong-interleaved-length": (
            SPROP,
            stream(packets_h264(h264, gop, False), Rtp(3000, 0), wrong_length=(2, 0)),
        ),
        # An 8-byte RTP packet before picture 2.
        "h264-truncated-rtp-header": (
            SPROP,
            stream(packets_h264(h264, gop, False), Rtp(4000, 0), truncate_before=2),
        ),
        # An audio track before the video in the SDP.
        "h264-audio-then-video": (
            SPROP | AUDIO_FIRST,
            stream(packets_h264(h264, [0, 1, 2], False), Rtp(5000, 0)),
        ),
        # An open bug (README.md): after a hole, an access unit of an AUD
        # alone (marked) is taken as a keyframe, and the P picture after it
        # is recorded though its reference was lost.
        "crash-keyframe-without-picture": (
            SPROP,
            stream(
                packets_h264(h264, [0, 1, 2, 3], False)
                + [(4, [h264[4][0]])]
                + packets_h264(h264, [4, 5], False),
                Rtp(8000, 0),
                hole=(2, 0),
            ),
        ),
        # retina adds up the packets lost within one access unit in a u16
        # (`pkts += meta.loss`, h264.rs and h265.rs): three losses of
        # 0x7fff and 0x8000 within one timestamp overflow it. README.md.
        "crash-retina-h264-loss-overflow": (SPROP, loss_overflow(h264[1][1])),
        "crash-retina-h265-loss-overflow": (H265 | SPROP, loss_overflow(h265[1][0])),
        # ...and wrapped, as in a release build, 65536 lost packets are
        # none: the P picture after them is recorded, its reference lost.
        "crash-retina-loss-wraps-to-zero": (SPROP, loss_wraps_to_zero(h264)),
        # The SDP has no video at all.
        "no-video": (AUDIO_ONLY, b""),
        # VPS/SPS/PPS in the SDP; the IDR as FUs, then trailing pictures.
        "h265-sdp-params": (
            H265 | SPROP,
            stream(packets_h265(h265, [0, 1, 2, 3, 4], False), Rtp(6000, 0)),
        ),
        # VPS/SPS/PPS in band as an aggregation packet, two GOPs (IDR, CRA).
        "h265-inband-params": (
            H265 | AUDIO_AFTER,
            stream(packets_h265(h265, [0, 1, 2, 5, 6], True), Rtp(7000, 0x7FFFFFFF)),
        ),
    }
    os.makedirs(OUT, exist_ok=True)
    for name, (mode, body) in seeds.items():
        data = bytes([mode]) + body
        assert len(data) <= 8192, (name, len(data))
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
