#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
// The publisher and the subscribers' process poll their sockets on plain
// threads of their own, never on a runtime thread.
#![allow(clippy::disallowed_methods)]
//! Relay figures for `docs/benchmarks.md`: one 1080p30 4 Mbit/s publisher
//! fanned out to N subscribers that live in a separate process, all over
//! real UDP on loopback.
//!
//! - CPU and memory of the relay process per subscriber (the publisher's
//!   own cost, measured with no subscribers, is subtracted);
//! - loss seen by the subscribers;
//! - latency from the publisher handing a frame to its WebRTC stack to a
//!   subscriber's stack returning it (wall clock, same machine);
//! - join time: from accepting a subscriber's offer to its first keyframe.
//!
//! `cargo bench -p reallive-relay --bench fanout [-- --seconds 10 --n 10,50,100,200]`

use std::io::{BufRead as _, BufReader, Write as _};

// As in `reallive-server`: the relay allocates per packet.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reallive_relay::{PeerRole, Relay, RelayConfig};
use reallive_test_support::process::rss_kib;
use reallive_test_support::process_cpu_time;
use str0m::change::SdpAnswer;
use str0m::format::Codec as RtcCodec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio_util::sync::CancellationToken;

const FPS: u64 = 30;
const GOP: u64 = 30;
const BITRATE: u64 = 4_000_000;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A client `Rtc` on its own socket, driven by hand.
struct Peer {
    rtc: Rtc,
    sock: UdpSocket,
    addr: SocketAddr,
    mid: Mid,
    next: Instant,
}

impl Peer {
    fn new(dir: Direction) -> (Peer, String, str0m::change::SdpPendingOffer) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let addr = sock.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .set_send_buffer_video(4000)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Video, dir, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        (
            Peer {
                rtc,
                sock,
                addr,
                mid,
                next: Instant::now(),
            },
            offer.to_sdp_string(),
            pending,
        )
    }

    /// Reads what arrived and sends what is due; returns events.
    fn pump(&mut self, buf: &mut [u8], events: &mut Vec<Event>) {
        while let Ok((n, from)) = self.sock.recv_from(buf) {
            let Ok(contents) = buf[..n].try_into() else {
                continue;
            };
            let _ = self.rtc.handle_input(Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: self.addr,
                    contents,
                },
            ));
        }
        let now = Instant::now();
        if now >= self.next {
            let _ = self.rtc.handle_input(Input::Timeout(now));
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let _ = self.sock.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(_) => break,
            }
        }
    }
}

/// A 1080p-sized access unit: SPS+PPS+IDR on keyframes, one slice
/// otherwise. The payload is not decodable (the relay never decodes); its
/// first bytes carry the send time for the latency figure.
fn frame(i: u64, keyframe: bool, sent_ns: u64) -> Vec<u8> {
    let avg = BITRATE / 8 / FPS;
    let size = if keyframe {
        avg * 4
    } else {
        avg * (GOP - 4) / (GOP - 1)
    } as usize;
    let mut f = Vec::with_capacity(size + 64);
    if keyframe {
        // SPS (1920x1080 constrained baseline) and PPS.
        f.extend_from_slice(&[
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x28, 0xda, 0x01, 0xe0, 0x08, 0x9f, 0x96,
        ]);
        f.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        f.extend_from_slice(&[0, 0, 0, 1, 0x65]);
    } else {
        f.extend_from_slice(&[0, 0, 0, 1, 0x41]);
    }
    // 0x88-prefixed so no start code appears inside.
    for b in sent_ns.to_be_bytes() {
        f.push(0x80 | (b >> 4));
        f.push(0x80 | (b & 0xf));
    }
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while f.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        f.push(0x80 | (x as u8 & 0x7f));
    }
    f
}

fn sent_ns_of(data: &[u8]) -> Option<u64> {
    // Skip parameter sets: find the last start code's NAL, then 16 bytes.
    let pos = data.windows(4).rposition(|w| w == [0, 0, 0, 1])? + 5;
    let b = data.get(pos..pos + 16)?;
    let mut v = 0u64;
    for pair in b.chunks(2) {
        v = (v << 8) | u64::from((pair[0] & 0xf) << 4 | (pair[1] & 0xf));
    }
    Some(v)
}

/// The child: N subscribers; offers out on stdout, answers in on stdin,
/// then a summary line when stdin closes.
fn child(n: usize, seconds: u64) {
    let mut peers = Vec::new();
    let mut pendings = Vec::new();
    let stdout = std::io::stdout();
    for _ in 0..n {
        let (p, offer, pending) = Peer::new(Direction::RecvOnly);
        writeln!(stdout.lock(), "{}", serde_json::json!({ "offer": offer })).unwrap();
        peers.push(p);
        pendings.push(Some(pending));
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut joined_at = Vec::new();
    for i in 0..n {
        let line = lines.next().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let answer = SdpAnswer::from_sdp_string(v["answer"].as_str().unwrap()).unwrap();
        peers[i]
            .rtc
            .sdp_api()
            .accept_answer(pendings[i].take().unwrap(), answer)
            .unwrap();
        joined_at.push(Instant::now());
    }
    let mut buf = vec![0u8; 2048];
    let mut events = Vec::new();
    let mut frames = vec![0u64; n];
    let mut first_key: Vec<Option<Duration>> = vec![None; n];
    let mut lat_us: Vec<u64> = Vec::new();
    let mut loss: Vec<f32> = vec![0.0; n];
    let end = Instant::now() + Duration::from_secs(seconds + 8);
    while Instant::now() < end {
        for (i, p) in peers.iter_mut().enumerate() {
            events.clear();
            p.pump(&mut buf, &mut events);
            for e in events.drain(..) {
                match e {
                    Event::MediaData(d) => {
                        frames[i] += 1;
                        if d.is_keyframe() && first_key[i].is_none() {
                            first_key[i] = Some(joined_at[i].elapsed());
                        }
                        if let Some(s) = sent_ns_of(&d.data) {
                            lat_us.push(wall_ns().saturating_sub(s) / 1000);
                        }
                    }
                    Event::MediaIngressStats(s) => {
                        if let Some(l) = s.loss {
                            loss[i] = l;
                        }
                    }
                    _ => {}
                }
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    lat_us.sort_unstable();
    let pct = |p: f64| {
        lat_us
            .get(((lat_us.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let mut joins: Vec<u128> = first_key.iter().flatten().map(|d| d.as_millis()).collect();
    joins.sort_unstable();
    let jpct = |p: f64| {
        joins
            .get(((joins.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{}",
        serde_json::json!({
            "frames_min": frames.iter().min(), "frames_max": frames.iter().max(),
            "lat_p50_us": pct(0.5), "lat_p99_us": pct(0.99),
            "loss_max": loss.iter().cloned().fold(0.0f32, f32::max),
            "join_p50_ms": jpct(0.5), "join_p95_ms": jpct(0.95), "joined": joins.len(),
        })
    );
}

fn main() {
    if let Some(n) = arg("--child") {
        let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
        child(n.parse().unwrap(), seconds);
        return;
    }
    str0m::crypto::from_feature_flags().install_process_default();
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    let ns: Vec<usize> = arg("--n")
        .unwrap_or_else(|| "0,10,50,100,200".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut baseline: Option<(f64, u64)> = None;
    for n in ns {
        let (cores, rss, child_out) = rt.block_on(round(n, seconds));
        if n == 0 {
            baseline = Some((cores, rss));
            println!("publisher alone: {cores:.3} cores, RSS {rss} KiB; {child_out}");
            continue;
        }
        let (c0, r0) = baseline.unwrap_or((0.0, rss));
        println!(
            "N={n}: relay+publisher {cores:.3} cores, {:.3}% of a core per subscriber, RSS +{:.0} KiB per subscriber; subscribers: {child_out}",
            (cores - c0) / n as f64 * 100.0,
            (rss.saturating_sub(r0)) as f64 / n as f64,
        );
    }
}

/// One round: relay, publisher, N subscribers in a child process.
async fn round(n: usize, seconds: u64) -> (f64, u64, String) {
    let stop = CancellationToken::new();
    let (relay, _events) = Relay::start(
        RelayConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            public_ips: vec![],
            ice_tcp: None,
            gop_cache_bytes: reallive_relay::DEFAULT_GOP_CACHE_BYTES,
            max_transcodes: 1,
        },
        stop.clone(),
    )
    .await
    .unwrap();
    // The publisher, on its own thread.
    let (mut publ, offer, pending) = Peer::new(Direction::SendOnly);
    let answer = relay
        .accept(1, PeerRole::Publisher, offer)
        .await
        .unwrap()
        .answer;
    publ.rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let running = Arc::new(AtomicBool::new(true));
    let run2 = running.clone();
    let publisher = std::thread::spawn(move || {
        let mut buf = vec![0u8; 2048];
        let mut events = Vec::new();
        let mut connected = false;
        let mut i = 0u64;
        let mut since_keyframe = 0u64;
        let mut force_keyframe = false;
        let start = Instant::now();
        let mut next_frame = start;
        while run2.load(Ordering::Relaxed) {
            events.clear();
            publ.pump(&mut buf, &mut events);
            if events.iter().any(|e| matches!(e, Event::Connected)) {
                connected = true;
            }
            // Like the pusher's encoder: a keyframe request forces one, and
            // the GOP starts again from it.
            if events
                .iter()
                .any(|e| matches!(e, Event::KeyframeRequest(_)))
            {
                force_keyframe = true;
            }
            if connected && Instant::now() >= next_frame {
                let keyframe = force_keyframe || since_keyframe >= GOP || i == 0;
                force_keyframe = false;
                let pt = publ.rtc.writer(publ.mid).and_then(|w| {
                    w.payload_params()
                        .find(|p| p.spec().codec == RtcCodec::H264)
                        .map(|p| p.pt())
                });
                if let (Some(pt), Some(w)) = (pt, publ.rtc.writer(publ.mid)) {
                    let _ = w.write(
                        pt,
                        Instant::now(),
                        MediaTime::from_90khz(i * 3000),
                        frame(i, keyframe, wall_ns()),
                    );
                }
                since_keyframe = if keyframe { 1 } else { since_keyframe + 1 };
                i += 1;
                next_frame += Duration::from_micros(1_000_000 / FPS);
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut child = None;
    if n > 0 {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args(["--child", &n.to_string(), "--seconds", &seconds.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut inp = c.stdin.take().unwrap();
        // All offers first: the child writes them all before it reads any
        // answer, and pipes are only 64 KiB.
        let mut offers = Vec::with_capacity(n);
        for _ in 0..n {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            offers.push(v["offer"].as_str().unwrap().to_string());
        }
        for offer in offers {
            let answer = relay
                .accept(1, PeerRole::Subscriber, offer)
                .await
                .unwrap()
                .answer;
            writeln!(inp, "{}", serde_json::json!({ "answer": answer })).unwrap();
        }
        child = Some((c, out, inp));
    }
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    relay.forward_latency().reset();
    let (c0, t0) = (process_cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cores = (process_cpu_time() - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let lat = relay.forward_latency();
    let ms = |p: f64| {
        lat.percentile(p)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    let relay_latency = format!(
        "relay added latency p50 {:.1} ms, p99 {:.1} ms ({} sends)",
        ms(50.0),
        ms(99.0),
        lat.count()
    );
    let rss = rss_kib(None);
    running.store(false, Ordering::Relaxed);
    publisher.join().unwrap();
    let mut summary = String::new();
    if let Some((mut c, mut out, inp)) = child {
        drop(inp);
        out.read_line(&mut summary).unwrap();
        let _ = c.wait();
    }
    stop.cancel();
    (cores, rss, format!("{}; {relay_latency}", summary.trim()))
}
