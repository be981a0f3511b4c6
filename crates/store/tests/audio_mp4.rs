//! Files with an audio track beside the video, built from real encoder
//! output and read back by ffprobe and ffmpeg as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use reallive_core::{AudioParameters, Codec, CodecParameters};
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
