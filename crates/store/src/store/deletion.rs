//! Deleting a recording: its row moves to `garbage`, then the file is
//! unlinked, then the garbage row goes, so a crash in between leaves work
//! that recovery finishes.

use std::fs;

use reallive_core::time::UtcNs;
use sqlx::Row;

use super::{Store, blocking};
use crate::StoreError;

/// What [`Store::delete_camera_recordings`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CameraDeletion {
    /// Recordings deleted.
    pub deleted: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Recordings kept because a lock covers part of them.
    pub locked_kept: u64,
}

impl Store {
    /// Deletes every complete recording of `camera` that no lock touches,
    /// one by one through [`delete`](Self::delete) (so a crash halfway is
    /// finished by recovery), and its events when nothing was kept. A
    /// recording still being written is left: stop the camera first.
    pub async fn delete_camera_recordings(
        &self,
        camera: &str,
    ) -> Result<CameraDeletion, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, EXISTS (SELECT 1 FROM locks l WHERE l.camera = r.camera \
               AND l.start_utc_ns < r.end_utc_ns AND l.end_utc_ns > r.start_utc_ns) AS locked \
             FROM recordings r WHERE r.camera = ? AND r.state != 'writing'",
        )
        .bind(camera)
        .fetch_all(&self.inner.pool)
        .await?;
        let mut out = CameraDeletion::default();
        for row in rows {
            if row.try_get::<bool, _>("locked")? {
                out.locked_kept += 1;
                continue;
            }
            match self.delete(row.try_get("id")?).await {
                Ok(bytes) => {
                    out.deleted += 1;
                    out.bytes += bytes;
                }
                // Retention got there first.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if out.locked_kept == 0 {
            sqlx::query("DELETE FROM events WHERE camera = ?")
                .bind(camera)
                .execute(&self.inner.pool)
                .await?;
        }
        tracing::info!(
            camera,
            deleted = out.deleted,
            bytes = out.bytes,
            locked_kept = out.locked_kept,
            "camera's recordings deleted"
        );
        Ok(out)
    }

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
        blocking(move || {
            match fs::remove_file(&abs) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(format!("deleting {}", abs.display()), e)),
            }
            // Its thumbnails' rows went with its row.
            super::thumbnails::remove_sidecar(&abs)
                .map_err(|e| StoreError::io(format!("deleting thumbnails of {}", abs.display()), e))
        })
        .await?;
        sqlx::query("DELETE FROM garbage WHERE path = ?")
            .bind(rel)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use reallive_core::ErrorKind;

    use super::super::testutil::{T0, arrival, frames, open, record};
    use crate::TimeRange;

    async fn garbage_rows(store: &crate::Store) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM garbage")
            .fetch_one(&store.inner.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn deleting_removes_the_file_and_the_row() {
        let (_dir, store) = open(|c| c).await;
        record(&store, "cam", frames(120), T0).await;
        let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
        let file = store.root().join(&recs[0].path);
        assert_eq!(store.delete(recs[0].id).await.unwrap(), recs[0].bytes);
        assert!(!file.exists());
        assert!(store.recording(recs[0].id).await.unwrap().is_none());
        assert_eq!(garbage_rows(&store).await, 0);
        let usage = store.usage().await.unwrap();
        assert_eq!((usage[0].recordings, usage[0].bytes), (1, recs[1].bytes));
        let again = store.delete(recs[0].id).await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn a_recording_being_written_is_not_deleted() {
        let (_dir, store) = open(|c| c).await;
        let mut s = store.session("cam").unwrap();
        for f in frames(25) {
            let now = arrival(&f, T0);
            s.write_at(f, now).await.unwrap();
        }
        let r = &store.recordings("cam", TimeRange::all()).await.unwrap()[0];
        let e = store.delete(r.id).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(store.root().join(&r.path).exists());
        assert!(store.recording(r.id).await.unwrap().is_some());
        assert_eq!(garbage_rows(&store).await, 0);
        s.finish().await.unwrap();
        assert!(store.delete(r.id).await.is_ok(), "once closed it can go");
    }

    #[tokio::test]
    async fn garbage_whose_file_is_already_gone_is_cleared() {
        let (_dir, store) = open(|c| c).await;
        sqlx::query("INSERT INTO garbage (path, marked_at_utc_ns) VALUES ('cam/gone.mp4', 0)")
            .execute(&store.inner.pool)
            .await
            .unwrap();
        store.unlink_garbage("cam/gone.mp4").await.unwrap();
        assert_eq!(garbage_rows(&store).await, 0);
    }

    /// A camera's footage goes, recording by recording, except what a lock
    /// touches; another camera's stays.
    #[tokio::test]
    async fn a_cameras_recordings_go_except_the_locked_ones() {
        let (_dir, store) = open(|c| c).await;
        record(&store, "cam", frames(120), T0).await;
        record(&store, "other", frames(60), T0).await;
        let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
        assert!(recs.len() >= 2);
        let locked = &recs[recs.len() - 1];
        store
            .lock(
                "cam",
                TimeRange::new(locked.start_utc_ns, locked.start_utc_ns + 1).unwrap(),
                "evidence",
            )
            .await
            .unwrap();
        let d = store.delete_camera_recordings("cam").await.unwrap();
        assert_eq!(d.deleted as usize, recs.len() - 1, "{d:?}");
        assert_eq!(d.locked_kept, 1, "{d:?}");
        assert!(d.bytes > 0);
        assert!(!store.root().join(&recs[0].path).exists());
        let left = store.recordings("cam", TimeRange::all()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, locked.id);
        assert!(
            !store
                .recordings("other", TimeRange::all())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(garbage_rows(&store).await, 0);
    }
}
