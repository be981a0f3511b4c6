#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The puller end to end, against a real server and pusher: what it
//! records plays in ffprobe and ffmpeg, a `kill -9` loses no committed
//! fragment, and a server restart leaves a gap and then recording again.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reallive_store::{Store, StoreConfig, TimeRange};
use reallive_test_support::ffprobe::flash_click_offsets;
use reallive_test_support::http::Api;
use reallive_test_support::process::{signal, spawn_server, spawn_server_at};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const PASSWORD: &str = "puller-admin-password";

fn bin(name: &str) -> PathBuf {
    let puller = Path::new(env!("CARGO_BIN_EXE_reallive-puller"));
    let b = puller.with_file_name(name);
    assert!(
        b.exists(),
        "{} is missing: run the tests with --workspace so it is built",
        b.display()
    );
    b
}

/// A running puller: its playback address and everything it printed.
struct Puller {
    child: Child,
    playback: SocketAddr,
    log: Arc<Mutex<String>>,
}

async fn start_puller(server: SocketAddr, camera: i64, data: &Path, extra: &[&str]) -> Puller {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reallive-puller"))
        .args(extra)
        .args(["--server", &format!("http://{server}")])
        .args(["--username", "admin", "--password", PASSWORD])
        .args(["--camera", &camera.to_string()])
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let playback = loop {
        let l = lines
            .next_line()
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the puller exited: {}", log.lock().unwrap()));
        log.lock().unwrap().push_str(&format!("{l}\n"));
        if let Some(a) = l.strip_prefix("reallive-puller: playback on http://") {
            break a.parse().unwrap();
        }
    };
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            log2.lock().unwrap().push_str(&format!("{l}\n"));
        }
    });
    Puller {
        child,
        playback,
        log,
    }
}

async fn camera(api: &Api) -> (i64, String) {
    let created = api
        .post("/api/cameras", serde_json::json!({"name": "yard"}))
        .await
        .json();
    (
        created["camera"]["id"].as_i64().unwrap(),
        created["stream_key"].as_str().unwrap().to_string(),
    )
}

fn pusher(server: SocketAddr, camera: i64, key: &str, seconds: Option<u32>) -> Command {
    let mut c = Command::new(bin("reallive-pusher"));
    c.args(["--source", "test", "--width", "640", "--height", "360"])
        .args(["--server", &format!("http://{server}")])
        .args(["--camera", &camera.to_string(), "--key", key])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Some(s) = seconds {
        c.args(["--seconds", &s.to_string()]);
    }
    c
}

/// The recordings the puller lists: `(id, start_ms, end_ms, bytes)`.
async fn listed(p: &Puller, camera: i64) -> Vec<(i64, i64, i64, u64)> {
    let r = Api::new(p.playback)
        .get(&format!("/api/recordings?camera={camera}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_i64().unwrap(),
                v["start_ms"].as_i64().unwrap(),
                v["end_ms"].as_i64().unwrap(),
                v["bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The camera's recorded files, oldest first, as the store indexes them.
async fn recorded_files(data: &Path, camera: i64) -> Vec<std::path::PathBuf> {
    let (store, _) = Store::open(StoreConfig::new(data)).await.unwrap();
    let recs = store
        .recordings(
            &reallive_core::CameraId(camera).store_key(),
            TimeRange::all(),
        )
        .await
        .unwrap();
    let files = recs.iter().map(|r| store.root().join(&r.path)).collect();
    store.close().await;
    files
}

/// Sum of ffprobe's frames and durations over the files.
fn probe_video(files: &[std::path::PathBuf]) -> (u64, f64) {
    files.iter().fold((0, 0.0), |(frames, secs), f| {
        let p = reallive_test_support::ffprobe::probe(f);
        (frames + p.frames, secs + p.duration_secs.unwrap_or(0.0))
    })
}

/// The Opus stream ffprobe finds in the files: its total span (from the
/// packets' timestamps), and how many files have one.
fn probe_audio(files: &[std::path::PathBuf]) -> (f64, usize) {
    let mut secs = 0.0;
    let mut with_audio = 0;
    for f in files {
        let out = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "a:0",
                "-show_entries",
                "stream=codec_name:packet=pts_time",
                "-of",
                "csv=p=0",
            ])
            .arg(f)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let lines = text.lines().filter(|l| !l.is_empty());
        if lines.clone().any(|l| l == "opus") {
            with_audio += 1;
        }
        // Each packet's pts (its duration is not always shown); one Opus
        // packet is 20 ms.
        let pts: Vec<f64> = lines
            .filter_map(|l| l.split(',').next()?.parse().ok())
            .collect();
        if let (Some(first), Some(last)) = (pts.first(), pts.last()) {
            secs += last + 0.02 - first;
        }
    }
    (secs, with_audio)
}

/// 30 s from the pusher (with its test tone) through the relay into the
/// puller's store: 30 s ± 1 s of video in ffprobe, frames within 2 % of
/// those sent, the sound beside it in every file, and the VOD playlist
/// plays both in ffmpeg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_recorded_play_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, addr) =
        spawn_server(&bin("reallive-server"), &dir.path().join("srv"), PASSWORD).await;
    let admin = Api::new(addr).login("admin", PASSWORD).await;
    let (cam, key) = camera(&admin).await;
    let data = dir.path().join("puller");
    // The preview decodes every frame on the way (fakesink: CI has no
    // display).
    let mut puller = start_puller(
        addr,
        cam,
        &data,
        &["--preview", "--preview-sink", "fakesink"],
    )
    .await;
    // The puller joins first and waits for the publisher.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = pusher(addr, cam, &key, Some(30))
        .args(["--audio", "test"])
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let sent: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("reallive-pusher: published "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The VOD playlist of what is recorded plays in ffmpeg, picture and
    // sound (the pusher's test tone, Opus), with no decoding error.
    let url = format!("http://{}/api/cameras/{cam}/vod.m3u8", puller.playback);
    let ff = Command::new("ffmpeg")
        .args([
            "-v", "error", "-i", &url, "-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-",
        ])
        .output()
        .await
        .unwrap();
    // ffmpeg's null muxer may note one repeated millisecond dts where the
    // HLS demuxer joins two segments; anything else is an error.
    let ff_err = String::from_utf8_lossy(&ff.stderr);
    assert!(
        ff.status.success()
            && ff_err
                .lines()
                .all(|l| l.contains("non monotonically increasing dts")),
        "ffmpeg: {ff_err}"
    );
    // Another camera's id is not served.
    let other = Api::new(puller.playback)
        .get(&format!("/api/cameras/{}/vod.m3u8", cam + 1))
        .await;
    assert_eq!(other.status, 404);

    // An export of the whole run, for the lip-sync check below.
    let rows = listed(&puller, cam).await;
    let (start, end) = (
        rows.iter().map(|r| r.1).min().unwrap(),
        rows.iter().map(|r| r.2).max().unwrap(),
    );
    let export = Api::new(puller.playback)
        .get(&format!(
            "/api/cameras/{cam}/export.mp4?start={start}&end={end}"
        ))
        .await;
    assert_eq!(export.status, 200, "{}", export.text());
    let export_path = dir.path().join("export.mp4");
    std::fs::write(&export_path, &export.body).unwrap();

    let status = signal(&mut puller.child, "-TERM").await;
    let log = puller.log.lock().unwrap().clone();
    assert!(status.success(), "{log}");
    assert!(log.contains("recorded"), "{log}");
    let recorded = recorded_files(&data, cam).await;
    let (frames, secs) = probe_video(&recorded);
    let files = recorded.len();
    eprintln!("sent {sent}; recorded {frames} frames, {secs:.2} s in {files} files");
    // Every file has the two tracks, and the sound lasts as long as the
    // picture: within 0.5 s (its first packets may race the session's
    // start).
    let (audio_secs, audio_files) = probe_audio(&recorded);
    eprintln!("recorded {audio_secs:.2} s of Opus in {audio_files} of {files} files");
    assert_eq!(audio_files, files, "files without sound; {log}");
    assert!(
        audio_secs >= secs - 0.5 && audio_secs <= secs + 0.5,
        "{audio_secs:.2} s of sound for {secs:.2} s of picture"
    );
    assert!((secs - 30.0).abs() <= 1.0, "{secs:.2} s recorded; {log}");
    // Lip sync as recorded (issue 22): the tone's click within 25 ms of
    // the test pattern's flash, by the file's timestamps (of the frame
    // interval in which the flash began: frames are 33 ms apart), in the
    // longest file and in the export, from the first flash: the
    // subscriber holds the first sound until the relay's sender reports
    // (every second) place it.
    let longest = recorded
        .iter()
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .unwrap();
    for path in [longest, &export_path] {
        let pairs: Vec<(f64, f64)> = flash_click_offsets(path)
            .into_iter()
            .map(|p| (p.0, p.1))
            .collect();
        let ms = |x: f64| (x * 10_000.0).round() / 10.0;
        let raw: Vec<f64> = pairs.iter().map(|p| ms(p.0)).collect();
        let outside: Vec<f64> = pairs.iter().map(|p| ms(p.1)).collect();
        eprintln!(
            "{}: click - first flash frame {raw:?} ms; outside the flash's frame interval {outside:?} ms",
            path.display()
        );
        assert!(
            pairs.len() >= 25,
            "{} flash/click pairs in {}",
            pairs.len(),
            path.display()
        );
        assert!(
            outside.iter().all(|o| o.abs() <= 25.0),
            "the click is more than 25 ms from the flash: {outside:?} ms in {}",
            path.display()
        );
    }
    let diff = frames.abs_diff(sent);
    assert!(
        diff * 100 <= sent * 2,
        "recorded {frames} of {sent} frames; {log}"
    );
    let previewed: u64 = log
        .lines()
        .find_map(|l| l.split(": preview decoded ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no preview count: {log}"));
    assert!(
        previewed.abs_diff(frames) * 100 <= frames * 2,
        "the preview decoded {previewed} of {frames} frames; {log}"
    );
    srv.kill().await.unwrap();
}

/// `kill -9` mid-recording loses no committed fragment, and a restarted
/// puller records on. Then the server restarts: the puller records again
/// within 10 s of its return, and the outage is a gap in the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_server_restart_lose_nothing_and_leave_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let srv_dir = dir.path().join("srv");
    let server_bin = bin("reallive-server");
    let (mut srv, addr) = spawn_server(&server_bin, &srv_dir, PASSWORD).await;
    let admin = Api::new(addr).login("admin", PASSWORD).await;
    let (cam, key) = camera(&admin).await;
    let data = dir.path().join("puller");
    let mut puller = start_puller(addr, cam, &data, &[]).await;
    let mut push = pusher(addr, cam, &key, None)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Recording for a while, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let l = listed(&puller, cam).await;
        if l.iter().map(|r| r.3).sum::<u64>() > 0 && l.iter().any(|r| r.2 - r.1 >= 4000) {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "nothing recorded: {}",
            puller.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    puller.child.kill().await.unwrap();
    let mut puller = start_puller(addr, cam, &data, &[]).await;
    let after = listed(&puller, cam).await;
    for (id, start, end, bytes) in &before {
        let now = after
            .iter()
            .find(|r| r.0 == *id)
            .unwrap_or_else(|| panic!("recording {id} vanished: {after:?}"));
        assert_eq!(now.1, *start);
        assert!(
            now.2 >= *end && now.3 >= *bytes,
            "{id} shrank: {before:?} -> {after:?}"
        );
    }
    // And it records on, in a new file.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = listed(&puller, cam).await;
        if l.len() > before.len() && l.last().is_some_and(|r| r.2 - r.1 >= 2000) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recording after the restart: {l:?}\n{}",
            puller.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The server goes away for 4 s.
    srv.kill().await.unwrap();
    let down_ms = now_ms();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (mut srv, _) = spawn_server_at(&server_bin, &srv_dir, PASSWORD, addr).await;
    let back = Instant::now();
    let back_ms = now_ms();
    let deadline = back + Duration::from_secs(10);
    let resumed = loop {
        let l = listed(&puller, cam).await;
        if let Some(r) = l.iter().find(|r| r.1 >= down_ms && r.2 > r.1) {
            break (l.clone(), *r);
        }
        assert!(
            Instant::now() < deadline,
            "the puller did not record within 10 s of the server's return: {l:?}\n{}",
            puller.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "recording again {} ms after the server came back",
        back.elapsed().as_millis()
    );
    // The gap: nothing recorded covers the outage.
    let (all, first_after) = resumed;
    let last_before = all
        .iter()
        .filter(|r| r.1 < down_ms)
        .map(|r| r.2)
        .max()
        .unwrap();
    assert!(last_before <= down_ms + 500, "{all:?}");
    assert!(first_after.1 >= back_ms - 500, "{all:?}");
    assert!(
        first_after.1 - last_before >= 3_000,
        "a gap of at least the outage: {all:?}"
    );

    let status = signal(&mut puller.child, "-TERM").await;
    assert!(status.success(), "{}", puller.log.lock().unwrap());
    let _ = push.kill().await;
    srv.kill().await.unwrap();
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// 2 % of the relay's packets to the puller are lost (a lossy UDP proxy
/// that the WHEP answer points the puller at). The files stay decodable
/// and recording goes on: NACK retransmissions fill most holes, and a hole
/// that stays open costs the frames up to the next keyframe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_percent_loss_leaves_decodable_files() {
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, addr) =
        spawn_server(&bin("reallive-server"), &dir.path().join("srv"), PASSWORD).await;
    let admin = Api::new(addr).login("admin", PASSWORD).await;
    let (cam, key) = camera(&admin).await;
    let mut push = pusher(addr, cam, &key, None)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let udp = lossy_udp_proxy(50).await;
    let front = whep_rewriting_proxy(addr, &udp).await;
    let data = dir.path().join("puller");
    // A file, not a pipe: nothing reads the log until the end.
    let log_path = dir.path().join("puller.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_reallive-puller"))
        .args(["--server", &format!("http://{front}"), "--whep"])
        .args(["--username", "admin", "--password", PASSWORD])
        .args(["--camera", &cam.to_string()])
        .arg("--data-dir")
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (relayed, dropped) = udp.counts();
    let status = signal(&mut child, "-TERM").await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "{log}");
    eprintln!("relay to puller: {relayed} datagrams, {dropped} dropped");
    assert!(
        relayed > 1000 && dropped * 100 >= relayed,
        "the loss was real: {relayed}/{dropped}"
    );

    let (store, _) = Store::open(StoreConfig::new(&data)).await.unwrap();
    let recs = store
        .recordings(&reallive_core::CameraId(cam).store_key(), TimeRange::all())
        .await
        .unwrap();
    assert!(!recs.is_empty(), "{log}");
    let mut frames = 0;
    for r in &recs {
        let path = store.root().join(&r.path);
        let ff = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"])
            .output()
            .await
            .unwrap();
        assert!(
            ff.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&ff.stderr)
        );
        frames += reallive_test_support::ffprobe::probe(&path).frames;
    }
    // NACK and RTX repair nearly every loss; what they cannot costs frames
    // to the next keyframe, never the recording: most of 17+ s of 30 fps
    // survive, up to the end.
    eprintln!("recorded {frames} frames in {} files", recs.len());
    assert!(frames >= 450, "{frames} frames; {log}");
    let last_end = recs.iter().map(|r| r.end_utc_ns).max().unwrap() / 1_000_000;
    assert!(
        now_ms() - last_end < 5_000,
        "recording went on to the end; {log}"
    );
    store.close().await;
    let _ = push.kill().await;
    srv.kill().await.unwrap();
}

/// A UDP proxy in front of the relay: forwards both ways, and drops every
/// `nth` datagram from the relay to the client. The relay's address is
/// learnt from the WHEP answer (see [`whep_rewriting_proxy`]).
struct LossyProxy {
    local: SocketAddr,
    relay: Arc<Mutex<Option<SocketAddr>>>,
    counts: Arc<Mutex<(u64, u64)>>,
}

impl LossyProxy {
    fn counts(&self) -> (u64, u64) {
        *self.counts.lock().unwrap()
    }
}

async fn lossy_udp_proxy(nth: u64) -> LossyProxy {
    let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let local = front.local_addr().unwrap();
    let counts = Arc::new(Mutex::new((0u64, 0u64)));
    let relay: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
    let (b2, f2, cl2, c2) = (back.clone(), front.clone(), client.clone(), counts.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let mut n = 0u64;
        while let Ok((len, _)) = b2.recv_from(&mut buf).await {
            n += 1;
            let drop = n.is_multiple_of(nth);
            {
                let mut c = c2.lock().unwrap();
                c.0 += 1;
                c.1 += u64::from(drop);
            }
            let to = *cl2.lock().unwrap();
            if let (false, Some(to)) = (drop, to) {
                let _ = f2.send_to(&buf[..len], to).await;
            }
        }
    });
    let r2 = relay.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((len, from)) = front.recv_from(&mut buf).await {
            *client.lock().unwrap() = Some(from);
            let to = *r2.lock().unwrap();
            if let Some(to) = to {
                let _ = back.send_to(&buf[..len], to).await;
            }
        }
    });
    LossyProxy {
        local,
        relay,
        counts,
    }
}

/// An HTTP/1.1 proxy (one request per connection) in front of the
/// server that points WHEP answers' UDP candidates at `udp` instead of the
/// relay (and drops the ICE-TCP ones), and tells `udp` where the relay is.
async fn whep_rewriting_proxy(server: SocketAddr, udp: &LossyProxy) -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let (udp_local, relay) = (udp.local, udp.relay.clone());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let relay = relay.clone();
            tokio::spawn(async move {
                // The request: head, then Content-Length bytes.
                let mut req = Vec::new();
                let mut buf = [0u8; 8192];
                let head_end = loop {
                    let n = client.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&req[..head_end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while req.len() < head_end + len {
                    let n = client.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                let mut up = tokio::net::TcpStream::connect(server).await.unwrap();
                up.write_all(&req).await.unwrap();
                let mut resp = Vec::new();
                let _ = up.read_to_end(&mut resp).await;
                if head.starts_with("POST /whep/") {
                    let text = String::from_utf8_lossy(&resp).to_string();
                    if let Some((rhead, body)) = text.split_once("\r\n\r\n") {
                        // `a=candidate:... udp PRIO 127.0.0.1 PORT typ host`
                        let mut new_body = String::new();
                        for line in body.split("\r\n") {
                            let mut l = line.to_string();
                            // ICE-TCP would go round the lossy proxy.
                            if line.starts_with("a=candidate:") && line.contains(" tcp ") {
                                continue;
                            }
                            if line.starts_with("a=candidate:") {
                                let f: Vec<&str> = line.split(' ').collect();
                                if f.len() > 5
                                    && let Ok(a) =
                                        format!("{}:{}", f[4], f[5]).parse::<SocketAddr>()
                                {
                                    *relay.lock().unwrap() = Some(a);
                                    let mut g: Vec<String> =
                                        f.iter().map(|s| s.to_string()).collect();
                                    g[4] = udp_local.ip().to_string();
                                    g[5] = udp_local.port().to_string();
                                    l = g.join(" ");
                                }
                            }
                            new_body.push_str(&l);
                            new_body.push_str("\r\n");
                        }
                        let new_body = new_body.trim_end_matches("\r\n").to_string() + "\r\n";
                        let rhead: String = rhead
                            .split("\r\n")
                            .map(|h| {
                                if h.to_ascii_lowercase().starts_with("content-length:") {
                                    format!("content-length: {}", new_body.len())
                                } else {
                                    h.to_string()
                                }
                            })
                            .collect::<Vec<_>>()
                            .join("\r\n");
                        resp = format!("{rhead}\r\n\r\n{new_body}").into_bytes();
                    }
                }
                let _ = client.write_all(&resp).await;
                let _ = client.shutdown().await;
            });
        }
    });
    local
}
