//! What the store's unit tests share: a store in a temp dir and real frames.

use std::path::Path;

use reallive_core::EncodedFrame;

use super::{Store, StoreConfig};
use crate::segmenter::SegmenterConfig;

pub(crate) const SEC: i64 = 1_000_000_000;
/// 2025-11-21T04:40:00Z.
pub(crate) const T0: i64 = 1_763_700_000 * SEC;

/// `n` frames at 30 fps, a keyframe every 10, from a real x264 clip.
pub(crate) fn frames(n: usize) -> Vec<EncodedFrame> {
    reallive_test_support::clip::ball_frames(n)
}

/// 200 ms parts in GOPs of 10 frames (1/3 s): 6 frames then 4; files of
/// 2 s (12 fragments, 6 segments).
pub(crate) fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        segmenter: SegmenterConfig {
            fragment_90k: 30_000,
            file_90k: 2 * 90_000,
            ..SegmenterConfig::default()
        },
        ..StoreConfig::new(dir)
    }
}

/// The wall-clock time a frame arrives when the recording starts at `t0`.
pub(crate) fn arrival(f: &EncodedFrame, t0: i64) -> i64 {
    t0 + f.dts_90k * SEC / 90_000
}

/// Records `frames` of `camera` starting at `t0`, and closes the session.
pub(crate) async fn record(store: &Store, camera: &str, frames: Vec<EncodedFrame>, t0: i64) {
    let mut s = store.session(camera).unwrap();
    for f in frames {
        let now = arrival(&f, t0);
        s.write_at(f, now).await.unwrap();
    }
    s.finish().await.unwrap();
}

/// A store in a fresh temp dir (kept alive by the returned guard).
pub(crate) async fn open(
    cfg: impl FnOnce(StoreConfig) -> StoreConfig,
) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(cfg(config(dir.path()))).await.unwrap();
    (dir, store)
}

/// An index row for a file that is not there, for tests of queries alone.
pub(crate) async fn insert_row(
    store: &Store,
    camera: &str,
    start_s: i64,
    end_s: i64,
    bytes: i64,
) -> i64 {
    sqlx::query(
        "INSERT INTO recordings (camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, width, height, \
         state, first_seq, fragments) VALUES (?, ?, ?, ?, ?, 0, 'h264', 160, 120, 'complete', 0, x'')",
    )
    .bind(camera)
    .bind(format!("{camera}/{start_s}.mp4"))
    .bind(T0 + start_s * SEC)
    .bind(T0 + end_s * SEC)
    .bind(bytes)
    .execute(&store.inner.pool)
    .await
    .unwrap()
    .last_insert_rowid()
}

/// `[T0 + start_s, T0 + end_s)`.
pub(crate) fn secs(start_s: i64, end_s: i64) -> crate::TimeRange {
    crate::TimeRange::new(T0 + start_s * SEC, T0 + end_s * SEC).unwrap()
}
