//! Locks: ranges of a camera that retention must not delete.

use super::Store;
use crate::StoreError;
use crate::model::{TimeRange, validate_camera};

impl Store {
    /// Protects `range` of `camera` from retention; returns the lock's id.
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
