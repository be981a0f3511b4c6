//! Events (motion, triggers) kept beside the recordings.

use sqlx::Row;

use super::Store;
use crate::StoreError;
use crate::model::{TimeRange, validate_camera};

/// An event to record ([`Store::add_event`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The store's name of the camera.
    pub camera: String,
    /// `motion`, `trigger`, ...
    pub kind: String,
    /// When it began.
    pub start_utc_ns: i64,
    /// When it ended, if it has.
    pub end_utc_ns: Option<i64>,
    /// Its peak score (motion: percent of the zone that changed).
    pub score: Option<f32>,
    /// The zone of the peak.
    pub zone: Option<String>,
}

/// A recorded event ([`Store::events`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Its id.
    pub id: i64,
    /// The store's name of the camera.
    pub camera: String,
    /// `motion`, `trigger`, ...
    pub kind: String,
    /// When it began.
    pub start_utc_ns: i64,
    /// When it ended; `None` while open.
    pub end_utc_ns: Option<i64>,
    /// Its peak score.
    pub score: Option<f32>,
    /// The zone of the peak.
    pub zone: Option<String>,
}

impl Store {
    /// Records an event (`kind` such as `motion` or `trigger`) that began at
    /// `start_utc_ns`; `end_utc_ns` may follow with [`end_event`](Self::end_event).
    pub async fn add_event(&self, event: &NewEvent) -> Result<i64, StoreError> {
        validate_camera(&event.camera)?;
        let r = sqlx::query(
            "INSERT INTO events (camera, kind, start_utc_ns, end_utc_ns, score, zone) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&event.camera)
        .bind(&event.kind)
        .bind(event.start_utc_ns)
        .bind(event.end_utc_ns)
        .bind(event.score.map(f64::from))
        .bind(&event.zone)
        .execute(&self.inner.pool)
        .await?;
        Ok(r.last_insert_rowid())
    }

    /// Closes event `id` at `end_utc_ns`, with its peak score and zone.
    pub async fn end_event(
        &self,
        id: i64,
        end_utc_ns: i64,
        score: f32,
        zone: &str,
    ) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE events SET end_utc_ns = ?, score = ?, zone = ? WHERE id = ?")
            .bind(end_utc_ns)
            .bind(f64::from(score))
            .bind(zone)
            .bind(id)
            .execute(&self.inner.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("event {id}")));
        }
        Ok(())
    }

    /// Events of `camera` overlapping `range`, oldest first (an open event
    /// overlaps everything after its start).
    pub async fn events(&self, camera: &str, range: TimeRange) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, camera, kind, start_utc_ns, end_utc_ns, score, zone FROM events \
             WHERE camera = ? AND start_utc_ns < ? AND (end_utc_ns IS NULL OR end_utc_ns > ?) \
             ORDER BY start_utc_ns, id",
        )
        .bind(camera)
        .bind(range.end_utc_ns)
        .bind(range.start_utc_ns)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    id: r.try_get("id")?,
                    camera: r.try_get("camera")?,
                    kind: r.try_get("kind")?,
                    start_utc_ns: r.try_get("start_utc_ns")?,
                    end_utc_ns: r.try_get("end_utc_ns")?,
                    score: r.try_get::<Option<f64>, _>("score")?.map(|s| s as f32),
                    zone: r.try_get("zone")?,
                })
            })
            .collect()
    }
}
