//! Events (motion, triggers) kept beside the recordings: written by the
//! recorders, listed and filtered for review, marked reviewed, and
//! announced as they start and end ([`Store::subscribe_events`]).

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

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
    /// Someone marked it reviewed.
    pub reviewed: bool,
    /// The frame of its peak score (motion), its best picture.
    pub peak_utc_ns: Option<i64>,
}

/// What [`Store::subscribe_events`] announces.
#[derive(Clone, Debug, PartialEq)]
pub enum EventChange {
    /// An event began (a trigger may begin already ended).
    Started(Event),
    /// An open event ended.
    Ended(Event),
}

/// Changes held for a slow subscriber before it is told it lagged.
pub const EVENT_CHANGES_QUEUE: usize = 256;

/// At most this many events in one [`Store::find_events`] answer.
pub const MAX_EVENTS_PAGE: u32 = 500;

/// A filter over one camera's events, newest first ([`Store::find_events`]).
#[derive(Clone, Debug, PartialEq)]
pub struct EventQuery {
    /// The store's name of the camera.
    pub camera: String,
    /// Events overlapping this range.
    pub range: TimeRange,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this zone.
    pub zone: Option<String>,
    /// Only reviewed (`true`) or unreviewed (`false`) ones.
    pub reviewed: Option<bool>,
    /// Only events that began before this (paging back in time).
    pub before_utc_ns: Option<i64>,
    /// At most this many (capped at [`MAX_EVENTS_PAGE`]).
    pub limit: u32,
}

/// The columns `row_to_event` reads, as a literal for `concat!`.
macro_rules! event_columns {
    () => {
        "id, camera, kind, start_utc_ns, end_utc_ns, score, zone, reviewed, peak_utc_ns"
    };
}

fn row_to_event(r: &SqliteRow) -> Result<Event, StoreError> {
    Ok(Event {
        id: r.try_get("id")?,
        camera: r.try_get("camera")?,
        kind: r.try_get("kind")?,
        start_utc_ns: r.try_get("start_utc_ns")?,
        end_utc_ns: r.try_get("end_utc_ns")?,
        score: r.try_get::<Option<f64>, _>("score")?.map(|s| s as f32),
        zone: r.try_get("zone")?,
        reviewed: r.try_get::<i64, _>("reviewed")? != 0,
        peak_utc_ns: r.try_get("peak_utc_ns")?,
    })
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
        let id = r.last_insert_rowid();
        // No subscriber is not an error.
        let _ = self.inner.event_changes.send(EventChange::Started(Event {
            id,
            camera: event.camera.clone(),
            kind: event.kind.clone(),
            start_utc_ns: event.start_utc_ns,
            end_utc_ns: event.end_utc_ns,
            score: event.score,
            zone: event.zone.clone(),
            reviewed: false,
            peak_utc_ns: None,
        }));
        Ok(id)
    }

    /// Closes event `id` at `end_utc_ns`, with its peak score, zone and
    /// the frame of the peak.
    pub async fn end_event(
        &self,
        id: i64,
        end_utc_ns: i64,
        score: f32,
        zone: &str,
        peak_utc_ns: Option<i64>,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "UPDATE events SET end_utc_ns = ?, score = ?, zone = ?, peak_utc_ns = ? WHERE id = ?",
        )
        .bind(end_utc_ns)
        .bind(f64::from(score))
        .bind(zone)
        .bind(peak_utc_ns)
        .bind(id)
        .execute(&self.inner.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("event {id}")));
        }
        if let Some(e) = self.event(id).await? {
            let _ = self.inner.event_changes.send(EventChange::Ended(e));
        }
        Ok(())
    }

    /// Events of `camera` overlapping `range`, oldest first (an open event
    /// overlaps everything after its start).
    pub async fn events(&self, camera: &str, range: TimeRange) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events \
             WHERE camera = ? AND start_utc_ns < ? AND (end_utc_ns IS NULL OR end_utc_ns > ?) \
             ORDER BY start_utc_ns, id"
        ))
        .bind(camera)
        .bind(range.end_utc_ns)
        .bind(range.start_utc_ns)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(row_to_event).collect()
    }

    /// One camera's events matching `q`, newest first, at most
    /// [`MAX_EVENTS_PAGE`].
    pub async fn find_events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let end = q
            .before_utc_ns
            .map_or(q.range.end_utc_ns, |b| b.min(q.range.end_utc_ns));
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events \
             WHERE camera = ? AND start_utc_ns < ? AND (end_utc_ns IS NULL OR end_utc_ns > ?) \
             AND (? IS NULL OR kind = ?) AND (? IS NULL OR zone = ?) \
             AND (? IS NULL OR reviewed = ?) \
             ORDER BY start_utc_ns DESC, id DESC LIMIT ?"
        ))
        .bind(&q.camera)
        .bind(end)
        .bind(q.range.start_utc_ns)
        .bind(&q.kind)
        .bind(&q.kind)
        .bind(&q.zone)
        .bind(&q.zone)
        .bind(q.reviewed.map(i64::from))
        .bind(q.reviewed.map(i64::from))
        .bind(i64::from(q.limit.min(MAX_EVENTS_PAGE)))
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(row_to_event).collect()
    }

    /// Event `id`, if there is one.
    pub async fn event(&self, id: i64) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.as_ref().map(row_to_event).transpose()
    }

    /// Sets `reviewed` on the events `ids` (unknown ids are skipped);
    /// returns how many rows changed.
    pub async fn set_reviewed(&self, ids: &[i64], reviewed: bool) -> Result<u64, StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        let mut changed = 0;
        for id in ids {
            changed += sqlx::query("UPDATE events SET reviewed = ? WHERE id = ?")
                .bind(i64::from(reviewed))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Every event that starts or ends from now on. A subscriber more than
    /// [`EVENT_CHANGES_QUEUE`] behind gets `Lagged` and should re-read.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<EventChange> {
        self.inner.event_changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use reallive_core::ErrorKind;

    use super::super::testutil::{T0, open, secs};
    use super::NewEvent;
    use crate::TimeRange;

    fn event(camera: &str, start_s: i64, end_s: Option<i64>) -> NewEvent {
        NewEvent {
            camera: camera.into(),
            kind: "motion".into(),
            start_utc_ns: T0 + start_s * super::super::testutil::SEC,
            end_utc_ns: end_s.map(|e| T0 + e * super::super::testutil::SEC),
            score: Some(42.5),
            zone: Some("gate".into()),
        }
    }

    /// Which ranges list a closed event `[10, 20)` and an open one from 50.
    #[tokio::test]
    async fn a_range_lists_the_events_it_overlaps() {
        let (_dir, store) = open(|c| c).await;
        let closed = store.add_event(&event("cam", 10, Some(20))).await.unwrap();
        let open_ev = store.add_event(&event("cam", 50, None)).await.unwrap();
        store.add_event(&event("other", 0, None)).await.unwrap();
        for (range, want) in [
            (secs(0, 10), vec![]),  // ends where it starts
            (secs(20, 30), vec![]), // starts where it ends
            (secs(0, 11), vec![closed]),
            (secs(19, 21), vec![closed]),
            (secs(49, 50), vec![]),
            (secs(50, 51), vec![open_ev]),
            (secs(1000, 1001), vec![open_ev]), // still open
            (secs(15, 55), vec![closed, open_ev]),
        ] {
            let got: Vec<i64> = store
                .events("cam", range)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(got, want, "{range:?}");
        }
        let e = &store.events("cam", secs(10, 11)).await.unwrap()[0];
        assert_eq!(
            (e.kind.as_str(), e.score, e.zone.as_deref()),
            ("motion", Some(42.5), Some("gate"))
        );
    }

    #[tokio::test]
    async fn bad_events_are_refused() {
        let (_dir, store) = open(|c| c).await;
        let e = store
            .add_event(&event("../etc", 0, None))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(
            store
                .events("../etc", TimeRange::all())
                .await
                .unwrap()
                .is_empty()
        );
        let e = store
            .end_event(77, T0, 1.0, "gate", None)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}
