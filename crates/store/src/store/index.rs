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
        "id, camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, width, height, state, first_seq, \
         fragments"
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

    pub(super) async fn load_sequences(&self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT camera, MAX(first_seq + length(fragments) / 28) AS next FROM recordings GROUP BY camera",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        let mut seqs = self
            .inner
            .next_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for r in rows {
            seqs.insert(r.try_get("camera")?, r.try_get::<i64, _>("next")?);
        }
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
