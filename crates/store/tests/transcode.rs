//! Replacing a recording's file: the rewrite keeps the timeline, a file
//! that fails verification never replaces the original, and a crash in
//! the middle leaves the original and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::Bytes;
use reallive_core::reencode::{BoxError, Reencoded, Reencoder, SourceInfo};
use reallive_core::{Codec, EncodedFrame};
use reallive_store::segmenter::SegmenterConfig;
use reallive_store::transcode;
use reallive_store::{Store, StoreConfig, TimeRange, scan};

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_763_700_000 * SEC;

fn frames(n: usize) -> Vec<EncodedFrame> {
    reallive_test_support::clip::ball_frames(n)
}

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        segmenter: SegmenterConfig {
            fragment_90k: 30_000,
            file_90k: 4 * 90_000,
            ..SegmenterConfig::default()
        },
        ..StoreConfig::new(dir)
    }
}

async fn record(store: &Store, camera: &str, n: usize) {
    let mut s = store.session(camera).unwrap();
    for f in frames(n) {
        let now = T0 + f.dts_90k * SEC / 90_000;
        s.write_at(f, now).await.unwrap();
    }
    s.finish().await.unwrap();
}

/// Gives every frame back as it came, after a delay of a few frames,
/// in Annex-B: a stand-in for an encoder, with the same latency habits.
/// `break_at` makes it misbehave on that frame.
struct Identity {
    held: std::collections::VecDeque<Reencoded>,
    pushed: usize,
    break_at: Option<(usize, Fault)>,
}

#[derive(Clone, Copy)]
enum Fault {
    DropFrame,
    NoKeyframe,
}

impl Reencoder for Identity {
    fn push(
        &mut self,
        data: &Bytes,
        pts_90k: i64,
        _dts_90k: i64,
        keyframe: bool,
    ) -> Result<Vec<Reencoded>, BoxError> {
        let mut annex_b = Vec::new();
        let mut at = 0;
        while at + 4 <= data.len() {
            let len = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            annex_b.extend_from_slice(&[0, 0, 0, 1]);
            annex_b.extend_from_slice(&data[at + 4..at + 4 + len]);
            at += 4 + len;
        }
        let i = self.pushed;
        self.pushed += 1;
        let mut p = Reencoded {
            pts_90k,
            data: Bytes::from(annex_b),
            keyframe,
        };
        match self.break_at {
            Some((n, Fault::DropFrame)) if n == i => return Ok(Vec::new()),
            Some((n, Fault::NoKeyframe)) if n == i => p.keyframe = false,
            _ => {}
        }
        self.held.push_back(p);
        let ready = self.held.len().saturating_sub(3);
        Ok(self.held.drain(..ready).collect())
    }

    fn finish(&mut self) -> Result<Vec<Reencoded>, BoxError> {
        Ok(self.held.drain(..).collect())
    }
}

fn identity(
    fault: Option<(usize, Fault)>,
) -> impl FnOnce(&SourceInfo) -> Result<Box<dyn Reencoder>, BoxError> {
    move |info: &SourceInfo| {
        assert_eq!(info.codec, Codec::H264);
        assert!(!info.config.is_empty(), "the avcC is handed over");
        assert_eq!((info.width, info.height), (160, 120));
        Ok(Box::new(Identity {
            held: Default::default(),
            pushed: 0,
            break_at: fault,
        }) as Box<dyn Reencoder>)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_keeps_every_fragment_and_a_failed_check_keeps_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(config(dir.path())).await.unwrap();
    record(&store, "cam", 90).await;
    let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
    assert_eq!(recs.len(), 1);
    let original = recs[0].clone();
    let src = store.root().join(&original.path);
    let before = std::fs::read(&src).unwrap();

    // The rewrite: fragment for fragment, the same table.
    let out = dir.path().join("copy.mp4");
    let summary = transcode::rewrite(&src, &out, identity(None)).unwrap();
    assert_eq!(summary.frames, 90);
    assert_eq!(summary.fragments, original.fragments.len());
    let scanned = scan::scan(&mut std::fs::File::open(&out).unwrap()).unwrap();
    let table = |f: &[reallive_store::fragment::FragmentEntry]| {
        f.iter()
            .map(|e| (e.decode_time_90k, e.duration_90k, e.frames, e.keyframe))
            .collect::<Vec<_>>()
    };
    assert_eq!(table(&scanned.fragments), table(&original.fragments));
    // And the same pictures: the bytes of each sample match.
    for (a, b) in original.fragments.iter().zip(&scanned.fragments) {
        let read = |path: &Path, e: &reallive_store::fragment::FragmentEntry| {
            let all = std::fs::read(path).unwrap();
            let pair = Bytes::copy_from_slice(&all[e.offset as usize..e.end() as usize]);
            scan::read_fragment(&pair).unwrap()
        };
        let (fa, fb) = (read(&src, a), read(&out, b));
        assert_eq!(fa.samples.len(), fb.samples.len());
        for (x, y) in fa.samples.iter().zip(&fb.samples) {
            assert_eq!(x.data, y.data);
            assert_eq!(x.duration_90k, y.duration_90k);
            assert_eq!(x.keyframe, y.keyframe);
        }
    }

    // An encoder that loses a frame, or a keyframe, is caught.
    for (fault, why) in [
        (Fault::DropFrame, "stopped at fragment"),
        (Fault::NoKeyframe, "did not make a keyframe"),
    ] {
        let bad = dir.path().join("bad.mp4");
        let _ = std::fs::remove_file(&bad);
        let e = transcode::rewrite(&src, &bad, identity(Some((30, fault)))).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }

    // A replacement that is still H.264 (and no smaller) is refused, and
    // the original, its row and its bytes stay as they were.
    let r = store.begin_replacement(original.id).await.unwrap();
    transcode::rewrite(&r.source, &r.target, identity(None)).unwrap();
    let e = store.commit_replacement(&r).await.unwrap_err();
    assert!(e.to_string().contains("fails verification"), "{e}");
    store
        .abort_replacement(&r, Some(&e.to_string()))
        .await
        .unwrap();
    assert!(!r.target.exists(), "the refused file is deleted");
    assert_eq!(std::fs::read(&src).unwrap(), before);
    let now = store.recording(original.id).await.unwrap().unwrap();
    assert_eq!(now, original);
    // It is not tried again.
    assert!(
        store
            .transcode_candidates(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let skipped = store.transcode_skipped().await.unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, original.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_a_replacement_leaves_only_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let (original, before) = {
        let (store, _) = Store::open(config(dir.path())).await.unwrap();
        record(&store, "cam", 60).await;
        let rec = store.recordings("cam", TimeRange::all()).await.unwrap()[0].clone();
        // Candidates: complete H.264, ended long enough ago.
        assert_eq!(
            store
                .transcode_candidates(i64::MAX, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .transcode_candidates(rec.end_utc_ns, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let before = std::fs::read(store.root().join(&rec.path)).unwrap();
        let r = store.begin_replacement(rec.id).await.unwrap();
        // The job gets half way, then the process dies (the store is
        // dropped without a commit, as a kill -9 would leave it).
        std::fs::write(&r.target, &before[..before.len() / 2]).unwrap();
        (rec, before)
    };
    let (store, report) = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(report.garbage_finished, 1, "{report:?}");
    assert_eq!(
        report.files_indexed, 0,
        "the partial file is not a recording"
    );
    let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
    assert_eq!(recs, vec![original.clone()]);
    assert_eq!(
        std::fs::read(store.root().join(&original.path)).unwrap(),
        before
    );
    let mp4s: Vec<_> = walk(store.root())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    assert_eq!(mp4s.len(), 1, "{mp4s:?}");
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
