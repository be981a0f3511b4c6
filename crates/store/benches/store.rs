//! Recording store figures: write cost, playlist latency, recovery time.
//!
//! `cargo bench -p reallive-store --bench store` (part of `make bench`).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use reallive_core::{Codec, CodecParameters, EncodedFrame};
use reallive_store::segmenter::SegmenterConfig;
use reallive_store::{Store, StoreConfig, TimeRange};

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_763_700_000 * SEC;

use reallive_test_support::process_cpu_time as cpu_time;

/// Parameter sets from a real x264 stream.
fn params() -> Arc<CodecParameters> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ball-160x120-30f.h264");
    let data = Bytes::from(std::fs::read(path).unwrap());
    Arc::new(CodecParameters::from_annex_b(Codec::H264, &data).unwrap())
}

/// An access unit of `size` bytes: SPS/PPS on keyframes, then one slice of
/// filler with no start-code emulation.
fn frame(params: &Arc<CodecParameters>, n: i64, fps: i64, gop: i64, size: usize) -> EncodedFrame {
    let key = n % gop == 0;
    let mut b = BytesMut::with_capacity(size + 64);
    if key {
        for ps in params.sps.iter().chain(&params.pps) {
            b.put_slice(&[0, 0, 0, 1]);
            b.put_slice(ps);
        }
    }
    b.put_slice(&[0, 0, 0, 1, if key { 0x65 } else { 0x41 }, 0x88]);
    b.resize(size, 0x5a);
    let t = n * 90_000 / fps;
    EncodedFrame {
        data: b.freeze(),
        pts_90k: t,
        dts_90k: t,
        duration_90k: Some((90_000 / fps) as u32),
        keyframe: key,
        params: params.clone(),
    }
}

/// One real-time 4 Mbit/s stream's cost, from `secs` of media written as
/// fast as the store takes it: CPU time (user + system) over media time.
async fn write_once(dir: &Path, secs: i64) -> (Duration, Duration, u64) {
    let p = params();
    let (store, _) = Store::open(StoreConfig::new(dir)).await.unwrap();
    let mut s = store.session("bench").unwrap();
    // 4 Mbit/s at 30 fps, 1 s GOP: ~16.7 KB a frame. One GOP is built once
    // and re-stamped, so building frames costs nothing in the measurement.
    let fps = 30i64;
    let gop: Vec<EncodedFrame> = (0..fps).map(|n| frame(&p, n, fps, fps, 16_667)).collect();
    let io0 = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let (c0, t0) = (cpu_time(), Instant::now());
    for n in 0..fps * secs {
        let mut f = gop[(n % fps) as usize].clone();
        f.pts_90k = n * 3000;
        f.dts_90k = f.pts_90k;
        s.write_at(f, T0 + n * SEC / fps).await.unwrap();
    }
    s.finish().await.unwrap();
    let (cpu, wall) = (cpu_time() - c0, t0.elapsed());
    let io1 = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |io: &str, k: &str| -> u64 {
        io.lines()
            .find_map(|l| l.strip_prefix(k)?.trim().parse().ok())
            .unwrap_or(0)
    };
    store.close().await;
    (cpu, wall, field(&io1, "syscw:") - field(&io0, "syscw:"))
}

async fn write_cost(dir: &Path) {
    let secs = 600i64;
    let mut runs = Vec::new();
    for i in 0..3 {
        let d = dir.join(format!("run{i}"));
        runs.push(write_once(&d, secs).await);
        let _ = std::fs::remove_dir_all(&d);
    }
    runs.sort();
    let (cpu, wall, writes) = runs[1];
    println!(
        "| write, 4 Mbit/s, 200 ms parts, a flush (fdatasync + commit) a second (median of 3) | {secs} s of media in {wall:.2?} | CPU {cpu:?} = {:.3} % of a core per real-time stream (runs: {}) | {:.1} write-class syscalls per second of media (file + WAL) |",
        cpu.as_secs_f64() / secs as f64 * 100.0,
        runs.iter()
            .map(|r| format!("{:.3} %", r.0.as_secs_f64() / secs as f64 * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
        writes as f64 / secs as f64
    );
}

async fn playlist(dir: &Path) {
    let p = params();
    // 24 h at 1 fps with a keyframe every frame and 1 s fragments: 86,400
    // fragments in 1,440 one-minute files. Committing once per file keeps
    // the setup quick; the index ends up the same.
    let cfg = StoreConfig {
        flush_interval: 60,
        segmenter: SegmenterConfig {
            fragment_90k: 90_000,
            ..SegmenterConfig::default()
        },
        ..StoreConfig::new(dir)
    };
    let (store, _) = Store::open(cfg).await.unwrap();
    let mut s = store.session("day").unwrap();
    let setup = Instant::now();
    for n in 0..86_400i64 {
        let f = frame(&p, n, 1, 1, 200);
        s.write_at(f, T0 + n * SEC).await.unwrap();
    }
    s.finish().await.unwrap();
    let setup = setup.elapsed();
    let range = TimeRange::new(T0, T0 + 86_400 * SEC).unwrap();
    // The first request after opening reads every fragment table.
    let t = Instant::now();
    store
        .vod_playlist("day", range, "/recordings/")
        .await
        .unwrap();
    let cold = t.elapsed();
    let mut times = Vec::new();
    let mut len = 0;
    for _ in 0..200 {
        let t = Instant::now();
        let pl = store
            .vod_playlist("day", range, "/recordings/")
            .await
            .unwrap();
        times.push(t.elapsed());
        len = pl.len();
        assert_eq!(pl.matches("#EXTINF").count(), 86_400);
    }
    times.sort();
    println!(
        "| VOD playlist, 24 h = 86,400 fragments in 1,440 files ({:.1} MB of text) | warm, 200 requests: p50 {:.2?}, p99 {:.2?} | cold (first request after open): {cold:.1?} | (setup {setup:.1?}) |",
        len as f64 / 1e6,
        times[times.len() / 2],
        times[times.len() * 99 / 100]
    );
    store.close().await;
}

async fn recovery(dir: &Path) {
    let p = params();
    let cfg = || StoreConfig {
        flush_interval: 60,
        segmenter: SegmenterConfig {
            fragment_90k: 90_000,
            ..SegmenterConfig::default()
        },
        ..StoreConfig::new(dir)
    };
    {
        let (store, _) = Store::open(cfg()).await.unwrap();
        let mut s = store.session("r").unwrap();
        for n in 0..10_000i64 {
            s.write_at(frame(&p, n, 1, 1, 2_000), T0 + n * SEC)
                .await
                .unwrap();
        }
        s.finish().await.unwrap();
        store.close().await;
    }
    let t = Instant::now();
    let (store, report) = Store::open(cfg()).await.unwrap();
    let consistent = t.elapsed();
    assert_eq!(report, Default::default());
    store.close().await;
    // Worst case: the index is lost; every file is scanned and re-indexed.
    for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let t = Instant::now();
    let (store, report) = Store::open(cfg()).await.unwrap();
    let rebuilt = t.elapsed();
    assert_eq!(report.files_indexed, 167);
    println!(
        "| recovery, 10,000 fragments in 167 files | open, consistent: {consistent:.1?} | index lost, all files rescanned: {rebuilt:.1?} | |"
    );
    store.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).unwrap();
    // BENCH_ONLY=write|playlist|recovery runs one part (for profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    println!("| what | | | |\n|---|---|---|---|");
    if run("write") {
        write_cost(&dir.path().join("write")).await;
    }
    if run("playlist") {
        playlist(&dir.path().join("playlist")).await;
    }
    if run("recovery") {
        recovery(&dir.path().join("recovery")).await;
    }
}
