//! `record` into the real store: the file plays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reallive_store::{RecordingState, Store, StoreConfig, TimeRange};
use reallive_test_support::ffprobe;

/// `record` skips to the first keyframe, writes everything after it, and
/// closes the file when the frames end; a stopped recording is complete
/// and plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_starts_at_a_keyframe_and_closes_a_file_that_plays() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    let all = reallive_test_support::clip::ball_frames(60);
    assert!(all[0].keyframe && !all[1].keyframe);
    let (tx, rx) = reallive_core::frame_channel(128);
    // Two deltas first: nobody could decode them.
    for f in all[1..3].iter().chain(all.iter()) {
        assert_eq!(tx.offer(f.clone()), reallive_core::Offer::Sent);
    }
    drop(tx);
    let stop = tokio_util::sync::CancellationToken::new();
    let stats = reallive_record::camera::record(&store, "cam", rx, None, &stop).await;
    assert_eq!(stats.frames, 60);
    assert_eq!(stats.failures, 0);
    let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r.state == RecordingState::Complete));
    let probe = ffprobe::probe(&store.root().join(&recs[0].path));
    assert!(probe.frames >= 30, "{probe:?}");
}
