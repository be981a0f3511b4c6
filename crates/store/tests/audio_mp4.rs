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
        // One GOP a fragment, as these tests count them (not 200 ms parts).
        fragment_90k: u64::from(FRAME_90K) * GOP as u64,
        part_90k: 0,
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

// ---- Recordings with audio in a store: recovery, export, HLS ----

const CAMERA: &str = "cam";

/// A store whose recordings are `files` (start in 90 kHz from T0, bytes),
/// put where the writer puts them and indexed by recovery, as after a
/// crash that lost the index rows.
async fn store_of(
    dir: &Path,
    files: &[(i64, Vec<u8>)],
) -> (reallive_store::Store, reallive_store::RecoveryReport) {
    for (start_90k, data) in files {
        let ms = (T0_NS + start_90k * SEC_NS / 90_000) / 1_000_000;
        let (y, mo, d, h, mi, s) = reallive_core::time::civil(ms.div_euclid(1000));
        let rel = format!(
            "{CAMERA}/{y:04}/{mo:02}/{d:02}/{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}.{:03}Z.mp4",
            ms.rem_euclid(1000)
        );
        let path = dir.join("recordings").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    reallive_store::Store::open(reallive_store::StoreConfig::new(dir))
        .await
        .unwrap()
}

/// Each track's first packet time, in seconds: (video, audio).
fn start_times(path: &Path) -> (f64, f64) {
    let video = ffprobe::probe(path).frame_pts.first().copied().unwrap();
    (video, audio_seconds(path)[0])
}

/// AAC frames of 1024 samples at 44.1 kHz from `first_pts_90k`, on the
/// video's clock.
fn aac_audio_frames(config: Bytes, frames: &[Bytes], first_pts_90k: i64) -> Vec<AudioFrame> {
    let params = Arc::new(AudioParameters::aac(config).unwrap());
    frames
        .iter()
        .enumerate()
        .map(|(i, data)| AudioFrame {
            data: data.clone(),
            pts_90k: first_pts_90k + (i as i64 * 1024 * 90_000) / 44_100,
            duration_90k: 2090,
            params: params.clone(),
        })
        .collect()
}

/// Recovery rebuilds the index of files with audio from their video
/// `traf`s, and cuts a torn tail at the last whole fragment: the files
/// keep both tracks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_indexes_files_with_audio_by_their_video() {
    let dir = tempfile::tempdir().unwrap();
    let packets = opus_packets(dir.path(), 133);
    let mut s = segmenter(1);
    let mut files = segment(&mut s, live(ball(80), opus_frames(&packets[..133], 0)));
    assert_eq!(files.len(), 3);
    // A crash in the middle of the last fragment: half of it is on disk.
    let last = files.last_mut().unwrap();
    let frag_start = last.1.len() - fragment_sizes(&last.1).last().unwrap();
    let whole_len = last.1.len();
    last.1.truncate(frag_start + (whole_len - frag_start) / 2);
    let (store, report) = store_of(dir.path(), &files).await;
    assert_eq!(report.files_indexed, 3, "{report:?}");
    assert_eq!(report.files_quarantined, 0, "{report:?}");
    let recs = store
        .recordings(CAMERA, reallive_store::TimeRange::all())
        .await
        .unwrap();
    let fragments: Vec<usize> = recs.iter().map(|r| r.fragments.len()).collect();
    // 1 s files of 1/3 s fragments; the last one lost its torn second.
    assert_eq!(fragments, [3, 3, 1]);
    // The torn tail is cut off, the whole fragments before it kept.
    assert_eq!(recs[2].bytes as usize, frag_start);
    assert!(whole_len > frag_start);
    let frames: u32 = recs
        .iter()
        .flat_map(|r| &r.fragments)
        .map(|f| f.frames)
        .sum();
    assert_eq!(frames, 70, "all but the torn fragment's 10 frames");
    for r in &recs {
        let path = store.root().join(&r.path);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), r.bytes);
        assert_eq!(streams(&path).len(), 2, "{}", r.path);
        let (_, pts, decoded) = audio_packets(&path);
        assert!(!pts.is_empty() && decoded == pts.len() as u64, "{}", r.path);
        assert_decodes(&path);
    }
}

/// Sizes of the `moof` + `mdat` pairs of a file, in order.
fn fragment_sizes(file: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= file.len() {
        let size = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
        match &file[pos + 4..pos + 8] {
            b"moof" => out.push(size),
            b"mdat" => *out.last_mut().unwrap() += size,
            _ => {}
        }
        pos += size;
    }
    out
}

/// Audio packet times in seconds, from ffprobe's pts and time base.
fn audio_seconds(path: &Path) -> Vec<f64> {
    let (time_base, pts, decoded) = audio_packets(path);
    assert_eq!(decoded, pts.len() as u64, "every packet decodes");
    let (num, den) = time_base.split_once('/').unwrap();
    let tb = num.parse::<f64>().unwrap() / den.parse::<f64>().unwrap();
    pts.iter().map(|p| *p as f64 * tb).collect()
}

/// Exports of recordings with Opus and with AAC, each over three files,
/// from their start and from the middle of the first file: both tracks,
/// every recorded packet, the audio on the video's timeline (as it was
/// recorded, 10 ms after the video) and spaced as recorded across the
/// files' seams, and ffmpeg decodes it all without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_carries_the_audio_in_step_with_the_video() {
    let dir = tempfile::tempdir().unwrap();
    let opus = opus_packets(dir.path(), 140);
    let (config, aac) = aac_frames(dir.path());
    // 2⅔ s of video; the audio starts 10 ms after it and covers it all
    // (AAC: ffmpeg's second, looped).
    let aac: Vec<Bytes> = aac.iter().chain(&aac).chain(&aac).cloned().collect();
    let cases = [
        ("opus", opus_frames(&opus[..135], 900), 960.0 / 48_000.0),
        (
            "aac",
            aac_audio_frames(config, &aac[..116], 900),
            1024.0 / 44_100.0,
        ),
    ];
    for (codec, audio, packet_secs) in cases {
        let work = tempfile::tempdir().unwrap();
        let mut s = segmenter(1);
        let files = segment(&mut s, live(ball(80), audio.clone()));
        assert_eq!(files.len(), 3, "{codec}");
        let recorded = s.audio_frames_written();
        assert_eq!(recorded, audio.len() as u64, "{codec}: nothing dropped");
        let (store, _) = store_of(work.path(), &files).await;

        // The whole recording.
        let dest = work.path().join("all.mp4");
        let summary = store
            .export(CAMERA, reallive_store::TimeRange::all(), &dest)
            .await
            .unwrap();
        assert_eq!(summary.fragments, 8, "{codec}: {summary:?}");
        assert_eq!(summary.fragments_without_audio, 0, "{codec}");
        assert!(!summary.truncated_at_parameter_change, "{codec}");
        let kinds: Vec<(String, String)> = streams(&dest).into_iter().map(|s| (s.0, s.1)).collect();
        assert_eq!(
            kinds,
            [
                ("video".into(), "h264".into()),
                ("audio".into(), codec.into())
            ],
            "{codec}"
        );
        assert_eq!(ffprobe::probe(&dest).frames, 80, "{codec}");
        let times = audio_seconds(&dest);
        assert_eq!(times.len() as u64, recorded, "{codec}: every packet");
        let (video_start, audio_start) = start_times(&dest);
        assert!(
            video_start.abs() < 1e-6,
            "{codec}: video from {video_start}"
        );
        assert!(
            (audio_start - video_start - 0.010).abs() < 0.025,
            "{codec}: audio from {audio_start}, video from {video_start}"
        );
        // Across the files' seams as within a file: one packet after another.
        for w in times.windows(2) {
            assert!(
                (w[1] - w[0] - packet_secs).abs() < 0.0005,
                "{codec}: packets at {} and {}",
                w[0],
                w[1]
            );
        }
        assert_decodes(&dest);

        // From 1.5 s (the keyframe at 1⅓ s, in the second file) to 2.2 s.
        let dest = work.path().join("part.mp4");
        let range =
            reallive_store::TimeRange::new(T0_NS + 3 * SEC_NS / 2, T0_NS + 22 * SEC_NS / 10)
                .unwrap();
        store.export(CAMERA, range, &dest).await.unwrap();
        let (video_start, audio_start) = start_times(&dest);
        assert!(
            video_start.abs() < 1e-6,
            "{codec}: video from {video_start}"
        );
        // The first packet at or after the keyframe at 4/3 s: the audio
        // runs 10 ms behind the video, on packets of `packet_secs`.
        let first_packet = ((4.0 / 3.0 - 0.010) / packet_secs).ceil() * packet_secs + 0.010;
        assert!(
            (audio_start - (first_packet - 4.0 / 3.0)).abs() < 0.002,
            "{codec}: audio from {audio_start}, expected {}",
            first_packet - 4.0 / 3.0
        );
        assert!(audio_start - video_start < 0.025 + packet_secs, "{codec}");
        assert_decodes(&dest);
    }
}

/// An export over files whose audio differs takes its track layout from
/// its first file: a later file's audio that layout cannot describe (other
/// parameters, or audio where the first had none) is left out, and a later
/// file without audio leaves the audio a gap. The video is all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_takes_its_audio_layout_from_its_first_file() {
    let dir = tempfile::tempdir().unwrap();
    let opus = opus_packets(dir.path(), 50);
    let (config, aac) = aac_frames(dir.path());

    // Opus, then AAC from the keyframe at 2/3 s.
    let mut audio = opus_frames(&opus[..25], 0);
    audio.extend(aac_audio_frames(config, &aac[..20], 45_000));
    let opus_then_aac = segment(&mut segmenter(60), live(ball(30), audio));
    // Video alone (the audio came after the first keyframe), then Opus.
    let mut inputs = vec![Input::Video(ball(1).remove(0))];
    inputs.extend(live(ball(30)[1..].to_vec(), opus_frames(&opus[..50], 0)));
    let none_then_opus = segment(&mut segmenter(60), inputs);
    // Opus for the first second, then none.
    let opus_then_none = segment(
        &mut segmenter(1),
        live(ball(60), opus_frames(&opus[..50], 0)),
    );

    // (files, video frames, the export's audio codec, its packets,
    // fragments without audio)
    let cases = [
        ("opus then aac", &opus_then_aac, 30, Some("opus"), 25, 1),
        ("none then opus", &none_then_opus, 30, None, 0, 2),
        ("opus then none", &opus_then_none, 60, Some("opus"), 50, 0),
    ];
    for (name, files, frames, codec, packets, without_audio) in cases {
        assert_eq!(files.len(), 2, "{name}");
        let work = tempfile::tempdir().unwrap();
        let (store, _) = store_of(work.path(), files).await;
        let dest = work.path().join("export.mp4");
        let summary = store
            .export(CAMERA, reallive_store::TimeRange::all(), &dest)
            .await
            .unwrap();
        assert!(!summary.truncated_at_parameter_change, "{name}");
        assert_eq!(summary.fragments_without_audio, without_audio, "{name}");
        let kinds: Vec<String> = streams(&dest).into_iter().map(|s| s.1).collect();
        let mut want = vec!["h264".to_string()];
        want.extend(codec.map(String::from));
        assert_eq!(kinds, want, "{name}");
        assert_eq!(ffprobe::probe(&dest).frames, frames, "{name}");
        if codec.is_some() {
            assert_eq!(audio_seconds(&dest).len(), packets, "{name}");
        }
        assert_decodes(&dest);
    }
}

/// Serves `playlists` (path, body) and the files under `root` at
/// `/recordings/<path>?t=<ticks>`, by byte range and shifted as the HTTP
/// server does (`ShiftedRange`), on loopback, until the test ends.
fn serve_hls(root: PathBuf, playlists: Vec<(&'static str, String)>) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Read, Write};
    fn respond(
        conn: std::net::TcpStream,
        root: &Path,
        playlists: &[(&str, String)],
    ) -> std::io::Result<()> {
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut conn = conn;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut range = None;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h)?;
                let h = h.trim_end().to_ascii_lowercase();
                if h.is_empty() {
                    break;
                }
                if let Some(v) = h.strip_prefix("range: bytes=") {
                    range = Some(v.to_string());
                }
            }
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let (status, extra, body) = if let Some((_, p)) = playlists.iter().find(|p| p.0 == path)
            {
                ("200 OK", String::new(), p.as_bytes().to_vec())
            } else {
                let rel = path.strip_prefix("/recordings/").unwrap();
                let file = std::fs::File::open(root.join(rel))?;
                let len = file.metadata()?.len();
                let t = query.strip_prefix("t=").map_or(0, |t| t.parse().unwrap());
                let (start, end) = match &range {
                    Some(r) => {
                        let (a, b) = r.split_once('-').unwrap();
                        let b = b.parse::<u64>().map_or(len, |b| (b + 1).min(len));
                        (a.parse().unwrap(), b)
                    }
                    None => (0, len),
                };
                let mut body = Vec::new();
                mp4::ShiftedRange::new(file, start, end, t).read_to_end(&mut body)?;
                match range {
                    Some(_) => (
                        "206 Partial Content",
                        format!("Content-Range: bytes {start}-{}/{len}\r\n", end - 1),
                        body,
                    ),
                    None => ("200 OK", String::new(), body),
                }
            };
            write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}\r\n",
                body.len()
            )?;
            conn.write_all(&body)?;
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (root, playlists) = (root.clone(), playlists.clone());
            std::thread::spawn(move || respond(conn, &root, &playlists));
        }
    });
    addr
}

/// A VOD playlist over three files with Opus, and with AAC, as ffmpeg
/// plays it over HTTP: both streams, every packet once, one after another
/// across the files (the `?t=` shift moves the audio with the video), and
/// nothing to complain about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_both_tracks_of_a_vod_playlist() {
    let dir = tempfile::tempdir().unwrap();
    let opus = opus_packets(dir.path(), 140);
    let (config, aac) = aac_frames(dir.path());
    let aac: Vec<Bytes> = aac.iter().chain(&aac).chain(&aac).cloned().collect();
    let cases = [
        ("opus", opus_frames(&opus[..135], 900), 960.0 / 48_000.0),
        (
            "aac",
            aac_audio_frames(config, &aac[..116], 900),
            1024.0 / 44_100.0,
        ),
    ];
    for (codec, audio, packet_secs) in cases {
        let work = tempfile::tempdir().unwrap();
        let mut s = segmenter(1);
        let files = segment(&mut s, live(ball(80), audio));
        let (store, _) = store_of(work.path(), &files).await;
        let playlist = store
            .vod_playlist(CAMERA, reallive_store::TimeRange::all(), "/recordings/")
            .await
            .unwrap();
        assert_eq!(playlist.matches("#EXT-X-MAP").count(), 3, "{playlist}");
        // No format change between the files: one timeline.
        assert!(!playlist.contains("#EXT-X-DISCONTINUITY"), "{playlist}");
        let master = store
            .master_playlist(CAMERA, reallive_store::TimeRange::all(), "vod.m3u8")
            .await
            .unwrap();
        let codecs = master
            .split("CODECS=\"")
            .nth(1)
            .and_then(|c| c.split('"').next())
            .unwrap_or_else(|| panic!("{master}"));
        // The video's profile and level as ffprobe reads them from the
        // stream, then the audio.
        let video = json(
            "ffprobe",
            &[
                "-v",
                "error",
                "-select_streams",
                "v",
                "-show_entries",
                "stream=profile,level",
                "-of",
                "json",
            ],
            &store.root().join(
                &store
                    .recordings(CAMERA, reallive_store::TimeRange::all())
                    .await
                    .unwrap()[0]
                    .path,
            ),
        );
        let profile = match video["streams"][0]["profile"].as_str().unwrap() {
            "Constrained Baseline" | "Baseline" => 66,
            "Main" => 77,
            "High" => 100,
            other => panic!("profile {other}"),
        };
        let level = video["streams"][0]["level"].as_i64().unwrap();
        let audio = if codec == "opus" { "opus" } else { "mp4a.40.2" };
        let (avc, rest) = codecs.split_once(',').unwrap_or_else(|| panic!("{master}"));
        assert_eq!(rest, audio, "{master}");
        assert!(avc.starts_with(&format!("avc1.{profile:02x}")), "{master}");
        assert!(avc.ends_with(&format!("{level:02x}")), "{master}");
        let addr = serve_hls(
            store.root().to_path_buf(),
            vec![("/vod.m3u8", playlist), ("/master.m3u8", master)],
        );
        for name in ["vod.m3u8", "master.m3u8"] {
            let url = format!("http://{addr}/{name}");
            let kinds: Vec<(String, String)> = streams(Path::new(&url))
                .into_iter()
                .map(|s| (s.0, s.1))
                .collect();
            assert_eq!(
                kinds,
                [
                    ("video".into(), "h264".into()),
                    ("audio".into(), codec.into())
                ],
                "{codec}: {name}"
            );
        }
        let url = format!("http://{addr}/vod.m3u8");
        let url = Path::new(&url);
        let times = audio_seconds(url);
        assert_eq!(times.len() as u64, s.audio_frames_written(), "{codec}");
        for w in times.windows(2) {
            assert!(
                (w[1] - w[0] - packet_secs).abs() < 0.0005,
                "{codec}: packets at {} and {}",
                w[0],
                w[1]
            );
        }
        assert_decodes(url);
    }
}
