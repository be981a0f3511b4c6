//! Locks: ranges of a camera that retention must not delete.

use sqlx::Row;

use super::Store;
use crate::StoreError;
use crate::model::{TimeRange, validate_camera};

/// A range kept from retention ([`Store::locks`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// Its id.
    pub id: i64,
    /// The store's name of the camera.
    pub camera: String,
    /// The range kept.
    pub range: TimeRange,
    /// Why (the `reason` given to [`Store::lock`]).
    pub note: String,
    /// Who made it, when [`Store::lock_by`] said.
    pub created_by: Option<String>,
    /// When it was made (UTC ns), when known.
    pub created_at_utc_ns: Option<i64>,
}

impl Store {
    /// [`lock`](Self::lock), noting who asked and when.
    pub async fn lock_by(
        &self,
        camera: &str,
        range: TimeRange,
        note: &str,
        created_by: &str,
    ) -> Result<Lock, StoreError> {
        let id = self.lock(camera, range, note).await?;
        let now = reallive_core::time::UtcNs::now().0;
        sqlx::query("UPDATE locks SET created_by = ?, created_at_utc_ns = ? WHERE id = ?")
            .bind(created_by)
            .bind(now)
            .bind(id)
            .execute(&self.inner.pool)
            .await?;
        Ok(Lock {
            id,
            camera: camera.to_owned(),
            range,
            note: note.to_owned(),
            created_by: Some(created_by.to_owned()),
            created_at_utc_ns: Some(now),
        })
    }

    /// `camera`'s locks, by start.
    pub async fn locks(&self, camera: &str) -> Result<Vec<Lock>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, camera, start_utc_ns, end_utc_ns, reason, created_by, created_at_utc_ns \
             FROM locks WHERE camera = ? ORDER BY start_utc_ns, id",
        )
        .bind(camera)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Lock {
                    id: r.try_get("id")?,
                    camera: r.try_get("camera")?,
                    range: TimeRange {
                        start_utc_ns: r.try_get("start_utc_ns")?,
                        end_utc_ns: r.try_get("end_utc_ns")?,
                    },
                    note: r.try_get("reason")?,
                    created_by: r.try_get("created_by")?,
                    created_at_utc_ns: r.try_get("created_at_utc_ns")?,
                })
            })
            .collect()
    }

    /// Lock `lock_id`, if there is one.
    pub async fn lock_row(&self, lock_id: i64) -> Result<Option<Lock>, StoreError> {
        let row = sqlx::query("SELECT camera FROM locks WHERE id = ?")
            .bind(lock_id)
            .fetch_optional(&self.inner.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let camera: String = row.try_get("camera")?;
        Ok(self
            .locks(&camera)
            .await?
            .into_iter()
            .find(|l| l.id == lock_id))
    }

    /// Protects `range` of `camera` from retention; returns the lock's id.
    /// Every recording overlapping it is kept whole, even when the disk is
    /// under its free-space floor, until [`unlock`](Self::unlock).
    pub async fn lock(
        &self,
        camera: &str,
        range: TimeRange,
        reason: &str,
    ) -> Result<i64, StoreError> {
        validate_camera(camera)?;
        let r = sqlx::query(
            "INSERT INTO locks (camera, start_utc_ns, end_utc_ns, reason) VALUES (?, ?, ?, ?)",
        )
        .bind(camera)
        .bind(range.start_utc_ns)
        .bind(range.end_utc_ns)
        .bind(reason)
        .execute(&self.inner.pool)
        .await?;
        Ok(r.last_insert_rowid())
    }

    /// Removes a lock. Unknown ids are an error.
    pub async fn unlock(&self, lock_id: i64) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM locks WHERE id = ?")
            .bind(lock_id)
            .execute(&self.inner.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("lock {lock_id}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use reallive_core::ErrorKind;

    use super::super::testutil::{SEC, T0, frames, open, record, secs};
    use crate::TimeRange;
    use crate::retention::CameraRetention;

    /// Every recording is past its age; only a lock keeps one, and only a
    /// lock of its camera that overlaps it.
    #[tokio::test]
    async fn a_lock_keeps_exactly_the_recordings_it_overlaps() {
        for (camera, range, kept) in [
            ("cam", secs(3, 4), vec![2]),    // inside the second file
            ("cam", secs(1, 3), vec![0, 2]), // across a boundary
            (
                "cam",
                TimeRange::new(T0 + 4 * SEC - 1, T0 + 4 * SEC).unwrap(),
                vec![2],
            ), // its last ns
            ("cam", secs(4, 5), vec![4]),    // starts where the second ends
            ("cam", secs(10, 20), vec![]),   // after all footage
            ("other", secs(0, 6), vec![]),   // another camera's
        ] {
            let (_dir, store) = open(|mut c| {
                c.retention.default = CameraRetention {
                    max_age_ns: Some(1),
                    max_bytes: None,
                };
                c
            })
            .await;
            record(&store, "cam", frames(180), T0).await; // files at 0, 2 and 4 s
            store.lock(camera, range, "evidence").await.unwrap();
            store.run_retention(0).await.unwrap();
            let left: Vec<i64> = store
                .recordings("cam", TimeRange::all())
                .await
                .unwrap()
                .iter()
                .map(|r| (r.start_utc_ns - T0) / SEC)
                .collect();
            assert_eq!(left, kept, "{camera} {range:?}");
        }
    }

    #[tokio::test]
    async fn bad_locks_are_refused() {
        let (_dir, store) = open(|c| c).await;
        let e = store.lock("a/b", TimeRange::all(), "x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let id = store.lock("cam", TimeRange::all(), "x").await.unwrap();
        let by = store
            .lock_by("cam", secs(1, 2), "gate", "user 3")
            .await
            .unwrap();
        let listed = store.locks("cam").await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1], by);
        assert_eq!(store.lock_row(by.id).await.unwrap(), Some(by));
        assert!(store.locks("other").await.unwrap().is_empty());
        store.unlock(id).await.unwrap();
        assert_eq!(
            store.unlock(id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}
