//! Running retention: the index and the disk figures go to the planner in
//! [`crate::retention`], and its plan is deleted through
//! [`Store::delete`]. Also the space check before each new file.

use std::path::Path;
use std::time::Duration;

use reallive_core::time::UtcNs;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::{Store, blocking};
use crate::StoreError;
use crate::retention::{self, Candidate, DiskSpace, LockedRange};

/// What one retention pass deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Recordings deleted.
    pub deleted: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

/// Free and total bytes of the file system holding `dir`.
pub fn disk_space(dir: &Path) -> Result<DiskSpace, StoreError> {
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| StoreError::io(format!("statvfs {}", dir.display()), e.into()))?;
    Ok(DiskSpace {
        free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
    })
}

impl Store {
    /// Runs one retention pass, freeing `headroom_bytes` beyond the floor.
    pub async fn run_retention(&self, headroom_bytes: u64) -> Result<RetentionReport, StoreError> {
        let _one = self.inner.retention.lock().await;
        let rows = sqlx::query(
            "SELECT id, camera, start_utc_ns, end_utc_ns, bytes, state FROM recordings",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        let candidates = rows
            .iter()
            .map(|r| {
                Ok(Candidate {
                    id: r.try_get("id")?,
                    camera: r.try_get("camera")?,
                    start_utc_ns: r.try_get("start_utc_ns")?,
                    end_utc_ns: r.try_get("end_utc_ns")?,
                    bytes: r.try_get::<i64, _>("bytes")? as u64,
                    writing: r.try_get::<&str, _>("state")? == "writing",
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let locks = sqlx::query("SELECT camera, start_utc_ns, end_utc_ns FROM locks")
            .fetch_all(&self.inner.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(LockedRange {
                    camera: r.try_get("camera")?,
                    start_utc_ns: r.try_get("start_utc_ns")?,
                    end_utc_ns: r.try_get("end_utc_ns")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let disk = self.disk().await?;
        let plan = retention::plan(
            &candidates,
            &locks,
            &self.retention_policy(),
            UtcNs::now().0,
            disk,
            headroom_bytes,
        );
        let mut report = RetentionReport::default();
        for (id, reason) in plan {
            match self.delete(id).await {
                Ok(bytes) => {
                    report.deleted += 1;
                    report.bytes_freed += bytes;
                    tracing::debug!(recording = id, ?reason, bytes, "retention deleted");
                }
                // Deleted meanwhile, or became locked: not an error.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if report.deleted > 0 {
            tracing::info!(
                deleted = report.deleted,
                bytes = report.bytes_freed,
                "retention"
            );
        }
        Ok(report)
    }

    /// The retention in force: the configured policy with each camera's
    /// limits as last [set](Self::set_camera_retention).
    pub fn retention_policy(&self) -> crate::retention::RetentionPolicy {
        let mut policy = self.inner.cfg.retention.clone();
        let set = self
            .inner
            .camera_retention
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (camera, r) in set.iter() {
            policy.cameras.insert(camera.clone(), *r);
        }
        policy
    }

    /// Sets `camera`'s retention from the next pass on (a camera edited
    /// while the NVR runs).
    pub fn set_camera_retention(&self, camera: &str, retention: crate::retention::CameraRetention) {
        self.inner
            .camera_retention
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(camera.to_owned(), retention);
    }

    /// Runs retention every `interval` until `cancel` fires.
    pub fn spawn_retention(
        &self,
        interval: Duration,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = store.run_retention(0).await {
                            tracing::warn!(error = %e, "retention pass failed");
                        }
                    }
                }
            }
        })
    }

    /// Free and total bytes where the recordings are.
    pub async fn disk_space(&self) -> Result<DiskSpace, StoreError> {
        self.disk().await
    }

    async fn disk(&self) -> Result<DiskSpace, StoreError> {
        if let Some(d) = self.inner.cfg.disk_override {
            return Ok(d);
        }
        let root = self.inner.root.clone();
        blocking(move || disk_space(&root)).await
    }

    /// Frees space ahead of a new file when the disk is getting short.
    pub(super) async fn ensure_space(&self) -> Result<(), StoreError> {
        let disk = self.disk().await?;
        let cfg = &self.inner.cfg;
        let floor = cfg.retention.free_floor(disk.total_bytes);
        if short_of_space(disk, floor, cfg.expected_file_bytes) {
            self.run_retention(cfg.expected_file_bytes).await?;
        }
        Ok(())
    }
}

/// Whether to run retention before a new file: once free space is within a
/// floor and a file of the floor, so it runs before the disk fills, not
/// after. No floor, no check.
fn short_of_space(disk: DiskSpace, floor: u64, expected_file_bytes: u64) -> bool {
    floor > 0 && disk.free_bytes < floor.saturating_mul(2).saturating_add(expected_file_bytes)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::super::testutil::{SEC, T0, arrival, frames, open, record};
    use super::{DiskSpace, short_of_space};
    use crate::TimeRange;
    use crate::retention::CameraRetention;

    const MB: u64 = 1_000_000;

    fn aged_out(mut c: crate::StoreConfig) -> crate::StoreConfig {
        c.retention.default = CameraRetention {
            max_age_ns: Some(1),
            max_bytes: None,
        };
        c
    }

    #[test]
    fn a_new_file_waits_for_retention_once_free_space_nears_the_floor() {
        let disk = |free_mb: u64| DiskSpace {
            free_bytes: free_mb * MB,
            total_bytes: 1000 * MB,
        };
        // (free, floor, expected file) -> run retention first?
        for (free, floor, file, short) in [
            (0, 0, 30, false), // no floor: never
            (500, 100, 30, false),
            (231, 100, 30, false), // just above two floors and a file
            (230, 100, 30, false), // exactly there
            (229, 100, 30, true),
            (50, 100, 30, true),                 // already below the floor
            (u64::MAX / MB, u64::MAX, 30, true), // saturates, no overflow
        ] {
            assert_eq!(
                short_of_space(disk(free), floor.saturating_mul(MB), file * MB),
                short,
                "free {free} MB, floor {floor} MB"
            );
        }
    }

    /// On a disk near its floor, each new file first deletes the oldest
    /// footage; with room to spare nothing goes.
    #[tokio::test]
    async fn a_new_file_makes_room_when_the_disk_is_short() {
        for (floor, files_left) in [(0, 3), (90 * MB, 1)] {
            let (_dir, store) = open(|mut c| {
                c.disk_override = Some(DiskSpace {
                    free_bytes: 100 * MB,
                    total_bytes: 10_000 * MB,
                });
                c.retention.min_free_bytes = floor;
                c.expected_file_bytes = 30 * MB;
                c
            })
            .await;
            record(&store, "cam", frames(180), T0).await; // files at 0, 2 and 4 s
            let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
            assert_eq!(recs.len(), files_left, "floor {floor}");
            assert_eq!(
                recs.last().unwrap().end_utc_ns,
                T0 + 6 * SEC,
                "the newest stays"
            );
        }
    }

    #[tokio::test]
    async fn the_recording_being_written_is_never_deleted() {
        let (_dir, store) = open(aged_out).await;
        record(&store, "cam", frames(60), T0).await;
        let closed = store.recordings("cam", TimeRange::all()).await.unwrap()[0].clone();
        let mut s = store.session("cam").unwrap();
        for f in frames(25) {
            let now = arrival(&f, T0 + 10 * SEC);
            s.write_at(f, now).await.unwrap();
        }
        let report = store.run_retention(0).await.unwrap();
        assert_eq!((report.deleted, report.bytes_freed), (1, closed.bytes));
        let left = store.recordings("cam", TimeRange::all()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].start_utc_ns, T0 + 10 * SEC);
        assert!(store.root().join(&left[0].path).exists());
        s.finish().await.unwrap();
    }

    #[tokio::test]
    async fn retention_runs_in_the_background_until_cancelled() {
        let (_dir, store) = open(aged_out).await;
        record(&store, "cam", frames(120), T0).await;
        let cancel = CancellationToken::new();
        let task = store.spawn_retention(Duration::from_millis(10), cancel.clone());
        let emptied = tokio::time::timeout(Duration::from_secs(10), async {
            while !store
                .recordings("cam", TimeRange::all())
                .await
                .unwrap()
                .is_empty()
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(emptied.is_ok(), "retention never ran");
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the task stops when cancelled")
            .unwrap();
    }

    #[tokio::test]
    async fn disk_figures_come_from_the_file_system_or_the_override() {
        let (dir, store) = open(|c| c).await;
        let real = store.disk_space().await.unwrap();
        assert!(real.total_bytes > 0 && real.free_bytes <= real.total_bytes);
        assert_eq!(
            super::disk_space(dir.path()).unwrap().total_bytes,
            real.total_bytes
        );
        let fake = DiskSpace {
            free_bytes: 1,
            total_bytes: 2,
        };
        let (_dir, store) = open(|mut c| {
            c.disk_override = Some(fake);
            c
        })
        .await;
        assert_eq!(store.disk_space().await.unwrap(), fake);
    }
}
