//! What `/api/system` reports: the process (from `/proc/self`), the size
//! of the databases, and each camera's recent fps, bitrate and state.
//!
//! - [`CpuWindow`]: the process's CPU time, sampled every 2 s, so CPU use
//!   is over about the last 10 s. [`ApiState`](crate::ApiState) owns one
//!   and a sampler task that ends when the state is dropped.
//! - [`SampleRing`]: one camera's last [`SAMPLES_KEPT`] samples, a fixed
//!   ring; [`CameraSeries`] holds one per camera, fed every
//!   [`SAMPLE_EVERY`] by [`CameraSeries::start`] from the recorders.
//! - [`SystemExtra`]: what a program adds (the NVR: its index database and
//!   the camera series) through [`ApiState::add_system_source`](crate::ApiState::add_system_source).
//!
//! Off Linux the process figures are zero.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use reallive_record::CameraRegistry;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// How often a camera is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Samples kept per camera: an hour at [`SAMPLE_EVERY`].
pub const SAMPLES_KEPT: usize = 360;

/// The window CPU use is measured over.
pub const CPU_WINDOW: Duration = Duration::from_secs(10);

/// How often the process's CPU time is read.
const CPU_SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// `/proc` counts CPU time in these ticks per second (`USER_HZ`, 100 on
/// every Linux architecture we run on).
const USER_HZ: f64 = 100.0;

/// One camera at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Sample {
    /// When, Unix ms.
    pub at_ms: i64,
    /// Frames per second, lately.
    pub fps: f64,
    /// Kilobits per second, lately.
    pub bitrate_kbps: f64,
    /// The recorder's state: `starting`, `running`, `unhealthy`, `backoff`
    /// or `stopped`.
    pub state: &'static str,
}

/// One camera's last [`SAMPLES_KEPT`] samples, oldest first.
#[derive(Clone, Debug)]
pub struct SampleRing {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl Default for SampleRing {
    fn default() -> Self {
        SampleRing::new(SAMPLES_KEPT)
    }
}

impl SampleRing {
    /// An empty ring of `capacity` samples (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SampleRing {
            samples: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds `sample`, dropping the oldest when full.
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The samples, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// One camera's series in `/api/system`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CameraSeriesReport {
    /// The camera.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Every 10 s for the last hour, oldest first.
    pub samples: Vec<Sample>,
}

/// What a program adds to `/api/system`.
#[derive(Debug, Default)]
pub struct SystemExtra {
    /// Database files to size (each with its `-wal` and `-shm`).
    pub db_files: Vec<PathBuf>,
    /// Per-camera series.
    pub cameras: Vec<CameraSeriesReport>,
}

#[derive(Debug)]
struct Series {
    name: String,
    ring: SampleRing,
}

/// Every camera's [`SampleRing`], by camera id. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct CameraSeries {
    by_id: Arc<Mutex<HashMap<i64, Series>>>,
}

impl CameraSeries {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Series>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one round: a sample for each camera in `cameras`
    /// (`(id, name, sample)`); a camera not in it is dropped with its
    /// series.
    pub fn record(&self, cameras: Vec<(i64, String, Sample)>) {
        let mut map = self.lock();
        map.retain(|id, _| cameras.iter().any(|(c, _, _)| c == id));
        for (id, name, sample) in cameras {
            let s = map.entry(id).or_insert_with(|| Series {
                name: name.clone(),
                ring: SampleRing::default(),
            });
            s.name = name;
            s.ring.push(sample);
        }
    }

    /// Every camera's series, by id.
    pub fn report(&self) -> Vec<CameraSeriesReport> {
        let mut out: Vec<CameraSeriesReport> = self
            .lock()
            .iter()
            .map(|(id, s)| CameraSeriesReport {
                id: *id,
                name: s.name.clone(),
                samples: s.ring.iter().cloned().collect(),
            })
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Samples every camera of `registry` now and then every
    /// [`SAMPLE_EVERY`], until `stop` fires.
    pub fn start(
        registry: Arc<dyn CameraRegistry>,
        stop: CancellationToken,
    ) -> (CameraSeries, JoinHandle<()>) {
        let series = CameraSeries::default();
        let s = series.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let at_ms = reallive_core::time::UtcNs::now().0 / 1_000_000;
                let round = registry
                    .sources()
                    .into_iter()
                    .filter_map(|v| {
                        let st = registry.status(v.id)?;
                        Some((
                            v.id,
                            v.config.name,
                            Sample {
                                at_ms,
                                fps: st.fps,
                                bitrate_kbps: st.bitrate_kbps,
                                state: st.state.as_str(),
                            },
                        ))
                    })
                    .collect();
                s.record(round);
            }
        });
        (series, task)
    }
}

/// The process's CPU time, at most one sample per `CPU_SAMPLE_EVERY`,
/// for a little more than [`CPU_WINDOW`].
#[derive(Debug, Default)]
pub struct CpuWindow {
    samples: VecDeque<(Instant, f64)>,
}

impl CpuWindow {
    /// Records `cpu_secs` of CPU time used by `at`.
    pub fn push(&mut self, at: Instant, cpu_secs: f64) {
        if let Some(&(last, _)) = self.samples.back()
            && at.saturating_duration_since(last) < CPU_SAMPLE_EVERY
        {
            return;
        }
        self.samples.push_back((at, cpu_secs));
        // Keep the newest sample at least a window old, and what follows.
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|&(t, _)| at.saturating_duration_since(t) >= CPU_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// CPU use in percent of one core between the newest sample at least
    /// [`CPU_WINDOW`] before `now` (or the oldest, or the process's start
    /// `uptime` ago) and `now`, when `cpu_secs` were used.
    pub fn percent(&self, now: Instant, cpu_secs: f64, uptime: Duration) -> f64 {
        let from = self
            .samples
            .iter()
            .rev()
            .find(|&&(t, _)| now.saturating_duration_since(t) >= CPU_WINDOW)
            .or_else(|| self.samples.front())
            .filter(|&&(t, _)| now.saturating_duration_since(t) >= Duration::from_secs(1));
        let (span, used) = match from {
            Some(&(t, c)) => (now.saturating_duration_since(t), cpu_secs - c),
            None => (uptime, cpu_secs),
        };
        if span.is_zero() {
            return 0.0;
        }
        (used.max(0.0) / span.as_secs_f64() * 100.0 * 10.0).round() / 10.0
    }
}

/// Reads the CPU time every [`CPU_SAMPLE_EVERY`] into `window` until it is
/// dropped. Does nothing outside a tokio runtime.
pub(crate) fn spawn_cpu_sampler(window: &Arc<Mutex<CpuWindow>>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<Mutex<CpuWindow>> = Arc::downgrade(window);
    rt.spawn(async move {
        let mut tick = tokio::time::interval(CPU_SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(w) = weak.upgrade() else { break };
            let cpu = process_cpu_secs();
            w.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Instant::now(), cpu);
        }
    });
}

/// CPU seconds (user + system) this process has used: fields 14 and 15 of
/// `/proc/self/stat`. Zero when unreadable.
pub fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces: count from its `)`.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is at n - 3.
    let ticks = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) as f64 / USER_HZ
}

/// The process's resident memory and thread count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Threads.
    pub threads: u64,
}

/// `VmRSS` and `Threads` from `/proc/self/status`; zeros when unreadable.
pub fn process_memory() -> ProcessMemory {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return ProcessMemory::default();
    };
    parse_status(&status)
}

fn parse_status(status: &str) -> ProcessMemory {
    let mut out = ProcessMemory::default();
    for line in status.lines() {
        let number = |v: &str| {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if let Some(v) = line.strip_prefix("VmRSS:") {
            out.rss_bytes = number(v).saturating_mul(1024);
        } else if let Some(v) = line.strip_prefix("Threads:") {
            out.threads = number(v);
        }
    }
    out
}

/// The bytes of the SQLite databases `files`, each with its `-wal` and
/// `-shm` when present. Reads metadata only; call it off the runtime.
pub fn db_bytes(files: &[PathBuf]) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    files
        .iter()
        .map(|f| {
            let mut total = size(f);
            for suffix in ["-wal", "-shm"] {
                let mut side = f.clone().into_os_string();
                side.push(suffix);
                total += size(Path::new(&side));
            }
            total
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample(at_ms: i64) -> Sample {
        Sample {
            at_ms,
            fps: 25.0,
            bitrate_kbps: 1000.0,
            state: "running",
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_360() {
        let mut ring = SampleRing::default();
        for i in 0..361 {
            ring.push(sample(i));
        }
        assert_eq!(ring.len(), SAMPLES_KEPT);
        let at: Vec<i64> = ring.iter().map(|s| s.at_ms).collect();
        assert_eq!(at.first(), Some(&1), "the oldest was dropped");
        assert_eq!(at.last(), Some(&360));
        assert!(at.windows(2).all(|w| w[0] + 1 == w[1]), "in order");
    }

    #[test]
    fn a_camera_gone_is_dropped_with_its_series() {
        let series = CameraSeries::default();
        series.record(vec![(2, "b".into(), sample(1)), (1, "a".into(), sample(1))]);
        series.record(vec![(1, "a2".into(), sample(2))]);
        let r = series.report();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].id, r[0].name.as_str()), (1, "a2"));
        assert_eq!(r[0].samples, vec![sample(1), sample(2)]);
    }

    #[test]
    fn cpu_percent_is_over_the_last_ten_seconds() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = CpuWindow::default();
        // Before any sample: the process's lifetime average.
        assert_eq!(w.percent(t0, 5.0, Duration::from_secs(10)), 50.0);
        // 1 s of CPU per 2 s until 20 s, then idle.
        for s in (0..=20).step_by(2) {
            w.push(at(s), s as f64 / 2.0);
        }
        assert_eq!(w.percent(at(20), 10.0, Duration::ZERO), 50.0);
        for s in (22..=30).step_by(2) {
            w.push(at(s), 10.0);
        }
        assert!(w.samples.len() <= 7, "bounded: {}", w.samples.len());
        assert_eq!(w.percent(at(30), 10.0, Duration::ZERO), 0.0);
        // Too close together: one sample.
        let mut w = CpuWindow::default();
        w.push(at(0), 0.0);
        w.push(at(1), 0.5);
        assert_eq!(w.samples.len(), 1);
        // Only 4 s of history: over those 4 s.
        assert_eq!(w.percent(at(4), 1.0, Duration::from_secs(100)), 25.0);
    }

    #[test]
    fn proc_figures_are_read() {
        let m = parse_status("Name:\tx\nVmRSS:\t  2048 kB\nThreads:\t7\n");
        assert_eq!(
            m,
            ProcessMemory {
                rss_bytes: 2048 * 1024,
                threads: 7
            }
        );
        if cfg!(target_os = "linux") {
            let m = process_memory();
            assert!(m.rss_bytes > 0 && m.threads >= 1, "{m:?}");
            // Spend some CPU, then see it counted.
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(50) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            assert!(process_cpu_secs() > 0.0);
        }
    }

    #[test]
    fn db_bytes_counts_the_wal_and_shm() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("index.sqlite");
        std::fs::write(&db, [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("index.sqlite-wal"), [0u8; 10]).unwrap();
        assert_eq!(db_bytes(std::slice::from_ref(&db)), 110);
        std::fs::write(dir.path().join("index.sqlite-shm"), [0u8; 1]).unwrap();
        let missing = dir.path().join("nope.sqlite");
        assert_eq!(db_bytes(&[db, missing]), 111);
    }
}
