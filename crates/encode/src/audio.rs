//! [`G711Transcoder`]: a camera's G.711 to AAC, once, at ingest
//! (`docs/design/audio.md`): neither browsers nor HLS play G.711 in MP4.
//!
//! `appsrc ! alawdec|mulawdec ! audioconvert ! audioresample !
//! audio/x-raw,rate=16000 ! avenc_aac ! appsink`. It implements
//! [`AudioTranscoder`], so `reallive-rtsp` transcodes without linking
//! GStreamer; [`start_audio_transcoder`] is the factory the NVR hands it.
//!
//! `push` never blocks: the source queue is bounded (a second of audio),
//! and a packet that does not fit is dropped. The AAC frames are offered
//! to the [`AudioSender`] from the appsink's streaming thread, never
//! blocking it either, with the pts of the packets pushed.
//!
//! [`OpusTranscoder`] goes the other way for live viewers: a camera's AAC
//! or G.711 to Opus, which WebRTC plays, started through
//! [`start_opus_transcoder`] while at least one viewer wants audio, with
//! the same non-blocking contract.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::reencode::BoxError;
use reallive_core::time::ns_to_90k;
use reallive_core::{
    AudioCodec, AudioFrame, AudioParameters, AudioSender, AudioTranscoder, CameraAudio, G711,
    StartAudioTranscoder, StartOpusTranscoder,
};

use crate::EncodeError;

/// The AAC's sample rate. A camera's G.711 is 8 kHz; 16 kHz (AAC-LC's
/// usual speech rate) is played by every browser and HLS player, where
/// 8 kHz AAC is not everywhere.
pub const AAC_RATE: u32 = 16_000;

/// Samples in one AAC-LC frame.
const AAC_FRAME: u32 = 1024;

/// The AAC encoder's priming delay: its first frame starts this many
/// samples before the first input sample. libav's encoder reports it but
/// GStreamer stamps the first frame with the first input's time; the
/// recorder has no edit list, so the delay is taken out of the pts here.
const ENCODER_DELAY: u32 = 1024;

/// At most this much G.711 waits for the encoder.
const QUEUE_BYTES: u64 = 16 * 1024;

/// A running G.711-to-AAC pipeline.
#[derive(Debug)]
pub struct G711Transcoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    rate: u32,
    channels: u8,
    /// The first packet's pts: the pipeline's time 0.
    base_90k: Arc<OnceLock<i64>>,
}

impl G711Transcoder {
    /// Starts transcoding `law` at `rate` Hz with `channels` channels;
    /// AAC goes to `out`.
    pub fn start(
        law: G711,
        rate: u32,
        channels: u8,
        out: AudioSender,
    ) -> Result<Self, EncodeError> {
        if !(4_000..=48_000).contains(&rate) || !(1..=2).contains(&channels) {
            return Err(EncodeError::InvalidArgument(format!(
                "G.711 at {rate} Hz with {channels} channels: expected 4000..=48000 Hz, 1 or 2 channels"
            )));
        }
        gst::init().map_err(|e| build_error(e.to_string()))?;
        let (caps, decoder) = match law {
            G711::ALaw => ("audio/x-alaw", "alawdec"),
            G711::MuLaw => ("audio/x-mulaw", "mulawdec"),
        };
        let src = gst_app::AppSrc::builder()
            .caps(
                &gst::Caps::builder(caps)
                    .field("rate", i32::try_from(rate).unwrap_or(8000))
                    .field("channels", i32::from(channels))
                    .build(),
            )
            .format(gst::Format::Time)
            .block(false)
            .max_bytes(QUEUE_BYTES)
            .leaky_type(gst_app::AppLeakyType::Upstream)
            .build();
        let make = |name: &'static str| {
            gst::ElementFactory::make(name)
                .build()
                .map_err(|_| EncodeError::MissingElement {
                    element: name,
                    package: match name {
                        "avenc_aac" => "gstreamer1.0-libav",
                        _ => "gstreamer1.0-plugins-good",
                    },
                })
        };
        let decode = make(decoder)?;
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let filter = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("rate", AAC_RATE as i32)
                    .field("channels", i32::from(channels))
                    .build(),
            )
            .build()
            .map_err(|e| build_error(format!("capsfilter: {e}")))?;
        let encode = make("avenc_aac")?;
        let sink = gst_app::AppSink::builder()
            .caps(
                &gst::Caps::builder("audio/mpeg")
                    .field("mpegversion", 4)
                    .field("stream-format", "raw")
                    .build(),
            )
            .max_buffers(16)
            .drop(true)
            .sync(false)
            .build();
        let base_90k: Arc<OnceLock<i64>> = Arc::default();
        let base = base_90k.clone();
        let params: Mutex<Option<(Bytes, Arc<AudioParameters>)>> = Mutex::new(None);
        offer_samples(&sink, out, move |sample| aac_frame(sample, &params, &base));
        let pipeline = gst::Pipeline::new();
        let elements = [
            src.upcast_ref(),
            &decode,
            &convert,
            &resample,
            &filter,
            &encode,
            sink.upcast_ref(),
        ];
        crate::add_linked(&pipeline, &elements).map_err(build_error)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| build_error("the G.711 transcoder would not start".into()))?;
        Ok(G711Transcoder {
            pipeline,
            src,
            rate,
            channels,
            base_90k,
        })
    }

    /// Hands over one G.711 packet starting at `pts_90k`. Never blocks.
    pub fn push(&mut self, data: Bytes, pts_90k: i64) -> Result<(), EncodeError> {
        if let Some(e) = bus_error(&self.pipeline) {
            return Err(build_error(e));
        }
        let base = *self.base_90k.get_or_init(|| pts_90k);
        let samples = data.len() as u64 / u64::from(self.channels.max(1));
        let mut buffer = gst::Buffer::from_slice(data);
        if let Some(b) = buffer.get_mut() {
            let since = u64::try_from(pts_90k - base).unwrap_or(0);
            b.set_pts(gst::ClockTime::from_nseconds(since * 100_000 / 9));
            b.set_duration(gst::ClockTime::from_nseconds(
                samples * 1_000_000_000 / u64::from(self.rate.max(1)),
            ));
        }
        // A full queue drops the packet (the appsrc is leaky): a gap, not
        // a wait.
        let _ = self.src.push_buffer(buffer);
        Ok(())
    }
}

/// One AAC frame out of the encoder, on the input's clock.
/// Offers each sample of `sink`, made a frame by `frame` (`None`: skipped),
/// to `out` from the streaming thread, never blocking it; once nobody
/// receives any more, the pipeline's work stops (EOS upstream).
fn offer_samples(
    sink: &gst_app::AppSink,
    out: AudioSender,
    frame: impl Fn(&gst::Sample) -> Option<AudioFrame> + Send + Sync + 'static,
) {
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(frame) = frame(&sample) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                match out.offer(frame) {
                    reallive_core::Offer::Closed => Err(gst::FlowError::Eos),
                    _ => Ok(gst::FlowSuccess::Ok),
                }
            })
            .build(),
    );
}

fn aac_frame(
    sample: &gst::Sample,
    params: &Mutex<Option<(Bytes, Arc<AudioParameters>)>>,
    base: &OnceLock<i64>,
) -> Option<AudioFrame> {
    let config = sample
        .caps()?
        .structure(0)?
        .get::<gst::Buffer>("codec_data")
        .ok()?;
    let config = Bytes::copy_from_slice(&config.map_readable().ok()?);
    let params = {
        let mut p = params.lock().unwrap_or_else(PoisonError::into_inner);
        match p.as_ref() {
            Some((c, a)) if *c == config => a.clone(),
            _ => {
                let a = Arc::new(AudioParameters::aac(config.clone()).ok()?);
                *p = Some((config, a.clone()));
                a
            }
        }
    };
    let buffer = sample.buffer()?;
    let map = buffer.map_readable().ok()?;
    let delay_90k = i64::from(ENCODER_DELAY) * 90_000 / i64::from(params.sample_rate.max(1));
    let pts_90k = *base.get()? + buffer.pts().map_or(0, |t| ns_to_90k(t.nseconds())) - delay_90k;
    let duration_90k = buffer.duration().map_or_else(
        || AAC_FRAME * 90_000 / params.sample_rate.max(1),
        |d| ns_to_90k(d.nseconds()) as u32,
    );
    Some(AudioFrame {
        data: Bytes::copy_from_slice(&map),
        pts_90k,
        duration_90k,
        params,
    })
}

impl AudioTranscoder for G711Transcoder {
    fn push(&mut self, data: Bytes, pts_90k: i64) -> Result<(), BoxError> {
        G711Transcoder::push(self, data, pts_90k).map_err(Into::into)
    }
}

impl Drop for G711Transcoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The factory `reallive-rtsp` takes: one [`G711Transcoder`] per camera
/// session with G.711 audio.
pub fn start_audio_transcoder() -> StartAudioTranscoder {
    Arc::new(|law, rate, channels, out| {
        G711Transcoder::start(law, rate, channels, out)
            .map(|t| Box::new(t) as Box<dyn AudioTranscoder>)
            .map_err(Into::into)
    })
}

/// The Opus output: 48 kHz mono, what WebRTC plays.
const OPUS_CHANNELS: u8 = 1;

/// Opus's bitrate for speech and room sound (a microphone, a camera's),
/// not music, bit/s.
pub const OPUS_BITRATE: i32 = 32_000;

/// Opus packet length, ms.
const OPUS_FRAME_MS: u32 = 20;

/// The packet loss libopus is told to expect, %: in-band FEC spends bits
/// only when this is above zero.
const OPUS_EXPECTED_LOSS: i32 = 10;

/// RealLive's one Opus encoder, for whatever sound goes to browsers (the
/// pusher's microphone, a camera's audio transcoded live): `opusenc` with
/// [`OPUS_BITRATE`], 20 ms frames and in-band FEC for 10 % expected loss.
/// Feed it 48 kHz raw audio.
pub fn opus_encoder() -> Result<gst::Element, EncodeError> {
    gst::init().map_err(|e| opus_error(e.to_string()))?;
    let enc =
        gst::ElementFactory::make("opusenc")
            .build()
            .map_err(|_| EncodeError::MissingElement {
                element: "opusenc",
                package: "gstreamer1.0-plugins-base",
            })?;
    enc.set_property("bitrate", OPUS_BITRATE);
    let frame_size = enc
        .find_property("frame-size")
        .and_then(|p| gst::glib::EnumClass::with_type(p.value_type()))
        .and_then(|c| c.to_value_by_nick(&OPUS_FRAME_MS.to_string()))
        .ok_or_else(|| opus_error(format!("opusenc has no {OPUS_FRAME_MS} ms frame size")))?;
    enc.set_property_from_value("frame-size", &frame_size);
    enc.set_property("inband-fec", true);
    enc.set_property("packet-loss-percentage", OPUS_EXPECTED_LOSS);
    Ok(enc)
}

/// A running AAC- or G.711-to-Opus pipeline, for live viewers.
///
/// `appsrc ! aacparse ! avdec_aac | alawdec|mulawdec ! audioconvert !
/// audioresample ! audio/x-raw,rate=48000,channels=1 ! opusenc ! appsink`:
/// 20 ms packets at 32 kbit/s with in-band FEC ([`opus_encoder`]), each an [`AudioFrame`]
/// with [`AudioParameters::opus(1)`](AudioParameters::opus) and a pts on
/// the input's clock. `push` never blocks (a second of input queues at
/// most, then packets are dropped); the Opus packets are offered to the
/// [`AudioSender`] from the appsink's thread. A packet the decoder cannot
/// read is skipped (`max-errors=-1`): a gap, not a failure, logged (the
/// first at `warn`, the rest at `debug`); an error that stops the
/// pipeline is returned by the next `push`.
#[derive(Debug)]
pub struct OpusTranscoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// 90 kHz ticks of one input packet when its size does not say (AAC).
    frame_90k: Option<u32>,
    /// G.711 bytes (samples) per second: rate × channels.
    bytes_per_second: u64,
    base_90k: Arc<OnceLock<i64>>,
    /// Warnings from the pipeline (input it could not decode).
    warnings: u64,
}

impl OpusTranscoder {
    /// Starts transcoding `input` to Opus; packets go to `out`.
    pub fn start(input: &CameraAudio, out: AudioSender) -> Result<Self, EncodeError> {
        gst::init().map_err(|e| opus_error(e.to_string()))?;
        let make = |name: &'static str| {
            gst::ElementFactory::make(name)
                .build()
                .map_err(|_| EncodeError::MissingElement {
                    element: name,
                    package: match name {
                        "avdec_aac" => "gstreamer1.0-libav",
                        "aacparse" => "gstreamer1.0-plugins-good",
                        "alawdec" | "mulawdec" => "gstreamer1.0-plugins-good",
                        _ => "gstreamer1.0-plugins-base",
                    },
                })
        };
        let (caps, decoders, frame_90k, bytes_per_second) = match input {
            CameraAudio::G711 {
                law,
                sample_rate,
                channels,
            } => {
                if !(4_000..=48_000).contains(sample_rate) || !(1..=2).contains(channels) {
                    return Err(EncodeError::InvalidArgument(format!(
                        "G.711 at {sample_rate} Hz with {channels} channels: expected 4000..=48000 Hz, 1 or 2 channels"
                    )));
                }
                let (caps, decoder) = match law {
                    G711::ALaw => ("audio/x-alaw", "alawdec"),
                    G711::MuLaw => ("audio/x-mulaw", "mulawdec"),
                };
                let caps = gst::Caps::builder(caps)
                    .field("rate", i32::try_from(*sample_rate).unwrap_or(8000))
                    .field("channels", i32::from(*channels))
                    .build();
                (
                    caps,
                    vec![make(decoder)?],
                    None,
                    u64::from(*sample_rate) * u64::from(*channels),
                )
            }
            CameraAudio::Aac(params) => {
                if params.codec != AudioCodec::Aac || params.sample_rate == 0 {
                    return Err(EncodeError::InvalidArgument(format!(
                        "{} at {} Hz is not AAC input",
                        params.codec, params.sample_rate
                    )));
                }
                let caps = gst::Caps::builder("audio/mpeg")
                    .field("mpegversion", 4)
                    .field("stream-format", "raw")
                    .field("codec_data", gst::Buffer::from_slice(params.config.clone()))
                    .build();
                let decode = make("avdec_aac")?;
                if decode.find_property("max-errors").is_some() {
                    decode.set_property("max-errors", -1i32);
                }
                (
                    caps,
                    vec![make("aacparse")?, decode],
                    Some(AAC_FRAME * 90_000 / params.sample_rate),
                    0,
                )
            }
        };
        let src = gst_app::AppSrc::builder()
            .caps(&caps)
            .format(gst::Format::Time)
            .block(false)
            .max_bytes(QUEUE_BYTES)
            .leaky_type(gst_app::AppLeakyType::Upstream)
            .build();
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let filter = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("rate", 48_000i32)
                    .field("channels", i32::from(OPUS_CHANNELS))
                    .build(),
            )
            .build()
            .map_err(|e| opus_error(format!("capsfilter: {e}")))?;
        let encode = opus_encoder()?;
        let sink = gst_app::AppSink::builder()
            .caps(&gst::Caps::builder("audio/x-opus").build())
            .max_buffers(16)
            .drop(true)
            .sync(false)
            .build();
        let base_90k: Arc<OnceLock<i64>> = Arc::default();
        let base = base_90k.clone();
        let params = Arc::new(AudioParameters::opus(OPUS_CHANNELS));
        offer_samples(&sink, out, move |sample| opus_frame(sample, &params, &base));
        let pipeline = gst::Pipeline::new();
        let mut elements: Vec<&gst::Element> = vec![src.upcast_ref()];
        elements.extend(decoders.iter());
        elements.extend([&convert, &resample, &filter, &encode, sink.upcast_ref()]);
        crate::add_linked(&pipeline, &elements).map_err(opus_error)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| opus_error("the Opus transcoder would not start".into()))?;
        Ok(OpusTranscoder {
            pipeline,
            src,
            frame_90k,
            bytes_per_second,
            base_90k,
            warnings: 0,
        })
    }

    /// Hands over one input packet (G.711, or one raw AAC frame) starting
    /// at `pts_90k`. Never blocks.
    pub fn push(&mut self, data: Bytes, pts_90k: i64) -> Result<(), EncodeError> {
        crate::check_bus(&self.pipeline, "Opus transcoder", &mut self.warnings)
            .map_err(opus_error)?;
        let base = *self.base_90k.get_or_init(|| pts_90k);
        let Ok(since) = u64::try_from(pts_90k - base) else {
            // Before the first packet: out of order, dropped.
            return Ok(());
        };
        let duration_ns = match self.frame_90k {
            Some(d) => u64::from(d) * 100_000 / 9,
            None => data.len() as u64 * 1_000_000_000 / self.bytes_per_second.max(1),
        };
        let mut buffer = gst::Buffer::from_slice(data);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(since * 100_000 / 9));
            b.set_duration(gst::ClockTime::from_nseconds(duration_ns));
        }
        // A full queue drops the packet (the appsrc is leaky): a gap, not
        // a wait.
        let _ = self.src.push_buffer(buffer);
        Ok(())
    }
}

/// One Opus packet out of the encoder, on the input's clock.
fn opus_frame(
    sample: &gst::Sample,
    params: &Arc<AudioParameters>,
    base: &OnceLock<i64>,
) -> Option<AudioFrame> {
    let buffer = sample.buffer()?;
    // The stream headers (OpusHead, OpusTags) come as buffers too.
    if buffer.flags().contains(gst::BufferFlags::HEADER) {
        return None;
    }
    let map = buffer.map_readable().ok()?;
    // opusenc stamps its first packet as starting at the first input
    // sample and shortens it by the encoder's delay (the pre-skip): yet
    // every packet decodes to a full 20 ms, the first starting pre-skip
    // early. A packet starts 20 ms before it ends.
    let duration_90k = OPUS_FRAME_MS * 90;
    let end_ns = buffer.pts()?.nseconds() + buffer.duration().map_or(0, |d| d.nseconds());
    let pts_90k = *base.get()? + ns_to_90k(end_ns) - i64::from(duration_90k);
    Some(AudioFrame {
        data: Bytes::copy_from_slice(&map),
        pts_90k,
        duration_90k,
        params: params.clone(),
    })
}

impl AudioTranscoder for OpusTranscoder {
    fn push(&mut self, data: Bytes, pts_90k: i64) -> Result<(), BoxError> {
        OpusTranscoder::push(self, data, pts_90k).map_err(Into::into)
    }
}

impl Drop for OpusTranscoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The factory the relay takes: one [`OpusTranscoder`] per camera whose
/// audio live viewers want, while they want it.
pub fn start_opus_transcoder() -> StartOpusTranscoder {
    Arc::new(|input, out| {
        OpusTranscoder::start(&input, out)
            .map(|t| Box::new(t) as Box<dyn AudioTranscoder>)
            .map_err(Into::into)
    })
}

/// The first error on `pipeline`'s bus, if it stopped.
fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(e.error().to_string()),
        _ => None,
    }
}

fn opus_error(detail: String) -> EncodeError {
    EncodeError::Build {
        encoder: "audio to Opus",
        detail,
    }
}

fn build_error(detail: String) -> EncodeError {
    EncodeError::Build {
        encoder: "G.711 to AAC",
        detail,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use reallive_core::{AudioCodec, audio_channel};

    use super::*;

    /// A real pipeline: a second of A-law silence in 20 ms packets comes
    /// out as 16 kHz AAC frames on the input's clock.
    #[tokio::test]
    async fn a_law_becomes_aac_on_the_inputs_clock() {
        let (tx, mut rx) = audio_channel(64);
        let mut t = G711Transcoder::start(G711::ALaw, 8000, 1, tx).unwrap();
        let start = 900_000;
        for i in 0..50 {
            // 0xd5 is A-law's zero.
            t.push(Bytes::from(vec![0xd5; 160]), start + i * 1800)
                .unwrap();
        }
        let mut frames = Vec::new();
        while frames.len() < 12 {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some(f)) => frames.push(f),
                _ => break,
            }
        }
        assert!(frames.len() >= 12, "{} AAC frames", frames.len());
        let p = &frames[0].params;
        assert_eq!(
            (p.codec, p.sample_rate, p.channels),
            (AudioCodec::Aac, 16_000, 1)
        );
        // The first frame holds the encoder's priming, 64 ms before the input.
        assert_eq!(frames[0].pts_90k, start - 5760);
        for w in frames.windows(2) {
            assert_eq!(w[0].duration_90k, 5760);
            assert_eq!(w[1].pts_90k - w[0].pts_90k, 5760);
        }
    }
}
