//! The NVR's Prometheus series: each camera's recorder (state, rate,
//! restarts, frames, bytes) and what the store wrote for it (bytes,
//! fragment write latency), in the text format `/metrics` serves.

use std::fmt::Write as _;
use std::sync::Arc;

use reallive_core::supervise::WorkerStatus;
use reallive_store::WriteStats;

/// One camera's figures.
#[derive(Debug, Clone)]
pub struct CameraMetrics {
    /// The camera's id.
    pub id: i64,
    /// Its name, escaped here for the label.
    pub name: String,
    /// Its recorder's status.
    pub status: WorkerStatus,
    /// What the store wrote for it.
    pub writes: Arc<WriteStats>,
}

/// Appends the series for `cameras` (in id order) to `out`.
pub fn render(cameras: &[CameraMetrics], out: &mut String) {
    let mut rows: Vec<&CameraMetrics> = cameras.iter().collect();
    rows.sort_by_key(|c| c.id);
    let metric = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    type Value = fn(&WorkerStatus) -> f64;
    let series: [(&str, &str, &str, Value); 7] = [
        (
            "reallive_nvr_camera_state",
            "gauge",
            "0 stopped, 1 starting, 2 running, 3 unhealthy, 4 backoff",
            |s| f64::from(s.state.as_gauge()),
        ),
        (
            "reallive_nvr_camera_fps",
            "gauge",
            "frames per second",
            |s| s.fps,
        ),
        (
            "reallive_nvr_camera_bitrate_kbps",
            "gauge",
            "received kbit/s",
            |s| s.bitrate_kbps,
        ),
        (
            "reallive_nvr_camera_last_frame_age_seconds",
            "gauge",
            "seconds since the last frame",
            |s| {
                s.last_frame_age_ms
                    .map_or(f64::NAN, |ms| ms as f64 / 1000.0)
            },
        ),
        (
            "reallive_nvr_camera_restarts_total",
            "counter",
            "restarts after failures and stalls",
            |s| f64::from(s.restarts),
        ),
        (
            "reallive_nvr_camera_frames_total",
            "counter",
            "frames received",
            |s| s.frames as f64,
        ),
        (
            "reallive_nvr_camera_bytes_total",
            "counter",
            "bytes received from the camera",
            |s| s.bytes as f64,
        ),
    ];
    let label = |id: &i64, cam: &str| {
        format!(
            "camera_id=\"{id}\",camera=\"{}\"",
            cam.replace('\\', "\\\\").replace('"', "\\\"")
        )
    };
    for (name, kind, help, value) in series {
        metric(out, name, kind, help);
        for c in &rows {
            let _ = writeln!(
                out,
                "{name}{{{}}} {}",
                label(&c.id, &c.name),
                value(&c.status)
            );
        }
    }
    // What the store wrote, and how long a fragment took to be durable.
    let stats: Vec<_> = rows
        .iter()
        .map(|c| (label(&c.id, &c.name), &c.writes))
        .collect();
    metric(
        out,
        "reallive_nvr_camera_bytes_written_total",
        "counter",
        "bytes of fragments written to disk",
    );
    for (l, st) in &stats {
        let _ = writeln!(
            out,
            "reallive_nvr_camera_bytes_written_total{{{l}}} {}",
            st.bytes.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    metric(
        out,
        "reallive_nvr_segment_write_seconds",
        "summary",
        "from a fragment ready to it written, fdatasynced and indexed",
    );
    for (l, st) in &stats {
        for (q, pct) in [(0.5, 50.0), (0.99, 99.0)] {
            let v = st
                .latency
                .percentile(pct)
                .map_or(f64::NAN, |d| d.as_secs_f64());
            let _ = writeln!(
                out,
                "reallive_nvr_segment_write_seconds{{{l},quantile=\"{q}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "reallive_nvr_segment_write_seconds_count{{{l}}} {}",
            st.latency.count()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reallive_core::supervise::WorkerState;

    fn camera(id: i64, name: &str, state: WorkerState) -> CameraMetrics {
        let writes = Arc::new(WriteStats::default());
        writes
            .bytes
            .store(4096, std::sync::atomic::Ordering::Relaxed);
        writes.latency.record(std::time::Duration::from_millis(3));
        CameraMetrics {
            id,
            name: name.into(),
            status: WorkerStatus {
                state,
                fps: 30.0,
                bitrate_kbps: 4000.0,
                last_frame_age_ms: Some(250),
                restarts: 2,
                last_error: None,
                frames: 900,
                bytes: 1 << 20,
                stream: None,
                history: Vec::new(),
            },
            writes,
        }
    }

    #[test]
    fn every_series_has_help_type_and_one_line_per_camera_in_id_order() {
        let mut out = String::new();
        render(
            &[
                camera(7, "back \"yard\"", WorkerState::Backoff),
                camera(3, "gate", WorkerState::Running),
            ],
            &mut out,
        );
        for series in [
            "reallive_nvr_camera_state",
            "reallive_nvr_camera_fps",
            "reallive_nvr_camera_restarts_total",
            "reallive_nvr_camera_bytes_written_total",
            "reallive_nvr_segment_write_seconds",
        ] {
            assert!(
                out.contains(&format!("# TYPE {series} ")),
                "{series}\n{out}"
            );
        }
        let gate = r#"reallive_nvr_camera_state{camera_id="3",camera="gate"} 2"#;
        let yard = r#"reallive_nvr_camera_state{camera_id="7",camera="back \"yard\""} 4"#;
        let (g, y) = (out.find(gate).expect(gate), out.find(yard).expect(yard));
        assert!(g < y, "id order\n{out}");
        assert!(out.contains(
            r#"reallive_nvr_camera_last_frame_age_seconds{camera_id="3",camera="gate"} 0.25"#
        ));
        assert!(out.contains(
            r#"reallive_nvr_camera_bytes_written_total{camera_id="3",camera="gate"} 4096"#
        ));
        assert!(out.contains(
            r#"reallive_nvr_segment_write_seconds_count{camera_id="3",camera="gate"} 1"#
        ));
    }
}
