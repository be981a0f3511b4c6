//! The store against a real SQLite file and real files, checked with ffprobe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use reallive_core::EncodedFrame;
use reallive_store::retention::{CameraRetention, RetentionPolicy};
use reallive_store::segmenter::SegmenterConfig;
use reallive_store::{NewEvent, RecordingState, Store, StoreConfig, TimeRange};
use reallive_test_support::ffprobe;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_763_700_000 * SEC;

/// `n` frames at 30 fps, keyframe every 10, from a real x264 clip.
fn frames(n: usize) -> Vec<EncodedFrame> {
    reallive_test_support::clip::ball_frames(n)
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        segmenter: SegmenterConfig {
            fragment_90k: 30_000, // one GOP of 10 frames
            file_90k: 2 * 90_000,
            ..SegmenterConfig::default()
        },
        ..StoreConfig::new(dir)
    }
}

async fn record(store: &Store, camera: &str, frames: Vec<EncodedFrame>, t0: i64) {
    let mut s = store.session(camera).unwrap();
    for f in frames {
        let now = t0 + f.dts_90k * SEC / 90_000;
        s.write_at(f, now).await.unwrap();
    }
    s.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_play_and_match_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let (store, report) = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(report, Default::default());
    record(&store, "front", frames(200), T0).await;
    let recs = store.recordings("front", TimeRange::all()).await.unwrap();
    // 200 frames at 30 fps in 2 s files: 60 + 60 + 60 + 20 frames.
    assert_eq!(recs.len(), 4);
    for w in recs.windows(2) {
        assert_eq!(
            w[0].end_utc_ns, w[1].start_utc_ns,
            "files tile the timeline"
        );
    }
    assert_eq!(recs[0].start_utc_ns, T0);
    let mut total = 0;
    for r in &recs {
        assert_eq!(r.state, RecordingState::Complete);
        let p = ffprobe::probe(&store.root().join(&r.path));
        let frames: u64 = r.fragments.iter().map(|f| u64::from(f.frames)).sum();
        assert_eq!(p.frames, frames, "{}", r.path);
        let d = p.duration_secs.unwrap();
        let indexed = (r.end_utc_ns - r.start_utc_ns) as f64 / 1e9;
        assert!(
            (d - indexed).abs() <= 1.0 / 30.0 + 1e-6,
            "{}: ffprobe {d} vs index {indexed}",
            r.path
        );
        assert_eq!(
            std::fs::metadata(store.root().join(&r.path)).unwrap().len(),
            r.bytes
        );
        total += frames;
    }
    assert_eq!(total, 200);
    // A range query returns only what overlaps.
    let mid = store
        .recordings(
            "front",
            TimeRange::new(T0 + 2 * SEC + 1, T0 + 4 * SEC).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        mid.iter().map(|r| r.start_utc_ns).collect::<Vec<_>>(),
        vec![T0 + 2 * SEC]
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_repairs_what_a_crash_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let root;
    {
        let (store, _) = Store::open(config(dir.path())).await.unwrap();
        root = store.root().to_path_buf();
        // Camera "a": a crash mid-file (the session is dropped, never finished).
        let mut s = store.session("a").unwrap();
        for f in frames(45) {
            let now = T0 + f.dts_90k * SEC / 90_000;
            s.write_at(f, now).await.unwrap();
        }
        drop(s);
        // Camera "b": complete, then its file is deleted behind the store's back.
        record(&store, "b", frames(30), T0).await;
        store.close().await;
    }
    let b = std::fs::read_dir(root.join("b/2025/11/21"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&b).unwrap();
    // A file with no row (copied in from elsewhere), and one that is garbage.
    let a_dir = root.join("a/2025/11/21");
    let a_file = std::fs::read_dir(&a_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // Half a fragment of junk after the last complete one: a torn write.
    let mut data = std::fs::read(&a_file).unwrap();
    let clean_len = data.len();
    data.extend_from_slice(&[0, 0, 1, 0, b'm', b'o', b'o', b'f', 1, 2, 3]);
    std::fs::write(&a_file, &data).unwrap();
    std::fs::create_dir_all(root.join("c/2025/11/21")).unwrap();
    std::fs::copy(&a_file, root.join("c/2025/11/21/20251121T040000.000Z.mp4")).unwrap();
    std::fs::write(root.join("c/2025/11/21/junk.mp4"), b"not a video").unwrap();

    let (store, report) = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(report.repaired, 1, "{report:?}");
    assert_eq!(report.bytes_truncated, 11, "{report:?}");
    assert_eq!(report.files_indexed, 1, "{report:?}");
    assert_eq!(report.files_quarantined, 1, "{report:?}");
    assert_eq!(report.rows_removed, 1, "{report:?}");
    assert_eq!(
        std::fs::metadata(&a_file).unwrap().len() as usize,
        clean_len
    );
    assert!(root.join(".quarantine/c/2025/11/21/junk.mp4").exists());
    // 45 frames were written; fragments close at each keyframe (every 10),
    // so frames 40..45 were still in memory when the session was dropped:
    // 40 survive, all playable.
    let a = store.recordings("a", TimeRange::all()).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].state, RecordingState::Complete);
    assert_eq!(ffprobe::probe(&root.join(&a[0].path)).frames, 40);
    assert_eq!(a[0].end_utc_ns, T0 + 40 * SEC / 30);
    let c = store.recordings("c", TimeRange::all()).await.unwrap();
    assert_eq!(
        c[0].start_utc_ns,
        1_763_697_600 * SEC,
        "start from the file name"
    );
    assert!(
        store
            .recordings("b", TimeRange::all())
            .await
            .unwrap()
            .is_empty()
    );
    // Opening again finds nothing to do.
    store.close().await;
    let (_store, report) = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(report, Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_each_camera_under_max_bytes_and_spares_locks() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let (probe_store, _) = Store::open(config(&dir.path().join("probe")))
        .await
        .unwrap();
    record(&probe_store, "x", frames(60), T0).await;
    let file_bytes = probe_store.recordings("x", TimeRange::all()).await.unwrap()[0].bytes;
    let max = 4 * file_bytes + file_bytes / 2;
    cfg.retention = RetentionPolicy {
        default: CameraRetention {
            max_age_ns: None,
            max_bytes: Some(max),
        },
        ..RetentionPolicy::default()
    };
    let (store, _) = Store::open(cfg).await.unwrap();
    // Lock the second file's range before it is written.
    let lock = store
        .lock(
            "front",
            TimeRange::new(T0 + 2 * SEC + 1, T0 + 3 * SEC).unwrap(),
            "evidence",
        )
        .await
        .unwrap();
    let mut s = store.session("front").unwrap();
    for f in frames(30 * 40) {
        let now = T0 + f.dts_90k * SEC / 90_000;
        let new_file = f.keyframe && f.dts_90k % (2 * 90_000) == 0;
        s.write_at(f, now).await.unwrap();
        if new_file {
            store.run_retention(0).await.unwrap();
            let total: u64 = store
                .recordings("front", TimeRange::all())
                .await
                .unwrap()
                .iter()
                .map(|r| r.bytes)
                .sum();
            assert!(total <= max, "{total} > {max}");
        }
    }
    s.finish().await.unwrap();
    store.run_retention(0).await.unwrap();
    let recs = store.recordings("front", TimeRange::all()).await.unwrap();
    assert!(recs.iter().map(|r| r.bytes).sum::<u64>() <= max);
    assert!(
        recs.iter().any(|r| r.start_utc_ns == T0 + 2 * SEC),
        "the locked file survives"
    );
    assert_eq!(
        recs.last().unwrap().end_utc_ns,
        T0 + 40 * SEC,
        "the newest footage is kept"
    );
    // Unlocked, it is the oldest, so it goes first once more is recorded.
    store.unlock(lock).await.unwrap();
    record(&store, "front", frames(60), T0 + 40 * SEC).await;
    store.run_retention(0).await.unwrap();
    let recs = store.recordings("front", TimeRange::all()).await.unwrap();
    assert!(!recs.iter().any(|r| r.start_utc_ns == T0 + 2 * SEC));
    assert!(recs.iter().map(|r| r.bytes).sum::<u64>() <= max);
    assert!(store.unlock(lock).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_space_floor_deletes_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(config(dir.path())).await.unwrap();
    record(&store, "a", frames(300), T0).await;
    record(&store, "b", frames(300), T0 + 100 * SEC).await;
    let before = store.recordings("a", TimeRange::all()).await.unwrap();
    let one = before[0].bytes;
    store.close().await;
    // A disk 10 GB in size with 1 GB free, and a 1 GB floor: freeing one
    // and a half files' worth means the two oldest go.
    let mut cfg = config(dir.path());
    cfg.disk_override = Some(reallive_store::retention::DiskSpace {
        free_bytes: 1_000_000_000,
        total_bytes: 10_000_000_000,
    });
    cfg.retention.min_free_bytes = 1_000_000_000 + one + one / 2;
    let (store, _) = Store::open(cfg).await.unwrap();
    let report = store.run_retention(0).await.unwrap();
    assert_eq!(report.deleted, 2, "{report:?}");
    let after = store.recordings("a", TimeRange::all()).await.unwrap();
    assert_eq!(
        after[0].start_utc_ns, before[report.deleted as usize].start_utc_ns,
        "oldest went first"
    );
    assert_eq!(
        store.recordings("b", TimeRange::all()).await.unwrap().len(),
        5,
        "camera b is newer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(config(dir.path())).await.unwrap();
    for bad in ["../etc", "a/b", "", ".hidden"] {
        assert!(store.session(bad).is_err(), "{bad}");
    }
    assert!(store.delete(12345).await.is_err());
    assert!(TimeRange::new(5, 1).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_spans_files_from_the_keyframe_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(config(dir.path())).await.unwrap();
    record(&store, "front", frames(180), T0).await;
    let dest = dir.path().join("clip.mp4");
    // 1.5 s .. 4.5 s: starts in the GOP that begins at 1.333 s (frame 40),
    // crosses the file boundary at 2 s and 4 s.
    let range = TimeRange::new(T0 + 3 * SEC / 2, T0 + 9 * SEC / 2).unwrap();
    let s = store.export("front", range, &dest).await.unwrap();
    assert_eq!(s.start_utc_ns, T0 + 40 * SEC / 30);
    assert!(!s.truncated_at_parameter_change);
    let p = ffprobe::probe(&dest);
    assert_eq!(p.frames, s.frames);
    // Frames 40..136: from the GOP's keyframe to the end of the 200 ms
    // part (frames 130..136) that holds the range's end.
    assert_eq!(s.frames, 96);
    assert!(p.keyframes[0], "starts on a keyframe");
    let d = p.duration_secs.unwrap();
    assert!((d - 96.0 / 30.0).abs() < 0.05, "duration {d}");
    assert!(
        p.frame_pts.windows(2).all(|w| w[1] > w[0]),
        "one continuous timeline"
    );
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), s.bytes);
    // Nothing there: a clear error, and no file left behind.
    let none = TimeRange::new(T0 + 100 * SEC, T0 + 200 * SEC).unwrap();
    let dest2 = dir.path().join("none.mp4");
    assert!(store.export("front", none, &dest2).await.is_err());
    assert!(!dest2.exists() && !dest2.with_extension("partial").exists());
}

/// Power loss: the recording being written is cut at random byte offsets
/// (mid-box included) or has its tail overwritten with junk; closed files
/// are cut short. Recovery never fails or panics, keeps every complete
/// fragment, and leaves index and files in agreement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_keeps_every_complete_fragment() {
    let base = tempfile::tempdir().unwrap();
    let src = base.path().join("src");
    {
        let (store, _) = Store::open(config(&src)).await.unwrap();
        let mut s = store.session("cam").unwrap();
        for f in frames(150) {
            let now = T0 + f.dts_90k * SEC / 90_000;
            s.write_at(f, now).await.unwrap();
        }
        drop(s); // the last file stays 'writing', as in a crash
        store.close().await;
    }
    let (store, _) = Store::open(config(&src)).await.unwrap();
    let original = store.recordings("cam", TimeRange::all()).await.unwrap();
    store.close().await;
    assert!(original.len() >= 3);
    let copy = |to: &Path| {
        for entry in walk(&src) {
            let rel = entry.strip_prefix(&src).unwrap();
            std::fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
            std::fs::copy(&entry, to.join(rel)).unwrap();
        }
    };
    let mut seed = 0x1234_5678_9abc_def1u64;
    for i in 0..40 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let dir = base.path().join(format!("run{i}"));
        copy(&dir);
        let victim = &original[(seed as usize) % original.len()];
        let path = dir.join("recordings").join(&victim.path);
        let len = std::fs::metadata(&path).unwrap().len();
        let corrupt = seed.is_multiple_of(3);
        let cut = (seed >> 8) % (len + 1);
        if corrupt {
            // Overwrite the tail from `cut` with junk, keeping the length.
            let mut data = std::fs::read(&path).unwrap();
            for (k, b) in data[cut as usize..].iter_mut().enumerate() {
                *b = (seed.rotate_left(k as u32 % 64) & 0xff) as u8;
            }
            std::fs::write(&path, data).unwrap();
        } else {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(cut)
                .unwrap();
        }
        let (store, report) = Store::open(config(&dir)).await.unwrap();
        let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
        // Junk written over a closed file without changing its size is
        // invisible to recovery's size check (a full rescan of every file at
        // every start would be too slow); only that case is exempt below.
        let detectable = !corrupt || victim.state == reallive_store::RecordingState::Writing;
        for r in recs.iter().filter(|r| detectable || r.path != victim.path) {
            let file = store.root().join(&r.path);
            let scanned =
                reallive_store::scan::scan(&mut std::fs::File::open(&file).unwrap()).unwrap();
            assert_eq!(scanned.fragments, r.fragments, "run {i}: {}", r.path);
            assert_eq!(scanned.file_len, r.bytes, "run {i}: {}", r.path);
        }
        // Every fragment that lies wholly before the damage survives. (Junk
        // written over a closed file without changing its size is invisible
        // to a size check; only the open file is rescanned then.)
        let survivors = victim.fragments.iter().filter(|f| f.end() <= cut).count();
        match recs.iter().find(|r| r.path == victim.path) {
            Some(r) if detectable => {
                assert_eq!(r.fragments.len(), survivors, "run {i}: {report:?}")
            }
            Some(r) => assert!(r.fragments.len() >= survivors),
            None => assert_eq!(
                survivors, 0,
                "run {i}: lost a file with complete fragments ({report:?})"
            ),
        }
        store.close().await;
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The same frames through the real store and the in-memory one, both as
/// `dyn Storage`, give the same recordings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_storage_behaves_like_the_store() {
    use reallive_store::{MemoryStorage, Storage};
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(config(dir.path())).await.unwrap();
    let mem = MemoryStorage::new(config(dir.path()).segmenter);
    let backends: [&dyn Storage; 2] = [&store, &mem];
    let mut shapes = Vec::new();
    for b in backends {
        let mut w = b.start_recording("cam").await.unwrap();
        for f in frames(100) {
            let now = T0 + f.dts_90k * SEC / 90_000;
            w.write_at(f, now).await.unwrap();
        }
        w.finish().await.unwrap();
        let recs = b.recordings("cam", TimeRange::all()).await.unwrap();
        let lock = b
            .lock("cam", TimeRange::new(T0, T0 + 1).unwrap(), "x")
            .await
            .unwrap();
        b.unlock(lock).await.unwrap();
        assert!(b.unlock(lock).await.is_err());
        assert!(b.delete(recs[0].id).await.unwrap() > 0);
        shapes.push(
            recs.iter()
                .map(|r| (r.start_utc_ns, r.end_utc_ns, r.bytes, r.fragments.clone()))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(shapes[0], shapes[1]);
    assert!(mem.file(2).is_some());
}

/// The playlist cache follows the index: new fragments appear, a deleted
/// file disappears, and the open file is always current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vod_playlists_follow_recording_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(config(dir.path())).await.unwrap();
    let all = TimeRange::all();
    let segments = |p: &str| p.matches("#EXTINF").count();
    record(&store, "cam", frames(120), T0).await; // 4 s: two files, 12 fragments
    let p1 = store.vod_playlist("cam", all, "/r/").await.unwrap();
    assert_eq!(segments(&p1), 12);
    // Keep recording in an open session: what is committed shows up. The
    // writer flushed once, at 1 s (three GOPs, three segments); the fourth
    // GOP's parts are written but wait for the next flush.
    let mut s = store.session("cam").unwrap();
    for f in frames(45) {
        let now = T0 + 4 * SEC + f.dts_90k * SEC / 90_000;
        s.write_at(f, now).await.unwrap();
    }
    let p2 = store.vod_playlist("cam", all, "/r/").await.unwrap();
    assert_eq!(
        segments(&p2),
        12 + 3,
        "the open file's first second is committed"
    );
    s.finish().await.unwrap();
    assert_eq!(
        segments(&store.vod_playlist("cam", all, "/r/").await.unwrap()),
        12 + 5
    );
    // Delete the oldest file: its six segments go.
    let oldest = store.recordings("cam", all).await.unwrap()[0].clone();
    store.delete(oldest.id).await.unwrap();
    let p3 = store.vod_playlist("cam", all, "/r/").await.unwrap();
    assert_eq!(segments(&p3), 6 + 5);
    assert!(!p3.contains(&oldest.path));
    // The cached text equals a fresh rendering from the index.
    let fresh =
        reallive_store::hls::vod_playlist(&store.recordings("cam", all).await.unwrap(), all, "/r/");
    assert_eq!(p3, fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_kept_and_listed_by_range() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(config(dir.path())).await.unwrap();
    let s = 1_000_000_000i64;
    let open = store
        .add_event(&NewEvent {
            camera: "front".into(),
            kind: "motion".into(),
            start_utc_ns: 100 * s,
            end_utc_ns: None,
            score: None,
            zone: None,
        })
        .await
        .unwrap();
    let closed = store
        .add_event(&NewEvent {
            camera: "front".into(),
            kind: "trigger".into(),
            start_utc_ns: 10 * s,
            end_utc_ns: Some(20 * s),
            score: None,
            zone: None,
        })
        .await
        .unwrap();
    // An open event overlaps everything after its start.
    let all = store.events("front", TimeRange::all()).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), [closed, open]);
    let later = store
        .events("front", TimeRange::new(500 * s, 600 * s).unwrap())
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].end_utc_ns, None);
    store
        .end_event(open, 130 * s, 12.5, "door", Some(120 * s))
        .await
        .unwrap();
    let later = store
        .events("front", TimeRange::new(500 * s, 600 * s).unwrap())
        .await
        .unwrap();
    assert!(later.is_empty());
    let e = &store
        .events("front", TimeRange::new(120 * s, 125 * s).unwrap())
        .await
        .unwrap()[0];
    assert_eq!(
        (e.end_utc_ns, e.score, e.zone.as_deref()),
        (Some(130 * s), Some(12.5), Some("door"))
    );
    assert!(
        store
            .events("back", TimeRange::all())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.end_event(9999, 1, 1.0, "x", None).await.is_err());
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_recordings_id_is_never_given_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(config(dir.path())).await.unwrap();
    record(&store, "cam", frames(60), T0).await;
    let first = store.recordings("cam", TimeRange::all()).await.unwrap();
    let newest = first.last().unwrap().id;
    store.delete(newest).await.unwrap();
    record(&store, "cam", frames(60), T0 + 100 * SEC).await;
    let now = store.recordings("cam", TimeRange::all()).await.unwrap();
    let added: Vec<i64> = now
        .iter()
        .filter(|r| r.start_utc_ns >= T0 + 100 * SEC)
        .map(|r| r.id)
        .collect();
    assert!(!added.is_empty());
    assert!(
        added.iter().all(|id| *id > newest),
        "{added:?} after deleting {newest}"
    );
}

/// Bytes the process has passed to `write(2)`-class calls so far
/// (`/proc/self/io` `wchar`): the media files, and SQLite's WAL and
/// checkpoints.
fn written_by_process() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io (Linux)");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:")?.trim().parse().ok())
        .expect("wchar in /proc/self/io")
}

/// What 200 ms parts cost over 1 s fragments: the same 60 s of video
/// recorded both ways. Every extra fragment adds a `moof` (its `trun`
/// entries are per sample either way) and a 28-byte index entry. What is
/// synced and committed does not grow with them: the writer flushes (one
/// `fdatasync`, one index commit that rewrites the open file's fragment
/// BLOB) once a second of media either way, and the live playlist lists
/// the parts in between from memory. Counted by the writer's own figures
/// (`WriteStats`), and the bytes SQLite wrote measured from the process's
/// writes minus the media. Prints the figures (`docs/design/ll-hls.md` and
/// `docs/benchmarks.md` quote them) and bounds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_cost_a_moof_and_an_index_entry_each() {
    struct Figures {
        media: u64,
        fragments: usize,
        syncs: u64,
        commits: u64,
        blob_written: u64,
        sqlite_written: u64,
    }
    let mut figures = Vec::new();
    for (name, part_90k) in [("1 s fragments", 0), ("200 ms parts", 18_000)] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            segmenter: SegmenterConfig {
                fragment_90k: 90_000,
                part_90k,
                ..SegmenterConfig::default()
            },
            ..StoreConfig::new(dir.path())
        };
        let (store, _) = Store::open(cfg).await.unwrap();
        let clip = frames(1800);
        let written_before = written_by_process();
        // 60 s at 30 fps, keyframes every 10 frames: one 60 s file.
        record(&store, "cam", clip, T0).await;
        let written = written_by_process() - written_before;
        let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
        let media: u64 = recs.iter().map(|r| r.bytes - r.init_bytes).sum();
        let files: u64 = recs.iter().map(|r| r.bytes).sum();
        let fragments: usize = recs.iter().map(|r| r.fragments.len()).sum();
        let stats = store.write_stats("cam");
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let p = ffprobe::probe(&store.root().join(&recs[0].path));
        assert_eq!(p.frames, 1800, "{name}: plays whole");
        figures.push(Figures {
            media,
            fragments,
            syncs: load(&stats.syncs),
            commits: load(&stats.commits),
            blob_written: load(&stats.index_bytes),
            sqlite_written: written - files,
        });
        store.close().await;
    }
    let (one, parts) = (&figures[0], &figures[1]);
    let per_fragment = (parts.media - one.media) as f64 / (parts.fragments - one.fragments) as f64;
    let per_hour = (parts.media - one.media) * 60;
    // What a commit per part (the policy before) wrote of BLOB: the table
    // of 1, 2, .. 360 fragments.
    let per_part_blob = (1..=parts.fragments as u64).sum::<u64>() * 28;
    let mb_h = |b: u64| b as f64 * 60.0 / 1e6;
    eprintln!(
        "60 s at 30 fps: 1 s fragments {} ({} B), 200 ms parts {} ({} B): +{per_fragment:.0} B a \
         fragment, +{:.2} MB/hour of file; index {} -> {} B/hour stored",
        one.fragments,
        one.media,
        parts.fragments,
        parts.media,
        per_hour as f64 / 1e6,
        one.fragments * 60 * 28,
        parts.fragments * 60 * 28,
    );
    for (name, f) in [("1 s fragments", one), ("200 ms parts", parts)] {
        eprintln!(
            "{name}: {} syncs ({:.2} a second), {} index commits, {:.1} MB/hour of BLOB \
             written, {:.1} MB/hour written by SQLite",
            f.syncs,
            f.syncs as f64 / 60.0,
            f.commits,
            mb_h(f.blob_written),
            mb_h(f.sqlite_written),
        );
    }
    eprintln!(
        "a commit per part would have written {:.1} MB/hour of BLOB",
        mb_h(per_part_blob)
    );
    // GOPs of 10 frames: parts of 6 and 4 frames (6 a second) against
    // fragments of 30 frames (1 a second).
    assert_eq!((one.fragments, parts.fragments), (60, 360));
    assert!(per_fragment < 120.0, "a moof costs {per_fragment:.0} B");
    // One flush a second either way: 60 (the last at the close), plus the
    // file's own `fsync`s when it is created and closed.
    for f in [one, parts] {
        assert_eq!(f.commits, 60);
        assert_eq!(f.syncs, 62);
    }
    // Each commit rewrites a table of six times the entries: six times the
    // BLOB of 1 s fragments (18 MB/hour), not the 109 MB/hour of a commit
    // per part.
    assert_eq!(one.blob_written, (1..=60u64).sum::<u64>() * 28);
    assert_eq!(parts.blob_written, 6 * one.blob_written);
    assert!(parts.blob_written * 5 < per_part_blob);
    // SQLite writes whole pages (WAL frames, then checkpoints): a commit of
    // a 1 s-fragment table (at most 1.7 KB) costs a page or two, one of a
    // parts table (at most 10 KB) up to four. About 3 times as much
    // (measured 2.9), not 6.
    assert!(
        parts.sqlite_written < 4 * one.sqlite_written,
        "SQLite wrote {} B with parts, {} B with 1 s fragments",
        parts.sqlite_written,
        one.sqlite_written
    );
}
