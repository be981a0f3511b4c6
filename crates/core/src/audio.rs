//! Audio tracks beside the video: the codecs RealLive records and the
//! out-of-band configuration a decoder needs.
//!
//! An audio track is described once, by [`AudioParameters`], the way a video
//! track is by [`CodecParameters`](crate::CodecParameters); its frames are
//! raw codec packets (one Opus packet, or one raw AAC frame without an ADTS
//! header).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::Error;
use crate::reencode::BoxError;

/// An audio codec RealLive can record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// Opus (RFC 6716), always 48 kHz inside: what WebRTC and browsers speak.
    Opus,
    /// AAC (ISO/IEC 14496-3): what most IP cameras send over RTSP.
    Aac,
}

impl AudioCodec {
    /// Short lowercase name: `opus` or `aac`.
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Opus => "opus",
            AudioCodec::Aac => "aac",
        }
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a decoder needs to know about an audio track before its first
/// packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioParameters {
    /// The codec.
    pub codec: AudioCodec,
    /// Samples per second per channel; also the track's media timescale.
    /// Always 48000 for Opus, whatever the input rate was.
    pub sample_rate: u32,
    /// Channels decoded.
    pub channels: u8,
    /// Samples the decoder drops from the start of the stream (Opus
    /// encoder delay, at 48 kHz); 0 for AAC.
    pub pre_skip: u16,
    /// The codec's own configuration:
    /// - AAC: the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), 2 bytes
    ///   or more, as in an SDP's `config=` or an MP4 `esds`;
    /// - Opus: empty, when `channels`, `sample_rate` and `pre_skip` say it
    ///   all (one or two channels), or the `OpusHead` identification header
    ///   (RFC 7845 §5.1) when the encoder gave one, which then wins.
    pub config: Bytes,
}

/// One audio packet as a source delivers it, beside its video.
#[derive(Clone)]
pub struct AudioFrame {
    /// One Opus packet, or one raw AAC frame (no ADTS header).
    pub data: Bytes,
    /// Presentation time, 90 kHz, on the same running clock as the
    /// source's video [`EncodedFrame::pts_90k`](crate::EncodedFrame).
    pub pts_90k: i64,
    /// How long it plays, 90 kHz.
    pub duration_90k: u32,
    /// The track it belongs to.
    pub params: Arc<AudioParameters>,
}

impl fmt::Debug for AudioFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioFrame")
            .field("len", &self.data.len())
            .field("pts_90k", &self.pts_90k)
            .field("duration_90k", &self.duration_90k)
            .field("codec", &self.params.codec)
            .finish()
    }
}

/// G.711's two companding laws, as IP cameras send them over RTSP
/// (`PCMA`, `PCMU`): 8-bit samples, usually at 8 kHz.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum G711 {
    /// A-law (`PCMA`).
    ALaw,
    /// µ-law (`PCMU`).
    MuLaw,
}

/// A running audio transcoder: packets of one codec in, another codec's
/// out, on the same clock. `reallive-encode` implements it with
/// GStreamer, so the crates that ingest, record and relay
/// (`reallive-rtsp`, `reallive-record`, `reallive-relay`) build without it.
/// Two directions use it:
///
/// - G.711 to AAC, once, at ingest ([`StartAudioTranscoder`]): neither
///   browsers nor HLS play G.711 in MP4 (`docs/design/audio.md`);
/// - AAC or G.711 to Opus, for live viewers ([`StartOpusTranscoder`]):
///   WebRTC plays Opus only (`docs/design/live-transcode.md`).
///
/// The output frames go to the [`AudioSender`](crate::AudioSender) it was
/// started with, from the implementation's own thread, with their pts on
/// the clock of the packets pushed (the video's). Dropping it stops its
/// work and releases the sender.
pub trait AudioTranscoder: Send {
    /// Hands over one input packet (one G.711 packet, or one raw AAC frame
    /// without ADTS header) whose first sample plays at `pts_90k`. Never
    /// blocks: when the transcoder falls behind the packet is dropped. An
    /// error means the transcoder has failed for good.
    fn push(&mut self, data: Bytes, pts_90k: i64) -> Result<(), BoxError>;
}

/// Starts an [`AudioTranscoder`] for G.711 of `law` at `sample_rate` Hz
/// with `channels` channels, its AAC offered to the sender.
pub type StartAudioTranscoder = Arc<
    dyn Fn(G711, u32, u8, crate::AudioSender) -> Result<Box<dyn AudioTranscoder>, BoxError>
        + Send
        + Sync,
>;

/// What a camera's audio track is, as an [`AudioTranscoder`] to Opus is
/// told before its first packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraAudio {
    /// G.711 packets (`PCMA`, `PCMU`).
    G711 {
        /// The companding law.
        law: G711,
        /// Samples per second, usually 8000.
        sample_rate: u32,
        /// Channels, 1 or 2.
        channels: u8,
    },
    /// Raw AAC frames described by these parameters (their
    /// AudioSpecificConfig): what an [`AudioFrame`] of codec
    /// [`AudioCodec::Aac`] carries.
    Aac(Arc<AudioParameters>),
}

/// Starts an [`AudioTranscoder`] from `input` to Opus for live viewers:
/// 48 kHz mono, 20 ms packets, about 32 kbit/s, with in-band FEC, each
/// frame carrying [`AudioParameters::opus(1)`](AudioParameters::opus) and
/// a pts on the input's clock, offered to the sender.
pub type StartOpusTranscoder = Arc<
    dyn Fn(CameraAudio, crate::AudioSender) -> Result<Box<dyn AudioTranscoder>, BoxError>
        + Send
        + Sync,
>;

/// Sampling frequencies by `samplingFrequencyIndex` (ISO/IEC 14496-3
/// §1.6.3.4); 13 and 14 are reserved, 15 means the rate follows in 24 bits.
const AAC_SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

const AAC_CONFIG: &str = "AAC AudioSpecificConfig";

impl AudioParameters {
    /// Opus at 48 kHz with `channels` channels and libopus's usual encoder
    /// delay (312 samples) as pre-skip.
    pub fn opus(channels: u8) -> Self {
        AudioParameters {
            codec: AudioCodec::Opus,
            sample_rate: 48_000,
            channels,
            pre_skip: 312,
            config: Bytes::new(),
        }
    }

    /// AAC described by its AudioSpecificConfig, whose sample rate and
    /// channel count are read from it.
    ///
    /// `sample_rate` is the config's `samplingFrequency`; for HE-AAC
    /// signalled explicitly that is the core (half) rate. A config whose
    /// channels are given by a program config element (channelConfiguration
    /// 0) is refused as unsupported.
    pub fn aac(config: Bytes) -> Result<Self, Error> {
        let mut r = BitReader::new(&config);
        let object_type = r.read(5)?;
        if object_type == 31 {
            r.read(6)?; // audioObjectTypeExt
        }
        let sample_rate = match r.read(4)? {
            0xf => r.read(24)?,
            i => *AAC_SAMPLE_RATES.get(i as usize).ok_or_else(|| {
                Error::bitstream(AAC_CONFIG, format!("reserved samplingFrequencyIndex {i}"))
            })?,
        };
        if sample_rate == 0 {
            return Err(Error::bitstream(AAC_CONFIG, "sample rate 0"));
        }
        let channels = match r.read(4)? {
            0 => {
                return Err(Error::Unsupported {
                    what: "AAC channel layout from a program config element".into(),
                });
            }
            c @ 1..=6 => c as u8,
            7 => 8,
            c => {
                return Err(Error::bitstream(
                    AAC_CONFIG,
                    format!("reserved channelConfiguration {c}"),
                ));
            }
        };
        Ok(AudioParameters {
            codec: AudioCodec::Aac,
            sample_rate,
            channels,
            pre_skip: 0,
            config,
        })
    }
}

/// Reads big-endian bit fields, failing past the end.
struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, bit: 0 }
    }

    fn read(&mut self, bits: usize) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..bits {
            let byte = self.data.get(self.bit / 8).ok_or_else(|| {
                Error::bitstream(
                    AAC_CONFIG,
                    format!("{} bytes is too short", self.data.len()),
                )
            })?;
            v = (v << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn aac(config: &[u8]) -> Result<(u32, u8), Error> {
        AudioParameters::aac(Bytes::copy_from_slice(config)).map(|p| (p.sample_rate, p.channels))
    }

    #[test]
    fn aac_configs_give_rate_and_channels() {
        for (config, rate, channels) in [
            // AAC-LC 44.1 kHz stereo: what ffmpeg's encoder writes by default.
            (&[0x12, 0x10][..], 44_100, 2),
            (&[0x11, 0x90], 48_000, 2),
            // 16 kHz mono: a typical IP camera microphone.
            (&[0x14, 0x08], 16_000, 1),
            (&[0x15, 0x88], 8_000, 1),
            // Escaped object type (31 + 6 bits), then 48 kHz mono.
            (&[0xf8, 0x06, 0x20], 48_000, 1),
            // Explicit 24-bit rate (index 15): 44100 = 0x00ac44, 5.1.
            (&[0x17, 0x80, 0x56, 0x22, 0x30], 44_100, 6),
        ] {
            assert_eq!(aac(config).unwrap(), (rate, channels), "{config:02x?}");
        }
        let p = AudioParameters::aac(Bytes::from_static(&[0x12, 0x10])).unwrap();
        assert_eq!(p.codec, AudioCodec::Aac);
        assert_eq!(p.pre_skip, 0);
        assert_eq!(p.config, Bytes::from_static(&[0x12, 0x10]));
    }

    #[test]
    fn bad_aac_configs_are_refused() {
        for (config, why) in [
            (&[][..], "too short"),
            (&[0x12], "too short"),
            (&[0x16, 0x90], "reserved samplingFrequencyIndex 13"),
            (&[0x17, 0x10], "reserved samplingFrequencyIndex 14"),
            (&[0x17, 0x80, 0x56], "too short"),
            (&[0x12, 0x40], "reserved channelConfiguration 8"),
        ] {
            let err = aac(config).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(
                err.to_string().contains(why),
                "{config:02x?}: {err} should say {why}"
            );
        }
        let err = aac(&[0x12, 0x00]).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }

    #[test]
    fn opus_is_48_khz_with_the_usual_pre_skip() {
        let p = AudioParameters::opus(2);
        assert_eq!(
            (p.codec, p.sample_rate, p.channels, p.pre_skip),
            (AudioCodec::Opus, 48_000, 2, 312)
        );
        assert!(p.config.is_empty());
        assert_eq!(p.codec.to_string(), "opus");
    }
}
