#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
//! API figures for `docs/benchmarks.md`:
//!
//! - argon2id time per hash with the default parameters;
//! - `GET /api/cameras` with 100 cameras, loaded by wrk over loopback.
//!
//! `cargo bench -p reallive-http --bench api [-- --seconds N --connections N]`

use std::time::{Duration, Instant};

use reallive_auth::{PasswordHasher, PasswordParams, Secret};
use reallive_node::NodeOptions;
use reallive_test_support::http::Api;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn argon2_figures() {
    let params = PasswordParams::default();
    let h = PasswordHasher::new(params).unwrap();
    let _ = h.hash("warm-up-password");
    let mut times = Vec::new();
    for i in 0..10 {
        let t = Instant::now();
        let phc = h.hash(&format!("password-number-{i}")).unwrap();
        times.push(t.elapsed());
        assert!(h.verify(&phc, &format!("password-number-{i}")));
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    println!(
        "argon2id m={} KiB t={} p={}: {:.1} ms mean per hash ({:.1} min, {:.1} max, 10 hashes)",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        mean,
        ms(times[0]),
        ms(times[9])
    );
}

fn main() {
    let seconds = arg("--seconds", 10);
    let connections = arg("--connections", 64);
    if std::env::var("BENCH_ONLY").as_deref() != Ok("wrk") {
        argon2_figures();
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("argon2") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = NodeOptions::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        opts.admin_password = Some(Secret::new("bench-admin-password"));
        let server = reallive_node::start(opts).await.unwrap();
        let addr = server.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(stop.clone()));
        let admin = Api::new(addr).login("admin", "bench-admin-password").await;
        for i in 0..100 {
            let r = admin
                .post(
                    "/api/cameras",
                    json!({"name": format!("camera {i:03}"), "resolution": "1920x1080"}),
                )
                .await;
            assert_eq!(r.status, 201);
        }
        let body = admin.get("/api/cameras").await;
        assert_eq!(body.json().as_array().unwrap().len(), 100);
        let token = admin.token.clone().unwrap();
        let out = tokio::process::Command::new("wrk")
            .args([
                "-t2",
                &format!("-c{connections}"),
                &format!("-d{seconds}s"),
                "--latency",
                "-H",
                &format!("Authorization: Bearer {token}"),
                &format!("http://{addr}/api/cameras"),
            ])
            .output()
            .await
            .expect("wrk (scripts/setup installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "wrk failed: {text}");
        let field = |prefix: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(prefix))
                .map(|l| l.trim().to_string())
                .unwrap_or_default()
        };
        let non2xx = field("Non-2xx");
        println!(
            "GET /api/cameras (100 cameras, {} bytes), wrk -t2 -c{connections} -d{seconds}s: {} | latency {} | {} | {}",
            body.body.len(),
            field("Requests/sec:"),
            field("50%"),
            field("99%"),
            if non2xx.is_empty() { "all 2xx".into() } else { non2xx },
        );
        stop.cancel();
        task.await.unwrap().unwrap();
    });
}
