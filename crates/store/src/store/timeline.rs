//! The timeline of one camera over a range, at a resolution: what was
//! recorded (from the fragment index, so a gap is drawn wherever no
//! fragment covers the time) and its events, with crowded buckets of
//! events folded into counts. One range query per table; nothing is read
//! from the files. See `docs/design/review.md`, "Timeline".

use sqlx::Row;

use super::Store;
use super::events::Event;
use crate::StoreError;
use crate::model::{TimeRange, ticks_to_ns};

/// At most this many buckets per answer: a finer resolution is coarsened
/// to `(end - start) / MAX_TIMELINE_BUCKETS`, so spans and clusters stay
/// under it and events under twice it.
pub const MAX_TIMELINE_BUCKETS: i64 = 1000;

/// Items (spans, events and clusters together) in one answer, at most.
pub const MAX_TIMELINE_ITEMS: usize = 2000;

/// The longest range one timeline covers.
pub const MAX_TIMELINE_RANGE_NS: i64 = 8 * 24 * 3600 * 1_000_000_000;

/// Recorded footage, `[start, end)`, UTC ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimelineSpan {
    /// Its first frame (or the range's start).
    pub start_utc_ns: i64,
    /// Just past its last frame (or the range's end).
    pub end_utc_ns: i64,
}

/// More than two events in one bucket: drawn as a count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimelineCluster {
    /// The bucket's start.
    pub start_utc_ns: i64,
    /// The bucket's end.
    pub end_utc_ns: i64,
    /// Events starting in it.
    pub count: u32,
}

/// [`Store::timeline`]'s answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// The range asked for.
    pub range: TimeRange,
    /// The resolution used (at least the one asked for).
    pub resolution_ns: i64,
    /// Footage, merged where it touches at this resolution, oldest first.
    pub spans: Vec<TimelineSpan>,
    /// Events one by one, oldest first.
    pub events: Vec<Event>,
    /// Buckets too crowded to list, oldest first.
    pub clusters: Vec<TimelineCluster>,
}

impl Store {
    /// `camera`'s footage and events over `range`, at `resolution_ns` (one
    /// pixel's worth of time; raised to `range / MAX_TIMELINE_BUCKETS`).
    ///
    /// - A gap shorter than the resolution, or than 1.5 frames, is no gap.
    /// - A span shorter than the resolution is widened to it, so a short
    ///   clip still shows on a day's bar.
    /// - A bucket where more than 2 events start becomes a cluster.
    pub async fn timeline(
        &self,
        camera: &str,
        range: TimeRange,
        resolution_ns: i64,
    ) -> Result<Timeline, StoreError> {
        let width = range.end_utc_ns.saturating_sub(range.start_utc_ns);
        if width > MAX_TIMELINE_RANGE_NS {
            return Err(StoreError::InvalidInput(format!(
                "a timeline covers at most {} days",
                MAX_TIMELINE_RANGE_NS / (24 * 3600 * 1_000_000_000)
            )));
        }
        let resolution_ns = resolution_ns
            .max((width + MAX_TIMELINE_BUCKETS - 1) / MAX_TIMELINE_BUCKETS)
            .max(1);
        let mut spans: Vec<TimelineSpan> = Vec::new();
        // Inside one file no hole is longer than the segmenter's gap (a
        // longer one starts a new file): when a bucket is wider than that,
        // the fragments would merge into the file's own bounds, so those
        // are read instead of every fragment (a day: 1,440 rows, not
        // 43,200 fragments).
        let gap_ns = ticks_to_ns(self.inner.cfg.segmenter.gap_90k);
        if resolution_ns > gap_ns.saturating_add(1_000_000_000) {
            let rows = sqlx::query(
                "SELECT start_utc_ns, end_utc_ns FROM recordings WHERE camera = ? \
                 AND start_utc_ns < ? AND end_utc_ns > ? ORDER BY start_utc_ns, id",
            )
            .bind(camera)
            .bind(range.end_utc_ns)
            .bind(range.start_utc_ns)
            .fetch_all(&self.inner.pool)
            .await?;
            for r in rows {
                let (start, end): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
                push_span(&mut spans, start, end, resolution_ns);
            }
        } else {
            for rec in &self.recordings(camera, range).await? {
                for f in &rec.fragments {
                    let start = rec.fragment_start_utc_ns(f);
                    let end = start + ticks_to_ns(i64::from(f.duration_90k));
                    let frame_ns = ticks_to_ns(i64::from(f.duration_90k / f.frames.max(1)));
                    push_span(&mut spans, start, end, resolution_ns.max(frame_ns * 3 / 2));
                }
            }
        }
        let spans = spans
            .into_iter()
            .filter_map(|s| clip(s, range, resolution_ns))
            .collect();
        let (events, clusters) = bucket_events(
            self.events(camera, range).await?,
            range.start_utc_ns,
            resolution_ns,
        );
        Ok(Timeline {
            range,
            resolution_ns,
            spans,
            events,
            clusters,
        })
    }
}

/// Appends `[start, end)`, merging it into the last span when the gap
/// between them is at most `join_ns`.
fn push_span(spans: &mut Vec<TimelineSpan>, start: i64, end: i64, join_ns: i64) {
    if end <= start {
        return;
    }
    if let Some(last) = spans.last_mut()
        && start <= last.end_utc_ns.saturating_add(join_ns)
    {
        last.end_utc_ns = last.end_utc_ns.max(end);
        return;
    }
    spans.push(TimelineSpan {
        start_utc_ns: start,
        end_utc_ns: end,
    });
}

/// The part of `s` inside `range`, at least `resolution_ns` long.
fn clip(s: TimelineSpan, range: TimeRange, resolution_ns: i64) -> Option<TimelineSpan> {
    let start = s.start_utc_ns.max(range.start_utc_ns);
    let mut end = s.end_utc_ns.min(range.end_utc_ns);
    if end <= start {
        return None;
    }
    if end - start < resolution_ns {
        end = start.saturating_add(resolution_ns);
    }
    Some(TimelineSpan {
        start_utc_ns: start,
        end_utc_ns: end,
    })
}

/// Splits `events` (oldest first) into those listed one by one and the
/// buckets of `resolution_ns` from `origin` where more than two start.
fn bucket_events(
    events: Vec<Event>,
    origin: i64,
    resolution_ns: i64,
) -> (Vec<Event>, Vec<TimelineCluster>) {
    let bucket = |e: &Event| (e.start_utc_ns.max(origin) - origin) / resolution_ns;
    let mut listed = Vec::new();
    let mut clusters = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let b = bucket(&events[i]);
        let n = events[i..].iter().take_while(|e| bucket(e) == b).count();
        if n > 2 {
            let start = origin + b * resolution_ns;
            clusters.push(TimelineCluster {
                start_utc_ns: start,
                end_utc_ns: start + resolution_ns,
                count: u32::try_from(n).unwrap_or(u32::MAX),
            });
        } else {
            listed.extend_from_slice(&events[i..i + n]);
        }
        i += n;
    }
    (listed, clusters)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{SEC, T0, frames, open, record, secs};
    use super::*;
    use crate::NewEvent;

    fn span(a: i64, b: i64) -> TimelineSpan {
        TimelineSpan {
            start_utc_ns: a,
            end_utc_ns: b,
        }
    }

    fn ev(start: i64) -> Event {
        Event {
            id: start,
            camera: "cam".into(),
            kind: "motion".into(),
            start_utc_ns: start,
            end_utc_ns: Some(start + 1),
            score: None,
            zone: None,
            reviewed: false,
            peak_utc_ns: None,
        }
    }

    #[test]
    fn spans_merge_only_across_gaps_shorter_than_the_join() {
        let mut s = Vec::new();
        push_span(&mut s, 0, 10, 5);
        push_span(&mut s, 15, 20, 5); // gap 5: joins
        push_span(&mut s, 26, 30, 5); // gap 6: a gap
        push_span(&mut s, 29, 29, 5); // empty: ignored
        assert_eq!(s, vec![span(0, 20), span(26, 30)]);
    }

    #[test]
    fn spans_are_clipped_to_the_range_and_at_least_one_resolution_wide() {
        let r = TimeRange::new(100, 200).unwrap();
        assert_eq!(clip(span(50, 150), r, 1), Some(span(100, 150)));
        assert_eq!(clip(span(150, 250), r, 1), Some(span(150, 200)));
        assert_eq!(clip(span(120, 121), r, 10), Some(span(120, 130)));
        assert_eq!(clip(span(0, 100), r, 10), None);
    }

    #[test]
    fn crowded_buckets_become_clusters() {
        // Bucket 0: two events (listed); bucket 1: three (a cluster);
        // bucket 3: one.
        let events = [0, 5, 10, 12, 19, 30].map(ev).to_vec();
        let (listed, clusters) = bucket_events(events, 0, 10);
        assert_eq!(
            listed.iter().map(|e| e.start_utc_ns).collect::<Vec<_>>(),
            [0, 5, 30]
        );
        assert_eq!(
            clusters,
            vec![TimelineCluster {
                start_utc_ns: 10,
                end_utc_ns: 20,
                count: 3
            }]
        );
        // An event that began before the range counts in the first bucket.
        let (listed, clusters) = bucket_events(vec![ev(-50)], 0, 10);
        assert_eq!((listed.len(), clusters.len()), (1, 0));
    }

    /// Two recordings with a 10 s hole between them: two spans at a fine
    /// resolution, one at a coarse one; the event is listed.
    #[tokio::test]
    async fn the_timeline_draws_gaps_where_no_fragment_is() {
        let (_dir, store) = open(|c| c).await;
        record(&store, "cam", frames(60), T0).await; // 0..2 s
        record(&store, "cam", frames(60), T0 + 12 * SEC).await; // 12..14 s
        store
            .add_event(&NewEvent {
                camera: "cam".into(),
                kind: "motion".into(),
                start_utc_ns: T0 + SEC,
                end_utc_ns: Some(T0 + 2 * SEC),
                score: Some(3.0),
                zone: Some("gate".into()),
            })
            .await
            .unwrap();
        let t = store.timeline("cam", secs(0, 20), SEC / 10).await.unwrap();
        let got: Vec<(i64, i64)> = t
            .spans
            .iter()
            .map(|s| {
                // Tenths of a second, rounded: the last frame of a file
                // ends a frame short of 2 s when its duration is unknown.
                (
                    ((s.start_utc_ns - T0) * 10 + SEC / 2) / SEC,
                    ((s.end_utc_ns - T0) * 10 + SEC / 2) / SEC,
                )
            })
            .collect();
        assert_eq!(got, [(0, 20), (120, 140)], "tenths of a second");
        assert_eq!(t.events.len(), 1);
        let coarse = store.timeline("cam", secs(0, 20), 11 * SEC).await.unwrap();
        assert_eq!(coarse.spans.len(), 1, "{:?}", coarse.spans);
        // Past the footage: nothing, and no error.
        let none = store.timeline("cam", secs(30, 40), SEC).await.unwrap();
        assert!(none.spans.is_empty() && none.events.is_empty());
    }

    /// At a bucket wider than the segmenter's gap the files' bounds are
    /// read instead of their fragments: the spans are the same as the
    /// fragments give, merged at that width.
    #[tokio::test]
    async fn file_bounds_and_fragments_give_the_same_spans_when_buckets_are_wide() {
        let (_dir, store) = open(|c| c).await;
        record(&store, "cam", frames(60), T0).await;
        record(&store, "cam", frames(60), T0 + 12 * SEC).await;
        record(&store, "cam", frames(90), T0 + 30 * SEC).await;
        let range = secs(0, 100);
        let wide = store.timeline("cam", range, 4 * SEC).await.unwrap();
        // The same at the fragment path: 4 s joins and widening by hand.
        let mut by_fragment = Vec::new();
        for rec in store.recordings("cam", range).await.unwrap() {
            for f in &rec.fragments {
                let start = rec.fragment_start_utc_ns(f);
                push_span(
                    &mut by_fragment,
                    start,
                    start + ticks_to_ns(i64::from(f.duration_90k)),
                    4 * SEC,
                );
            }
        }
        let by_fragment: Vec<_> = by_fragment
            .into_iter()
            .filter_map(|s| clip(s, range, 4 * SEC))
            .collect();
        assert_eq!(wide.spans, by_fragment);
        assert_eq!(wide.spans.len(), 3, "{:?}", wide.spans);
    }

    #[tokio::test]
    async fn a_fine_resolution_is_coarsened_and_huge_ranges_are_refused() {
        let (_dir, store) = open(|c| c).await;
        let day = 24 * 3600 * SEC;
        let t = store.timeline("cam", secs(0, 86_400), 1).await.unwrap();
        assert_eq!(t.resolution_ns, day / MAX_TIMELINE_BUCKETS);
        let e = store
            .timeline("cam", TimeRange::new(T0, T0 + 9 * day).unwrap(), SEC)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), reallive_core::ErrorKind::InvalidArgument);
    }
}
