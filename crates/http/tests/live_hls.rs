//! The LL-HLS live playlist over loopback HTTP, against real accounts and
//! a real store being written: a blocking reload for the next part comes
//! back once that part is written, and not before; users without `view`
//! are refused, before any wait; hostile `_HLS_msn`/`_HLS_part` values are
//! a prompt 400, never a hang; a part that never comes is a 503 after
//! three target durations. Parts are listed (and fetched) as soon as they
//! are written, before the writer's once-a-segment index commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reallive_auth::{Accounts, NewUser, Permission, Role, TokenKeys, User};
use reallive_core::EncodedFrame;
use reallive_http::recordings::{ApiAccess, RecordingsState};
use reallive_http::{ApiOptions, ApiState, ServeLimits};
use reallive_store::{RecordingSession, Store, StoreConfig};
use reallive_test_support::http::{HttpResponse, request};
use tokio_util::sync::CancellationToken;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_763_700_000 * SEC;

async fn user(accounts: &Accounts, name: &str, role: Role) -> User {
    accounts
        .create_user(NewUser {
            username: name.into(),
            email: format!("{name}@example.org"),
            password_hash: "unused".into(),
            role,
        })
        .await
        .unwrap()
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    tokio::time::timeout(
        Duration::from_secs(10),
        request(addr, "GET", path, &headers, b""),
    )
    .await
    .expect("no answer in 10 s")
    .unwrap()
}

/// Writes frames `range` of a 30 fps clip (keyframes every 10 frames).
async fn write(s: &mut RecordingSession, clip: &[EncodedFrame], range: std::ops::Range<usize>) {
    for n in range {
        let mut f = clip[n % clip.len()].clone();
        let t = n as i64 * 3000;
        f.pts_90k = t;
        f.dts_90k = t;
        s.write_at(f, T0 + t * SEC / 90_000).await.unwrap();
    }
}

/// The newest segment's number and how many parts it lists: the segments
/// with an `EXTINF` and the parts after the last of them.
fn edge(p: &str) -> (i64, usize) {
    let seq: i64 = p
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap();
    let complete = p.matches("#EXTINF").count() as i64;
    let tail = p.rsplit("#EXTINF").next().unwrap();
    let open = tail.matches("#EXT-X-PART:").count();
    if p.rfind("#EXT-X-PART:") > p.rfind("#EXTINF") {
        (seq + complete, open)
    } else {
        (seq + complete - 1, 0)
    }
}

/// Real accounts, a real store and the recordings API on loopback.
struct Env {
    _dir: tempfile::TempDir,
    accounts: Accounts,
    api: ApiState,
    store: Store,
    addr: SocketAddr,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

async fn serve() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let accounts = Accounts::open(dir.path()).await.unwrap();
    let api = ApiState::new(
        accounts.clone(),
        TokenKeys::new(b"live-hls-secret-live-hls-secret-live").unwrap(),
        ApiOptions::default(),
    )
    .unwrap();
    let (store, _) = Store::open(StoreConfig::new(dir.path().join("data")))
        .await
        .unwrap();
    let app = reallive_http::recordings::router(RecordingsState::new(
        store.clone(),
        Arc::new(ApiAccess::new(api.clone())),
        dir.path().join("exports"),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let server = tokio::spawn(async move {
        reallive_http::serve(listener, app, ServeLimits::default(), s.cancelled_owned())
            .await
            .unwrap();
    });
    Env {
        _dir: dir,
        accounts,
        api,
        store,
        addr,
        stop,
        server,
    }
}

impl Env {
    async fn close(self) {
        self.stop.cancel();
        self.server.await.unwrap();
        self.store.close().await;
        self.accounts.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_reloads_wait_for_the_next_part_and_refuse_the_rest() {
    let env = serve().await;
    let (accounts, api, store, addr) = (&env.accounts, &env.api, &env.store, env.addr);
    let admin = user(accounts, "admin", Role::Admin).await;
    let (camera, _) = accounts
        .create_camera(admin.id, "front", None)
        .await
        .unwrap();
    let (camera_b, _) = accounts
        .create_camera(admin.id, "back", None)
        .await
        .unwrap();
    let alice = user(accounts, "alice", Role::Viewer).await;
    let bob = user(accounts, "bob", Role::Viewer).await;
    accounts
        .grant(camera.id, alice.id, Permission::View)
        .await
        .unwrap();
    // Bob may view another camera only.
    accounts
        .grant(camera_b.id, bob.id, Permission::View)
        .await
        .unwrap();

    // 1.5 s recorded, the file still open (default 200 ms parts).
    let clip = reallive_test_support::clip::ball_frames(30);
    let mut session = store
        .session(&reallive_core::CameraId(camera.id).store_key())
        .unwrap();
    write(&mut session, &clip, 0..45).await;
    let alice_t = api.issue_token(&alice).0;
    let bob_t = api.issue_token(&bob).0;
    let uri = format!("/api/cameras/{}/live.m3u8", camera.id);

    let r = get(addr, &uri, Some(&alice_t)).await;
    assert_eq!(r.status, 200);
    let p = String::from_utf8(r.body).unwrap();
    assert!(p.contains("#EXT-X-PART-INF:PART-TARGET=0.200\n"), "{p}");
    assert!(p.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES"));
    let (msn, parts) = edge(&p);
    // Frames 0..45 with keyframes every 10: parts of 6 and 4 frames, a
    // segment a GOP. Frame 44 is held for its duration, so 40..44 is no
    // part yet: the newest segment is 30..40, open with its two parts.
    assert_eq!((msn, parts), (3, 2), "{p}");

    // The next part, as hls.js asks for it: part 2 of segment 3. It will
    // be part 0 of segment 4 (keyframe 40), which closes segment 3.
    let next = format!("{uri}?_HLS_msn={msn}&_HLS_part={parts}");
    let waiting = {
        let (next, t) = (next.clone(), alice_t.clone());
        tokio::spawn(async move { (get(addr, &next, Some(&t)).await, Instant::now()) })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!waiting.is_finished(), "answered before the part exists");
    // Frames 45 and 46: frame 46 closes the part of frames 40..45.
    write(&mut session, &clip, 45..47).await;
    let written = Instant::now();
    let (r, answered) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the blocking reload did not return")
        .unwrap();
    let p = String::from_utf8(r.body).unwrap();
    assert_eq!(r.status, 200, "{p}");
    assert_eq!(edge(&p), (msn + 1, 1), "{p}");
    let lag = answered.saturating_duration_since(written);
    assert!(
        lag < Duration::from_millis(500),
        "answered {lag:?} after the part was written"
    );
    eprintln!("blocking reload answered {lag:?} after the part was written");

    // Already there: no wait.
    let t = Instant::now();
    let r = get(addr, &next, Some(&alice_t)).await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_millis(500));

    // Refused before any wait: no token, a user without `view` on it.
    for (token, want) in [(None, 401), (Some(bob_t.as_str()), 404)] {
        let t = Instant::now();
        let r = get(addr, &format!("{uri}?_HLS_msn=5&_HLS_part=3"), token).await;
        assert_eq!(r.status, want, "{token:?}");
        assert!(t.elapsed() < Duration::from_millis(500));
        let r = get(addr, &uri, token).await;
        assert_eq!(r.status, want, "{token:?}");
    }
    // Bob sees his own camera's (empty) playlist: the 404 above is the grant.
    let r = get(
        addr,
        &format!("/api/cameras/{}/live.m3u8", camera_b.id),
        Some(&bob_t),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // Hostile values: a prompt 400 with the API's error shape.
    for q in [
        "_HLS_msn=99999999",
        "_HLS_msn=9223372036854775807&_HLS_part=0",
        "_HLS_msn=18446744073709551616",
        "_HLS_msn=-1",
        "_HLS_msn=-9223372036854775808",
        "_HLS_msn=abc",
        "_HLS_msn=",
        "_HLS_msn=1e3",
        "_HLS_msn=4&_HLS_part=-1",
        "_HLS_msn=4&_HLS_part=x",
        "_HLS_part=0",
    ] {
        let t = Instant::now();
        let r = get(addr, &format!("{uri}?{q}"), Some(&alice_t)).await;
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.status, 400, "{q}: {body}");
        assert_eq!(body["error"]["code"], "invalid_argument", "{q}");
        assert!(t.elapsed() < Duration::from_millis(500), "{q}");
    }

    // A part that never comes (two segments ahead, no frames): a 503
    // after three target durations (3 s), not a hang.
    let t = Instant::now();
    let r = get(
        addr,
        &format!("{uri}?_HLS_msn={}&_HLS_part=0", msn + 3),
        Some(&alice_t),
    )
    .await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    // It says what did not come, and when to ask again.
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("did not appear within"), "{body}");
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "retry-after" && v == "1"),
        "{:?}",
        r.headers
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    session.finish().await.unwrap();
    env.close().await;
}

/// The one recording of `camera`, as the index holds it.
async fn committed(store: &Store, camera: &str) -> reallive_store::Recording {
    let recs = store
        .recordings(camera, reallive_store::TimeRange::all())
        .await
        .unwrap();
    assert_eq!(recs.len(), 1);
    recs.into_iter().next().unwrap()
}

/// `(offset, len)` of every `EXT-X-PART` of a playlist, in order.
fn part_ranges(p: &str) -> Vec<(u64, u64)> {
    p.lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .map(|l| {
            let r = l.split("BYTERANGE=\"").nth(1).unwrap();
            let (len, off) = r.split('"').next().unwrap().split_once('@').unwrap();
            (off.parse().unwrap(), len.parse().unwrap())
        })
        .collect()
}

/// The writer syncs and commits the index once a segment (about 1 s), but
/// the live playlist lists each 200 ms part as soon as it is in the file,
/// from the writer's memory: a blocking reload answers before the index
/// row holds the part, and the part's bytes are there to fetch. Once the
/// flush comes, the index holds exactly what the playlist listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_are_listed_before_their_segment_is_committed() {
    let env = serve().await;
    let (store, addr) = (&env.store, env.addr);
    let admin = user(&env.accounts, "admin", Role::Admin).await;
    let (camera, _) = env
        .accounts
        .create_camera(admin.id, "front", None)
        .await
        .unwrap();
    let token = env.api.issue_token(&admin).0;
    let name = reallive_core::CameraId(camera.id).store_key();
    let uri = format!("/api/cameras/{}/live.m3u8", camera.id);
    // Frames 0..45, GOPs of 10: parts of 6 and 4 frames. The parts up to
    // frame 30 hold 1 s, and were flushed; 30..36 and 36..40 are written,
    // not yet committed (40..45 is still in the muxer).
    let clip = reallive_test_support::clip::ball_frames(30);
    let mut session = store.session(&name).unwrap();
    write(&mut session, &clip, 0..45).await;
    let row = committed(store, &name).await;
    assert_eq!(row.fragments.len(), 6, "one flush, at 1 s");
    let r = get(addr, &uri, Some(&token)).await;
    assert_eq!(r.status, 200);
    let p = String::from_utf8(r.body).unwrap();
    let (msn, parts) = edge(&p);
    assert_eq!((msn, parts), (3, 2), "{p}");
    let listed = part_ranges(&p);
    let uncommitted: Vec<(u64, u64)> = listed
        .iter()
        .copied()
        .filter(|(off, _)| *off >= row.bytes)
        .collect();
    assert_eq!(uncommitted.len(), 2, "{p}");
    assert_eq!(uncommitted[0].0, row.bytes, "they follow the index's end");

    // Those bytes are in the file for any reader (the page cache).
    let part_uri = p
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PART:"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|u| u.split('"').next())
        .unwrap()
        .to_string();
    let (off, len) = *uncommitted.last().unwrap();
    let range = format!("bytes={off}-{}", off + len - 1);
    let auth = format!("Bearer {token}");
    let r = request(
        addr,
        "GET",
        &part_uri,
        &[("Authorization", &auth), ("Range", &range)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.body.len() as u64, len);
    assert_eq!(&r.body[4..8], b"moof", "a whole part");

    // A blocking reload for the next part answers once it is written,
    // still before any commit.
    let next = format!("{uri}?_HLS_msn={msn}&_HLS_part={parts}");
    let waiting = {
        let (next, t) = (next.clone(), token.clone());
        tokio::spawn(async move { (get(addr, &next, Some(&t)).await, Instant::now()) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "answered before the part exists");
    write(&mut session, &clip, 45..47).await;
    let written = Instant::now();
    let (r, answered) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the blocking reload did not return")
        .unwrap();
    let p = String::from_utf8(r.body).unwrap();
    assert_eq!(r.status, 200, "{p}");
    assert_eq!(edge(&p), (msn + 1, 1), "{p}");
    assert!(answered.saturating_duration_since(written) < Duration::from_millis(500));
    assert_eq!(
        committed(store, &name).await.fragments.len(),
        6,
        "the part was listed from memory, before its commit"
    );

    // Frames up to 61 close the parts up to frame 60: 1 s since the last
    // flush, so the writer flushes. The index then holds exactly the
    // parts the playlist listed, and the playlist did not change by it.
    write(&mut session, &clip, 47..61).await;
    let row = committed(store, &name).await;
    assert_eq!(row.fragments.len(), 12, "the second flush, at 2 s");
    let p = String::from_utf8(get(addr, &uri, Some(&token)).await.body).unwrap();
    let listed = part_ranges(&p);
    let indexed: Vec<(u64, u64)> = row
        .fragments
        .iter()
        .map(|f| (f.offset, u64::from(f.size)))
        .collect();
    assert!(indexed.ends_with(&listed), "{listed:?} vs {indexed:?}");
    assert_eq!(listed.last().map(|(o, l)| o + l), Some(row.bytes));

    session.finish().await.unwrap();
    env.close().await;
}
