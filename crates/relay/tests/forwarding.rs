#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_range_loop)]
//! The relay core between real WebRTC peers (str0m clients doing full ICE,
//! DTLS and SRTP) over a simulated network: deterministic, no sockets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reallive_core::{AudioFrame, AudioParameters, Codec};
use reallive_relay::{Core, PeerRole, RelayEvent};
use str0m::change::SdpAnswer;
use str0m::format::Codec as RtcCodec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

const RELAY: &str = "10.0.0.1:8189";

/// A test clip of `crates/store/testdata`, as 30 fps access units.
fn clip(name: &str, codec: Codec) -> Vec<reallive_core::EncodedFrame> {
    reallive_test_support::clip::annex_b_frames(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../store/testdata")
            .join(name),
        codec,
        0,
        3000,
    )
}

struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    mid: Mid,
    frames: Vec<(bool, usize)>,
    /// Each frame's codec, as negotiated.
    codecs: Vec<RtcCodec>,
    /// Each frame's RTP time (90 kHz) and when it arrived.
    times: Vec<(u64, Instant)>,
    plis: u32,
    connected: bool,
}

fn client(addr: &str, dir: Direction, core: &mut Core, camera: i64, now: Instant) -> (Client, u64) {
    client_of(addr, dir, core, camera, now, RtcCodec::H264, false)
}

/// A client whose offer has only `codec` (H.264 or H.265).
fn client_of(
    addr: &str,
    dir: Direction,
    core: &mut Core,
    camera: i64,
    now: Instant,
    codec: RtcCodec,
    audio: bool,
) -> (Client, u64) {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_h264(codec == RtcCodec::H264)
        .enable_h265(codec == RtcCodec::H265)
        .enable_opus(audio, false)
        .build(now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Video, dir, None, None, None);
    if audio {
        change.add_media(MediaKind::Audio, dir, None, None, None);
    }
    let (offer, pending) = change.apply().unwrap();
    let role = if dir == Direction::SendOnly {
        PeerRole::Publisher
    } else {
        PeerRole::Subscriber
    };
    let (session, answer) = core
        .accept(camera, role, &offer.to_sdp_string(), now)
        .unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    (
        Client {
            rtc,
            addr,
            mid,
            frames: Vec::new(),
            codecs: Vec::new(),
            times: Vec::new(),
            plis: 0,
            connected: false,
        },
        session,
    )
}

/// Moves datagrams between the clients and the relay until everyone is
/// idle, then advances time by `step`.
fn run(core: &mut Core, clients: &mut [&mut Client], now: &mut Instant, step: Duration) {
    let relay: SocketAddr = RELAY.parse().unwrap();
    for _ in 0..1000 {
        let mut moved = false;
        for c in clients.iter_mut() {
            loop {
                match c.rtc.poll_output().unwrap() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        assert_eq!(t.destination, relay);
                        core.receive(*now, c.addr, relay, &t.contents);
                        moved = true;
                    }
                    Output::Event(e) => match e {
                        Event::Connected => c.connected = true,
                        Event::MediaData(d) => {
                            c.frames.push((d.is_keyframe(), d.data.len()));
                            c.codecs.push(d.params.spec().codec);
                            c.times.push((d.time.numer(), *now));
                        }
                        Event::KeyframeRequest(_) => c.plis += 1,
                        _ => {}
                    },
                }
            }
        }
        core.tick(*now);
        let out: Vec<_> = core.drain_transmits().collect();
        for t in out {
            let Some(c) = clients.iter_mut().find(|c| c.addr == t.destination) else {
                continue;
            };
            let input = Input::Receive(
                *now,
                Receive {
                    proto: Protocol::Udp,
                    source: relay,
                    destination: t.destination,
                    contents: t.contents.as_slice().try_into().unwrap(),
                },
            );
            c.rtc.handle_input(input).unwrap();
            moved = true;
        }
        if !moved {
            break;
        }
    }
    *now += step;
    for c in clients.iter_mut() {
        c.rtc.handle_input(Input::Timeout(*now)).unwrap();
    }
    core.tick(*now);
}

/// Runs the network in 10 ms steps until every client has connected (ICE
/// and DTLS done), at most 3 s.
fn connect(core: &mut Core, clients: &mut [&mut Client], now: &mut Instant) {
    for _ in 0..300 {
        run(core, clients, now, Duration::from_millis(10));
        if clients.iter().all(|c| c.connected) {
            return;
        }
    }
    panic!("ICE and DTLS did not complete within 3 s");
}

#[test]
fn frames_reach_every_subscriber_from_a_keyframe_and_requests_merge() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let clip = clip("ball-160x120-30f.h264", Codec::H264);
    assert!(clip[0].keyframe);
    let mut now = Instant::now();
    // Without the GOP cache: the keyframe policy alone.
    let mut core = Core::new(vec![RELAY.parse().unwrap()])
        .unwrap()
        .with_gop_cache(0);
    let (mut publ, _) = client("10.0.0.2:5000", Direction::SendOnly, &mut core, 7, now);
    let (mut s1, _) = client("10.0.0.3:5000", Direction::RecvOnly, &mut core, 7, now);
    let ms = Duration::from_millis(10);
    for _ in 0..300 {
        run(&mut core, &mut [&mut publ, &mut s1], &mut now, ms);
        if publ.connected && s1.connected {
            break;
        }
    }
    assert!(publ.connected && s1.connected, "ICE and DTLS complete");
    let pt = {
        let w = publ.rtc.writer(publ.mid).unwrap();
        w.payload_params()
            .find(|p| p.spec().codec == RtcCodec::H264)
            .map(|p| p.pt())
            .unwrap()
    };
    let send = |publ: &mut Client, i: usize, now: Instant| {
        let f = &clip[i % clip.len()];
        publ.rtc
            .writer(publ.mid)
            .unwrap()
            .write(
                pt,
                now,
                MediaTime::from_90khz(i as u64 * 3000),
                f.data.to_vec(),
            )
            .unwrap();
    };
    // The clip has a keyframe every 10 frames. Join mid-GOP: frames 5..9
    // are deltas the subscriber could not decode, so it gets none of them.
    let frame_step = Duration::from_millis(33);
    let t_start = now;
    for i in 5..10 {
        assert!(!clip[i].keyframe);
        send(&mut publ, i, now);
        run(&mut core, &mut [&mut publ, &mut s1], &mut now, frame_step);
    }
    assert!(
        s1.frames.is_empty(),
        "no delta frame before a keyframe: {}",
        s1.frames.len()
    );
    // From the keyframe on, everything flows.
    for i in 10..40 {
        send(&mut publ, i, now);
        run(&mut core, &mut [&mut publ, &mut s1], &mut now, frame_step);
    }
    // A frame leaves str0m's depacketizer when the next one begins.
    run(&mut core, &mut [&mut publ, &mut s1], &mut now, frame_step);
    assert!(s1.frames[0].0, "the first frame is a keyframe");
    assert_eq!(s1.frames.len(), 30, "every frame from the keyframe on");
    // The relay asked the publisher for a keyframe as soon as its stream
    // existed. (A str0m client does not surface the relay's FIR as an
    // event; browsers and webrtc-rs do, which the end-to-end tests check.)
    let asked = core.counters()[&7]
        .publisher
        .as_ref()
        .unwrap()
        .1
        .keyframe_requests;
    assert!(asked >= 1, "{:?}", core.counters());
    assert!(publ.plis >= 1, "publisher saw {} PLIs", publ.plis);

    // A second subscriber joins mid-GOP: it too starts at a keyframe, and
    // the first keeps every frame.
    let (mut s2, s2_session) = client("10.0.0.4:5000", Direction::RecvOnly, &mut core, 7, now);
    for _ in 0..300 {
        run(&mut core, &mut [&mut publ, &mut s1, &mut s2], &mut now, ms);
        if s2.connected {
            break;
        }
    }
    assert!(s2.connected);
    for i in 43..60 {
        send(&mut publ, i, now);
        run(
            &mut core,
            &mut [&mut publ, &mut s1, &mut s2],
            &mut now,
            frame_step,
        );
    }
    assert!(s2.frames[0].0);
    assert_eq!(s2.frames.len(), 10, "frames 50..59");
    assert_eq!(s1.frames.len(), 30 + 17);
    // Requests were merged: at most one per 500 ms went to the publisher,
    // though subscribers and the relay asked more often.
    let elapsed = now.duration_since(t_start).as_millis() as u64;
    let c = &core.counters()[&7];
    let sent = c.publisher.as_ref().unwrap().1.keyframe_requests;
    assert!(sent <= elapsed / 500 + 1, "{sent} requests in {elapsed} ms");
    assert!(c.keyframes_asked > sent, "{c:?}");

    // Counters and events.
    let counters = core.counters();
    let cam = &counters[&7];
    assert!(cam.flowing);
    assert_eq!(cam.subscribers.len(), 2);
    assert!(cam.keyframes_sent <= cam.keyframes_asked);
    core.close(s2_session, now);
    let events: Vec<_> = core.drain_events().collect();
    assert!(events.contains(&RelayEvent::Media {
        camera: 7,
        flowing: true
    }));
    assert!(events.iter().any(|e| matches!(e, RelayEvent::SessionEnded { session, role: PeerRole::Subscriber, .. } if *session == s2_session)));
    let mut seen = HashMap::new();
    for e in &events {
        *seen.entry(format!("{e:?}")).or_insert(0) += 1;
    }
    assert_eq!(core.counters()[&7].subscribers.len(), 1);
}

#[test]
fn a_viewer_joining_mid_gop_starts_at_the_cached_keyframe_and_catches_up() {
    let clip = clip("ball-160x120-30f.h264", Codec::H264);
    let mut now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()]).unwrap();
    let (mut publ, _) = client("10.0.0.2:5000", Direction::SendOnly, &mut core, 7, now);
    let ms = Duration::from_millis(10);
    for _ in 0..300 {
        run(&mut core, &mut [&mut publ], &mut now, ms);
        if publ.connected {
            break;
        }
    }
    let pt = {
        let w = publ.rtc.writer(publ.mid).unwrap();
        w.payload_params()
            .find(|p| p.spec().codec == RtcCodec::H264)
            .map(|p| p.pt())
            .unwrap()
    };
    let send = |publ: &mut Client, i: usize, now: Instant| {
        let f = &clip[i % clip.len()];
        publ.rtc
            .writer(publ.mid)
            .unwrap()
            .write(
                pt,
                now,
                MediaTime::from_90khz(i as u64 * 3000),
                f.data.to_vec(),
            )
            .unwrap();
    };
    // Frames 0..=28: the GOP of frame 20 is cached when the viewer comes.
    let frame_step = Duration::from_millis(33);
    for i in 0..=28 {
        send(&mut publ, i, now);
        run(&mut core, &mut [&mut publ], &mut now, frame_step);
    }
    let (mut s1, _) = client("10.0.0.3:5000", Direction::RecvOnly, &mut core, 7, now);
    let mut connected_at = None;
    for _ in 0..300 {
        run(&mut core, &mut [&mut publ, &mut s1], &mut now, ms);
        if s1.connected {
            connected_at = Some(now);
            break;
        }
    }
    let connected_at = connected_at.expect("the viewer connects");
    assert!(
        s1.frames.first().is_some_and(|f| f.0),
        "the cached keyframe came at once, with no frame from the publisher: {:?}",
        s1.frames
    );
    assert!(s1.times[0].1 <= connected_at, "{:?}", s1.times);
    let pli_before = publ.plis;
    // Live frames go on: the viewer gets the backlog faster than real
    // time, then live frames at the source's spacing.
    for i in 29..90 {
        send(&mut publ, i, now);
        run(&mut core, &mut [&mut publ, &mut s1], &mut now, frame_step);
    }
    run(&mut core, &mut [&mut publ, &mut s1], &mut now, frame_step);
    // Every frame from the cached keyframe (20) on, once, in order.
    assert_eq!(s1.frames.len(), 90 - 20, "frames 20..=89");
    assert!(s1.frames[0].0 && s1.frames[10].0, "keyframes at 20 and 30");
    for w in s1.times.windows(2) {
        assert!(w[1].0 > w[0].0, "RTP times rise: {w:?}");
    }
    // Caught up within a second of joining: from then on, frames arrive
    // as the publisher sends them, 3000 ticks apart.
    let live_from = s1
        .times
        .iter()
        .position(|t| t.1 >= connected_at + Duration::from_secs(1))
        .unwrap();
    for w in s1.times[live_from..].windows(2) {
        assert_eq!(w[1].0 - w[0].0, 3000, "live spacing: {w:?}");
    }
    // The backlog went faster: the first 9 frames (20..=28, 0.27 s of
    // video) within their compressed time.
    let burst = s1.times[8].1.duration_since(s1.times[0].1);
    assert!(burst < Duration::from_millis(270), "{burst:?}");
    // Nobody asked the publisher for a keyframe for this viewer.
    assert_eq!(publ.plis, pli_before, "no keyframe request for the join");
    let c = &core.counters()[&7];
    assert_eq!(c.subscribers[0].1.catch_ups, 1, "{c:?}");
}

#[test]
fn a_local_cameras_kept_gop_starts_its_first_viewer_at_once() {
    // An NVR camera: no publisher peer; its recorder keeps the GOP while
    // nobody watches, and hands it over when the first viewer comes.
    let clip = clip("ball-160x120-30f.h264", Codec::H264);
    let mut now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()]).unwrap();
    assert!(!core.watched(9));
    let (mut s1, _) = client("10.0.0.3:5000", Direction::RecvOnly, &mut core, 9, now);
    assert!(core.watched(9), "a viewer, connecting");
    connect(&mut core, &mut [&mut s1], &mut now);
    assert!(s1.frames.is_empty());
    // Frames 10..=16 (keyframe 10) were kept: the first goes at once.
    core.local_gop(9, &clip[10..=16], now);
    run(&mut core, &mut [&mut s1], &mut now, Duration::ZERO);
    assert_eq!(s1.frames.len(), 1, "the keyframe, at once");
    assert!(s1.frames[0].0);
    // Then live frames; the backlog is sent faster than real time.
    for i in 17..40 {
        let mut f = clip[i % clip.len()].clone();
        f.pts_90k = i as i64 * 3000;
        core.forward_local(9, &f, now);
        run(
            &mut core,
            &mut [&mut s1],
            &mut now,
            Duration::from_millis(33),
        );
    }
    for _ in 0..20 {
        run(
            &mut core,
            &mut [&mut s1],
            &mut now,
            Duration::from_millis(33),
        );
    }
    assert_eq!(s1.frames.len(), 40 - 10, "frames 10..40, once each");
    assert!(s1.frames[0].0 && s1.frames[10].0 && s1.frames[20].0);
    for w in s1.times.windows(2) {
        assert!(w[1].0 > w[0].0, "RTP times rise: {w:?}");
    }
}

#[test]
fn an_h265_camera_passes_through_to_viewers_that_offer_h265() {
    let clip = clip("ball-160x120-10f.h265", Codec::H265);
    assert!(clip[0].keyframe);
    let mut now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()]).unwrap();
    let (mut hevc, _) = client_of(
        "10.0.0.3:5000",
        Direction::RecvOnly,
        &mut core,
        5,
        now,
        RtcCodec::H265,
        false,
    );
    let (mut avc, _) = client("10.0.0.4:5000", Direction::RecvOnly, &mut core, 5, now);
    connect(&mut core, &mut [&mut hevc, &mut avc], &mut now);
    for (i, f) in clip.iter().enumerate() {
        let mut f = f.clone();
        f.pts_90k = i as i64 * 3000;
        core.forward_local(5, &f, now);
        run(
            &mut core,
            &mut [&mut hevc, &mut avc],
            &mut now,
            Duration::from_millis(33),
        );
    }
    run(
        &mut core,
        &mut [&mut hevc, &mut avc],
        &mut now,
        Duration::from_millis(33),
    );
    // As it came, in H.265, no transcoding. (str0m's H.265 depacketizer
    // hands the first access unit over in two pieces, so count bytes.)
    assert!(hevc.frames.len() >= clip.len(), "{:?}", hevc.frames);
    assert!(hevc.frames.iter().take(2).any(|f| f.0), "{:?}", hevc.frames);
    assert!(hevc.codecs.iter().all(|c| *c == RtcCodec::H265));
    let sent: usize = clip.iter().map(|f| f.data.len()).sum();
    let got: usize = hevc.frames.iter().map(|f| f.1).sum();
    assert_eq!(got, sent, "the same bytes");
    // A viewer without H.265 gets nothing it cannot decode, counted.
    assert!(avc.frames.is_empty());
    let c = &core.counters()[&5];
    let dropped: Vec<u64> = c.subscribers.iter().map(|s| s.1.frames_dropped).collect();
    assert!(
        dropped.iter().any(|d| *d >= clip.len() as u64 - 1),
        "{dropped:?}"
    );
}

#[test]
fn wrong_direction_and_junk_offers_are_refused() {
    let now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()]).unwrap();
    assert!(core.accept(1, PeerRole::Publisher, "not sdp", now).is_err());
    let mut rtc = Rtc::builder().build(now);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, _) = change.apply().unwrap();
    let e = core
        .accept(1, PeerRole::Publisher, &offer.to_sdp_string(), now)
        .unwrap_err();
    assert!(e.to_string().contains("must offer to send"), "{e}");
    assert_eq!(core.peers(), 0);
}

/// Found by `fuzz/fuzz_targets/sdp_offer.rs`: an offer whose only m-line
/// is of a kind str0m does not know was accepted, with an answer that had
/// no m-line at all.
#[test]
fn offer_without_audio_or_video_is_refused() {
    let now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()]).unwrap();
    let mut rtc = Rtc::builder().clear_codecs().enable_h264(true).build(now);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, _) = change.apply().unwrap();
    let offer = offer.to_sdp_string();
    assert!(core.accept(1, PeerRole::Publisher, &offer, now).is_ok());
    let unknown = offer.replace("m=video ", "m=\0\0\0?o ");
    assert_ne!(unknown, offer);
    let e = core
        .accept(2, PeerRole::Publisher, &unknown, now)
        .unwrap_err();
    assert!(e.to_string().contains("no audio or video"), "{e}");
    assert_eq!(core.peers(), 1);
}

/// Found by `fuzz/fuzz_targets/sdp_offer.rs`: payload type 114 mapped in
/// both m-lines made str0m's `accept_offer` panic ("Pt locked multiple
/// times"), which would have ended the relay's task for every camera.
#[test]
fn offer_that_makes_str0m_panic_is_refused() {
    let offer = "v=0\no=0 8 0\ns=-\nt=0 0\na=group:E a2L Sd7\n\
        m=video 9 UDP/TLS/RTP/SAVPF 115\na=ice-ufrag:P\na=ice-pwd:i\na=fingerprint:s C0\n\
        a=mid:a2L\na=sendonly\na=rtpmap:114 H264/90000\na=rtpmap:115 r/9\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\na=rtpmap:114 H264/90000\na=mid:Sd7\na=recvonly\n\
        a=rtpmap:111 4/2\na=fmtp:114 packetization-mode=1";
    let now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()]).unwrap();
    let e = core.accept(1, PeerRole::Publisher, offer, now).unwrap_err();
    assert!(e.to_string().contains("could not be answered"), "{e}");
    assert_eq!(core.peers(), 0);
    // The core goes on answering.
    let mut rtc = Rtc::builder().clear_codecs().enable_h264(true).build(now);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (good, _) = change.apply().unwrap();
    assert!(
        core.accept(1, PeerRole::Publisher, &good.to_sdp_string(), now)
            .is_ok()
    );
}

#[test]
fn a_viewers_audio_and_video_are_one_media_stream() {
    // A browser's recvonly transceivers carry no stream id; the answer must
    // put both in one, or the browser plays them without lip sync.
    let now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()]).unwrap();
    let mut rtc = Rtc::builder()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false)
        .build(now);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let (_, answer) = core
        .accept(7, PeerRole::Subscriber, &offer.to_sdp_string(), now)
        .unwrap();
    let streams: Vec<&str> = answer
        .lines()
        .filter_map(|l| l.strip_prefix("a=msid:"))
        .map(|m| m.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(streams, ["camera-7", "camera-7"], "{answer}");
    for l in answer.lines().filter(|l| l.contains(" msid:")) {
        assert!(l.contains(" msid:camera-7 "), "{l}");
    }
    // The rewritten answer is still one the viewer accepts.
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
}

#[test]
fn a_local_cameras_sound_goes_to_the_viewers_that_took_audio() {
    let clip = clip("ball-160x120-30f.h264", Codec::H264);
    let mut now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()]).unwrap();
    let (mut listener, session) = client_of(
        "10.0.0.3:5000",
        Direction::RecvOnly,
        &mut core,
        9,
        now,
        RtcCodec::H264,
        true,
    );
    let (mut watcher, _) = client("10.0.0.4:5000", Direction::RecvOnly, &mut core, 9, now);
    let ms = Duration::from_millis(10);
    connect(&mut core, &mut [&mut listener, &mut watcher], &mut now);
    assert!(core.heard(9), "a viewer took audio");
    assert!(!core.heard(10));
    let opus = Arc::new(AudioParameters::opus(1));
    for i in 0..30i64 {
        let mut f = clip[i as usize % clip.len()].clone();
        f.pts_90k = i * 3000;
        core.forward_local(9, &f, now);
        // Two 20 ms packets of sound per 33 ms frame, near enough.
        for j in 0..2 {
            let pts = i * 3000 + j * 1800;
            let a = AudioFrame {
                data: Bytes::from_static(&[0xf8, 0xff, 0xfe]),
                pts_90k: pts,
                duration_90k: 1800,
                params: opus.clone(),
            };
            core.forward_local_audio(9, &a, now);
        }
        run(
            &mut core,
            &mut [&mut listener, &mut watcher],
            &mut now,
            Duration::from_millis(33),
        );
    }
    for _ in 0..10 {
        run(&mut core, &mut [&mut listener, &mut watcher], &mut now, ms);
    }
    let sound: Vec<u64> = listener
        .codecs
        .iter()
        .zip(&listener.times)
        .filter(|(c, _)| **c == RtcCodec::Opus)
        .map(|(_, t)| t.0)
        .collect();
    assert_eq!(sound.len(), 60, "every packet of sound to the listener");
    for w in sound.windows(2) {
        assert!(w[1] > w[0], "the sound's RTP times rise: {w:?}");
    }
    assert!(
        !watcher.codecs.contains(&RtcCodec::Opus),
        "no sound to a viewer without audio"
    );
    assert!(
        listener
            .codecs
            .iter()
            .filter(|c| **c == RtcCodec::H264)
            .count()
            >= 29
    );
    core.close(session, now);
    assert!(!core.heard(9), "the listener left");
}

/// An H.264-only viewer's offer, for a refusal.
fn h264_offer(now: Instant) -> String {
    let mut rtc = Rtc::builder().clear_codecs().enable_h264(true).build(now);
    rtc.add_local_candidate(Candidate::host("10.0.0.9:5000".parse().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    change.apply().unwrap().0.to_sdp_string()
}

#[test]
fn an_h265_camera_is_transcoded_for_viewers_without_h265_within_the_limit() {
    let h265 = clip("ball-160x120-10f.h265", Codec::H265);
    let h264 = clip("ball-160x120-30f.h264", Codec::H264);
    let mut now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()])
        .unwrap()
        .with_transcode_limit(1);
    core.set_local_video(5, Some((Codec::H265, true)), now);
    assert!(!core.transcoding(5), "nobody watches yet");
    let (mut hevc, hevc_session) = client_of(
        "10.0.0.3:5000",
        Direction::RecvOnly,
        &mut core,
        5,
        now,
        RtcCodec::H265,
        false,
    );
    let (mut avc, avc_session) = client("10.0.0.4:5000", Direction::RecvOnly, &mut core, 5, now);
    assert!(!core.transcoded(hevc_session), "H.265 passes through");
    assert!(
        core.transcoded(avc_session),
        "an H.264-only viewer gets the transcode"
    );
    assert!(core.transcoding(5));
    assert!(core.take_transcode_changed());
    assert!(
        core.watched(5),
        "the H.265 viewer watches the camera's own stream"
    );
    connect(&mut core, &mut [&mut hevc, &mut avc], &mut now);
    assert!(
        core.take_transcode_keyframe(5),
        "nothing transcoded is cached: the transcoder is asked for a keyframe"
    );
    for i in 0..h264.len() {
        let mut f = h265[i % h265.len()].clone();
        f.pts_90k = i as i64 * 3000;
        f.keyframe = i == 0;
        core.forward_local(5, &f, now);
        let mut t = h264[i].clone();
        t.pts_90k = i as i64 * 3000;
        core.forward_local_transcoded(5, &t, now);
        run(
            &mut core,
            &mut [&mut hevc, &mut avc],
            &mut now,
            Duration::from_millis(33),
        );
    }
    assert!(hevc.codecs.iter().all(|c| *c == RtcCodec::H265));
    assert!(avc.codecs.iter().all(|c| *c == RtcCodec::H264));
    assert!(avc.frames.len() >= 29, "{}", avc.frames.len());
    assert!(avc.frames[0].0, "the transcode starts at its keyframe");
    assert!(hevc.frames.len() >= 29, "{}", hevc.frames.len());
    let c = &core.counters()[&5];
    assert!(c.transcoding);
    assert_eq!(c.transcoded_subscribers, 1);

    // A second camera needing a transcode is over the limit: refused, and
    // nothing of it stays.
    core.set_local_video(6, Some((Codec::H264, true)), now);
    let peers = core.peers();
    let e = core
        .accept(6, PeerRole::Subscriber, &h264_offer(now), now)
        .unwrap_err();
    assert!(
        matches!(e, reallive_relay::RelayError::TranscodeLimit { limit: 1 }),
        "{e}"
    );
    assert!(e.to_string().contains("limit"), "{e}");
    assert_eq!(core.peers(), peers);
    assert!(!core.transcoding(6));

    // The transcode outlives its last viewer by 10 s, then stops; the
    // next camera then gets one.
    core.close(avc_session, now);
    let left = now;
    core.tick(left + Duration::from_millis(9_900));
    assert!(core.transcoding(5), "it lingers");
    core.tick(left + Duration::from_millis(10_100));
    assert!(!core.transcoding(5), "stopped 10 s after the last viewer");
    assert!(core.take_transcode_changed());
    let now = left + Duration::from_millis(10_200);
    let (b_session, _) = core
        .accept(6, PeerRole::Subscriber, &h264_offer(now), now)
        .unwrap();
    assert!(core.transcoded(b_session), "B-frames are transcoded too");
    assert!(core.transcoding(6));
    assert!(!core.watched(6), "nobody watches camera 6's own stream");
}

#[test]
fn a_viewer_in_before_the_camera_said_its_codec_moves_to_the_transcode() {
    let now = Instant::now();
    let mut core = Core::new(vec![RELAY.parse().unwrap()])
        .unwrap()
        .with_transcode_limit(0);
    let (session, _) = core
        .accept(8, PeerRole::Subscriber, &h264_offer(now), now)
        .unwrap();
    assert!(
        !core.transcoded(session),
        "nothing known yet: the camera's own"
    );
    // Transcoding is off (limit 0): the viewer cannot be served, and goes.
    core.set_local_video(8, Some((Codec::H265, false)), now);
    assert_eq!(core.peers(), 0);
    assert!(
        core.drain_events()
            .any(|e| matches!(e, RelayEvent::SessionEnded { session: s, .. } if s == session))
    );
    let mut core = Core::new(vec![RELAY.parse().unwrap()])
        .unwrap()
        .with_transcode_limit(1);
    let (session, _) = core
        .accept(8, PeerRole::Subscriber, &h264_offer(now), now)
        .unwrap();
    core.set_local_video(8, Some((Codec::H265, false)), now);
    assert!(core.transcoded(session));
    assert!(core.transcoding(8));
    // An H.264 camera without B-frames needs none: back to its own stream.
    core.set_local_video(8, Some((Codec::H264, false)), now);
    assert!(!core.transcoded(session));
    assert!(core.watched(8));
}
