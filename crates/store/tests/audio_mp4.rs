//! Files with an audio track beside the video, built from real encoder
//! output and read back by ffprobe and ffmpeg as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reallive_core::{AudioFrame, AudioParameters, Codec, CodecParameters};
use reallive_store::mp4::{self, AudioSample, Sample};
use reallive_test_support::ffprobe;
use serde_json::Value;

/// Video frames per fragment: one GOP of the ball clip, 1/3 s.
const GOP: usize = 10;
const FRAME_90K: u32 = 3000;

/// The ball clip, 30 frames at 30 fps from time 0, as samples.
fn video() -> (Arc<CodecParameters>, Vec<Sample>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join("ball-160x120-30f.h264");
    let frames = reallive_test_support::clip::annex_b_frames(&path, Codec::H264, 0, FRAME_90K);
    let params = frames[0].params.clone();
    let samples = frames
        .into_iter()
        .map(|f| Sample {
            data: f.data,
            duration_90k: FRAME_90K,
            composition_offset_90k: 0,
            keyframe: f.keyframe,
        })
        .collect();
    (params, samples)
}

/// `buffers` × 20 ms of a 1 kHz tone through GStreamer's Opus encoder,
/// mono: one packet per file, read back in order.
fn opus_packets(dir: &Path, buffers: usize) -> Vec<Bytes> {
    let out = dir.join("opus");
    std::fs::create_dir(&out).unwrap();
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "audiotestsrc", &format!("num-buffers={buffers}")])
        .args(["samplesperbuffer=960", "freq=1000", "!"])
        .args(["audio/x-raw,rate=48000,channels=1", "!"])
        .args(["opusenc", "frame-size=20", "bitrate=32000", "!"])
        .arg("multifilesink")
        .arg(format!("location={}/%05d.opus", out.display()))
        .status()
        .expect("gst-launch-1.0 runs (install GStreamer with opusenc)");
    assert!(status.success(), "the Opus encoder pipeline failed");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= buffers, "{} Opus packets", files.len());
    files
        .iter()
        .map(|f| Bytes::from(std::fs::read(f).unwrap()))
        .collect()
}

/// One second of a 1 kHz tone through ffmpeg's AAC-LC encoder at 44.1 kHz
/// stereo, as raw frames cut out of the ADTS stream, and the
/// AudioSpecificConfig the ADTS headers describe.
fn aac_frames(dir: &Path) -> (Bytes, Vec<Bytes>) {
    let path = dir.join("tone.aac");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi"])
        .args(["-i", "sine=frequency=1000:sample_rate=44100", "-t", "1"])
        .args(["-ac", "2", "-c:a", "aac", "-b:a", "64k", "-f", "adts"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs (install ffmpeg)");
    assert!(status.success(), "ffmpeg's AAC encoder failed");
    let adts = std::fs::read(&path).unwrap();
    let (mut frames, mut config, mut pos) = (Vec::new(), None, 0);
    while pos < adts.len() {
        let h = &adts[pos..pos + 7];
        assert_eq!((h[0], h[1] & 0xf6), (0xff, 0xf0), "ADTS sync at {pos}");
        let header_len = if h[1] & 1 == 1 { 7 } else { 9 };
        let object_type = (h[2] >> 6) + 1;
        let rate_index = (h[2] >> 2) & 0xf;
        let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
        let frame_len =
            (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        assert_eq!(h[6] & 3, 0, "one raw data block per ADTS frame");
        config.get_or_insert([
            (object_type << 3) | (rate_index >> 1),
            ((rate_index & 1) << 7) | (channels << 3),
        ]);
        frames.push(Bytes::copy_from_slice(
            &adts[pos + header_len..pos + frame_len],
        ));
        pos += frame_len;
    }
    (Bytes::copy_from_slice(&config.unwrap()), frames)
}

/// Init segment + one fragment per GOP, each with the audio packets that
/// start during it, written to `dir/name`. Fragments listed in
/// `without_audio` carry none (their packets are dropped, as a stalled
/// microphone would).
fn write_file(
    dir: &Path,
    name: &str,
    audio: &AudioParameters,
    packets: &[Bytes],
    packet_duration: u32,
    without_audio: &[usize],
) -> PathBuf {
    let (params, video) = video();
    let mut out = BytesMut::new();
    out.extend_from_slice(&mp4::init_segment_with_audio(&params, audio).unwrap());
    let rate = u64::from(audio.sample_rate);
    let fragments = video.len().div_ceil(GOP);
    let mut next = 0usize;
    for (k, gop) in video.chunks(GOP).enumerate() {
        let video_start = (k * GOP) as u64 * u64::from(FRAME_90K);
        let video_end = video_start + (gop.len() as u64) * u64::from(FRAME_90K);
        let audio_start = next as u64 * u64::from(packet_duration);
        let mut end = next;
        while end < packets.len()
            && (k + 1 == fragments
                || end as u64 * u64::from(packet_duration) * 90_000 < video_end * rate)
        {
            end += 1;
        }
        let samples: Vec<AudioSample> = if without_audio.contains(&k) {
            Vec::new()
        } else {
            packets[next..end]
                .iter()
                .map(|p| AudioSample {
                    data: p.clone(),
                    duration: packet_duration,
                })
                .collect()
        };
        out.extend_from_slice(&mp4::media_segment_with_audio(
            k as u32 + 1,
            video_start,
            gop,
            audio_start,
            &samples,
        ));
        next = end;
    }
    let path = dir.join(name);
    std::fs::write(&path, &out).unwrap();
    path
}

fn json(program: &str, args: &[&str], path: &Path) -> Value {
    let out = Command::new(program)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (install ffmpeg): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.is_empty(),
        "{program}: {stderr}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What ffprobe says about each stream: (type, codec, sample rate, channels).
fn streams(path: &Path) -> Vec<(String, String, Option<u32>, Option<u64>)> {
    let v = json(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,sample_rate,channels",
            "-of",
            "json",
        ],
        path,
    );
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap().to_owned(),
                s["codec_name"].as_str().unwrap().to_owned(),
                s["sample_rate"].as_str().map(|r| r.parse().unwrap()),
                s["channels"].as_u64(),
            )
        })
        .collect()
}

/// The audio stream's time base, its packets' pts in it, and how many
/// frames the decoder produced.
fn audio_packets(path: &Path) -> (String, Vec<i64>, u64) {
    let v = json(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "a",
            "-show_entries",
            "stream=time_base,nb_read_frames:packet=pts",
            "-show_packets",
            "-of",
            "json",
        ],
        path,
    );
    let stream = &v["streams"][0];
    (
        stream["time_base"].as_str().unwrap().to_owned(),
        v["packets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pts"].as_i64().unwrap())
            .collect(),
        stream["nb_read_frames"].as_str().unwrap().parse().unwrap(),
    )
}

/// ffmpeg decodes every stream of the file with nothing to say.
fn assert_decodes(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed: {stderr}");
    assert!(stderr.is_empty(), "ffmpeg complained: {stderr}");
}

fn assert_video_intact(path: &Path) {
    let p = ffprobe::probe(path);
    assert_eq!(p.codec_name, "h264");
    assert_eq!((p.width, p.height), (160, 120));
    assert_eq!(p.frames, 30);
    assert_eq!(p.frame_pts.first().copied(), Some(0.0));
}

#[test]
fn opus_beside_h264_plays_every_packet_20ms_apart() {
    let dir = tempfile::tempdir().unwrap();
    let packets = opus_packets(dir.path(), 50);
    let audio = AudioParameters::opus(1);
    let path = write_file(dir.path(), "opus.mp4", &audio, &packets, 960, &[]);
    assert_eq!(
        streams(&path),
        vec![
            ("video".into(), "h264".into(), None, None),
            ("audio".into(), "opus".into(), Some(48_000), Some(1)),
        ]
    );
    let (time_base, pts, decoded) = audio_packets(&path);
    assert_eq!(time_base, "1/48000");
    let expected: Vec<i64> = (0..packets.len() as i64).map(|i| i * 960).collect();
    assert_eq!(pts, expected, "one packet every 20 ms");
    assert_eq!(decoded, packets.len() as u64);
    assert_video_intact(&path);
    assert_decodes(&path);
}

#[test]
fn aac_beside_h264_plays_every_frame_1024_samples_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (config, frames) = aac_frames(dir.path());
    // AAC-LC, 44.1 kHz, stereo.
    assert_eq!(config, Bytes::from_static(&[0x12, 0x10]));
    // One second and the encoder's priming frame.
    assert!(frames.len() >= 44, "{} AAC frames", frames.len());
    let audio = AudioParameters::aac(config).unwrap();
    let path = write_file(dir.path(), "aac.mp4", &audio, &frames, 1024, &[]);
    assert_eq!(
        streams(&path),
        vec![
            ("video".into(), "h264".into(), None, None),
            ("audio".into(), "aac".into(), Some(44_100), Some(2)),
        ]
    );
    let (time_base, pts, decoded) = audio_packets(&path);
    assert_eq!(time_base, "1/44100");
    let expected: Vec<i64> = (0..frames.len() as i64).map(|i| i * 1024).collect();
    assert_eq!(pts, expected, "one frame every 1024 samples");
    assert_eq!(decoded, frames.len() as u64);
    assert_video_intact(&path);
    assert_decodes(&path);
}

/// A fragment whose audio went missing leaves a gap in the audio, at the
/// right place, and the rest of the file plays.
#[test]
fn a_fragment_without_audio_keeps_the_file_playable() {
    let dir = tempfile::tempdir().unwrap();
    let packets = opus_packets(dir.path(), 50);
    let audio = AudioParameters::opus(1);
    let path = write_file(dir.path(), "gap.mp4", &audio, &packets, 960, &[1]);
    // Fragment 0 holds packets starting before 1/3 s: 0..17 (17 × 20 ms
    // = 340 ms); fragment 1 would hold 17..34; fragment 2 the rest.
    let expected: Vec<i64> = (0..17)
        .chain(34..packets.len() as i64)
        .map(|i| i * 960)
        .collect();
    let (_, pts, decoded) = audio_packets(&path);
    assert_eq!(pts, expected);
    assert_eq!(decoded, expected.len() as u64);
    assert_video_intact(&path);
    assert_decodes(&path);
}

/// The audio is a second track beside the video, which the file
/// describes as a video-only file does.
#[test]
fn the_audio_track_is_track_two() {
    let (params, _) = video();
    let with_audio = mp4::init_segment_with_audio(&params, &AudioParameters::opus(2)).unwrap();
    let video_only = mp4::init_segment(&params).unwrap();
    // Both start with the same ftyp and describe the video the same way.
    let ftyp = u32::from_be_bytes(video_only[0..4].try_into().unwrap()) as usize;
    assert_eq!(with_audio[..ftyp], video_only[..ftyp]);
    let count = |data: &[u8], fourcc: &[u8]| data.windows(4).filter(|w| *w == fourcc).count();
    assert_eq!(count(&video_only, b"trak"), 1);
    assert_eq!(count(&with_audio, b"trak"), 2);
    assert_eq!(count(&with_audio, b"trex"), 2);
    assert_eq!(count(&with_audio, b"dOps"), 1);
    // More than two Opus channels needs a channel mapping this file
    // cannot give without the encoder's OpusHead.
    assert!(mp4::init_segment_with_audio(&params, &AudioParameters::opus(6)).is_err());
}

// ---- The muxer and the segmenter, fed as a live source feeds them ----

const SEC_NS: i64 = 1_000_000_000;
const T0_NS: i64 = 1_763_700_000 * SEC_NS;
/// 20 ms of Opus, in 90 kHz ticks.
const OPUS_90K: u32 = 1800;

/// One input as it reaches the recorder.
enum Input {
    Video(reallive_core::EncodedFrame),
    Audio(AudioFrame),
}

/// Orders video and audio by when a live source would deliver them: video
/// one frame after its capture (the encoder's latency), audio alternately
/// 20 ms ahead of and 30 ms behind its own pts.
fn live(video: Vec<reallive_core::EncodedFrame>, audio: Vec<AudioFrame>) -> Vec<Input> {
    let mut all: Vec<(i64, Input)> = video
        .into_iter()
        .map(|f| (f.dts_90k + i64::from(FRAME_90K), Input::Video(f)))
        .collect();
    for (i, a) in audio.into_iter().enumerate() {
        let jitter = if i % 2 == 0 { -1800 } else { 2700 };
        all.push((a.pts_90k + jitter, Input::Audio(a)));
    }
    all.sort_by_key(|(t, _)| *t);
    all.into_iter().map(|(_, i)| i).collect()
}

fn opus_frames(packets: &[Bytes], first_pts_90k: i64) -> Vec<AudioFrame> {
    let params = Arc::new(AudioParameters::opus(1));
    packets
        .iter()
        .enumerate()
        .map(|(i, p)| AudioFrame {
            data: p.clone(),
            pts_90k: first_pts_90k + i as i64 * i64::from(OPUS_90K),
            duration_90k: OPUS_90K,
            params: params.clone(),
        })
        .collect()
}

fn ball(n: usize) -> Vec<reallive_core::EncodedFrame> {
    reallive_test_support::clip::ball_frames(n)
}

/// Each `moof`'s video span `[tfdt, tfdt + durations)` in seconds, and
/// its audio packets' start times in seconds, read from the boxes.
fn fragment_spans(file: &[u8], audio_rate: f64) -> Vec<((f64, f64), Vec<f64>)> {
    fn boxes(data: &[u8]) -> Vec<(&[u8], &[u8])> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            out.push((&data[pos + 4..pos + 8], &data[pos + 8..pos + size]));
            pos += size;
        }
        out
    }
    let u32_at = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let mut spans = Vec::new();
    for (_, moof) in boxes(file).into_iter().filter(|(t, _)| *t == b"moof") {
        let (mut video, mut audio) = ((0.0, 0.0), Vec::new());
        for (_, traf) in boxes(moof).into_iter().filter(|(t, _)| *t == b"traf") {
            let children = boxes(traf);
            let find = |t: &[u8]| children.iter().find(|(c, _)| *c == t).unwrap().1;
            let track = u32_at(find(b"tfhd"), 4);
            let tfdt = find(b"tfdt");
            assert_eq!(tfdt[0], 1, "64-bit tfdt");
            let base = u64::from_be_bytes(tfdt[4..12].try_into().unwrap());
            let trun = find(b"trun");
            let count = u32_at(trun, 4) as usize;
            // data offset, then per sample: duration and size (audio), or
            // duration, size, flags and composition offset (video).
            let stride = if track == 1 { 16 } else { 8 };
            let durations = (0..count).map(|i| u64::from(u32_at(trun, 12 + i * stride)));
            if track == 1 {
                let total: u64 = durations.sum();
                video = (base as f64 / 90_000.0, (base + total) as f64 / 90_000.0);
            } else {
                let mut t = base;
                for d in durations {
                    audio.push(t as f64 / audio_rate);
                    t += d;
                }
            }
        }
        spans.push((video, audio));
    }
    spans
}

/// Every audio packet starts inside its fragment's video span.
fn assert_audio_follows_video(file: &[u8], audio_rate: f64) {
    for (i, ((start, end), audio)) in fragment_spans(file, audio_rate).iter().enumerate() {
        for t in audio {
            assert!(
                *t >= start - 1e-9 && *t < *end,
                "fragment {i}: audio at {t} outside video {start}..{end}"
            );
        }
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// Video from 1 s on a running clock; 20 ms Opus from 0.9 s to 2 s, fed
/// interleaved as they would arrive: the file has both, every packet from
/// the video's start once, 20 ms apart, each in the fragment its pts
/// falls in.
#[test]
fn the_muxer_interleaves_live_opus_into_the_video_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let packets = opus_packets(dir.path(), 55);
    let start = 90_000;
    let video: Vec<_> = ball(30)
        .into_iter()
        .map(|mut f| {
            f.dts_90k += start;
            f.pts_90k += start;
            f
        })
        .collect();
    // 5 packets (100 ms) before the video's first frame, 50 during it.
    let audio = opus_frames(&packets[..55], start - 5 * i64::from(OPUS_90K));
    let mut m = mp4::Fmp4Muxer::new(u64::from(FRAME_90K) * GOP as u64);
    let mut out = BytesMut::new();
    for input in live(video, audio) {
        match input {
            Input::Video(f) => {
                let o = m.push(f).unwrap();
                out.extend(o.init);
                out.extend(o.fragment.map(|f| f.data));
            }
            Input::Audio(a) => m.push_audio(a),
        }
    }
    out.extend(m.finish(None).map(|f| f.data));
    assert_eq!(
        (m.audio_frames_written(), m.audio_frames_dropped()),
        (50, 5)
    );
    let path = write(dir.path(), "live.mp4", &out);
    assert_eq!(
        streams(&path),
        vec![
            ("video".into(), "h264".into(), None, None),
            ("audio".into(), "opus".into(), Some(48_000), Some(1)),
        ]
    );
    let (time_base, pts, decoded) = audio_packets(&path);
    assert_eq!(time_base, "1/48000");
    let expected: Vec<i64> = (0..50).map(|i| i * 960).collect();
    assert_eq!(pts, expected, "every packet once, 20 ms apart, from 0");
    assert_eq!(decoded, 50);
    assert_audio_follows_video(&out, 48_000.0);
    assert_eq!(fragment_spans(&out, 48_000.0).len(), 3);
    assert_video_intact(&path);
    assert_decodes(&path);
}

/// What the segmenter asked for, as files: (start in 90 kHz from T0, bytes).
fn segment(
    s: &mut reallive_store::segmenter::Segmenter,
    inputs: Vec<Input>,
) -> Vec<(i64, Vec<u8>)> {
    use reallive_store::segmenter::Output;
    let mut outputs = Vec::new();
    for input in inputs {
        match input {
            Input::Video(f) => {
                let now = T0_NS + f.dts_90k * SEC_NS / 90_000;
                outputs.extend(s.push(f, now).unwrap());
            }
            Input::Audio(a) => s.push_audio(a),
        }
    }
    outputs.extend(s.finish());
    let mut files: Vec<(i64, Vec<u8>)> = Vec::new();
    for o in outputs {
        match o {
            Output::StartFile {
                start_utc_ns, init, ..
            } => files.push((
                ((start_utc_ns - T0_NS) * 90_000 + SEC_NS / 2) / SEC_NS,
                init.to_vec(),
            )),
            Output::Fragment(f) => files.last_mut().unwrap().1.extend_from_slice(&f.data),
            _ => {}
        }
    }
    files
}

fn segmenter(file_secs: i64) -> reallive_store::segmenter::Segmenter {
    reallive_store::segmenter::Segmenter::new(reallive_store::segmenter::SegmenterConfig {
        fragment_90k: u64::from(FRAME_90K) * GOP as u64,
        file_90k: file_secs * 90_000,
        ..Default::default()
    })
}

/// 2⅓ s of video and Opus through a segmenter rotating every second: three
/// files, each with both tracks, and every packet in exactly one of them
/// at its own time.
#[test]
fn the_segmenter_splits_audio_with_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let packets = opus_packets(dir.path(), 117);
    let mut s = segmenter(1);
    let files = segment(&mut s, live(ball(70), opus_frames(&packets[..117], 0)));
    assert_eq!(files.len(), 3);
    assert_eq!(
        (s.audio_frames_written(), s.audio_frames_dropped()),
        (117, 0)
    );
    let mut seen = Vec::new();
    for (k, (start_90k, data)) in files.iter().enumerate() {
        let path = write(dir.path(), &format!("{k}.mp4"), data);
        assert_eq!(streams(&path).len(), 2, "file {k}");
        let (_, pts, decoded) = audio_packets(&path);
        assert_eq!(decoded, pts.len() as u64);
        assert_eq!(
            pts.first(),
            Some(&0),
            "file {k} audio starts with its video"
        );
        assert!(
            pts.windows(2).all(|w| w[1] - w[0] == 960),
            "file {k}: {pts:?}"
        );
        seen.extend(pts.iter().map(|p| start_90k + p * 90_000 / 48_000));
        assert_audio_follows_video(data, 48_000.0);
        assert_decodes(&path);
    }
    let expected: Vec<i64> = (0..117).map(|i| i * i64::from(OPUS_90K)).collect();
    assert_eq!(seen, expected, "every packet once");
}

/// Audio that starts only after the first keyframe cannot join that
/// file: it is video-only, and the next keyframe starts a file with both.
#[test]
fn audio_after_the_first_keyframe_waits_for_the_next_file() {
    let dir = tempfile::tempdir().unwrap();
    let packets = opus_packets(dir.path(), 50);
    // The muxer alone drops it.
    let mut m = mp4::Fmp4Muxer::new(90_000);
    let init = m.push(ball(1).remove(0)).unwrap().init.unwrap();
    m.push_audio(opus_frames(&packets[..1], 0).remove(0));
    assert_eq!(init, mp4::init_segment(&ball(1)[0].params).unwrap());
    assert_eq!(m.audio_frames_dropped(), 1);
    // The segmenter rotates at the next keyframe, 1/3 s in.
    let mut s = segmenter(60);
    let video = ball(30);
    let audio = opus_frames(&packets[..50], 0);
    let mut inputs = vec![Input::Video(video[0].clone())];
    inputs.extend(live(video[1..].to_vec(), audio));
    let files = segment(&mut s, inputs);
    assert_eq!(files.len(), 2);
    let first = write(dir.path(), "first.mp4", &files[0].1);
    assert_eq!(
        streams(&first),
        vec![("video".into(), "h264".into(), None, None)]
    );
    assert_eq!(files[1].0, 30_000);
    let second = write(dir.path(), "second.mp4", &files[1].1);
    assert_eq!(streams(&second).len(), 2);
    let (_, pts, _) = audio_packets(&second);
    // Packets from 1/3 s: 17 (340 ms) to 49.
    assert_eq!(pts.len(), 50 - 17);
    assert_audio_follows_video(&files[1].1, 48_000.0);
    assert_decodes(&second);
}

/// A camera switched from Opus to AAC half a second in: the file goes on
/// to the next keyframe with Opus, and the next one is AAC.
#[test]
fn changed_audio_parameters_start_a_new_file_at_the_next_keyframe() {
    let dir = tempfile::tempdir().unwrap();
    let packets = opus_packets(dir.path(), 25);
    let (config, aac) = aac_frames(dir.path());
    let aac_params = Arc::new(AudioParameters::aac(config).unwrap());
    let mut audio = opus_frames(&packets[..25], 0);
    // From 0.5 s to the video's end: AAC frames of 1024 samples at 44.1 kHz.
    for (i, data) in aac.iter().take(20).enumerate() {
        audio.push(AudioFrame {
            data: data.clone(),
            pts_90k: 45_000 + (i as i64 * 1024 * 90_000) / 44_100,
            duration_90k: 2090,
            params: aac_params.clone(),
        });
    }
    let mut s = segmenter(60);
    let files = segment(&mut s, live(ball(30), audio));
    assert_eq!(files.len(), 2);
    // The keyframe after the change: frame 20, 2/3 s.
    assert_eq!(files[1].0, 60_000);
    let first = write(dir.path(), "opus.mp4", &files[0].1);
    let second = write(dir.path(), "aac.mp4", &files[1].1);
    assert_eq!(streams(&first)[1].1, "opus");
    assert_eq!(audio_packets(&first).1.len(), 25);
    assert_eq!(
        streams(&second)[1],
        ("audio".into(), "aac".into(), Some(44_100), Some(2))
    );
    // AAC frames from 2/3 s on: those before the file's start are dropped.
    let (_, pts, _) = audio_packets(&second);
    let dropped = (0..20)
        .filter(|i| 45_000 + (i * 1024 * 90_000) / 44_100 < 60_000)
        .count();
    assert_eq!(pts.len(), 20 - dropped);
    assert_eq!(s.audio_frames_dropped(), dropped as u64);
    assert_audio_follows_video(&files[1].1, 44_100.0);
    assert_decodes(&first);
    assert_decodes(&second);
}

/// Audio without video to carry it is held within bounds: the oldest
/// goes, and every packet is either written or counted as dropped.
#[test]
fn a_flood_of_audio_is_bounded_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let packet = opus_packets(dir.path(), 1).remove(0);
    let params = Arc::new(AudioParameters::opus(1));
    let frame = |pts_90k: i64| AudioFrame {
        data: packet.clone(),
        pts_90k,
        duration_90k: OPUS_90K,
        params: params.clone(),
    };
    // 20 s of audio before any video: at most 5 s is held.
    let mut m = mp4::Fmp4Muxer::new(90_000);
    for i in 0..1000 {
        m.push_audio(frame(i * i64::from(OPUS_90K)));
    }
    let held = 1000 - m.audio_frames_dropped();
    assert_eq!(held, 251, "5 s of 20 ms packets, both ends included");
    // A keyframe at 18 s: the 2 s from it on are written.
    let mut v = ball(1).remove(0);
    (v.dts_90k, v.pts_90k) = (18 * 90_000, 18 * 90_000);
    m.push(v).unwrap();
    let frag = m.finish(None).unwrap();
    assert_eq!(frag.audio_frames, 100);
    assert_eq!(m.audio_frames_written(), 100);
    assert_eq!(m.audio_frames_written() + m.audio_frames_dropped(), 1000);
    // Packets closer together than 10 ms: at most 500 are held.
    let mut m = mp4::Fmp4Muxer::new(90_000);
    for i in 0..800 {
        m.push_audio(frame(i * 90));
    }
    assert_eq!(m.audio_frames_dropped(), 300);
    // The segmenter holds no more while it waits for a keyframe.
    let mut s = segmenter(60);
    for i in 0..1000 {
        s.push_audio(frame(i * i64::from(OPUS_90K)));
    }
    assert_eq!(s.audio_frames_dropped(), 1000 - 251);
}

/// The HLS timeline shift moves both tracks by the same time, each in its
/// own timescale: whole file in memory, fragments alone given the init
/// segment's audio timescale, and streamed through `ShiftedRange`.
#[test]
fn shifting_a_file_moves_audio_and_video_together() {
    let dir = tempfile::tempdir().unwrap();
    let packets = opus_packets(dir.path(), 50);
    let path = write_file(
        dir.path(),
        "shift.mp4",
        &AudioParameters::opus(1),
        &packets,
        960,
        &[],
    );
    let file = std::fs::read(&path).unwrap();
    assert_eq!(mp4::audio_timescale(&file), Some(48_000));
    let delta = 3600 * 90_000;
    let mut shifted = file.clone();
    assert_eq!(mp4::shift_decode_times(&mut shifted, delta), 3);
    let before = fragment_spans(&file, 48_000.0);
    let after = fragment_spans(&shifted, 48_000.0);
    assert_eq!(before.len(), 3);
    for (((v0, v1), a), ((w0, w1), b)) in before.iter().zip(&after) {
        assert_eq!((v0 + 3600.0, v1 + 3600.0), (*w0, *w1));
        assert!(!a.is_empty());
        let moved: Vec<f64> = a.iter().map(|t| t + 3600.0).collect();
        assert_eq!(&moved, b);
    }
    // Fragments served alone, the audio rate taken from the init segment.
    let init_len = {
        let ftyp = u32::from_be_bytes(file[0..4].try_into().unwrap()) as usize;
        ftyp + u32::from_be_bytes(file[ftyp..ftyp + 4].try_into().unwrap()) as usize
    };
    let mut fragments = file[init_len..].to_vec();
    let rate = mp4::audio_timescale(&file[..init_len]);
    assert_eq!(
        mp4::shift_decode_times_with_audio(&mut fragments, delta, rate),
        3
    );
    assert_eq!(fragments, shifted[init_len..]);
    // Streamed, from the start and from inside the first fragment.
    for start in [0, init_len as u64 + 20] {
        let mut r = mp4::ShiftedRange::new(
            std::io::Cursor::new(&file[..]),
            start,
            file.len() as u64,
            delta,
        );
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut got).unwrap();
        assert!(got == shifted[start as usize..], "from {start}");
    }
    // A video-only file has no audio timescale and shifts as before.
    let (params, _) = video();
    assert_eq!(
        mp4::audio_timescale(&mp4::init_segment(&params).unwrap()),
        None
    );
}
