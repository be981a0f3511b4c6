//! Scheduled re-encoding of old recordings to H.265: when, which, and how
//! many at once.
//!
//! [`spawn`] runs jobs in a daily [`Window`], oldest recordings first, at
//! most `max_jobs` at a time, through a [`TranscodeRunner`], and keeps a
//! [`TranscodeStatus`]. [`ChildRunner`] runs each job as a child process
//! of the NVR at the lowest CPU and I/O priority. The rewrite itself and
//! the swap that never risks the original are the store's
//! (`reallive_store::transcode`); the encoder is `reallive-encode`'s,
//! behind `reallive_core::reencode::Reencoder`.
//!
//! A child process, not a thread: its priority covers every thread x265
//! and the decoder start, it cannot take the recorders down with it, and
//! killing it (or the NVR) leaves only a file the store's `garbage` table
//! already marks for deletion. The child exits when its stdin closes, so
//! it never outlives the NVR.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reallive_core::time::UtcNs;
use reallive_store::{Recording, Store};
use tokio::io::AsyncReadExt as _;
use tokio_util::sync::CancellationToken;

use crate::RecordError;
use crate::config::TranscodingSection;

/// A daily window, in minutes since local midnight; `end` before `start`
/// wraps past midnight, and `00:00-24:00` is all day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First minute inside.
    pub start: u16,
    /// First minute past it (1440: midnight).
    pub end: u16,
}

impl Window {
    /// All day.
    pub const ALWAYS: Window = Window {
        start: 0,
        end: 1440,
    };

    /// Parses `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Window, RecordError> {
        let minute = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
        };
        let bad = || {
            RecordError::Invalid(format!(
                "'{}' is not a window like 02:00-06:00",
                s.escape_default()
            ))
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
        if start == end || start == 1440 {
            return Err(bad());
        }
        Ok(Window { start, end })
    }

    /// Whether `minute` (since local midnight) is inside.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// When and how much to transcode ([`spawn`]).
#[derive(Clone, Debug)]
pub struct TranscodePolicy {
    /// Only recordings that ended at least this long ago.
    pub older_than: Duration,
    /// When jobs may run; a job still running at its end is stopped (and
    /// tried again the next day).
    pub window: Window,
    /// Jobs at once.
    pub max_jobs: usize,
    /// How often to look for work.
    pub poll: Duration,
}

/// Runs one re-encode, `source` into `target` ([`reallive_store::transcode::rewrite`], usually in a
/// child process at low priority). It stops early, with an error, when
/// `cancel` fires.
#[async_trait::async_trait]
pub trait TranscodeRunner: Send + Sync + 'static {
    /// Re-encodes `source` into `target`.
    async fn run(
        &self,
        source: &Path,
        target: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), RecordError>;
}

/// A job in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningJob {
    /// The recording.
    pub recording_id: i64,
    /// Its camera.
    pub camera: String,
    /// Its file.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// When the job began.
    pub started_utc_ns: i64,
}

/// What the transcoder is doing and has done since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TranscodeStatus {
    /// `waiting` (outside the window), `running`, or `idle` (in the window,
    /// nothing to do).
    pub state: &'static str,
    /// The window, `HH:MM-HH:MM`.
    pub window: String,
    /// Recordings this old or older are re-encoded.
    pub older_than_secs: u64,
    /// Jobs at once.
    pub max_jobs: usize,
    /// Jobs running now.
    pub running: Vec<RunningJob>,
    /// Recordings replaced.
    pub completed: u64,
    /// Jobs that failed, kept their original, and will not be tried again.
    pub failed: u64,
    /// Bytes of the originals replaced.
    pub bytes_before: u64,
    /// Bytes of their replacements.
    pub bytes_after: u64,
    /// The newest failure: which file and why.
    pub last_error: Option<String>,
}

impl TranscodeStatus {
    /// Bytes saved so far.
    pub fn bytes_saved(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

/// A running transcoder ([`spawn`]).
#[derive(Clone, Debug)]
pub struct Transcoder {
    status: Arc<Mutex<TranscodeStatus>>,
}

impl Transcoder {
    /// A snapshot of its status.
    pub fn status(&self) -> TranscodeStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Starts the transcoder: every `poll`, inside the window, it takes the
/// oldest candidates ([`Store::transcode_candidates`]) and runs up to
/// `max_jobs` of them at once. `minute_now` gives the minutes since local
/// midnight. It stops, cancelling its jobs, when `cancel` fires; the
/// returned task ends once they have.
pub fn spawn(
    store: Store,
    policy: TranscodePolicy,
    runner: Arc<dyn TranscodeRunner>,
    minute_now: Arc<dyn Fn() -> u16 + Send + Sync>,
    cancel: CancellationToken,
) -> (Transcoder, tokio::task::JoinHandle<()>) {
    let status = Arc::new(Mutex::new(TranscodeStatus {
        state: "waiting",
        window: policy.window.to_string(),
        older_than_secs: policy.older_than.as_secs(),
        max_jobs: policy.max_jobs,
        ..TranscodeStatus::default()
    }));
    let t = Transcoder {
        status: status.clone(),
    };
    let task = tokio::spawn(run(store, policy, runner, minute_now, cancel, status));
    (t, task)
}

async fn run(
    store: Store,
    policy: TranscodePolicy,
    runner: Arc<dyn TranscodeRunner>,
    minute_now: Arc<dyn Fn() -> u16 + Send + Sync>,
    cancel: CancellationToken,
    status: Arc<Mutex<TranscodeStatus>>,
) {
    let set = |f: &dyn Fn(&mut TranscodeStatus)| {
        f(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
    };
    let mut jobs = tokio::task::JoinSet::new();
    // Recording being re-encoded, by job.
    let mut busy: HashMap<tokio::task::Id, i64> = HashMap::new();
    // Cancelled at the end of each window, and with `cancel`.
    let mut window_cancel = cancel.child_token();
    let mut tick = tokio::time::interval(policy.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => {
                let task = match &done {
                    Ok((task, ())) => *task,
                    Err(e) => e.id(),
                };
                if let (Some(id), Err(e)) = (busy.remove(&task), &done) {
                    // Its new file stays in `garbage`: recovery deletes it.
                    tracing::error!(recording = id, error = %e, "a transcoding job panicked; the original is kept");
                    let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
                    s.running.retain(|j| j.recording_id != id);
                    s.failed += 1;
                    s.last_error = Some(format!("recording {id}: the job panicked"));
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        if !policy.window.contains(minute_now()) {
            if !busy.is_empty() {
                tracing::info!(
                    jobs = busy.len(),
                    "the transcoding window closed: stopping its jobs"
                );
                window_cancel.cancel();
                window_cancel = cancel.child_token();
            }
            if busy.is_empty() {
                set(&|s| s.state = "waiting");
            }
            continue;
        }
        let free = policy.max_jobs.saturating_sub(busy.len());
        if free == 0 {
            continue;
        }
        let cutoff =
            UtcNs::now().0 - i64::try_from(policy.older_than.as_nanos()).unwrap_or(i64::MAX);
        let found = match store
            .transcode_candidates(cutoff, policy.max_jobs * 2 + busy.len())
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "transcoding: listing recordings failed");
                continue;
            }
        };
        let fresh: Vec<Recording> = found
            .into_iter()
            .filter(|r| !busy.values().any(|id| *id == r.id))
            .take(free)
            .collect();
        for rec in fresh {
            let id = rec.id;
            let job = Job {
                store: store.clone(),
                runner: runner.clone(),
                status: status.clone(),
                cancel: window_cancel.clone(),
            };
            let handle = jobs.spawn(job.run(rec));
            busy.insert(handle.id(), id);
        }
        set(&|s| s.state = if busy.is_empty() { "idle" } else { "running" });
    }
    window_cancel.cancel();
    while jobs.join_next().await.is_some() {}
    set(&|s| s.state = "waiting");
}

struct Job {
    store: Store,
    runner: Arc<dyn TranscodeRunner>,
    status: Arc<Mutex<TranscodeStatus>>,
    cancel: CancellationToken,
}

impl Job {
    fn status(&self) -> std::sync::MutexGuard<'_, TranscodeStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn run(self, rec: Recording) {
        let r = match self.store.begin_replacement(rec.id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(recording = rec.id, error = %e, "transcoding: cannot start");
                return;
            }
        };
        self.status().running.push(RunningJob {
            recording_id: rec.id,
            camera: rec.camera.clone(),
            path: rec.path.clone(),
            bytes: rec.bytes,
            started_utc_ns: UtcNs::now().0,
        });
        tracing::info!(recording = rec.id, path = %rec.path, bytes = rec.bytes, "transcoding");
        let ran = self.runner.run(&r.source, &r.target, &self.cancel).await;
        let outcome = match ran {
            Ok(()) => self
                .store
                .commit_replacement(&r)
                .await
                .map_err(RecordError::from),
            Err(e) => Err(e),
        };
        self.status().running.retain(|j| j.recording_id != rec.id);
        match outcome {
            Ok(saved) => {
                tracing::info!(
                    recording = rec.id,
                    path = %r.target.display(),
                    bytes_before = saved.bytes_before,
                    bytes_after = saved.bytes_after,
                    "transcoded"
                );
                let mut s = self.status();
                s.completed += 1;
                s.bytes_before += saved.bytes_before;
                s.bytes_after += saved.bytes_after;
            }
            Err(why) => {
                let why = why.to_string();
                // Stopped by the window or a shutdown: try again later.
                let skip = (!self.cancel.is_cancelled()).then_some(why.as_str());
                if let Err(e) = self.store.abort_replacement(&r, skip).await {
                    tracing::warn!(recording = rec.id, error = %e, "transcoding: cleaning up failed");
                }
                if skip.is_some() {
                    tracing::warn!(recording = rec.id, path = %rec.path, reason = %why,
                        "transcoding failed; the original is kept");
                    let mut s = self.status();
                    s.failed += 1;
                    s.last_error = Some(format!("{}: {why}", rec.path));
                } else {
                    tracing::info!(
                        recording = rec.id,
                        "transcoding stopped; the original is kept"
                    );
                }
            }
        }
    }
}

/// The hidden subcommand of `reallive-nvr` a job runs.
pub const SUBCOMMAND: &str = "transcode-file";

/// Runs each job as `nice -n 19 ionice -c 3 reallive-nvr transcode-file`.
#[derive(Debug, Clone)]
pub struct ChildRunner {
    program: PathBuf,
    crf: u8,
    preset: String,
    nice: Option<PathBuf>,
    ionice: Option<PathBuf>,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

impl ChildRunner {
    /// Runs `program` (the NVR's own executable, normally) with the hidden
    /// subcommand [`SUBCOMMAND`], at x265 quality `crf` and speed `preset`.
    pub fn new(program: PathBuf, crf: u8, preset: String) -> Self {
        let (nice, ionice) = (on_path("nice"), on_path("ionice"));
        if nice.is_none() || ionice.is_none() {
            tracing::warn!(
                nice = nice.is_some(),
                ionice = ionice.is_some(),
                "transcoding jobs run without a lower CPU or I/O priority: nice or ionice is missing"
            );
        }
        ChildRunner {
            program,
            crf,
            preset,
            nice,
            ionice,
        }
    }

    fn command(&self, source: &Path, target: &Path) -> tokio::process::Command {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(n) = &self.nice {
            argv.extend([n.as_os_str().into(), "-n".into(), "19".into()]);
        }
        if let Some(i) = &self.ionice {
            argv.extend([i.as_os_str().into(), "-c".into(), "3".into()]);
        }
        argv.extend([
            self.program.as_os_str().into(),
            SUBCOMMAND.into(),
            "--input".into(),
            source.as_os_str().into(),
            "--output".into(),
            target.as_os_str().into(),
            "--crf".into(),
            self.crf.to_string().into(),
            "--preset".into(),
            self.preset.clone().into(),
        ]);
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

#[async_trait::async_trait]
impl TranscodeRunner for ChildRunner {
    async fn run(
        &self,
        source: &Path,
        target: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), RecordError> {
        let mut child = self.command(source, target).spawn().map_err(|e| {
            RecordError::JobFailed(format!("starting {}: {e}", self.program.display()))
        })?;
        // Held open for the child's life: it exits when this closes.
        let _stdin = child.stdin.take();
        let mut stderr = child.stderr.take();
        let read_err = async {
            let mut text = String::new();
            if let Some(e) = stderr.as_mut() {
                // A bounded read: the child prints one line on failure.
                let _ = e.take(64 * 1024).read_to_string(&mut text).await;
            }
            text
        };
        let waited = tokio::select! {
            () = cancel.cancelled() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(RecordError::JobFailed("stopped".into()));
            }
            r = async { tokio::join!(child.wait(), read_err) } => r,
        };
        match waited {
            (Ok(st), _) if st.success() => Ok(()),
            (Ok(st), err) => {
                let last = err.lines().rev().find(|l| !l.trim().is_empty());
                Err(RecordError::JobFailed(match last {
                    Some(l) => format!("the re-encoder failed ({st}): {}", l.trim()),
                    None => format!("the re-encoder failed ({st})"),
                }))
            }
            (Err(e), _) => Err(RecordError::JobFailed(format!(
                "waiting for the re-encoder: {e}"
            ))),
        }
    }
}

/// Starts the transcoder `section` describes, running jobs through this
/// executable. `None` when it is off.
pub fn start(
    section: &TranscodingSection,
    store: &Store,
    program: PathBuf,
    cancel: CancellationToken,
) -> Option<(Transcoder, tokio::task::JoinHandle<()>)> {
    if !section.enabled {
        return None;
    }
    let policy = TranscodePolicy {
        older_than: Duration::from_secs_f64(section.older_than_days * 86_400.0),
        window: section.window,
        max_jobs: section.max_jobs as usize,
        poll: Duration::from_secs(u64::from(section.poll_secs)),
    };
    tracing::info!(
        window = %policy.window,
        older_than_days = section.older_than_days,
        max_jobs = policy.max_jobs,
        crf = section.crf,
        preset = %section.preset,
        "transcoding old recordings to H.265"
    );
    Some(spawn(
        store.clone(),
        policy,
        Arc::new(ChildRunner::new(
            program,
            section.crf,
            section.preset.clone(),
        )),
        Arc::new(local_minute),
        cancel,
    ))
}

/// Minutes since local midnight (the system time zone; UTC if it is
/// unknown).
fn local_minute() -> u16 {
    let now = jiff::Zoned::now();
    (now.hour() as u16) * 60 + now.minute() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let w = Window::parse("02:00-06:00").unwrap();
        assert!(!w.contains(119) && w.contains(120) && w.contains(359) && !w.contains(360));
        let night = Window::parse("22:30-05:00").unwrap();
        assert!(night.contains(1350) && night.contains(0) && night.contains(299));
        assert!(!night.contains(300) && !night.contains(1349));
        let all = Window::parse("00:00-24:00").unwrap();
        assert_eq!(all, Window::ALWAYS);
        assert!((0..1440).all(|m| all.contains(m)));
        assert_eq!(night.to_string(), "22:30-05:00");
        for bad in [
            "",
            "2-6",
            "02:00",
            "25:00-06:00",
            "02:60-03:00",
            "02:00-02:00",
            "24:00-02:00",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }
}
