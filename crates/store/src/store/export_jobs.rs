//! Export jobs' rows: one per export a user asked for, kept until deleted
//! (`docs/design/review.md`, "Exports as jobs"). The work itself is
//! [`crate::ExportJobs`]'s; this file only reads and writes the `exports`
//! table, and estimates what a range's export weighs.

use reallive_core::time::UtcNs;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::Store;
use crate::StoreError;
use crate::model::{TimeRange, validate_camera};

/// The longest export name, in characters.
pub const MAX_EXPORT_NAME_CHARS: usize = 100;

/// Where an export job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportState {
    /// Waiting for a free slot.
    Queued,
    /// Writing its `.part` file.
    Running,
    /// Its file is whole and may be downloaded.
    Done,
    /// It stopped; `error` says why.
    Failed,
}

impl ExportState {
    /// `queued`, `running`, `done` or `failed`, as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportState::Queued => "queued",
            ExportState::Running => "running",
            ExportState::Done => "done",
            ExportState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "queued" => ExportState::Queued,
            "running" => ExportState::Running,
            "done" => ExportState::Done,
            "failed" => ExportState::Failed,
            other => return Err(StoreError::Corrupt(format!("export state '{other}'"))),
        })
    }

    /// Whether the job is still to finish (queued or running).
    pub fn is_active(self) -> bool {
        matches!(self, ExportState::Queued | ExportState::Running)
    }
}

/// One export job, as its row holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportJob {
    /// Its id; its file is `<id>.mp4` in the exports directory.
    pub id: i64,
    /// Who asked for it (the HTTP layer's principal, e.g. `user 7`).
    pub owner: String,
    /// The store's name of the camera.
    pub camera: String,
    /// The range asked for.
    pub range: TimeRange,
    /// A name for people (at most [`MAX_EXPORT_NAME_CHARS`] characters).
    pub name: String,
    /// Where it is.
    pub state: ExportState,
    /// 0 to 1; 1 only once done.
    pub progress: f64,
    /// Bytes written so far, or the file's size once done.
    pub bytes: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was asked for.
    pub created_at_utc_ns: i64,
}

fn row_to_job(r: &SqliteRow) -> Result<ExportJob, StoreError> {
    Ok(ExportJob {
        id: r.try_get("id")?,
        owner: r.try_get("owner")?,
        camera: r.try_get("camera")?,
        range: TimeRange {
            start_utc_ns: r.try_get("start_utc_ns")?,
            end_utc_ns: r.try_get("end_utc_ns")?,
        },
        name: r.try_get("name")?,
        state: ExportState::parse(r.try_get("state")?)?,
        progress: r.try_get("progress")?,
        bytes: u64::try_from(r.try_get::<i64, _>("bytes")?).unwrap_or(0),
        error: r.try_get("error")?,
        created_at_utc_ns: r.try_get("created_at_utc_ns")?,
    })
}

macro_rules! select_jobs {
    () => {
        "SELECT id, owner, camera, start_utc_ns, end_utc_ns, name, state, progress, bytes, \
         error, created_at_utc_ns FROM exports"
    };
}

/// Refuses a name that is empty, too long or holds control characters
/// (it becomes part of a download's file name and of the UI).
fn validate_name(name: &str) -> Result<(), StoreError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_EXPORT_NAME_CHARS {
        return Err(StoreError::InvalidInput(format!(
            "an export's name is 1 to {MAX_EXPORT_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput(
            "an export's name may not hold control characters".into(),
        ));
    }
    Ok(())
}

fn to_i64(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl Store {
    /// Adds a `queued` export job of `range` of `camera` for `owner`.
    /// This only writes the row: [`crate::ExportJobs::create`] runs it.
    pub async fn create_export_job(
        &self,
        owner: &str,
        camera: &str,
        range: TimeRange,
        name: &str,
    ) -> Result<ExportJob, StoreError> {
        validate_camera(camera)?;
        validate_name(name)?;
        let now = UtcNs::now().0;
        let id = sqlx::query(
            "INSERT INTO exports (owner, camera, start_utc_ns, end_utc_ns, name, state, created_at_utc_ns) \
             VALUES (?, ?, ?, ?, ?, 'queued', ?)",
        )
        .bind(owner)
        .bind(camera)
        .bind(range.start_utc_ns)
        .bind(range.end_utc_ns)
        .bind(name)
        .bind(now)
        .execute(&self.inner.pool)
        .await?
        .last_insert_rowid();
        Ok(ExportJob {
            id,
            owner: owner.to_string(),
            camera: camera.to_string(),
            range,
            name: name.to_string(),
            state: ExportState::Queued,
            progress: 0.0,
            bytes: 0,
            error: None,
            created_at_utc_ns: now,
        })
    }

    /// Export jobs, newest first: `owner`'s, or everyone's with `None`.
    pub async fn export_jobs(&self, owner: Option<&str>) -> Result<Vec<ExportJob>, StoreError> {
        let rows = match owner {
            Some(o) => {
                sqlx::query(concat!(select_jobs!(), " WHERE owner = ? ORDER BY id DESC"))
                    .bind(o)
                    .fetch_all(&self.inner.pool)
                    .await?
            }
            None => {
                sqlx::query(concat!(select_jobs!(), " ORDER BY id DESC"))
                    .fetch_all(&self.inner.pool)
                    .await?
            }
        };
        rows.iter().map(row_to_job).collect()
    }

    /// One export job.
    pub async fn export_job(&self, id: i64) -> Result<Option<ExportJob>, StoreError> {
        sqlx::query(concat!(select_jobs!(), " WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.inner.pool)
            .await?
            .as_ref()
            .map(row_to_job)
            .transpose()
    }

    /// Sets a job's state, progress, bytes and error at once.
    pub async fn set_export_state(
        &self,
        id: i64,
        state: ExportState,
        progress: f64,
        bytes: u64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE exports SET state = ?, progress = ?, bytes = ?, error = ? WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(progress.clamp(0.0, 1.0))
        .bind(to_i64(bytes))
        .bind(error)
        .bind(id)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Records a running job's progress.
    pub async fn set_export_progress(
        &self,
        id: i64,
        progress: f64,
        bytes: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE exports SET progress = ?, bytes = ? WHERE id = ? AND state = 'running'",
        )
        .bind(progress.clamp(0.0, 1.0))
        .bind(to_i64(bytes))
        .bind(id)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Deletes a job's row; whether there was one.
    pub async fn delete_export_job(&self, id: i64) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM exports WHERE id = ?")
            .bind(id)
            .execute(&self.inner.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// What an export of `range` of `camera` writes: the first file's init
    /// segment and the range's fragments (0 when nothing is recorded
    /// there). Exports stop at a change of parameters, so this is an upper
    /// bound.
    pub async fn export_size_estimate(
        &self,
        camera: &str,
        range: TimeRange,
    ) -> Result<u64, StoreError> {
        let recs = self.recordings(camera, range).await?;
        let mut total = 0u64;
        for rec in &recs {
            let frags = crate::hls::selected(rec, range);
            if frags.is_empty() {
                continue;
            }
            if total == 0 {
                total = rec.init_bytes;
            }
            total += frags.iter().map(|f| u64::from(f.size)).sum::<u64>();
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use reallive_core::ErrorKind;

    use super::super::testutil::{T0, frames, open, record, secs};
    use super::*;

    #[tokio::test]
    async fn rows_round_trip_and_list_by_owner_newest_first() {
        let (_dir, store) = open(|c| c).await;
        let a = store
            .create_export_job("user 1", "cam", secs(0, 2), "front door")
            .await
            .unwrap();
        let b = store
            .create_export_job("user 2", "cam", secs(2, 4), "ünïcödé")
            .await
            .unwrap();
        let c = store
            .create_export_job("user 1", "cam", secs(4, 6), "third")
            .await
            .unwrap();
        assert_eq!(store.export_job(a.id).await.unwrap(), Some(a.clone()));
        let mine: Vec<i64> = store
            .export_jobs(Some("user 1"))
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(mine, [c.id, a.id]);
        assert_eq!(store.export_jobs(None).await.unwrap().len(), 3);
        store
            .set_export_state(b.id, ExportState::Running, 0.0, 0, None)
            .await
            .unwrap();
        store.set_export_progress(b.id, 0.5, 1234).await.unwrap();
        store
            .set_export_state(a.id, ExportState::Failed, 0.2, 10, Some("gone"))
            .await
            .unwrap();
        store.set_export_progress(a.id, 0.9, 99).await.unwrap(); // not running: ignored
        let b2 = store.export_job(b.id).await.unwrap().unwrap();
        assert_eq!(
            (b2.state, b2.progress, b2.bytes),
            (ExportState::Running, 0.5, 1234)
        );
        let a2 = store.export_job(a.id).await.unwrap().unwrap();
        assert_eq!(
            (a2.state, a2.bytes, a2.error.as_deref()),
            (ExportState::Failed, 10, Some("gone"))
        );
        assert!(store.delete_export_job(a.id).await.unwrap());
        assert!(!store.delete_export_job(a.id).await.unwrap());
        assert_eq!(store.export_job(a.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn bad_names_and_cameras_are_refused() {
        let (_dir, store) = open(|c| c).await;
        let long = "x".repeat(MAX_EXPORT_NAME_CHARS + 1);
        for (camera, name) in [
            ("cam", ""),
            ("cam", long.as_str()),
            ("cam", "a\nb"),
            ("a/b", "ok"),
        ] {
            let e = store
                .create_export_job("user 1", camera, secs(0, 1), name)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{camera} {name:?}");
        }
        let ok = "é".repeat(MAX_EXPORT_NAME_CHARS);
        store
            .create_export_job("user 1", "cam", secs(0, 1), &ok)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_estimate_is_the_range_s_fragments_and_one_init() {
        let (_dir, store) = open(|c| c).await;
        record(&store, "cam", frames(120), T0).await; // files at 0 and 2 s
        let recs = store
            .recordings("cam", crate::TimeRange::all())
            .await
            .unwrap();
        let all: u64 = recs[0].init_bytes
            + recs
                .iter()
                .flat_map(|r| r.fragments.iter())
                .map(|f| u64::from(f.size))
                .sum::<u64>();
        assert_eq!(
            store
                .export_size_estimate("cam", secs(0, 10))
                .await
                .unwrap(),
            all
        );
        let first = store.export_size_estimate("cam", secs(0, 1)).await.unwrap();
        assert!(first > recs[0].init_bytes && first < all);
        assert_eq!(
            store
                .export_size_estimate("cam", secs(50, 60))
                .await
                .unwrap(),
            0
        );
    }
}
