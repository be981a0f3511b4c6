#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The camera quirk suite (issue 21): each quirk a real camera has, played
//! by gst-rtsp-server's fake camera or by a misbehaving proxy in front of
//! it, recorded through [`RtspSource`] into a real store, and checked as a
//! user would: ffprobe reads every frame of the files, at the camera's own
//! spacing (3000 ± 1 ticks at 90 kHz for 30 fps, the "±0.5 ms"),
//! and a camera that breaks the protocol ends the run with a status error,
//! never a panic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reallive_core::source::FrameSource as _;
use reallive_core::time::UtcNs;
use reallive_core::{Codec, EncodedFrame, RtspUrl, StreamInfo, frame_channel, nal};
use reallive_rtsp::{IngestError, IngestOptions, IngestStats, ProbeError, RtspSource, Transport};
use reallive_store::{Recording, Store, StoreConfig, TimeRange};
use reallive_test_support::ffprobe::{self, VideoProbe};
use reallive_test_support::rtsp_proxy::{Fault, Garbage, RtspProxy};
use reallive_test_support::{
    RtspAudio, RtspAuthScheme, RtspCameraConfig, RtspCameraServer, RtspCodec, SceneChange,
    require_elements,
};

/// The fake cameras' spacing: 30 fps at 90 kHz.
const TICKS: i64 = 3000;

/// A small, cheap camera: 320x180, 30 fps, a keyframe a second.
fn small() -> RtspCameraConfig {
    RtspCameraConfig {
        width: 320,
        height: 180,
        bitrate_kbps: 500,
        ..RtspCameraConfig::default()
    }
}

fn options() -> IngestOptions {
    IngestOptions {
        stall_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        ..IngestOptions::default()
    }
}

/// One frame as the recorder got it.
struct Got {
    frame: EncodedFrame,
    /// When it came out of the frame channel.
    at: Instant,
}

/// A session recorded by [`record`].
struct Recorded {
    frames: Vec<Got>,
    /// How the run ended on its own; `None` when the test stopped it.
    ended: Option<Result<(), IngestError>>,
    /// When the frame channel closed, or the test stopped the run.
    ended_at: Instant,
    stats: Arc<IngestStats>,
    /// Each file the store wrote, as the index and ffprobe see it.
    files: Vec<(Recording, VideoProbe)>,
    _dir: tempfile::TempDir,
}

impl Recorded {
    fn pts(&self) -> Vec<i64> {
        self.frames.iter().map(|g| g.frame.pts_90k).collect()
    }

    /// The run's error; panics if it ended well or was stopped.
    fn error(&self) -> &IngestError {
        match &self.ended {
            Some(Err(e)) => e,
            other => panic!("the run should have failed: {other:?}"),
        }
    }
}

/// Records `url` through an [`RtspSource`] into a fresh store for at most
/// `limit`, as the NVR does: frames from the channel are written with the
/// wall clock of their arrival. Ends early when the run ends.
async fn record(url: &str, options: IngestOptions, limit: Duration) -> Recorded {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    let mut session = store.session("cam").unwrap();
    let source = RtspSource::new(RtspUrl::parse(url).unwrap(), options);
    let (tx, mut rx) = frame_channel(1024);
    let mut run = source.start_frames(tx).unwrap();
    let deadline = tokio::time::Instant::now() + limit;
    let mut frames = Vec::new();
    let mut closed = false;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(frame)) => {
                let at = Instant::now();
                session
                    .write_at(frame.clone(), UtcNs::now().0)
                    .await
                    .unwrap();
                frames.push(Got { frame, at });
            }
            Ok(None) => {
                closed = true;
                break;
            }
            Err(_) => break,
        }
    }
    let ended_at = Instant::now();
    let ended = if closed {
        Some(
            run.wait()
                .await
                .map_err(|e| match e.downcast::<IngestError>() {
                    Ok(e) => *e,
                    Err(other) => panic!("not an IngestError: {other}"),
                }),
        )
    } else {
        run.stop().await;
        None
    };
    assert_eq!(rx.stats().dropped, 0, "the frame channel dropped frames");
    session.finish().await.unwrap();
    let mut files = Vec::new();
    for rec in store.recordings("cam", TimeRange::all()).await.unwrap() {
        let probe = ffprobe::probe(&store.root().join(&rec.path));
        files.push((rec, probe));
    }
    Recorded {
        frames,
        ended,
        ended_at,
        stats: source.stats(),
        files,
        _dir: dir,
    }
}

/// Asserts every step of `pts` is the camera's 3000 ± 1 ticks.
fn assert_camera_spacing(what: &str, pts: &[i64]) {
    let off: Vec<(usize, i64)> = pts
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i, w[1] - w[0]))
        .filter(|(_, d)| (d - TICKS).abs() > 1)
        .collect();
    assert!(
        off.is_empty(),
        "{what}: {} of {} intervals are not {TICKS} ± 1 ticks (index, ticks): {:?}",
        off.len(),
        pts.len().saturating_sub(1),
        &off[..off.len().min(20)]
    );
}

/// A file's packet times in 90 kHz ticks.
fn file_ticks(p: &VideoProbe) -> Vec<i64> {
    p.frame_pts
        .iter()
        .map(|s| (s * 90_000.0).round() as i64)
        .collect()
}

/// What a user checks of a recording that went well: one file holding
/// every frame the camera sent, at the camera's spacing, one frame per
/// picture (as many as the media time and the wall clock say).
fn assert_records_correctly(r: &Recorded, codec: &str, size: (u32, u32)) {
    assert!(r.ended.is_none(), "the run ended early: {:?}", r.ended);
    let pts = r.pts();
    assert!(pts.len() >= 60, "only {} frames", pts.len());
    assert!(r.frames[0].frame.keyframe, "the first frame is a keyframe");
    assert_camera_spacing("frames from the source", &pts);
    // One frame per picture: the count is the fps times the media time...
    let media_secs = (pts[pts.len() - 1] - pts[0]) as f64 / 90_000.0;
    let expected = media_secs * 30.0 + 1.0;
    assert!(
        (pts.len() as f64 - expected).abs() <= 2.0,
        "{} frames over {media_secs:.3} s of media",
        pts.len()
    );
    // ...and the media time is the wall clock's (not twice, not half).
    let wall_secs = (r.frames[pts.len() - 1].at - r.frames[0].at).as_secs_f64();
    assert!(
        (media_secs - wall_secs).abs() < 0.25,
        "{media_secs:.3} s of media arrived over {wall_secs:.3} s"
    );
    assert_eq!(r.stats.holes(), 0);
    assert_eq!(r.stats.dropped(), 0);
    assert_eq!(r.stats.frames(), pts.len() as u64);
    assert_eq!(r.files.len(), 1, "one file: {:?}", file_names(r));
    let (rec, p) = &r.files[0];
    assert_eq!(p.codec_name, codec);
    assert_eq!((p.width, p.height), size);
    assert_eq!((rec.width, rec.height), size);
    assert_eq!(p.frames, pts.len() as u64, "ffprobe decodes every frame");
    assert_eq!(p.frame_pts.len(), pts.len());
    assert_camera_spacing("the file's packets", &file_ticks(p));
}

fn file_names(r: &Recorded) -> Vec<String> {
    r.files
        .iter()
        .map(|(rec, p)| format!("{} {}x{} {} frames", rec.path, p.width, p.height, p.frames))
        .collect()
}

/// The NAL unit types of an Annex-B access unit.
fn nal_types(frame: &EncodedFrame) -> Vec<u8> {
    let codec = frame.params.codec;
    nal::split_annex_b(&frame.data)
        .filter_map(|n| nal::nal_type(codec, &n))
        .collect()
}

fn size(info: &StreamInfo) -> (u32, u32) {
    (info.width, info.height)
}

fn camera_addr(camera: &RtspCameraServer) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], camera.port()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h265_records_every_frame() {
    require_elements(&["x265enc", "rtph265pay"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        codec: RtspCodec::H265,
        keyframe_interval: 30,
        ..small()
    });
    let r = record(&camera.url(), options(), Duration::from_secs(4)).await;
    assert_records_correctly(&r, "hevc", (320, 180));
    assert_eq!(r.frames[0].frame.params.codec, Codec::H265);
    // VPS, SPS and PPS ride in front of every keyframe: the first, an IDR,
    // and x265's later ones, CRAs (open GOP), which retina hands over
    // without them. A WebRTC viewer joins at any keyframe.
    let keyframes: Vec<Vec<u8>> = r
        .frames
        .iter()
        .filter(|f| f.frame.keyframe)
        .map(|f| nal_types(&f.frame))
        .collect();
    assert!(
        keyframes.iter().any(|types| types.contains(&21)),
        "no CRA among the keyframes: {keyframes:?}"
    );
    for types in &keyframes {
        for t in [32, 33, 34] {
            assert!(types.contains(&t), "NAL type {t} in {types:?}");
        }
    }
}

/// A camera that sends B-frames (main profile, as many do): its RTP
/// timestamps are presentation times and step back at each B-frame. Every
/// frame is recorded, with decode times that rise and never pass the
/// presentation times, and the file plays in ffprobe with its reordering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_with_b_frames_records_every_frame_with_decode_times() {
    require_elements(&["x264enc", "rtph264pay"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        bframes: 2,
        keyframe_interval: 30,
        ..small()
    });
    let r = record(&camera.url(), options(), Duration::from_secs(4)).await;
    assert!(r.ended.is_none(), "the run ended early: {:?}", r.ended);
    let frames: Vec<&EncodedFrame> = r.frames.iter().map(|f| &f.frame).collect();
    assert!(frames.len() >= 60, "only {} frames", frames.len());
    assert!(frames[0].keyframe);
    assert!(
        frames.windows(2).any(|w| w[1].pts_90k < w[0].pts_90k),
        "no B-frame came before a frame already shown"
    );
    assert!(
        frames.windows(2).all(|w| w[1].dts_90k > w[0].dts_90k),
        "decode times rise"
    );
    assert!(
        frames.iter().all(|f| f.dts_90k <= f.pts_90k),
        "a frame decodes before it is shown: {:?}",
        frames
            .iter()
            .take(40)
            .map(|f| (f.pts_90k / 3000, f.dts_90k as f64 / 3000.0, f.keyframe))
            .collect::<Vec<_>>()
    );
    // In presentation order, one frame every 1/30 s.
    let mut pts: Vec<i64> = frames.iter().map(|f| f.pts_90k).collect();
    pts.sort_unstable();
    assert!(pts.windows(2).all(|w| w[1] - w[0] == 3000), "{pts:?}");
    assert_eq!(r.stats.holes(), 0);
    assert_eq!(r.stats.dropped(), 0);
    assert_eq!(r.files.len(), 1, "one file: {:?}", file_names(&r));
    let (_, p) = &r.files[0];
    assert_eq!(p.codec_name, "h264");
    assert!(p.has_b_frames > 0, "ffprobe sees the reordering: {p:?}");
    assert_eq!(p.frames, frames.len() as u64, "ffprobe decodes every frame");
}

/// Records a camera with `audio` beside its video: the video records as
/// without it, and the camera did offer the track (`rtpmap` as in the SDP
/// the client read).
async fn records_beside_audio(audio: RtspAudio, rtpmap: &str) {
    let camera = RtspCameraServer::start(RtspCameraConfig {
        audio: true,
        audio_codec: audio,
        ..small()
    });
    // Through a faithful proxy, which keeps the SDP. (A second client,
    // a probe, would disturb the shared media: gst-rtsp-server answers
    // 503, or restarts the media's clock when the probe's PLAY seeks.)
    let proxy = RtspProxy::start(camera_addr(&camera), Fault::None)
        .await
        .unwrap();
    let r = record(
        &proxy.url_for(&camera.url()),
        options(),
        Duration::from_secs(4),
    )
    .await;
    assert_records_correctly(&r, "h264", (320, 180));
    let sdp = proxy.stats().sdp.expect("the camera's SDP");
    assert!(sdp.contains("m=audio"), "{sdp}");
    assert!(sdp.contains(rtpmap), "{rtpmap} in {sdp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aac_audio_beside_video_records_the_video() {
    require_elements(&["x264enc", "rtph264pay", "rtpmp4gpay"]);
    records_beside_audio(RtspAudio::Aac, "MPEG4-GENERIC/16000/1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcma_audio_beside_video_records_the_video() {
    require_elements(&["x264enc", "rtph264pay", "alawenc", "rtppcmapay"]);
    records_beside_audio(RtspAudio::Pcma, "PCMA/8000").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_sets_only_in_the_sdp_are_put_before_each_keyframe() {
    require_elements(&["x264enc", "rtph264pay"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        sdp_only_parameters: true,
        ..small()
    });
    // Through a faithful proxy, to see what the camera sends in band.
    let proxy = RtspProxy::start(camera_addr(&camera), Fault::None)
        .await
        .unwrap();
    let r = record(
        &proxy.url_for(&camera.url()),
        options(),
        Duration::from_secs(4),
    )
    .await;
    let seen = proxy.stats().h264_nal_types;
    assert!(seen.contains(&5), "IDR slices were sent: {seen:?}");
    assert!(
        !seen.contains(&7) && !seen.contains(&8),
        "the camera sent SPS or PPS in band: {seen:?}"
    );
    assert_records_correctly(&r, "h264", (320, 180));
    // Every keyframe carries the SDP's SPS and PPS, so any can start a file.
    let keyframes: Vec<&Got> = r.frames.iter().filter(|g| g.frame.keyframe).collect();
    assert!(keyframes.len() >= 3, "{} keyframes", keyframes.len());
    for g in keyframes {
        let types = nal_types(&g.frame);
        assert!(
            types.starts_with(&[7, 8]) && types.contains(&5),
            "{types:?}"
        );
        assert_eq!(size(&g.frame.params.stream_info().unwrap()), (320, 180));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_change_starts_a_file_with_the_new_size() {
    require_elements(&["x264enc", "rtph264pay", "videoscale"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        resizable: true,
        script: vec![SceneChange::new(
            2.5,
            "size",
            "caps",
            "video/x-raw,width=160,height=120",
        )],
        ..small()
    });
    let r = record(&camera.url(), options(), Duration::from_secs(6)).await;
    assert!(r.ended.is_none(), "the run ended early: {:?}", r.ended);
    assert_eq!(camera.scene_changes().borrow().len(), 1, "the size changed");
    assert_eq!(r.stats.parameter_changes(), 1);
    // Frames before the change carry the old size, after it the new one,
    // from a keyframe on.
    let sizes: Vec<(u32, u32)> = r
        .frames
        .iter()
        .map(|g| size(&g.frame.params.stream_info().unwrap()))
        .collect();
    let first_new = sizes
        .iter()
        .position(|&s| s == (160, 120))
        .expect("frames at the new size");
    assert!(
        first_new > 30,
        "the change came at 2.5 s: frame {first_new}"
    );
    assert!(sizes[..first_new].iter().all(|&s| s == (320, 180)));
    assert!(sizes[first_new..].iter().all(|&s| s == (160, 120)));
    let first = &r.frames[first_new].frame;
    assert!(first.keyframe, "the new size starts at a keyframe");
    assert!(
        nal_types(first).starts_with(&[7, 8]),
        "with its new SPS/PPS"
    );
    assert_eq!(r.stats.dropped(), 0);
    assert_eq!(r.stats.holes(), 0);
    // The media clock runs on through the change.
    let pts = r.pts();
    assert_camera_spacing("before the change", &pts[..first_new]);
    assert_camera_spacing("after the change", &pts[first_new..]);
    let step = pts[first_new] - pts[first_new - 1];
    assert!(
        step > 0 && step <= 4 * TICKS,
        "{step} ticks between the last old frame and the first new"
    );
    // Two files, each at its size, each with its frames at the camera's
    // spacing.
    assert_eq!(r.files.len(), 2, "{:?}", file_names(&r));
    let (old, new) = (&r.files[0].1, &r.files[1].1);
    assert_eq!((old.width, old.height), (320, 180));
    assert_eq!((new.width, new.height), (160, 120));
    assert_eq!(old.frames, first_new as u64);
    assert_eq!(new.frames, (r.frames.len() - first_new) as u64);
    assert_camera_spacing("the first file", &file_ticks(old));
    assert_camera_spacing("the second file", &file_ticks(new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_slices_per_picture_make_one_frame() {
    require_elements(&["x264enc", "rtph264pay"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        slices: 2,
        ..small()
    });
    let r = record(&camera.url(), options(), Duration::from_secs(4)).await;
    assert_records_correctly(&r, "h264", (320, 180));
    // The camera did cut each picture in two: every frame holds two
    // slices (IDR: type 5, others: type 1).
    for (i, g) in r.frames.iter().enumerate() {
        let slices = nal_types(&g.frame)
            .iter()
            .filter(|&&t| t == 1 || t == 5)
            .count();
        assert_eq!(slices, 2, "frame {i}: {:?}", nal_types(&g.frame));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_records_and_a_wrong_password_says_so() {
    require_elements(&["x264enc", "rtph264pay"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        credentials: Some(("admin".into(), "digest-horse".into())),
        auth_scheme: RtspAuthScheme::Digest,
        ..small()
    });
    let good = camera.url_with_credentials();
    let r = record(&good, options(), Duration::from_secs(3)).await;
    assert!(r.ended.is_none(), "{:?}", r.ended);
    assert!(r.frames.len() >= 45, "{} frames", r.frames.len());
    assert_camera_spacing("frames", &r.pts());
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.files[0].1.frames, r.frames.len() as u64);
    // The shared media winds down before the next client's DESCRIBE.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let wrong = good.replace("digest-horse", "wrong-battery");
    let r = record(&wrong, options(), Duration::from_secs(5)).await;
    let e = r.error();
    assert_eq!(*e, IngestError::Connect(ProbeError::Auth), "{e}");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("wrong-battery"), "{text}");
    }
    assert!(r.frames.is_empty());
    assert_eq!(r.stats.sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_transport_records_every_frame() {
    require_elements(&["x264enc", "rtph264pay"]);
    let camera = RtspCameraServer::start(small());
    let r = record(
        &camera.url(),
        IngestOptions {
            transport: Transport::Udp,
            ..options()
        },
        Duration::from_secs(4),
    )
    .await;
    assert_records_correctly(&r, "h264", (320, 180));
    assert_eq!(r.stats.lost_packets(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_closing_mid_frame_ends_the_run_with_whole_frames_recorded() {
    require_elements(&["x264enc", "rtph264pay"]);
    let camera = RtspCameraServer::start(small());
    let proxy = RtspProxy::start(
        camera_addr(&camera),
        Fault::CloseMidFrame {
            after: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    let r = record(
        &proxy.url_for(&camera.url()),
        options(),
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(proxy.stats().faults, 1, "the proxy cut the connection");
    let e = r.error();
    assert!(
        matches!(e, IngestError::Disconnected(_)),
        "a hang-up, not a protocol error: {e:?}"
    );
    assert!(!e.to_string().contains("gstreamer"), "no hint: {e}");
    assert!(
        r.ended_at - r.frames.last().unwrap().at < Duration::from_secs(1),
        "the run ended when the connection did"
    );
    // What came before the cut is whole and recorded.
    let pts = r.pts();
    assert!(pts.len() >= 50, "{} frames before the cut", pts.len());
    assert_camera_spacing("frames before the cut", &pts);
    assert_eq!(r.files.len(), 1);
    let p = &r.files[0].1;
    assert_eq!(p.frames, pts.len() as u64, "ffprobe decodes every frame");
    assert_camera_spacing("the file", &file_ticks(p));
}

/// A camera that renumbers its RTP packets by +1000, half-way between
/// keyframes (one a second), at an access unit's first packet or inside
/// one: the hole is counted, the frames up to the next keyframe are
/// dropped and counted, and recording resumes there, at the camera's
/// spacing, in the same file.
async fn renumbered_mid_session(mid_frame: bool) {
    // At 2 Mbit/s a P-frame takes several packets: there is an inside.
    let camera = RtspCameraServer::start(RtspCameraConfig {
        bitrate_kbps: 2000,
        ..small()
    });
    let proxy = RtspProxy::start(
        camera_addr(&camera),
        Fault::Renumber {
            after: Duration::from_millis(2500),
            seq_offset: 1000,
            ssrc: None,
            ts_offset: 0,
            mid_frame,
        },
    )
    .await
    .unwrap();
    let r = record(
        &proxy.url_for(&camera.url()),
        options(),
        Duration::from_secs(5),
    )
    .await;
    assert!(proxy.stats().faults > 0, "the proxy renumbered");
    assert!(r.ended.is_none(), "the session goes on: {:?}", r.ended);
    assert_eq!(r.stats.holes(), 1);
    assert_eq!(r.stats.lost_packets(), 1000, "the jump is counted as loss");
    let dropped = r.stats.dropped();
    // One step in the frames: recording resumes at a keyframe and goes
    // on at the camera's spacing.
    let pts = r.pts();
    let steps: Vec<(usize, i64)> = pts
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i + 1, w[1] - w[0]))
        .filter(|(_, d)| (d - TICKS).abs() > 1)
        .collect();
    assert_eq!(steps.len(), 1, "{steps:?}");
    let (resume, step) = steps[0];
    assert!(r.frames[resume].frame.keyframe, "resumes at a keyframe");
    assert!(pts.len() - resume >= 30, "recording resumed");
    // The file has the hole and every frame either side of it.
    assert_eq!(r.files.len(), 1, "{:?}", file_names(&r));
    let p = &r.files[0].1;
    assert_eq!(p.frames, pts.len() as u64);
    let ticks = file_ticks(p);
    assert_camera_spacing("the file before the hole", &ticks[..resume]);
    assert_camera_spacing("the file after the hole", &ticks[resume..]);
    // Every frame missing from the step is counted as dropped
    // (docs/design/ingest.md, invariant 2).
    let missing = (step as f64 / TICKS as f64).round() as u64 - 1;
    assert!((1..30).contains(&missing), "{missing} frames missing");
    assert_eq!(
        dropped, missing,
        "a {step}-tick step: {missing} frames missing, {dropped} counted as dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sequence_numbers_drop_frames_to_the_next_keyframe_then_record_on() {
    require_elements(&["x264enc", "rtph264pay"]);
    renumbered_mid_session(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sequence_numbers_inside_a_frame_count_that_frame_as_dropped() {
    require_elements(&["x264enc", "rtph264pay"]);
    renumbered_mid_session(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_jump_a_new_ssrc_or_a_clock_step_ends_the_session() {
    require_elements(&["x264enc", "rtph264pay"]);
    // A sequence jump, a new SSRC, and a clock stepped 5 s back or 60 s
    // ahead (further than any B-frame reorders, or a gap could explain).
    let cases: [(u16, Option<u32>, u32); 4] = [
        (40_000, None, 0),
        (10, Some(0x5eed_5eed), 0),
        (0, None, 0u32.wrapping_sub(5 * 90_000)),
        (0, None, 60 * 90_000),
    ];
    for (seq_offset, ssrc, ts_offset) in cases {
        let camera = RtspCameraServer::start(small());
        let proxy = RtspProxy::start(
            camera_addr(&camera),
            Fault::Renumber {
                after: Duration::from_millis(1500),
                seq_offset,
                ssrc,
                ts_offset,
                mid_frame: false,
            },
        )
        .await
        .unwrap();
        let r = record(
            &proxy.url_for(&camera.url()),
            options(),
            Duration::from_secs(6),
        )
        .await;
        let what = format!("offset {seq_offset}, ssrc {ssrc:?}, timestamps {ts_offset:+}");
        let e = r.error();
        assert!(
            matches!(e, IngestError::Restarted(_)),
            "{what}: the camera restarted its stream: {e:?}"
        );
        assert!(!e.to_string().contains("gstreamer"), "no hint: {e}");
        assert!(
            r.ended_at - r.frames.last().unwrap().at < Duration::from_secs(1),
            "{what}: the run ended at the jump"
        );
        assert_camera_spacing(&what, &r.pts());
        assert!(r.frames.len() >= 30, "{what}: {} frames", r.frames.len());
        assert_eq!(r.files.len(), 1);
        assert_eq!(r.files[0].1.frames, r.frames.len() as u64, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_camera_ends_the_run_as_stalled_on_time() {
    require_elements(&["x264enc", "rtph264pay"]);
    let camera = RtspCameraServer::start(small());
    let proxy = RtspProxy::start(
        camera_addr(&camera),
        Fault::Stall {
            after: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    let stall_timeout = Duration::from_secs(3);
    let r = record(
        &proxy.url_for(&camera.url()),
        IngestOptions {
            stall_timeout,
            ..options()
        },
        Duration::from_secs(12),
    )
    .await;
    assert!(proxy.stats().faults > 0, "the proxy held frames back");
    assert_eq!(*r.error(), IngestError::Stalled(3));
    // The stall began just after the last frame.
    let waited = r.ended_at - r.frames.last().unwrap().at;
    assert!(
        waited >= stall_timeout - Duration::from_millis(100)
            && waited < stall_timeout + Duration::from_secs(3),
        "ended {waited:?} after the last frame"
    );
    assert_camera_spacing("frames before the stall", &r.pts());
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.files[0].1.frames, r.frames.len() as u64);
}

/// A camera that sends `kind` of garbage 1.5 s in: the run ends with a
/// protocol error that says what to try, the frames before are recorded,
/// and nothing panics.
async fn garbage_ends_with_a_status(kind: Garbage) {
    let camera = RtspCameraServer::start(small());
    let proxy = RtspProxy::start(
        camera_addr(&camera),
        Fault::Garbage {
            after: Duration::from_millis(1500),
            kind,
        },
    )
    .await
    .unwrap();
    let r = record(
        &proxy.url_for(&camera.url()),
        options(),
        Duration::from_secs(6),
    )
    .await;
    assert_eq!(proxy.stats().faults, 1, "{kind:?} injected");
    let e = r.error();
    assert!(
        matches!(e, IngestError::Protocol(_)),
        "{kind:?}: a protocol error: {e:?}"
    );
    assert!(
        !e.to_string().contains("failed unexpectedly"),
        "{kind:?}: a panic: {e}"
    );
    assert!(e.to_string().contains("backend = \"gstreamer\""), "{e}");
    assert!(
        !e.to_string().contains("buffered") && !e.to_string().contains('\n'),
        "{kind:?}: one line, no client internals: {e}"
    );
    assert!(r.frames.len() >= 30, "{kind:?}: {} frames", r.frames.len());
    assert_camera_spacing(&format!("{kind:?}"), &r.pts());
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.files[0].1.frames, r.frames.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interleaved_frame_with_a_wrong_length_ends_with_a_status() {
    require_elements(&["x264enc", "rtph264pay"]);
    garbage_ends_with_a_status(Garbage::WrongLength).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_rtp_header_ends_with_a_status() {
    require_elements(&["x264enc", "rtph264pay"]);
    garbage_ends_with_a_status(Garbage::TruncatedRtpHeader).await;
}
