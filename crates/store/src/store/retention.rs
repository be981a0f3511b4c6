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
            &self.inner.cfg.retention,
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
