//! Locks: ranges of a camera that retention must not delete.

use super::Store;
use crate::StoreError;
use crate::model::{TimeRange, validate_camera};

impl Store {
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
        store.unlock(id).await.unwrap();
        assert_eq!(
            store.unlock(id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}
