//! Exports as jobs (`docs/design/review.md`, invariant 4): [`ExportJobs`]
//! writes an export of a range into the exports directory in the
//! background, so it outlives the request that asked for it and a restart.
//!
//! A job writes `<id>.mp4.part` through [`Store::export_to`], `fsync`s it,
//! renames it to `<id>.mp4` and `fsync`s the directory, and only then is
//! its row `done`: a `.part` is never served. At start,
//! [`ExportJobs::recover`] restarts every job a stop interrupted from its
//! range (or fails it if its footage is gone) and removes stray files.
//!
//! Bounds: [`MAX_EXPORTS_PER_OWNER`] jobs queued or running per owner,
//! [`MAX_EXPORTS_RUNNING`] running at once (the rest wait, `queued`), and
//! the exports directory within its share of the disk
//! ([`EXPORT_BUDGET_PERCENT`] by default): finished exports, running
//! jobs' estimates and the files kept for resumed `export.mp4` downloads
//! together. The directory lies outside `recordings/`, so exports never
//! make retention delete footage.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::StoreError;
use crate::durable::fsync_dir;
use crate::model::TimeRange;
use crate::store::{ExportJob, ExportState, Store, blocking, disk_space};

/// Exports queued or running at once for one owner.
pub const MAX_EXPORTS_PER_OWNER: usize = 2;
/// Export jobs writing at once, whoever asked: the rest wait, `queued`.
pub const MAX_EXPORTS_RUNNING: usize = 4;
/// The share of their volume exports may use by default, in percent.
pub const EXPORT_BUDGET_PERCENT: u8 = 5;
/// How often a running job writes its progress to its row.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Progress shown while writing: 1 means the file is whole.
const MAX_RUNNING_PROGRESS: f64 = 0.99;

/// Whether `name`, a file in the exports directory, is an export job's
/// (`<id>.mp4` or `<id>.mp4.part`) rather than a file kept for a resumed
/// download: those sweeps must leave jobs' files alone.
pub fn is_job_file(name: &str) -> bool {
    job_file(name).is_some()
}

/// `(id, is .part)` of a job's file name.
fn job_file(name: &str) -> Option<(i64, bool)> {
    let (stem, part) = match name.strip_suffix(".mp4.part") {
        Some(stem) => (stem, true),
        None => (name.strip_suffix(".mp4")?, false),
    };
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, part))
}

/// The bytes `percent` of a volume of `total_bytes` allows.
pub fn budget_bytes(total_bytes: u64, percent: u8) -> u64 {
    total_bytes / 100 * u64::from(percent.min(100))
}

/// Makes `more_bytes` fit in `dir` within `budget_bytes`, counting every
/// file there and `reserved_bytes` (running jobs still to write): deletes
/// files kept for resumed downloads, oldest first, never a job's file.
/// [`StoreError::NoRoom`] when they still do not fit. Blocking.
pub fn make_room(
    dir: &Path,
    budget_bytes: u64,
    reserved_bytes: u64,
    more_bytes: u64,
) -> Result<(), StoreError> {
    let mut used = reserved_bytes;
    let mut resumable = Vec::new();
    let entries =
        fs::read_dir(dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        used = used.saturating_add(meta.len());
        if !is_job_file(&e.file_name().to_string_lossy()) {
            resumable.push((meta.modified().ok(), meta.len(), e.path()));
        }
    }
    resumable.sort_by_key(|f| f.0);
    for (_, len, path) in resumable {
        if used.saturating_add(more_bytes) <= budget_bytes {
            break;
        }
        if fs::remove_file(&path).is_ok() {
            used = used.saturating_sub(len);
        }
    }
    if used.saturating_add(more_bytes) > budget_bytes {
        return Err(StoreError::NoRoom {
            needed_bytes: more_bytes,
            free_bytes: budget_bytes.saturating_sub(used),
            budget_bytes,
        });
    }
    Ok(())
}

/// What [`ExportJobs::recover`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportRecovery {
    /// Interrupted jobs started again from their range.
    pub restarted: u64,
    /// Interrupted jobs whose file was already whole, now `done`.
    pub completed: u64,
    /// Jobs failed: their footage, or their finished file, is gone.
    pub failed: u64,
    /// Files removed: `.part`s, and files of jobs no longer listed.
    pub removed_files: u64,
}

/// Where export jobs write, and their bounds.
#[derive(Clone, Debug)]
pub struct ExportJobsConfig {
    /// The exports directory (created, private, if missing); the files kept
    /// for resumed `export.mp4` downloads live there too.
    pub dir: PathBuf,
    /// The share of `dir`'s volume all exports may use, in percent
    /// (default [`EXPORT_BUDGET_PERCENT`]).
    pub budget_percent: u8,
    /// Jobs writing at once (default [`MAX_EXPORTS_RUNNING`]); the rest
    /// wait, `queued`. 0 holds every job queued (maintenance, tests).
    pub max_running: usize,
}

impl ExportJobsConfig {
    /// The defaults, writing into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ExportJobsConfig {
            dir: dir.into(),
            budget_percent: EXPORT_BUDGET_PERCENT,
            max_running: MAX_EXPORTS_RUNNING,
        }
    }
}

/// Runs export jobs. Cheap to clone; all clones share the jobs.
#[derive(Clone, Debug)]
pub struct ExportJobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    dir: PathBuf,
    budget_percent: u8,
    /// Jobs queued or running, by id.
    active: Mutex<HashMap<i64, Active>>,
    /// One admission at a time, so two requests cannot both take the last
    /// slot or the last bytes of the budget.
    admit: tokio::sync::Mutex<()>,
    /// Jobs writing at once.
    slots: Arc<Semaphore>,
}

#[derive(Debug)]
struct Active {
    owner: String,
    estimate: u64,
    written: Arc<AtomicU64>,
    cancel: CancellationToken,
    /// Cancelled when the job's task has ended, whatever the outcome.
    done: CancellationToken,
}

impl ExportJobs {
    /// Jobs of `store`, as `cfg` says. Run [`recover`](Self::recover)
    /// before taking new jobs.
    pub async fn open(store: Store, cfg: ExportJobsConfig) -> Result<Self, StoreError> {
        let ExportJobsConfig {
            dir,
            budget_percent,
            max_running,
        } = cfg;
        let d = dir.clone();
        blocking(move || {
            reallive_core::fs::create_private_dir(&d)
                .map_err(|e| StoreError::io(format!("creating {}", d.display()), e))
        })
        .await?;
        Ok(ExportJobs {
            inner: Arc::new(Inner {
                store,
                dir,
                budget_percent: budget_percent.min(100),
                active: Mutex::new(HashMap::new()),
                admit: tokio::sync::Mutex::new(()),
                slots: Arc::new(Semaphore::new(max_running)),
            }),
        })
    }

    /// The exports directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The store the jobs export from.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The exports' share of the volume, in bytes. Follows the store's
    /// `disk_override`, so tests can simulate a small disk.
    pub async fn budget_bytes(&self) -> Result<u64, StoreError> {
        let total = match self.inner.store.config().disk_override {
            Some(d) => d.total_bytes,
            None => {
                let dir = self.inner.dir.clone();
                blocking(move || disk_space(&dir)).await?.total_bytes
            }
        };
        Ok(budget_bytes(total, self.inner.budget_percent))
    }

    /// Bytes the running jobs are still expected to write.
    pub fn reserved_bytes(&self) -> u64 {
        self.active()
            .values()
            .map(|a| a.estimate.saturating_sub(a.written.load(Ordering::Relaxed)))
            .sum()
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Active>> {
        self.inner
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes room for `more_bytes` in the exports' budget (see
    /// [`make_room`]), counting what running jobs still have to write.
    pub async fn make_room(&self, more_bytes: u64) -> Result<(), StoreError> {
        let budget = self.budget_bytes().await?;
        let reserved = self.reserved_bytes();
        let dir = self.inner.dir.clone();
        blocking(move || make_room(&dir, budget, reserved, more_bytes)).await
    }

    /// Starts exporting `range` of `camera` for `owner`. `NotFound` when
    /// nothing is recorded there, [`StoreError::Busy`] when `owner` has
    /// [`MAX_EXPORTS_PER_OWNER`] jobs queued or running, and
    /// [`StoreError::NoRoom`] when its estimate does not fit the budget.
    pub async fn create(
        &self,
        owner: &str,
        camera: &str,
        range: TimeRange,
        name: &str,
    ) -> Result<ExportJob, StoreError> {
        let store = &self.inner.store;
        let estimate = store.export_size_estimate(camera, range).await?;
        if estimate == 0 {
            return Err(StoreError::NotFound("recordings in that range".into()));
        }
        let _admit = self.inner.admit.lock().await;
        let mine = self.active().values().filter(|a| a.owner == owner).count();
        if mine >= MAX_EXPORTS_PER_OWNER {
            return Err(StoreError::Busy(format!(
                "at most {MAX_EXPORTS_PER_OWNER} exports run at once for one user; wait for one to finish, or delete one"
            )));
        }
        self.make_room(estimate).await?;
        let job = store.create_export_job(owner, camera, range, name).await?;
        self.spawn(job.clone(), estimate);
        Ok(job)
    }

    /// Export jobs, newest first: `owner`'s, or everyone's with `None`.
    pub async fn list(&self, owner: Option<&str>) -> Result<Vec<ExportJob>, StoreError> {
        self.inner.store.export_jobs(owner).await
    }

    /// One export job.
    pub async fn get(&self, id: i64) -> Result<Option<ExportJob>, StoreError> {
        self.inner.store.export_job(id).await
    }

    /// The finished file of job `id`, relative to [`dir`](Self::dir):
    /// `None` unless the job is `done`.
    pub fn file_name(job: &ExportJob) -> Option<String> {
        (job.state == ExportState::Done).then(|| format!("{}.mp4", job.id))
    }

    /// Stops job `id` if it runs, and deletes its row and files.
    /// `NotFound` for no such job.
    pub async fn delete(&self, id: i64) -> Result<(), StoreError> {
        let running = self
            .active()
            .get(&id)
            .map(|a| (a.cancel.clone(), a.done.clone()));
        if let Some((cancel, done)) = running {
            cancel.cancel();
            // The writer checks the flag on every write: a fragment away.
            done.cancelled().await;
        }
        // The row first: a stop in between leaves a file without a row,
        // which `recover` removes, never a row whose file is gone.
        if !self.inner.store.delete_export_job(id).await? {
            return Err(StoreError::NotFound(format!("export {id}")));
        }
        let dir = self.inner.dir.clone();
        blocking(move || {
            for name in [format!("{id}.mp4"), format!("{id}.mp4.part")] {
                remove_if_there(&dir.join(name))?;
            }
            fsync_dir(&dir)
        })
        .await
    }

    /// Brings the jobs back after a stop, before new ones are taken: a job
    /// left `queued` or `running` is started again from its range if its
    /// footage is still there (or is `done` if its file was already
    /// renamed into place), and `failed` otherwise; a `done` job whose file
    /// is gone is `failed`; every `.part` and every job file without a row
    /// is removed.
    pub async fn recover(&self) -> Result<ExportRecovery, StoreError> {
        let store = &self.inner.store;
        let jobs = store.export_jobs(None).await?;
        let dir = self.inner.dir.clone();
        let files = blocking(move || list_job_files(&dir)).await?;
        let mut report = ExportRecovery::default();
        let rows: HashMap<i64, &ExportJob> = jobs.iter().map(|j| (j.id, j)).collect();
        let mut remove = Vec::new();
        for f in &files {
            if f.part || !rows.contains_key(&f.id) {
                remove.push(self.inner.dir.join(&f.name));
            }
        }
        report.removed_files = remove.len() as u64;
        let dir = self.inner.dir.clone();
        blocking(move || {
            for p in &remove {
                remove_if_there(p)?;
            }
            fsync_dir(&dir)
        })
        .await?;
        let whole: HashMap<i64, u64> = files
            .iter()
            .filter(|f| !f.part)
            .map(|f| (f.id, f.len))
            .collect();
        for job in jobs.iter().rev() {
            match job.state {
                ExportState::Done if !whole.contains_key(&job.id) => {
                    tracing::warn!(export = job.id, "an export's file is missing");
                    store
                        .set_export_state(
                            job.id,
                            ExportState::Failed,
                            0.0,
                            0,
                            Some("the export's file is missing"),
                        )
                        .await?;
                    report.failed += 1;
                }
                ExportState::Queued | ExportState::Running => {
                    if let Some(len) = whole.get(&job.id) {
                        // Renamed into place (so whole and synced) just
                        // before the stop.
                        store
                            .set_export_state(job.id, ExportState::Done, 1.0, *len, None)
                            .await?;
                        report.completed += 1;
                        continue;
                    }
                    let estimate = store.export_size_estimate(&job.camera, job.range).await?;
                    if estimate == 0 {
                        store
                            .set_export_state(
                                job.id,
                                ExportState::Failed,
                                0.0,
                                0,
                                Some(FOOTAGE_GONE),
                            )
                            .await?;
                        report.failed += 1;
                    } else {
                        store
                            .set_export_state(job.id, ExportState::Queued, 0.0, 0, None)
                            .await?;
                        self.spawn(job.clone(), estimate);
                        report.restarted += 1;
                    }
                }
                _ => {}
            }
        }
        if report != ExportRecovery::default() {
            tracing::info!(?report, "exports recovered");
        }
        Ok(report)
    }

    /// Registers `job` as active and starts its task.
    fn spawn(&self, job: ExportJob, estimate: u64) {
        let written = Arc::new(AtomicU64::new(0));
        let cancel = CancellationToken::new();
        let done = CancellationToken::new();
        self.active().insert(
            job.id,
            Active {
                owner: job.owner.clone(),
                estimate,
                written: written.clone(),
                cancel: cancel.clone(),
                done: done.clone(),
            },
        );
        let jobs = self.clone();
        let span = tracing::info_span!("export", id = job.id, camera = %job.camera);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let _done = done.drop_guard();
                let id = job.id;
                jobs.run(job, estimate, written, cancel).await;
                jobs.active().remove(&id);
            },
            span,
        ));
    }

    /// One job, from waiting for a slot to its row's final state.
    async fn run(
        &self,
        job: ExportJob,
        estimate: u64,
        written: Arc<AtomicU64>,
        cancel: CancellationToken,
    ) {
        let store = &self.inner.store;
        let id = job.id;
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            permit = self.inner.slots.clone().acquire_owned() => match permit {
                Ok(permit) => {
                    let out = self.write(&job, estimate, &written, &cancel).await;
                    drop(permit);
                    out
                }
                Err(_) => Err(StoreError::Corrupt("the export slots closed".into())),
            },
        };
        let dir = self.inner.dir.clone();
        if cancel.is_cancelled() {
            // `delete` removes the files and the row.
            return;
        }
        let result = match outcome {
            Ok(bytes) => {
                store
                    .set_export_state(id, ExportState::Done, 1.0, bytes, None)
                    .await
            }
            Err(e) => {
                let _ =
                    blocking(move || remove_if_there(&dir.join(format!("{id}.mp4.part")))).await;
                let message = user_message(&e);
                tracing::warn!(error = %e, "export failed");
                store
                    .set_export_state(
                        id,
                        ExportState::Failed,
                        progress(written.load(Ordering::Relaxed), estimate),
                        written.load(Ordering::Relaxed),
                        Some(&message),
                    )
                    .await
            }
        };
        if let Err(e) = result {
            // Left `running`: the next start's `recover` finishes it.
            tracing::warn!(error = %e, "recording an export's end failed");
        }
    }

    /// Writes the job's `.part`, syncs it and renames it into place; the
    /// file's size.
    async fn write(
        &self,
        job: &ExportJob,
        estimate: u64,
        written: &Arc<AtomicU64>,
        cancel: &CancellationToken,
    ) -> Result<u64, StoreError> {
        let store = &self.inner.store;
        let id = job.id;
        store
            .set_export_state(id, ExportState::Running, 0.0, 0, None)
            .await?;
        let part = self.inner.dir.join(format!("{id}.mp4.part"));
        let p = part.clone();
        let file = blocking(move || {
            File::create(&p).map_err(|e| StoreError::io(format!("creating {}", p.display()), e))
        })
        .await?;
        let file = Arc::new(file);
        let writer = JobWriter {
            file: file.clone(),
            written: written.clone(),
            cancel: cancel.clone(),
        };
        let export = store.export_to(&job.camera, job.range, writer);
        tokio::pin!(export);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let summary = loop {
            tokio::select! {
                r = &mut export => break r?,
                _ = tick.tick() => {
                    let w = written.load(Ordering::Relaxed);
                    // Progress is for show: a failed update waits for the next.
                    let _ = store.set_export_progress(id, progress(w, estimate), w).await;
                }
            }
        };
        if cancel.is_cancelled() {
            return Err(StoreError::Busy("cancelled".into()));
        }
        let dir = self.inner.dir.clone();
        blocking(move || {
            file.sync_all()
                .map_err(|e| StoreError::io(format!("syncing {}", part.display()), e))?;
            let dest = dir.join(format!("{id}.mp4"));
            fs::rename(&part, &dest)
                .map_err(|e| StoreError::io(format!("renaming to {}", dest.display()), e))?;
            fsync_dir(&dir)
        })
        .await?;
        Ok(summary.bytes)
    }
}

/// The footage of a job's range was deleted before it could run.
const FOOTAGE_GONE: &str = "the footage of this range is no longer recorded";

/// What a failed job's row says: clear, and without paths or SQL.
fn user_message(e: &StoreError) -> String {
    if e.is_disk_full() {
        return "the disk is full".into();
    }
    match e {
        StoreError::NotFound(_) => FOOTAGE_GONE.into(),
        _ => "the export could not be written (see the server log)".into(),
    }
}

fn progress(written: u64, estimate: u64) -> f64 {
    if estimate == 0 {
        return 0.0;
    }
    (written as f64 / estimate as f64).min(MAX_RUNNING_PROGRESS)
}

/// A job's file in the exports directory.
struct JobFile {
    name: String,
    id: i64,
    part: bool,
    len: u64,
}

/// The job files in `dir`.
fn list_job_files(dir: &Path) -> Result<Vec<JobFile>, StoreError> {
    let entries =
        fs::read_dir(dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
    Ok(entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (id, part) = job_file(&name)?;
            let len = e.metadata().ok()?.len();
            Some(JobFile {
                name,
                id,
                part,
                len,
            })
        })
        .collect())
}

fn remove_if_there(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(format!("removing {}", path.display()), e)),
    }
}

/// The `.part` file's writer: counts what it writes for the progress, and
/// fails once the job is cancelled, which ends the export.
struct JobWriter {
    file: Arc<File>,
    written: Arc<AtomicU64>,
    cancel: CancellationToken,
}

impl Write for JobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cancel.is_cancelled() {
            // Not `Interrupted`: `write_all` would retry that.
            return Err(io::Error::other("the export was deleted"));
        }
        let n = (&*self.file).write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use reallive_core::ErrorKind;

    use super::*;
    use crate::retention::DiskSpace;
    use crate::store::testutil::{SEC, T0, config, frames, open, record, secs};

    async fn jobs_of(store: &Store, dir: &Path, percent: u8) -> ExportJobs {
        let cfg = ExportJobsConfig {
            budget_percent: percent,
            ..ExportJobsConfig::new(dir.join("exports"))
        };
        ExportJobs::open(store.clone(), cfg).await.unwrap()
    }

    /// Polls job `id` until it is no longer queued or running.
    async fn finished(jobs: &ExportJobs, id: i64) -> ExportJob {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = jobs.get(id).await.unwrap().expect("the job exists");
            if !job.state.is_active() {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} never ended: {job:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    /// Holds every running slot, so jobs stay `queued` until it is dropped.
    async fn hold_slots(jobs: &ExportJobs) -> tokio::sync::OwnedSemaphorePermit {
        jobs.inner
            .slots
            .clone()
            .acquire_many_owned(MAX_EXPORTS_RUNNING as u32)
            .await
            .unwrap()
    }

    #[test]
    fn job_files_are_told_from_kept_downloads() {
        for (name, want) in [
            ("12.mp4", Some((12, false))),
            ("12.mp4.part", Some((12, true))),
            ("7-1000-2000.mp4", None),
            (".7-1000-2000.mp4.abc.tmp", None),
            ("-12.mp4", None),
            (".mp4", None),
            ("12.mp4.tmp", None),
            ("99999999999999999999.mp4", None),
        ] {
            assert_eq!(job_file(name), want, "{name}");
        }
        assert_eq!(budget_bytes(1_000_000, 5), 50_000);
        assert_eq!(budget_bytes(u64::MAX, 200), u64::MAX / 100 * 100);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_writes_a_whole_file_that_plays() {
        let (dir, store) = open(|c| c).await;
        record(&store, "cam", frames(180), T0).await; // 6 s
        let jobs = jobs_of(&store, dir.path(), EXPORT_BUDGET_PERCENT).await;
        let job = jobs
            .create("user 1", "cam", secs(1, 5), "front door")
            .await
            .unwrap();
        assert_eq!(job.state, ExportState::Queued);
        let done = finished(&jobs, job.id).await;
        assert_eq!(done.state, ExportState::Done, "{done:?}");
        assert_eq!(done.progress, 1.0);
        let file = jobs.dir().join(ExportJobs::file_name(&done).unwrap());
        assert_eq!(fs::metadata(&file).unwrap().len(), done.bytes);
        assert_eq!(
            names(jobs.dir()),
            [format!("{}.mp4", job.id)],
            "no .part left"
        );
        // 1 s..5 s starts on a keyframe (one every 1/3 s): 4 s, 120 frames.
        let probe = reallive_test_support::ffprobe::probe(&file);
        assert_eq!(probe.frames, 120, "{probe:?}");
        let duration = probe.duration_secs.unwrap();
        assert!((duration - 4.0).abs() < 0.1, "{duration}");
        assert_eq!(jobs.reserved_bytes(), 0);

        // Nothing recorded there: refused, no row.
        let e = jobs
            .create("user 1", "cam", secs(100, 200), "empty")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(jobs.list(None).await.unwrap().len(), 1);
    }

    /// A stop (kill -9) in the middle of jobs: at the next start, no job
    /// is left half, and no `.part` is left at all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_kill_jobs_are_finished_or_failed_never_half() {
        let dir = tempfile::tempdir().unwrap();
        let exports = dir.path().join("exports");
        let (running, gone, renamed, lost) = {
            let (store, _) = Store::open(config(dir.path())).await.unwrap();
            record(&store, "cam", frames(120), T0).await; // 4 s
            let row = |range, state| {
                let store = store.clone();
                async move {
                    let j = store
                        .create_export_job("user 1", "cam", range, "x")
                        .await
                        .unwrap();
                    store
                        .set_export_state(j.id, state, 0.4, 1000, None)
                        .await
                        .unwrap();
                    j.id
                }
            };
            let running = row(secs(0, 4), ExportState::Running).await;
            let gone = row(secs(50, 60), ExportState::Queued).await; // no footage
            let renamed = row(secs(0, 1), ExportState::Running).await; // renamed, row not yet done
            let lost = row(secs(0, 1), ExportState::Done).await; // its file vanished
            fs::create_dir_all(&exports).unwrap();
            fs::write(exports.join(format!("{running}.mp4.part")), vec![7u8; 5000]).unwrap();
            fs::write(exports.join(format!("{gone}.mp4.part")), b"half").unwrap();
            fs::write(exports.join(format!("{renamed}.mp4")), vec![1u8; 300]).unwrap();
            fs::write(exports.join("999.mp4.part"), b"no row").unwrap();
            fs::write(exports.join("998.mp4"), b"no row").unwrap();
            fs::write(exports.join("7-0-1000.mp4"), b"kept download").unwrap();
            store.close().await;
            (running, gone, renamed, lost)
        };
        let (store, _) = Store::open(config(dir.path())).await.unwrap();
        let jobs = jobs_of(&store, dir.path(), EXPORT_BUDGET_PERCENT).await;
        let report = jobs.recover().await.unwrap();
        assert_eq!(
            report,
            ExportRecovery {
                restarted: 1,
                completed: 1,
                failed: 2,
                removed_files: 4,
            }
        );
        let job = finished(&jobs, running).await;
        assert_eq!(
            (job.state, job.progress),
            (ExportState::Done, 1.0),
            "{job:?}"
        );
        let probe = reallive_test_support::ffprobe::probe(&exports.join(format!("{running}.mp4")));
        assert_eq!(probe.frames, 120, "restarted from its range: {probe:?}");
        let gone = jobs.get(gone).await.unwrap().unwrap();
        assert_eq!(gone.state, ExportState::Failed);
        assert_eq!(gone.error.as_deref(), Some(FOOTAGE_GONE));
        let renamed = jobs.get(renamed).await.unwrap().unwrap();
        assert_eq!((renamed.state, renamed.bytes), (ExportState::Done, 300));
        let lost = jobs.get(lost).await.unwrap().unwrap();
        assert_eq!(lost.state, ExportState::Failed);
        let mut want = vec![
            "7-0-1000.mp4".to_string(),
            format!("{}.mp4", job.id),
            format!("{}.mp4", renamed.id),
        ];
        want.sort();
        assert_eq!(names(&exports), want, "no .part, nothing without a row");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_a_job_stops_it_and_removes_its_file_and_row() {
        let (dir, store) = open(|c| c).await;
        record(&store, "cam", frames(180), T0).await;
        let jobs = jobs_of(&store, dir.path(), EXPORT_BUDGET_PERCENT).await;

        // Waiting for a slot: cancelled there.
        let held = hold_slots(&jobs).await;
        let queued = jobs.create("user 1", "cam", secs(0, 6), "q").await.unwrap();
        jobs.delete(queued.id).await.unwrap();
        drop(held);
        assert_eq!(jobs.get(queued.id).await.unwrap(), None);

        // Whatever point it has reached, a deleted job leaves nothing.
        for _ in 0..5 {
            let j = jobs.create("user 1", "cam", secs(0, 6), "r").await.unwrap();
            jobs.delete(j.id).await.unwrap();
            assert_eq!(jobs.get(j.id).await.unwrap(), None);
            assert!(names(jobs.dir()).is_empty(), "{:?}", names(jobs.dir()));
            assert!(jobs.active().is_empty(), "its task ended");
        }
        // Done: its file goes too.
        let j = jobs.create("user 1", "cam", secs(0, 6), "d").await.unwrap();
        finished(&jobs, j.id).await;
        assert_eq!(names(jobs.dir()).len(), 1);
        jobs.delete(j.id).await.unwrap();
        assert!(names(jobs.dir()).is_empty());
        assert_eq!(
            jobs.delete(j.id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn the_writer_stops_once_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let written = Arc::new(AtomicU64::new(0));
        let mut w = JobWriter {
            file: Arc::new(File::create(dir.path().join("1.mp4.part")).unwrap()),
            written: written.clone(),
            cancel: cancel.clone(),
        };
        w.write_all(b"0123456789").unwrap();
        assert_eq!(written.load(Ordering::Relaxed), 10);
        cancel.cancel();
        assert!(w.write_all(b"more").is_err());
        assert_eq!(written.load(Ordering::Relaxed), 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_jobs_per_owner_and_four_running_at_once() {
        let (dir, store) = open(|c| c).await;
        record(&store, "cam", frames(60), T0).await;
        let jobs = jobs_of(&store, dir.path(), EXPORT_BUDGET_PERCENT).await;
        let held = hold_slots(&jobs).await;
        let a = jobs.create("user 1", "cam", secs(0, 2), "a").await.unwrap();
        let b = jobs.create("user 1", "cam", secs(0, 2), "b").await.unwrap();
        let e = jobs
            .create("user 1", "cam", secs(0, 2), "c")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
        assert!(matches!(e, StoreError::Busy(_)), "{e}");
        assert!(e.to_string().contains("at most 2"), "{e}");
        // Others are not held up by user 1.
        let others: Vec<ExportJob> = futures_join(&jobs, &["user 2", "user 2", "user 3"]).await;
        // No slot free: all wait, queued.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for j in jobs.list(None).await.unwrap() {
            assert_eq!(j.state, ExportState::Queued, "{j:?}");
        }
        drop(held);
        for j in [&a, &b].into_iter().chain(&others) {
            assert_eq!(finished(&jobs, j.id).await.state, ExportState::Done);
        }
        // Finished jobs free their owner's slots.
        jobs.create("user 1", "cam", secs(0, 2), "c").await.unwrap();
        assert!(jobs.inner.slots.available_permits() <= MAX_EXPORTS_RUNNING);
    }

    async fn futures_join(jobs: &ExportJobs, owners: &[&str]) -> Vec<ExportJob> {
        let mut out = Vec::new();
        for o in owners {
            out.push(jobs.create(o, "cam", secs(0, 2), "o").await.unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_budget_counts_exports_and_kept_downloads_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let estimate = {
            let (store, _) = Store::open(config(dir.path())).await.unwrap();
            record(&store, "cam", frames(60), T0).await;
            let e = store.export_size_estimate("cam", secs(0, 2)).await.unwrap();
            store.close().await;
            e
        };
        // The whole disk is the budget (100 %): two exports and a quarter.
        let mut cfg = config(dir.path());
        cfg.disk_override = Some(DiskSpace {
            free_bytes: 1,
            total_bytes: (estimate * 9 / 4).div_ceil(100) * 100,
        });
        let (store, _) = Store::open(cfg).await.unwrap();
        let jobs = jobs_of(&store, dir.path(), 100).await;
        let kept = jobs.dir().join("camera-1-0-2000.mp4");
        fs::write(&kept, vec![0u8; estimate as usize]).unwrap();
        // Fits beside the kept download.
        let one = jobs.create("user 1", "cam", secs(0, 2), "1").await.unwrap();
        assert_eq!(finished(&jobs, one.id).await.state, ExportState::Done);
        assert!(kept.exists());
        // Fits once the kept download goes.
        let two = jobs.create("user 1", "cam", secs(0, 2), "2").await.unwrap();
        assert!(!kept.exists(), "a kept download makes way");
        assert_eq!(finished(&jobs, two.id).await.state, ExportState::Done);
        // Does not fit: finished exports are never deleted to make room.
        let e = jobs
            .create("user 1", "cam", secs(0, 2), "3")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
        let StoreError::NoRoom { needed_bytes, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(needed_bytes, estimate);
        assert_eq!(
            names(jobs.dir()),
            [format!("{}.mp4", one.id), format!("{}.mp4", two.id)]
        );
        assert_eq!(
            jobs.list(None).await.unwrap().len(),
            2,
            "no row for the refused one"
        );
        // Deleting one makes room again.
        jobs.delete(one.id).await.unwrap();
        jobs.create("user 1", "cam", secs(0, 2), "3").await.unwrap();
        let _ = SEC;
    }
}
