//! The SQLite index read back: recordings by camera and range, one by id,
//! usage per camera, and the camera-wide fragment sequence numbers that
//! number live HLS segments.

use std::sync::PoisonError;

use sqlx::Row;

use super::Store;
use crate::StoreError;
use crate::fragment;
use crate::model::{Recording, RecordingState, TimeRange, parse_codec};

/// What one camera's recordings take ([`Store::usage`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraUsage {
    /// The store's name of the camera.
    pub camera: String,
    /// Recordings kept.
    pub recordings: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The start of the oldest (UTC ns).
    pub oldest_utc_ns: Option<i64>,
    /// The end of the newest (UTC ns).
    pub newest_utc_ns: Option<i64>,
}

pub(crate) fn row_to_recording(r: &sqlx::sqlite::SqliteRow) -> Result<Recording, StoreError> {
    let blob: Vec<u8> = r.try_get("fragments")?;
    Ok(Recording {
        id: r.try_get("id")?,
        camera: r.try_get("camera")?,
        path: r.try_get("path")?,
        start_utc_ns: r.try_get("start_utc_ns")?,
        end_utc_ns: r.try_get("end_utc_ns")?,
        bytes: r.try_get::<i64, _>("bytes")? as u64,
        init_bytes: r.try_get::<i64, _>("init_bytes")? as u64,
        codec: parse_codec(r.try_get::<&str, _>("codec")?),
        codecs: r.try_get("codecs")?,
        width: r.try_get::<i64, _>("width")? as u32,
        height: r.try_get::<i64, _>("height")? as u32,
        state: RecordingState::parse(r.try_get::<&str, _>("state")?),
        first_seq: r.try_get("first_seq")?,
        fragments: fragment::unpack(&blob)?,
    })
}

/// The columns `row_to_recording` reads, as a literal for `concat!`.
macro_rules! recording_columns {
    () => {
        "id, camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, codecs, width, height, state, \
         first_seq, fragments"
    };
}

impl Store {
    /// Recordings of `camera` overlapping `range`, oldest first, with their fragments.
    pub async fn recordings(
        &self,
        camera: &str,
        range: TimeRange,
    ) -> Result<Vec<Recording>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE camera = ? AND start_utc_ns < ? AND end_utc_ns > ? ORDER BY start_utc_ns, id"
        ))
        .bind(camera)
        .bind(range.end_utc_ns)
        .bind(range.start_utc_ns)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(row_to_recording).collect()
    }

    /// One recording by id.
    pub async fn recording(&self, id: i64) -> Result<Option<Recording>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.as_ref().map(row_to_recording).transpose()
    }

    /// Recordings, bytes and the time span held, per camera.
    pub async fn usage(&self) -> Result<Vec<CameraUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT camera, COUNT(*) AS n, SUM(bytes) AS bytes, MIN(start_utc_ns) AS oldest, \
             MAX(end_utc_ns) AS newest FROM recordings GROUP BY camera ORDER BY camera",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CameraUsage {
                    camera: r.try_get("camera")?,
                    recordings: r.try_get::<i64, _>("n")? as u64,
                    bytes: r.try_get::<Option<i64>, _>("bytes")?.unwrap_or(0) as u64,
                    oldest_utc_ns: r.try_get("oldest")?,
                    newest_utc_ns: r.try_get("newest")?,
                })
            })
            .collect()
    }

    /// Every camera with recordings.
    pub async fn cameras(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT camera FROM recordings ORDER BY camera")
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("camera")?)).collect()
    }

    /// Each camera's next segment number: its newest file's first number
    /// plus that file's segments.
    pub(super) async fn load_sequences(&self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT r.camera AS camera, r.first_seq AS first_seq, r.fragments AS fragments \
             FROM recordings r WHERE r.id = (SELECT id FROM recordings WHERE camera = r.camera \
             ORDER BY first_seq DESC, id DESC LIMIT 1)",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        let mut next = Vec::with_capacity(rows.len());
        for r in rows {
            let frags = crate::fragment::unpack(&r.try_get::<Vec<u8>, _>("fragments")?)?;
            next.push((
                r.try_get::<String, _>("camera")?,
                r.try_get::<i64, _>("first_seq")? + crate::hls::segment_count(&frags) as i64,
            ));
        }
        let mut seqs = self
            .inner
            .next_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seqs.extend(next);
        Ok(())
    }

    pub(super) fn take_seq(&self, camera: &str, n: i64) -> i64 {
        let mut seqs = self
            .inner
            .next_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let next = seqs.entry(camera.to_string()).or_insert(0);
        let first = *next;
        *next += n;
        first
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{SEC, T0, config, frames, insert_row, open, record, secs};
    use crate::{Store, TimeRange};

    #[tokio::test]
    async fn a_range_lists_the_recordings_it_overlaps_oldest_first() {
        let (_dir, store) = open(|c| c).await;
        // Inserted out of order; camera b overlaps everything.
        insert_row(&store, "a", 30, 40, 1).await;
        insert_row(&store, "a", 0, 10, 1).await;
        insert_row(&store, "a", 10, 20, 1).await;
        insert_row(&store, "b", 0, 100, 1).await;
        for (range, starts) in [
            (secs(10, 20), vec![10]),
            (secs(5, 15), vec![0, 10]),
            (secs(20, 30), vec![]),       // a gap
            (secs(19, 31), vec![10, 30]), // both edges by a second
            (secs(40, 50), vec![]),       // starts where the last ends
            (secs(-10, 0), vec![]),       // ends where the first starts
            (TimeRange::all(), vec![0, 10, 30]),
        ] {
            let got: Vec<i64> = store
                .recordings("a", range)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.start_utc_ns - T0) / SEC)
                .collect();
            assert_eq!(got, starts, "{range:?}");
        }
    }

    #[tokio::test]
    async fn one_recording_by_id() {
        let (_dir, store) = open(|c| c).await;
        let id = insert_row(&store, "a", 0, 10, 1234).await;
        let r = store.recording(id).await.unwrap().unwrap();
        assert_eq!((r.camera.as_str(), r.bytes), ("a", 1234));
        assert_eq!((r.start_utc_ns, r.end_utc_ns), (T0, T0 + 10 * SEC));
        assert!(store.recording(id + 1).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn usage_and_cameras_sum_up_each_camera() {
        let (_dir, store) = open(|c| c).await;
        assert!(store.usage().await.unwrap().is_empty());
        assert!(store.cameras().await.unwrap().is_empty());
        insert_row(&store, "yard", 0, 10, 100).await;
        insert_row(&store, "door", 5, 8, 7).await;
        insert_row(&store, "yard", 10, 25, 50).await;
        let usage = store.usage().await.unwrap();
        let got: Vec<_> = usage
            .iter()
            .map(|u| {
                (
                    u.camera.as_str(),
                    u.recordings,
                    u.bytes,
                    u.oldest_utc_ns,
                    u.newest_utc_ns,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("door", 1, 7, Some(T0 + 5 * SEC), Some(T0 + 8 * SEC)),
                ("yard", 2, 150, Some(T0), Some(T0 + 25 * SEC)),
            ]
        );
        assert_eq!(store.cameras().await.unwrap(), ["door", "yard"]);
    }

    /// Live HLS numbers fragments camera-wide: the numbers run on across
    /// files and across a restart, so a player never sees one reused.
    #[tokio::test]
    async fn segment_numbers_run_on_across_files_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(config(dir.path())).await.unwrap();
        // Two files of 12 parts, 6 segments (one per GOP).
        record(&store, "cam", frames(120), T0).await;
        record(&store, "other", frames(60), T0).await;
        let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
        let seqs: Vec<(i64, usize)> = recs
            .iter()
            .map(|r| (r.first_seq, r.fragments.len()))
            .collect();
        assert_eq!(seqs, [(0, 12), (6, 12)]);
        store.close().await;
        let (store, _) = Store::open(config(dir.path())).await.unwrap();
        record(&store, "cam", frames(60), T0 + 10 * SEC).await;
        let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
        assert_eq!(recs.last().unwrap().first_seq, 12);
        let other = store.recordings("other", TimeRange::all()).await.unwrap();
        assert_eq!(other[0].first_seq, 0, "each camera counts its own");
    }
}
