//! Timeline thumbnails: one worker thread that turns keyframes into small
//! JPEGs and keeps them in the store, fed two ways.
//!
//! - **While recording:** every [`ThumbnailConfig::every`] (10 s), each
//!   camera's newest keyframe that is at least that far past its last
//!   thumbnail is queued, so scrubbing recent footage never decodes.
//! - **On demand:** [`Thumbnails::at`] answers from the store when a kept
//!   thumbnail lies within half the interval before the instant; otherwise
//!   it queues the keyframe at or before it, waits, and keeps the result.
//!
//! The queue holds [`ThumbnailConfig::queue`] jobs (64). A request that
//! finds it full is [`ThumbnailError::Busy`] (the API's 503), never an
//! unbounded pile of decoders; requests for the same keyframe share one
//! job, so a keyframe is decoded at most once. See
//! `docs/design/review.md`, "Thumbnails".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reallive_core::decode::{StartThumbnailer, Thumbnailer};
use reallive_store::{Keyframe, Store, StoreError, TimeRange};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How thumbnails are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThumbnailConfig {
    /// One thumbnail per this much footage while recording (default 10 s).
    pub every: Duration,
    /// Their width at most, in pixels (default 320).
    pub max_width: u32,
    /// Jobs waiting for the worker, at most (default 64).
    pub queue: usize,
    /// How long a request waits for its picture (default 3 s).
    pub wait: Duration,
}

impl Default for ThumbnailConfig {
    fn default() -> Self {
        ThumbnailConfig {
            every: Duration::from_secs(10),
            max_width: 320,
            queue: 64,
            wait: Duration::from_secs(3),
        }
    }
}

/// Why [`Thumbnails::at`] has no picture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThumbnailError {
    /// The worker's queue is full: try again shortly.
    #[error("the thumbnail worker is busy; try again in a second")]
    Busy,
    /// Decoding or encoding the keyframe failed.
    #[error("making a thumbnail failed: {0}")]
    Failed(String),
    /// The index or the file could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Reply = Result<Arc<Vec<u8>>, String>;
/// (recording id, keyframe time).
type Key = (i64, i64);

struct Job {
    /// Requests for the same picture share it.
    key: Key,
    keyframe: Keyframe,
    max_width: u32,
    /// Kept in the store once made (recorded footage; not a live frame).
    keep: bool,
}

impl Job {
    fn recorded(keyframe: Keyframe, max_width: u32) -> Self {
        Job {
            key: (keyframe.recording_id, keyframe.at_utc_ns),
            keyframe,
            max_width,
            keep: true,
        }
    }
}

struct Shared {
    store: Store,
    cfg: ThumbnailConfig,
    tx: mpsc::Sender<Job>,
    /// Requests waiting on a queued job, by keyframe.
    waiting: Mutex<HashMap<Key, Vec<oneshot::Sender<Reply>>>>,
}

/// The thumbnail service. Cheap to clone.
#[derive(Clone)]
pub struct Thumbnails {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Thumbnails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thumbnails")
            .field("cfg", &self.shared.cfg)
            .finish_non_exhaustive()
    }
}

impl Thumbnails {
    /// Starts the worker thread (it makes its [`Thumbnailer`] with
    /// `start`) and the while-recording task; both end with `stop`. Call
    /// from within a tokio runtime.
    pub fn start(
        store: Store,
        start: StartThumbnailer,
        cfg: ThumbnailConfig,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let shared = Arc::new(Shared {
            store,
            cfg,
            tx,
            waiting: Mutex::new(HashMap::new()),
        });
        let worker = shared.clone();
        let handle = tokio::runtime::Handle::current();
        let spawned = std::thread::Builder::new()
            .name("thumbnails".into())
            .spawn(move || work(&worker, rx, &start, &handle));
        if let Err(e) = spawned {
            tracing::error!("thumbnails: cannot start the worker thread: {e}");
        }
        tokio::spawn(while_recording(shared.clone(), stop));
        Thumbnails { shared }
    }

    /// A JPEG of `camera` at `at_utc_ns`: the kept one nearest before it
    /// within half the interval, else one made now of the keyframe at or
    /// before it (and kept). `None` when nothing was recorded then.
    pub async fn at(
        &self,
        camera: &str,
        at_utc_ns: i64,
    ) -> Result<Option<Vec<u8>>, ThumbnailError> {
        let half = i64::try_from(self.shared.cfg.every.as_nanos() / 2).unwrap_or(i64::MAX);
        self.within(camera, at_utc_ns, half).await
    }

    /// A JPEG of exactly the keyframe at or before `at_utc_ns`: a kept
    /// thumbnail of an earlier keyframe does not do (an event's picture
    /// must show the event).
    pub async fn of_keyframe(
        &self,
        camera: &str,
        at_utc_ns: i64,
    ) -> Result<Option<Vec<u8>>, ThumbnailError> {
        self.within(camera, at_utc_ns, 0).await
    }

    /// [`at`](Self::at), taking a kept thumbnail up to `within_ns` before.
    async fn within(
        &self,
        camera: &str,
        at_utc_ns: i64,
        within_ns: i64,
    ) -> Result<Option<Vec<u8>>, ThumbnailError> {
        let s = &self.shared;
        if let Some((_, jpeg)) = s.store.thumbnail_near(camera, at_utc_ns, within_ns).await? {
            return Ok(Some(jpeg));
        }
        let Some(keyframe) = s.store.keyframe_at(camera, at_utc_ns).await? else {
            return Ok(None);
        };
        // Kept already under the keyframe's own time (made for a nearby
        // instant, or while recording)?
        if let Some((_, jpeg)) = s
            .store
            .thumbnail_near(camera, keyframe.at_utc_ns, 0)
            .await?
        {
            return Ok(Some(jpeg));
        }
        let rx = self.enqueue(Job::recorded(keyframe, s.cfg.max_width))?;
        self.wait(rx).await.map(Some)
    }

    /// A JPEG at most `max_width` pixels wide of the live `frame` (a
    /// keyframe) of camera `camera_id`: a snapshot, not kept. Requests for
    /// the same frame share one decode.
    pub async fn of_frame(
        &self,
        camera_id: i64,
        frame: &reallive_core::EncodedFrame,
        max_width: u32,
    ) -> Result<Vec<u8>, ThumbnailError> {
        let codec_config = reallive_store::mp4::codec_config(&frame.params)
            .map_err(|e| ThumbnailError::Failed(e.to_string()))?;
        // Recording ids are positive: a live frame's key never meets one.
        let key = (-1 - camera_id.max(0), frame.pts_90k);
        let data = reallive_core::nal::annex_b_to_length_prefixed(&frame.data);
        self.unkept(key, frame.codec(), codec_config.to_vec(), data, max_width)
            .await
    }

    /// A JPEG at most `max_width` pixels wide of the keyframe
    /// `access_unit` (4-byte length prefixes) with `codec_config` (the
    /// `avcC` / `hvcC` body): a probed camera's first picture. Not kept.
    pub async fn of_access_unit(
        &self,
        codec: reallive_core::Codec,
        codec_config: &[u8],
        access_unit: &[u8],
        max_width: u32,
    ) -> Result<Vec<u8>, ThumbnailError> {
        static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        // Below every live key; each picture its own.
        let key = (
            i64::MIN,
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        let data = bytes::Bytes::copy_from_slice(access_unit);
        self.unkept(key, codec, codec_config.to_vec(), data, max_width)
            .await
    }

    async fn unkept(
        &self,
        key: Key,
        codec: reallive_core::Codec,
        codec_config: Vec<u8>,
        data: bytes::Bytes,
        max_width: u32,
    ) -> Result<Vec<u8>, ThumbnailError> {
        let job = Job {
            key,
            keyframe: Keyframe {
                recording_id: 0,
                at_utc_ns: 0,
                codec,
                codec_config,
                data,
            },
            max_width,
            keep: false,
        };
        let rx = self.enqueue(job)?;
        self.wait(rx).await
    }

    async fn wait(&self, rx: oneshot::Receiver<Reply>) -> Result<Vec<u8>, ThumbnailError> {
        match tokio::time::timeout(self.shared.cfg.wait, rx).await {
            Ok(Ok(Ok(jpeg))) => Ok(Arc::unwrap_or_clone(jpeg)),
            Ok(Ok(Err(e))) => Err(ThumbnailError::Failed(e)),
            // The worker dropped the job (it stopped), or took too long.
            Ok(Err(_)) | Err(_) => Err(ThumbnailError::Busy),
        }
    }

    /// Queues `keyframe` unless it is queued already; the receiver gets
    /// its picture.
    fn enqueue(&self, job: Job) -> Result<oneshot::Receiver<Reply>, ThumbnailError> {
        let s = &self.shared;
        let key = job.key;
        let (tx, rx) = oneshot::channel();
        let mut waiting = s.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = waiting.get_mut(&key) {
            list.push(tx);
            return Ok(rx);
        }
        s.tx.try_send(job).map_err(|_| ThumbnailError::Busy)?;
        waiting.insert(key, vec![tx]);
        Ok(rx)
    }
}

/// The worker thread: one keyframe at a time, until every sender is gone.
fn work(
    s: &Shared,
    mut rx: mpsc::Receiver<Job>,
    start: &StartThumbnailer,
    handle: &tokio::runtime::Handle,
) {
    let mut maker: Option<Box<dyn Thumbnailer>> = None;
    while let Some(Job {
        key,
        keyframe: k,
        max_width,
        keep,
    }) = rx.blocking_recv()
    {
        if maker.is_none() {
            maker = start()
                .map_err(|e| tracing::error!("thumbnails: cannot start a decoder: {e}"))
                .ok();
        }
        let made = match maker.as_mut() {
            Some(m) => m
                .jpeg(k.codec, &k.codec_config, &k.data, max_width)
                .map_err(|e| e.to_string()),
            None => Err("no decoder".to_owned()),
        };
        let reply: Reply = match made {
            Ok(jpeg) => {
                if keep
                    && let Err(e) = handle.block_on(s.store.add_thumbnail(
                        k.recording_id,
                        k.at_utc_ns,
                        jpeg.clone(),
                    ))
                {
                    // Served anyway; made again next time.
                    tracing::debug!("thumbnails: keeping one: {e}");
                }
                Ok(Arc::new(jpeg))
            }
            Err(e) => {
                tracing::warn!(recording = k.recording_id, "thumbnail: {e}");
                // A decoder that failed may be wedged: a fresh one next time.
                maker = None;
                Err(e)
            }
        };
        let waiters = s
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key)
            .unwrap_or_default();
        for w in waiters {
            let _ = w.send(reply.clone());
        }
    }
}

/// Every `every`, queues each camera's keyframes that are `every` past its
/// last thumbnail (newest footage only: on demand covers the rest). Skips
/// a round when the queue is more than half full, so requests come first.
async fn while_recording(s: Arc<Shared>, stop: CancellationToken) {
    let every = i64::try_from(s.cfg.every.as_nanos()).unwrap_or(i64::MAX);
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut tick = tokio::time::interval(s.cfg.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if s.tx.capacity() < s.cfg.queue / 2 {
            continue;
        }
        let now = reallive_core::time::UtcNs::now().0;
        let Ok(cameras) = s.store.cameras().await else {
            continue;
        };
        for camera in cameras {
            let since = *last.entry(camera.clone()).or_insert(now - 2 * every);
            let Ok(range) = TimeRange::new(since, now) else {
                continue;
            };
            let Ok(recs) = s.store.recordings(&camera, range).await else {
                continue;
            };
            let mut due = since + every;
            for rec in &recs {
                for f in rec.fragments.iter().filter(|f| f.keyframe) {
                    let at = rec.fragment_start_utc_ns(f);
                    if at < due {
                        continue;
                    }
                    if let Ok(Some(k)) = s.store.keyframe_at(&camera, at).await
                        && s.tx.try_send(Job::recorded(k, s.cfg.max_width)).is_ok()
                    {
                        last.insert(camera.clone(), at);
                        due = at + every;
                    }
                }
            }
        }
        // Forget cameras that are gone, so the map stays as big as the store.
        if last.len() > 1024 {
            last.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use reallive_core::Codec;
    use reallive_core::reencode::BoxError;
    use reallive_store::StoreConfig;

    use super::*;

    /// A thumbnailer that "decodes" by echoing the AU length, slowly, and
    /// counts its calls.
    #[derive(Debug)]
    struct Counting(Arc<AtomicUsize>);

    impl Thumbnailer for Counting {
        fn jpeg(
            &mut self,
            _codec: Codec,
            _config: &[u8],
            au: &[u8],
            _max_width: u32,
        ) -> Result<Vec<u8>, BoxError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            // The worker's own thread, standing in for a slow decoder.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(300));
            let n = u8::try_from(au.len() % 251).unwrap_or(0);
            Ok(vec![0xFF, 0xD8, n, 0xFF, 0xD9])
        }
    }

    async fn recorded() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(StoreConfig::new(dir.path())).await.unwrap();
        let t0 = 1_763_700_000_000_000_000;
        let mut s = store.session("cam").unwrap();
        for f in reallive_test_support::clip::ball_frames(90) {
            let at = t0 + f.dts_90k * 1_000_000_000 / 90_000;
            s.write_at(f, at).await.unwrap();
        }
        s.finish().await.unwrap();
        (dir, store, t0)
    }

    /// Ten requests for one instant make one picture; the next request is
    /// answered from the store without the worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_keyframe_is_decoded_once_however_many_ask() {
        let (_dir, store, t0) = recorded().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let start: StartThumbnailer =
            Arc::new(move || Ok(Box::new(Counting(c.clone())) as Box<dyn Thumbnailer>));
        let stop = CancellationToken::new();
        let t = Thumbnails::start(
            store.clone(),
            start,
            ThumbnailConfig {
                every: Duration::from_secs(3600),
                ..Default::default()
            },
            stop.clone(),
        );
        let at = t0 + 1_500_000_000;
        let asks: Vec<_> = (0..10)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { t.at("cam", at).await.unwrap().unwrap() })
            })
            .collect();
        let mut pictures = Vec::new();
        for a in asks {
            pictures.push(a.await.unwrap());
        }
        assert!(pictures.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(t.at("cam", at).await.unwrap().unwrap(), pictures[0]);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "served from the store");
        // Nothing recorded there: no picture, no job.
        assert!(t.at("cam", t0 - 1).await.unwrap().is_none());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        stop.cancel();
    }

    /// A full queue is `Busy` at once, not a wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_busy() {
        let (_dir, store, t0) = recorded().await;
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let start: StartThumbnailer =
            Arc::new(move || Ok(Box::new(Counting(c.clone())) as Box<dyn Thumbnailer>));
        let stop = CancellationToken::new();
        let t = Thumbnails::start(
            store,
            start,
            ThumbnailConfig {
                every: Duration::from_secs(3600),
                queue: 1,
                ..Default::default()
            },
            stop.clone(),
        );
        // Three distinct keyframes (one per second of the ball clip's
        // 10-frame GOPs) asked at once: the worker holds one, the queue
        // one, and at least one more finds it full.
        let asks: Vec<_> = [0, 1, 2]
            .map(|s| {
                let t = t.clone();
                tokio::spawn(async move { t.at("cam", t0 + s * 1_000_000_000 + 1).await })
            })
            .into_iter()
            .collect();
        let mut busy = 0;
        for a in asks {
            if matches!(a.await.unwrap(), Err(ThumbnailError::Busy)) {
                busy += 1;
            }
        }
        assert!(busy >= 1, "a full queue answers Busy");
        stop.cancel();
    }
}
