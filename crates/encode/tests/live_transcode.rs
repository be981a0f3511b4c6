//! The live transcoders with real streams: H.265 and H.264 with B-frames
//! in, browser H.264 out (checked with ffprobe); AAC and G.711 in, Opus
//! out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod live_support;

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use live_support::{Packet, aac, pcma, video};
use reallive_core::{
    AudioCodec, AudioFrame, AudioParameters, AudioReceiver, AudioTranscoder, CameraAudio, Codec,
    EncodedFrame, FrameReceiver, G711, audio_channel, frame_channel,
};
use reallive_encode::audio::start_opus_transcoder;
use reallive_encode::live::{LiveH264Transcoder, start_video_transcoder};
use reallive_test_support::ffprobe::probe;
use reallive_test_support::require_elements;

const WAIT: Duration = Duration::from_secs(20);

fn x265(key_int: u32) -> String {
    format!("x265enc speed-preset=ultrafast key-int-max={key_int}")
}

fn x264_bframes(key_int: u32) -> String {
    format!("x264enc speed-preset=ultrafast bframes=2 b-adapt=false key-int-max={key_int}")
}

/// Frames until `want` arrived or none came for `quiet`.
async fn frames(rx: &mut FrameReceiver, got: &mut Vec<EncodedFrame>, want: usize, quiet: Duration) {
    let deadline = Instant::now() + WAIT;
    while got.len() < want && Instant::now() < deadline {
        match tokio::time::timeout(quiet, rx.recv()).await {
            Ok(Some(f)) => got.push(f),
            _ => break,
        }
    }
}

/// Pushes `input` through a transcoder started by the factory, at most
/// `ahead` frames ahead of its output, and returns the output.
async fn transcode(codec: Codec, input: &[EncodedFrame], ahead: usize) -> Vec<EncodedFrame> {
    let (tx, mut rx) = frame_channel(64);
    let mut t = start_video_transcoder()(codec, tx).unwrap();
    let mut out = Vec::new();
    for (i, f) in input.iter().enumerate() {
        t.push(f).unwrap();
        if i + 1 > ahead {
            frames(&mut rx, &mut out, i + 1 - ahead, WAIT).await;
        }
    }
    frames(&mut rx, &mut out, input.len(), Duration::from_secs(3)).await;
    assert_eq!(t.dropped(), 0, "paced input must not be dropped");
    out
}

/// Writes the access units one after another (Annex-B) and probes them.
fn probe_annex_b(out: &[EncodedFrame]) -> reallive_test_support::ffprobe::VideoProbe {
    let mut file = tempfile::Builder::new().suffix(".h264").tempfile().unwrap();
    for f in out {
        file.write_all(&f.data).unwrap();
    }
    file.flush().unwrap();
    probe(file.path())
}

/// What a browser needs of the output, and what the relay needs of its
/// timing: every pts is an input frame's, in order, from a keyframe.
fn check_output(input: &[EncodedFrame], out: &[EncodedFrame], width: u32, height: u32) {
    let p = probe_annex_b(out);
    assert_eq!(p.codec_name, "h264");
    assert_eq!(p.profile, "Constrained Baseline");
    assert_eq!(p.has_b_frames, 0);
    assert_eq!((p.width, p.height), (width, height));
    // The decoder keeps its last pictures until more come (no end of
    // stream on a live transcoder): a few frames of reordering delay.
    let n = input.len() as u64;
    assert!(
        p.frames + 6 >= n && p.frames <= n,
        "{} frames decoded of {n} pushed",
        p.frames
    );
    assert!(out[0].keyframe, "the first frame out is a keyframe");
    let info = out[0].params.stream_info().unwrap();
    assert_eq!(
        (info.codec, info.width, info.height),
        (Codec::H264, width, height)
    );
    assert_eq!(info.profile_name(), "Constrained Baseline");
    assert!(!info.may_reorder);
    let pts_in: HashSet<i64> = input.iter().map(|f| f.pts_90k).collect();
    for w in out.windows(2) {
        assert!(w[1].pts_90k > w[0].pts_90k, "pts not increasing: {w:?}");
    }
    for f in out {
        assert_eq!(f.pts_90k, f.dts_90k);
        assert!(
            pts_in.contains(&f.pts_90k),
            "output pts {} is no input frame's",
            f.pts_90k
        );
    }
    let first = input.iter().map(|f| f.pts_90k).min().unwrap();
    assert_eq!(out[0].pts_90k, first, "the first picture keeps its time");
}

/// A 1440p H.265 camera comes out as 1080p constrained-baseline H.264,
/// frame for frame, on the camera's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_1440p_becomes_1080p_browser_h264() {
    require_elements(&["x265enc", "h265parse", "avdec_h265", "x264enc", "h264parse"]);
    let input = video(Codec::H265, &x265(30), 45, 2560, 1440, 30);
    let out = transcode(Codec::H265, &input, 8).await;
    check_output(&input, &out, 1920, 1080);
}

/// H.264 with B-frames (pts out of decode order) comes out without them,
/// in presentation order, at its own size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_with_b_frames_becomes_browser_h264() {
    require_elements(&["x264enc", "h264parse", "avdec_h264"]);
    let input = video(Codec::H264, &x264_bframes(30), 90, 1280, 720, 30);
    assert!(
        input.iter().any(|f| f.pts_90k != f.dts_90k),
        "the input has B-frames"
    );
    let out = transcode(Codec::H264, &input, 8).await;
    check_output(&input, &out, 1280, 720);
}

/// A keyframe asked for comes out within a few frames, long before x264's
/// own two-second interval would make one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_on_request_arrives_promptly() {
    require_elements(&["x265enc", "h265parse", "avdec_h265", "x264enc"]);
    // One keyframe at the start only.
    let input = video(Codec::H265, &x265(1000), 100, 640, 360, 30);
    let (tx, mut rx) = frame_channel(256);
    let mut t = LiveH264Transcoder::new(Codec::H265, tx).unwrap();
    let mut out = Vec::new();
    let mut asked = None;
    for (i, f) in input.iter().enumerate() {
        t.push(f).unwrap();
        // Real time, as a camera sends.
        tokio::time::sleep(Duration::from_millis(33)).await;
        while let Some(f) = rx.try_recv() {
            out.push((Instant::now(), f));
        }
        if i == 75 {
            t.request_keyframe();
            asked = Some((Instant::now(), f.pts_90k));
        }
    }
    let (asked_at, asked_pts) = asked.unwrap();
    // x264's own keyframes: at 0 and 60 (two seconds at 30 fps).
    let forced = out
        .iter()
        .find(|(_, f)| f.keyframe && f.pts_90k > asked_pts - 3000)
        .expect("no keyframe after the request");
    let late = forced.0 - asked_at;
    let frames_late = (forced.1.pts_90k - asked_pts) / 3000;
    assert!(
        late < Duration::from_millis(500) && frames_late <= 6,
        "the keyframe came {late:?}, {frames_late} frames after the request"
    );
    // Its parameter sets are in band: a viewer can start there.
    assert!(
        reallive_core::CodecParameters::from_annex_b(Codec::H264, &forced.1.data)
            .is_some_and(|p| p.is_complete())
    );
    assert_eq!(t.dropped(), 0);
}

/// Garbage in the middle of the stream: the decoder skips what it cannot
/// read and the transcoder keeps going; pictures come again from the next
/// keyframe, and `push` never fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_skipped_until_the_next_keyframe() {
    require_elements(&["x264enc", "h264parse", "avdec_h264"]);
    let mut input = video(Codec::H264, &x264_bframes(30), 90, 640, 360, 30);
    for (i, f) in input.iter_mut().enumerate().take(45).skip(35) {
        // Start code, then noise that is no valid NAL unit.
        let mut data = vec![0, 0, 0, 1, 0x41];
        data.extend((0..2000u32).map(|j| (j.wrapping_mul(2_654_435_761) >> (i % 7)) as u8));
        f.data = Bytes::from(data);
    }
    let (tx, mut rx) = frame_channel(256);
    let mut t = LiveH264Transcoder::new(Codec::H264, tx).unwrap();
    let mut out = Vec::new();
    for (i, f) in input.iter().enumerate() {
        t.push(f).expect("garbage is not a failure");
        if i >= 8 {
            frames(
                &mut rx,
                &mut out,
                i.saturating_sub(20),
                Duration::from_secs(2),
            )
            .await;
        }
    }
    frames(&mut rx, &mut out, input.len(), Duration::from_secs(3)).await;
    let second_gop_key = input[60].pts_90k;
    assert!(
        out.iter().any(|f| f.pts_90k >= second_gop_key + 20 * 3000),
        "pictures from after the garbage came out: {} frames, last pts {:?}",
        out.len(),
        out.last().map(|f| f.pts_90k)
    );
    // What came out still plays.
    let p = probe_annex_b(&out);
    assert_eq!(
        (p.codec_name.as_str(), p.width, p.height),
        ("h264", 640, 360)
    );
}

/// Pushing faster than it can work never blocks: frames are dropped and
/// counted, and the output goes on from a keyframe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_drops_and_counts_without_blocking() {
    require_elements(&["x265enc", "h265parse", "avdec_h265", "x264enc"]);
    let gop = video(Codec::H265, &x265(30), 60, 1280, 720, 30);
    let (tx, mut rx) = frame_channel(512);
    let mut t = LiveH264Transcoder::new(Codec::H265, tx).unwrap();
    let started = Instant::now();
    let mut pushed = 0;
    // Ten seconds of 720p at once, the same two seconds over and over.
    for round in 0..5i64 {
        for f in &gop {
            let mut f = f.clone();
            f.pts_90k += round * 180_000;
            f.dts_90k += round * 180_000;
            t.push(&f).unwrap();
            pushed += 1;
        }
    }
    let push_time = started.elapsed();
    assert!(
        push_time < Duration::from_millis(500),
        "300 pushes took {push_time:?}"
    );
    let mut out = Vec::new();
    frames(&mut rx, &mut out, pushed, Duration::from_secs(3)).await;
    let dropped = t.dropped();
    assert!(dropped > 0, "nothing was dropped");
    assert!(!out.is_empty() && out[0].keyframe);
    assert!(
        out.len() as u64 + dropped <= pushed as u64,
        "{} out + {dropped} dropped > {pushed} in",
        out.len()
    );
    for w in out.windows(2) {
        assert!(w[1].pts_90k > w[0].pts_90k);
    }
}

/// Threads of this process.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Dropping a transcoder stops its pipeline: its sender is released (the
/// receiver ends) and starting and dropping again and again leaves no
/// threads behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_stops_the_pipelines_and_leaks_no_threads() {
    require_elements(&["x265enc", "h265parse", "avdec_h265", "x264enc", "opusenc"]);
    let input = video(Codec::H265, &x265(30), 20, 640, 360, 30);
    let (packets, params) = aac(1);
    let mut counts = Vec::new();
    for _ in 0..4 {
        let (tx, mut rx) = frame_channel(64);
        let (atx, mut arx) = audio_channel(64);
        let mut v = start_video_transcoder()(Codec::H265, tx).unwrap();
        let mut a = start_opus_transcoder()(CameraAudio::Aac(params.clone()), atx).unwrap();
        for f in &input {
            v.push(f).unwrap();
        }
        for p in &packets {
            a.push(p.data.clone(), p.pts_90k).unwrap();
        }
        let mut got = Vec::new();
        frames(&mut rx, &mut got, 5, WAIT).await;
        assert!(!got.is_empty());
        assert!(
            tokio::time::timeout(WAIT, arx.recv())
                .await
                .unwrap()
                .is_some(),
            "no Opus"
        );
        drop(v);
        drop(a);
        // The senders lived in the pipelines: both receivers end.
        let end = tokio::time::timeout(WAIT, async {
            while rx.recv().await.is_some() {}
            while arx.recv().await.is_some() {}
        })
        .await;
        assert!(end.is_ok(), "a dropped transcoder still holds its sender");
        counts.push(threads());
    }
    // GStreamer's thread pool keeps a few idle threads for a while; what
    // must not happen is a growth with every transcoder started.
    let deadline = Instant::now() + WAIT;
    while threads() > counts[0] && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        threads() <= counts[0],
        "threads after each start and drop: {counts:?}, now {}",
        threads()
    );
}

/// A frame of another codec is refused with a clear error.
#[test]
fn a_frame_of_another_codec_is_refused() {
    require_elements(&["x264enc", "h264parse", "avdec_h264", "avdec_h265"]);
    let input = reallive_core::EncodedFrame {
        data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88]),
        pts_90k: 0,
        dts_90k: 0,
        duration_90k: None,
        keyframe: true,
        params: std::sync::Arc::new(reallive_core::CodecParameters::new(Codec::H264)),
    };
    let (tx, _rx) = frame_channel(4);
    let mut t = start_video_transcoder()(Codec::H265, tx).unwrap();
    let err = t.push(&input).unwrap_err();
    assert!(err.to_string().contains("h264"), "{err}");
}

/// Packets until none came for a second.
async fn opus(rx: &mut AudioReceiver) -> Vec<AudioFrame> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Some(f)) => got.push(f),
            _ => break,
        }
    }
    got
}

/// Pushes `packets` at four times real time, as a camera would (faster,
/// the transcoder's one-second queue would overflow and drop them).
async fn push_paced(t: &mut dyn AudioTranscoder, packets: &[Packet]) {
    for p in packets {
        t.push(p.data.clone(), p.pts_90k)
            .expect("a live transcoder takes every packet, garbage or not");
        tokio::time::sleep(Duration::from_micros(p.duration_90k as u64 * 1000 / 90 / 4)).await;
    }
}

/// Opus packets every 20 ms on the input's clock, covering the input to
/// within 40 ms.
fn check_opus(out: &[AudioFrame], first_in: i64, end_in: i64) {
    assert!(!out.is_empty(), "no Opus");
    assert_eq!(*out[0].params, AudioParameters::opus(1));
    assert_eq!(out[0].params.codec, AudioCodec::Opus);
    for f in out {
        assert_eq!(f.duration_90k, 1800, "20 ms packets");
        assert!(!f.data.is_empty());
    }
    for w in out.windows(2) {
        assert_eq!(w[1].pts_90k - w[0].pts_90k, 1800, "a packet every 20 ms");
    }
    assert!(
        (out[0].pts_90k - first_in).abs() <= 1800,
        "first Opus at {}, input at {first_in}",
        out[0].pts_90k
    );
    let last = out.last().unwrap();
    let end_out = last.pts_90k + i64::from(last.duration_90k);
    assert!(
        (end_out - end_in).abs() <= 3600,
        "Opus ends at {end_out}, the input at {end_in}: {} ms apart",
        (end_out - end_in) / 90
    );
}

/// A camera's AAC becomes 20 ms mono Opus packets on its clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aac_becomes_opus_on_the_inputs_clock() {
    require_elements(&["avenc_aac", "aacparse", "avdec_aac", "opusenc"]);
    let (packets, params) = aac(3);
    let (tx, mut rx) = audio_channel(512);
    let mut t = start_opus_transcoder()(CameraAudio::Aac(params), tx).unwrap();
    push_paced(t.as_mut(), &packets).await;
    let out = opus(&mut rx).await;
    let last = packets.last().unwrap();
    check_opus(&out, packets[0].pts_90k, last.pts_90k + last.duration_90k);
}

/// A camera's PCMA becomes 20 ms mono Opus packets on its clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcma_becomes_opus_on_the_inputs_clock() {
    require_elements(&["alawenc", "alawdec", "opusenc"]);
    let packets = pcma(3);
    let (tx, mut rx) = audio_channel(512);
    let mut t = start_opus_transcoder()(
        CameraAudio::G711 {
            law: G711::ALaw,
            sample_rate: 8000,
            channels: 1,
        },
        tx,
    )
    .unwrap();
    push_paced(t.as_mut(), &packets).await;
    let out = opus(&mut rx).await;
    let last = packets.last().unwrap();
    check_opus(&out, packets[0].pts_90k, last.pts_90k + last.duration_90k);
}

/// Garbage AAC frames are skipped (a gap), not a failure: packets keep
/// coming for what follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_aac_is_a_gap_not_a_failure() {
    require_elements(&["avenc_aac", "aacparse", "avdec_aac", "opusenc"]);
    let (mut packets, params) = aac(3);
    for p in packets.iter_mut().skip(10).take(5) {
        p.data = Bytes::from(vec![0xa5; p.data.len().max(8)]);
    }
    let (tx, mut rx) = audio_channel(512);
    let mut t = start_opus_transcoder()(CameraAudio::Aac(params), tx).unwrap();
    push_paced(t.as_mut(), &packets).await;
    let out = opus(&mut rx).await;
    let last = packets.last().unwrap();
    let end_in = last.pts_90k + last.duration_90k;
    let end_out = out.last().map_or(0, |f| f.pts_90k + 1800);
    assert!(
        end_out >= end_in - 3600,
        "Opus stopped at {end_out}, input ends at {end_in}"
    );
}
