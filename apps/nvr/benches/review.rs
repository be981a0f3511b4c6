//! Review figures (issue 17, `docs/benchmarks.md`): the timeline of a
//! recorded day, and thumbnails kept and made on demand.
//!
//! `cargo bench -p reallive-nvr --bench review` (part of `make bench`).
//!
//! - **Timeline:** a store holding 24 h of one camera (2 s fragments in
//!   60 s files, as a camera with a 2 s GOP records) and 1,000 events;
//!   `Store::timeline` over the day at the resolution of a 1,000 px bar,
//!   200 times. Targets: p99 ≤ 20 ms.
//! - **Thumbnail, kept:** one every 10 s of that day in the sidecars;
//!   `Thumbnails::at` for 500 random instants, each answered from them
//!   (index seek + `pread`). Target: p99 ≤ 30 ms.
//! - **Thumbnail, on demand:** a 1080p x264 recording (made by ffmpeg);
//!   `Thumbnails::at` for 30 keyframes that have none kept yet: reading the
//!   keyframe, decoding it, scaling and encoding the JPEG, keeping it.
//!   Target: p99 ≤ 150 ms.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use reallive_core::Codec;
use reallive_record::thumbnails::{ThumbnailConfig, Thumbnails};
use reallive_store::segmenter::SegmenterConfig;
use reallive_store::{NewEvent, Store, StoreConfig, TimeRange};
use reallive_test_support::bench::report_latencies;
use reallive_test_support::clip;
use tokio_util::sync::CancellationToken;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_763_700_000 * SEC;
const DAY: i64 = 24 * 3600 * SEC;

/// A cheap pseudo-random sequence, the same every run.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

async fn day_store(dir: &Path) -> Store {
    let cfg = StoreConfig {
        segmenter: SegmenterConfig {
            fragment_90k: 2 * 90_000,
            file_90k: 60 * 90_000,
            ..SegmenterConfig::default()
        },
        // Writing a day as fast as possible: no fsync per fragment.
        flush_interval: 1000,
        ..StoreConfig::new(dir)
    };
    let (store, _) = Store::open(cfg).await.unwrap();
    // The ball clip at 5 fps: a keyframe every 10 frames, so 2 s GOPs.
    let step = 18_000u32;
    let clip = clip::annex_b_frames(Path::new(clip::BALL_160X120), Codec::H264, 0, step);
    let frames = 24 * 3600 * 5;
    let mut s = store.session("camera-1").unwrap();
    let t = Instant::now();
    for (i, f) in clip::cycled(&clip, frames, step).into_iter().enumerate() {
        let at = T0 + i as i64 * SEC / 5;
        s.write_at(f, at).await.unwrap();
    }
    s.finish().await.unwrap();
    println!(
        "wrote 24 h ({frames} frames) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut seed = 7;
    for _ in 0..1000 {
        let start = T0 + (lcg(&mut seed) as i64 % (DAY / SEC - 60)) * SEC;
        store
            .add_event(&NewEvent {
                camera: "camera-1".into(),
                kind: "motion".into(),
                start_utc_ns: start,
                end_utc_ns: Some(start + 20 * SEC),
                score: Some(12.0),
                zone: Some("gate".into()),
            })
            .await
            .unwrap();
    }
    store
}

async fn timeline(store: &Store) {
    let day = TimeRange::new(T0, T0 + DAY).unwrap();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..200 {
        let t = Instant::now();
        let tl = store.timeline("camera-1", day, DAY / 1000).await.unwrap();
        times.push(t.elapsed());
        last = Some(tl);
    }
    let tl = last.unwrap();
    println!(
        "timeline of 24 h: {} spans, {} events, {} clusters",
        tl.spans.len(),
        tl.events.len(),
        tl.clusters.len()
    );
    report_latencies("timeline 24 h / 1000 events", times);
}

async fn kept_thumbnails(store: &Store, thumbs: &Thumbnails) {
    // One every 10 s of the day, as the recorder keeps them.
    let recs = store
        .recordings("camera-1", TimeRange::all())
        .await
        .unwrap();
    let jpeg = {
        let mut j = vec![0xFF, 0xD8];
        j.resize(12_000, 0x42);
        j.extend_from_slice(&[0xFF, 0xD9]);
        j
    };
    for r in &recs {
        let mut at = r.start_utc_ns;
        while at < r.end_utc_ns {
            store.add_thumbnail(r.id, at, jpeg.clone()).await.unwrap();
            at += 10 * SEC;
        }
    }
    let mut seed = 11;
    let mut times = Vec::new();
    for _ in 0..500 {
        let at = T0 + (lcg(&mut seed) as i64 % (DAY / SEC - 2)) * SEC + SEC;
        let t = Instant::now();
        let j = thumbs.at("camera-1", at).await.unwrap();
        times.push(t.elapsed());
        assert!(j.is_some());
    }
    report_latencies("thumbnail kept (12 KB)", times);
}

async fn on_demand(dir: &Path) {
    let es = dir.join("1080p.h264");
    reallive_test_support::bench::output(
        tokio::process::Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1920x1080:rate=30")
            .args(["-t", "31", "-c:v", "libx264", "-preset", "veryfast"])
            .args(["-profile:v", "baseline", "-g", "30", "-bf", "0", "-y"])
            .arg(&es),
    )
    .await;
    let (store, _) = Store::open(StoreConfig::new(dir.join("store")))
        .await
        .unwrap();
    let mut s = store.session("camera-2").unwrap();
    for f in clip::annex_b_frames(&es, Codec::H264, 0, 3000) {
        let at = T0 + f.dts_90k * SEC / 90_000;
        s.write_at(f, at).await.unwrap();
    }
    s.finish().await.unwrap();
    let stop = CancellationToken::new();
    // One kept per second at most: a request half a second past a
    // keyframe (1 s GOPs) finds none kept and makes one.
    let thumbs = Thumbnails::start(
        store.clone(),
        reallive_encode::thumbnail::start_thumbnailer(),
        ThumbnailConfig {
            every: Duration::from_secs(1),
            ..ThumbnailConfig::default()
        },
        stop.clone(),
    );
    // Warm the decoder once, as a running NVR has.
    thumbs.at("camera-2", T0).await.unwrap().unwrap();
    let mut times = Vec::new();
    for k in 1..31 {
        let at = T0 + k * SEC + SEC / 2;
        let t = Instant::now();
        let j = thumbs.at("camera-2", at).await.unwrap().unwrap();
        times.push(t.elapsed());
        assert!(j.starts_with(&[0xFF, 0xD8]));
        assert!(j.len() > 2000, "a real picture, not the warm-up's");
    }
    let kept = store
        .recordings("camera-2", TimeRange::all())
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect::<Vec<_>>();
    let mut made = 0;
    for id in kept {
        made += store.thumbnail_times(id).await.unwrap().len();
    }
    assert_eq!(made, 31, "each request made and kept its own");
    report_latencies("thumbnail on demand (1080p keyframe)", times);
    stop.cancel();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = day_store(&dir.path().join("day")).await;
        timeline(&store).await;
        let stop = CancellationToken::new();
        let thumbs = Thumbnails::start(
            store.clone(),
            reallive_encode::thumbnail::start_thumbnailer(),
            ThumbnailConfig {
                every: Duration::from_secs(3600),
                ..ThumbnailConfig::default()
            },
            stop.clone(),
        );
        kept_thumbnails(&store, &thumbs).await;
        stop.cancel();
        on_demand(dir.path()).await;
    });
}
