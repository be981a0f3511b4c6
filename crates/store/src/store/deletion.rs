//! Deleting a recording: its row moves to `garbage`, then the file is
//! unlinked, then the garbage row goes, so a crash in between leaves work
//! that recovery finishes.

use std::fs;

use reallive_core::time::UtcNs;
use sqlx::Row;

use super::{Store, blocking};
use crate::StoreError;

impl Store {
    /// Deletes a complete recording: its row goes to `garbage`, then the file,
    /// then the garbage row.
    pub async fn delete(&self, recording_id: i64) -> Result<u64, StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        let row = sqlx::query("SELECT camera, path, bytes, state FROM recordings WHERE id = ?")
            .bind(recording_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("recording {recording_id}")))?;
        let camera: String = row.try_get("camera")?;
        let path: String = row.try_get("path")?;
        let bytes: i64 = row.try_get("bytes")?;
        if row.try_get::<&str, _>("state")? == "writing" {
            return Err(StoreError::InvalidInput(format!(
                "recording {recording_id} is still being written"
            )));
        }
        sqlx::query("INSERT OR REPLACE INTO garbage (path, marked_at_utc_ns) VALUES (?, ?)")
            .bind(&path)
            .bind(UtcNs::now().0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recordings WHERE id = ?")
            .bind(recording_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Forget what was cached under the id (ids are never reused).
        self.cache_change(&camera, |list| list.retain(|r| r.id != recording_id));
        self.forget_cached(recording_id);
        self.unlink_garbage(&path).await?;
        Ok(bytes as u64)
    }

    pub(crate) async fn unlink_garbage(&self, rel: &str) -> Result<(), StoreError> {
        let abs = self.inner.root.join(rel);
        blocking(move || match fs::remove_file(&abs) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(format!("deleting {}", abs.display()), e)),
        })
        .await?;
        sqlx::query("DELETE FROM garbage WHERE path = ?")
            .bind(rel)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }
}
