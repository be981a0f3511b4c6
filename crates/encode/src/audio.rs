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

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::reencode::BoxError;
use reallive_core::time::ns_to_90k;
use reallive_core::{
    AudioFrame, AudioParameters, AudioSender, AudioTranscoder, G711, StartAudioTranscoder,
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
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(frame) = aac_frame(&sample, &params, &base) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    match out.offer(frame) {
                        // Nobody listens any more: stop the pipeline's work.
                        reallive_core::Offer::Closed => Err(gst::FlowError::Eos),
                        _ => Ok(gst::FlowSuccess::Ok),
                    }
                })
                .build(),
        );
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
        if let Some(bus) = self.pipeline.bus()
            && let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
            && let gst::MessageView::Error(e) = msg.view()
        {
            return Err(build_error(e.error().to_string()));
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
