#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]
//! Live audio/video sync as a viewer meets it (issue 22,
//! `docs/design/audio.md` "Sync, measured"): the pusher publishes the test
//! pattern, which flashes white on every tick of its test tone, to a real
//! reallive-server, and headless Chromium on the camera's live page times
//! each flash it shows against each click it plays (`scripts/e2e-sync`, in
//! a private network namespace, as root).
//!
//! `cargo bench -p reallive-pusher --bench sync -- [--runs N]
//! [--settle-ms 3000,30000]` (or `make bench`) prints one row per run and
//! settling time (how long the page plays before the timing starts:
//! Chromium lines the tracks up over its first seconds): the pairs timed,
//! and the median and largest click − flash offset (positive: the sound is
//! late). The target is |median| ≤ 60 ms; the figure is in
//! `docs/benchmarks.md`. A run whose measurement fails (no pairs) fails the
//! bench.

use std::path::Path;
use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: u32 = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let settles: Vec<u64> = args
        .iter()
        .position(|a| a == "--settle-ms")
        .and_then(|i| args.get(i + 1))
        .map_or_else(
            || vec![3000, 30_000],
            |s| s.split(',').filter_map(|x| x.parse().ok()).collect(),
        );
    let pusher = env!("CARGO_BIN_EXE_reallive-pusher");
    let server = Path::new(pusher).with_file_name("reallive-server");
    assert!(
        server.exists(),
        "{} is missing: cargo build --release -p reallive-server first",
        server.display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    println!("| run | settled | pairs | median click − flash | largest |offset| | offsets (ms) |");
    println!("|---|---|---|---|---|---|");
    for (run, settle) in (1..=runs).flat_map(|r| settles.iter().map(move |s| (r, *s))) {
        let out = Command::new(root.join("scripts/e2e-sync"))
            .arg(&server)
            .arg(pusher)
            .env("SETTLE_MS", settle.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        assert!(
            out.status.success() && v["ok"] == true && v["pairs"].as_u64() >= Some(8),
            "run {run}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let offsets: Vec<String> = v["offsetsMs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| format!("{x:.1}"))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "| {run} | {:.0} s | {} | {:+.1} ms | {:.1} ms | {} |",
            settle as f64 / 1000.0,
            v["pairs"],
            v["medianMs"].as_f64().unwrap_or(f64::NAN),
            v["maxAbsMs"].as_f64().unwrap_or(f64::NAN),
            offsets.join(", ")
        );
    }
}
