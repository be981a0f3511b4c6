//! The shell around [`CameraRun`]: it feeds the machine frames, motion
//! results, triggers and settings, and carries out its actions on the
//! store, the live feed and the motion decoder. The decisions are the
//! machine's; this file only does the I/O.
//!
//! - [`run`]: one run of an NVR camera (live, motion, continuous or
//!   around events).
//! - [`record`]: everything from a frame channel to a [`Storage`],
//!   continuously (the puller, a custom storage).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use reallive_core::decode::{DecodeKind, GrayDecode, GrayPicture, StartGrayDecoder};
use reallive_core::source::FrameSource;
use reallive_core::{AudioReceiver, Backoff, Clock, EncodedFrame, FrameReceiver, SystemClock};
use reallive_motion::{Detector, GrayFrame, MotionEvent};
use reallive_store::{NewEvent, RecordingWriter, Storage, Store};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{MotionConfig, RecordMode};
use crate::live::{LiveFeed, LiveOutlet};
use crate::run::{
    CameraRun, DecodeFilter, FULL_DECODE_PIXELS, Now, PtsClock, RunAction, RunConfig, RunMode,
};

/// Motion pictures are this many pixels wide.
const MOTION_WIDTH: u32 = 320;

/// The motion task looks for new pictures at the analysis rate, but never
/// more often than this.
const TICK_FLOOR: Duration = Duration::from_millis(60);

/// What every run of one NVR camera shares.
pub struct Camera {
    /// The accounts camera's id.
    pub id: i64,
    /// Continuous or motion (not off: an off camera has no runs).
    pub mode: RecordMode,
    /// Kept before an event.
    pub pre_roll: Duration,
    /// Kept after an event.
    pub post_roll: Duration,
    /// Motion settings; a change applies to the live run at once.
    pub motion: watch::Receiver<MotionConfig>,
    /// The low-resolution stream motion is detected on (`sub_url`);
    /// without one the main stream is decoded.
    pub sub: Option<Arc<dyn FrameSource>>,
    /// Starts the motion decoder (`reallive-encode`'s); without one there
    /// is no motion detection.
    pub decoder: Option<StartGrayDecoder>,
    /// Where both modes write.
    pub storage: Arc<dyn Storage>,
    /// Event rows.
    pub store: Store,
    /// Live viewers, when the node runs a relay.
    pub live: Option<Arc<dyn LiveOutlet>>,
    /// Ends recording (the NVR is stopping, the camera was removed).
    pub stop: CancellationToken,
    /// Manual triggers, in seconds; the run that is live takes them.
    pub triggers: tokio::sync::Mutex<mpsc::Receiver<u32>>,
    /// Where `now` comes from.
    pub clock: Arc<dyn Clock>,
    /// The detector's results, for live meters; sent only while someone
    /// watches (see [`MotionSample`]).
    pub meter: MotionMeter,
    /// The latest keyframe from the camera, for snapshots.
    pub latest_keyframe: LatestKeyframe,
}

/// Where a camera's detector publishes its [`MotionSample`]s.
pub type MotionMeter = Arc<watch::Sender<Option<MotionSample>>>;
/// A camera's latest keyframe, shared with the registry.
pub type LatestKeyframe = Arc<Mutex<Option<EncodedFrame>>>;

/// One analysed picture, as a live motion meter shows it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct MotionSample {
    /// When the picture was taken, on the analysed stream's clock (ms).
    pub at_ms: i64,
    /// The share of the best zone that changed, in percent.
    pub score: f32,
    /// That zone (`frame` without include zones); empty when nothing was
    /// compared.
    pub zone: String,
    /// Taken as a light change and ignored.
    pub light_change: bool,
    /// An event is open.
    pub in_event: bool,
    /// Columns of the cell grid.
    pub cols: u32,
    /// Rows of the cell grid.
    pub rows: u32,
    /// The cells that moved, by `row * cols + col`.
    pub moved: Vec<u32>,
}

impl MotionSample {
    fn new(seen: &reallive_motion::Observation, at_ms: i64, in_event: bool) -> Self {
        let cells = reallive_motion::GRID_COLS * reallive_motion::GRID_ROWS;
        MotionSample {
            at_ms,
            score: (seen.score * 100.0).round() / 100.0,
            zone: seen.zone.clone().unwrap_or_default(),
            light_change: seen.light_change,
            in_event,
            cols: reallive_motion::GRID_COLS as u32,
            rows: reallive_motion::GRID_ROWS as u32,
            moved: (0..cells as u32)
                .filter(|k| seen.cells & (1 << k) != 0)
                .collect(),
        }
    }
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera")
            .field("id", &self.id)
            .field("mode", &self.mode)
            .field("sub", &self.sub.as_ref().map(|s| s.describe()))
            .finish_non_exhaustive()
    }
}

impl Camera {
    fn run_config(&self, motion: &MotionConfig, audio: bool) -> RunConfig {
        RunConfig {
            audio,
            mode: match self.mode {
                RecordMode::Motion => RunMode::Events,
                _ => RunMode::Continuous,
            },
            pre_roll: self.pre_roll,
            post_roll: self.post_roll,
            decode_main: motion.enabled && self.sub.is_none() && self.decoder.is_some(),
            ..RunConfig::default()
        }
    }
}

/// How a run's recording went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Frames written.
    pub frames: u64,
    /// Failed writes (each paused writing).
    pub failures: u64,
}

/// Carries out a [`CameraRun`]'s actions.
#[derive(Debug)]
struct Shell<'a> {
    camera: &'a str,
    id: i64,
    storage: &'a dyn Storage,
    clock: &'a dyn Clock,
    writer: Option<Box<dyn RecordingWriter>>,
    stats: RecordStats,
    events: Option<&'a Store>,
    open_event: Option<i64>,
    live: Option<&'a dyn LiveOutlet>,
    feed: Option<Box<dyn LiveFeed>>,
    /// The motion decoder fed from this stream.
    decoder: Option<Arc<dyn GrayDecode>>,
}

impl<'a> Shell<'a> {
    fn new(camera: &'a str, id: i64, storage: &'a dyn Storage, clock: &'a dyn Clock) -> Self {
        Shell {
            camera,
            id,
            storage,
            clock,
            writer: None,
            stats: RecordStats::default(),
            events: None,
            open_event: None,
            live: None,
            feed: None,
            decoder: None,
        }
    }

    async fn execute(&mut self, run: &mut CameraRun) {
        while let Some(action) = run.poll() {
            match action {
                RunAction::Offer(f) => {
                    if let Some(live) = self.live {
                        if self.feed.is_none() {
                            self.feed = Some(live.open(self.id).await);
                        }
                        if let Some(feed) = self.feed.as_mut() {
                            feed.offer(&f);
                        }
                    }
                }
                RunAction::Decode(f) => {
                    if let Some(d) = &self.decoder {
                        d.push(&f);
                    }
                }
                RunAction::WriteAudio(a) => {
                    // Audio can come first (a run's held audio opens the
                    // file with the video). A store that cannot start a
                    // recording is reported, and paused for, by the
                    // video's write; the audio is dropped quietly.
                    if self.writer.is_none() {
                        self.writer = self.storage.start_recording(self.camera).await.ok();
                    }
                    if let Some(w) = self.writer.as_mut() {
                        w.write_audio(a);
                    }
                }
                RunAction::Write { frame, utc_ns } => {
                    let ok = self.write(frame, utc_ns).await;
                    run.write_done(ok, Now::of(self.clock));
                }
                RunAction::FinishFile => {
                    if let Some(w) = self.writer.take()
                        && let Err(e) = w.finish().await
                    {
                        tracing::warn!(camera = self.camera, "closing a recording: {e}");
                    }
                }
                RunAction::StartEvent {
                    kind,
                    zone,
                    score,
                    utc_ns,
                    end_utc_ns,
                } => {
                    let Some(store) = self.events else {
                        continue;
                    };
                    if let Some(zone) = &zone {
                        tracing::info!(camera = self.camera, %zone, score, "motion");
                    }
                    let ev = NewEvent {
                        camera: self.camera.to_string(),
                        kind: kind.as_str().into(),
                        start_utc_ns: utc_ns,
                        end_utc_ns,
                        score,
                        zone,
                    };
                    match store.add_event(&ev).await {
                        Ok(id) if end_utc_ns.is_none() => self.open_event = Some(id),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(camera = self.camera, "recording an event: {e}"),
                    }
                }
                RunAction::EndEvent {
                    utc_ns,
                    peak_score,
                    peak_utc_ns,
                    zone,
                } => {
                    tracing::info!(camera = self.camera, %zone, peak_score, "motion ended");
                    if let (Some(store), Some(id)) = (self.events, self.open_event.take())
                        && let Err(e) = store
                            .end_event(id, utc_ns, peak_score, &zone, peak_utc_ns)
                            .await
                    {
                        tracing::warn!(camera = self.camera, "closing an event: {e}");
                    }
                }
            }
        }
    }

    /// Writes one frame, opening a file if none is open.
    async fn write(&mut self, frame: EncodedFrame, utc_ns: i64) -> bool {
        if self.writer.is_none() {
            match self.storage.start_recording(self.camera).await {
                Ok(w) => self.writer = Some(w),
                Err(e) => {
                    self.stats.failures += 1;
                    tracing::error!(
                        camera = self.camera,
                        "cannot start recording: {e}; writing pauses"
                    );
                    return false;
                }
            }
        }
        let Some(w) = self.writer.as_mut() else {
            return false;
        };
        match w.write_at(frame, utc_ns).await {
            Ok(()) => {
                self.stats.frames += 1;
                true
            }
            Err(e) => {
                self.stats.failures += 1;
                tracing::error!(
                    camera = self.camera,
                    "recording failed: {e}; writing pauses, a new file starts after it"
                );
                false
            }
        }
    }

    async fn close(mut self) -> RecordStats {
        if let Some(w) = self.writer.take()
            && let Err(e) = w.finish().await
        {
            tracing::warn!(camera = self.camera, "closing the recording: {e}");
        }
        if let Some(feed) = self.feed.take() {
            feed.close().await;
        }
        self.stats
    }
}

/// Records `frames` into `storage` as `camera`, continuously, until they
/// end or `stop` fires, then closes the file. A failed write pauses
/// writing (1 s, doubling to 30 s) and a new file starts at a keyframe
/// after it: the same rule as the NVR's runs. With `audio`, its packets
/// are recorded beside the video, as the NVR's runs record them.
pub async fn record(
    storage: &dyn Storage,
    camera: &str,
    mut frames: FrameReceiver,
    mut audio: Option<AudioReceiver>,
    stop: &CancellationToken,
) -> RecordStats {
    let clock = SystemClock;
    let mut run = CameraRun::new(RunConfig {
        audio: audio.is_some(),
        ..RunConfig::default()
    });
    let mut shell = Shell::new(camera, 0, storage, &clock);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            f = frames.recv() => match f {
                Some(f) => run.frame(f, Now::of(&clock)),
                None => break,
            },
            a = AudioReceiver::recv_from(audio.as_mut()) => match a {
                Some(a) => run.audio(a),
                None => {
                    audio = None;
                    run.audio_ended();
                }
            },
        }
        shell.execute(&mut run).await;
    }
    run.camera_dropped();
    shell.execute(&mut run).await;
    shell.close().await
}

/// One run of an NVR camera: until its frames end (a failure, a stop) or
/// the camera stops. The recorder's consumer calls this for every start of
/// the camera's source; with `audio`, the camera's audio is recorded
/// beside its video, and offered to its live viewers too.
pub async fn run(cam: Arc<Camera>, mut frames: FrameReceiver, mut audio: Option<AudioReceiver>) {
    let name = reallive_core::CameraId(cam.id).store_key();
    let (ev_tx, mut ev_rx) = mpsc::channel(16);
    let mut motion = cam.motion.clone();
    let settings = motion.borrow_and_update().clone();
    let with_audio = audio.is_some();
    let mut run = CameraRun::new(cam.run_config(&settings, with_audio));
    let mut shell = Shell::new(&name, cam.id, &*cam.storage, &*cam.clock);
    shell.events = Some(&cam.store);
    shell.live = cam.live.as_deref();
    let mut analyzer = Analyzer::start(&cam, &settings, ev_tx.clone());
    shell.decoder = analyzer.as_ref().and_then(Analyzer::main_decoder);
    let mut triggers = cam.triggers.lock().await;
    loop {
        tokio::select! {
            () = cam.stop.cancelled() => break,
            f = frames.recv() => match f {
                Some(f) => {
                    if f.keyframe {
                        *cam.latest_keyframe.lock().unwrap_or_else(PoisonError::into_inner) = Some(f.clone());
                    }
                    run.frame(f, Now::of(&*cam.clock));
                }
                None => break,
            },
            a = AudioReceiver::recv_from(audio.as_mut()) => match a {
                Some(a) => {
                    if let Some(feed) = shell.feed.as_mut() {
                        feed.offer_audio(&a);
                    }
                    run.audio(a);
                }
                None => {
                    audio = None;
                    run.audio_ended();
                }
            },
            Ok(()) = motion.changed() => {
                // New settings: the old detector's open event ends here,
                // and a new one starts learning the scene.
                let settings = motion.borrow_and_update().clone();
                if let Some(a) = analyzer.take() {
                    let clock = a.finish().await;
                    while let Ok(e) = ev_rx.try_recv() {
                        on_motion(&mut run, e, clock.as_ref());
                    }
                }
                analyzer = Analyzer::start(&cam, &settings, ev_tx.clone());
                shell.decoder = analyzer.as_ref().and_then(Analyzer::main_decoder);
                run.set_config(cam.run_config(&settings, with_audio));
            }
            Some(e) = ev_rx.recv() => {
                let clock = analyzer.as_ref().and_then(Analyzer::sub_clock);
                on_motion(&mut run, e, clock.as_ref());
            }
            Some(secs) = triggers.recv() => {
                run.trigger(Duration::from_secs(u64::from(secs)), Now::of(&*cam.clock));
            }
        }
        shell.execute(&mut run).await;
    }
    // The run is over: the detector's last event, then close what is open.
    drop(triggers);
    if let Some(a) = analyzer {
        let clock = a.finish().await;
        while let Ok(e) = ev_rx.try_recv() {
            on_motion(&mut run, e, clock.as_ref());
        }
    }
    run.camera_dropped();
    shell.execute(&mut run).await;
    shell.close().await;
}

/// A detector's event into the run, placed in UTC by the analysed
/// stream's clock: the sub-stream's, else the run's own.
fn on_motion(run: &mut CameraRun, event: MotionEvent, sub: Option<&PtsClock>) {
    let clock = *sub.unwrap_or(run.clock());
    let utc = |ms: i64| {
        clock
            .utc_ns_ms(ms)
            .unwrap_or_else(|| reallive_core::time::UtcNs::now().0)
    };
    match event {
        MotionEvent::Started { at_ms, zone, score } => run.motion_started(zone, score, utc(at_ms)),
        MotionEvent::Ended {
            end_ms,
            peak_score,
            peak_ms,
            zone,
            ..
        } => run.motion_ended(zone, peak_score, utc(end_ms), Some(utc(peak_ms))),
    }
}

/// Motion detection beside the run: the decoder on its own (or the shared)
/// GStreamer thread, the detector in a task on the runtime, events out on a
/// small channel. With a sub-stream, a
/// capture of its own feeds a decoder of the sub-stream's own; otherwise
/// the run's `Decode` actions feed a [`MainDecoder`], which decodes a
/// large main stream's keyframes on the decoder every camera shares.
struct Analyzer {
    decoder: Arc<dyn GrayDecode>,
    /// The sub-stream's clock, when it feeds the decoder.
    sub_clock: Option<Arc<Mutex<PtsClock>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    sub_task: Option<tokio::task::JoinHandle<()>>,
}

impl Analyzer {
    fn start(
        cam: &Camera,
        config: &MotionConfig,
        events: mpsc::Sender<MotionEvent>,
    ) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let start = cam.decoder.as_ref()?;
        let detector = match Detector::new(config.settings()) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(camera = cam.id, "motion detection off: {e}");
                return None;
            }
        };
        // Still until the detector has seen otherwise: a camera's first
        // pictures are learnt, not judged.
        let still = Arc::new(AtomicBool::new(true));
        let still_now = still.clone();
        let decoder: Arc<dyn GrayDecode> = if cam.sub.is_some() {
            match start(MOTION_WIDTH, config.fps, DecodeKind::Stream) {
                Ok(d) => Arc::from(d),
                Err(e) => {
                    tracing::warn!(camera = cam.id, "motion detection off: {e}");
                    return None;
                }
            }
        } else {
            Arc::new(MainDecoder::new(
                cam.id,
                start.clone(),
                config.fps,
                still.clone(),
            ))
        };
        let stop = CancellationToken::new();
        let (d, s, camera) = (decoder.clone(), stop.clone(), cam.id);
        let meter = cam.meter.clone();
        // Detection runs on the runtime, not a thread per camera: each tick
        // takes the pictures decoded since the last (the decoders queue
        // them, bounded) and judges them, well under a millisecond each at
        // this size. A tick per picture the rate allows keeps events as
        // prompt as before, and 32 cameras cost no thread and no stack.
        let period = Duration::from_millis(1000 / u64::from(config.fps.max(1))).max(TICK_FLOOR);
        let task = tokio::spawn(async move {
            let mut detector = detector;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = s.cancelled() => break,
                    _ = tick.tick() => {}
                }
                while let Some(p) = d.pull(Duration::ZERO) {
                    let Ok(frame) = GrayFrame::new(&p.data, p.width, p.height, p.stride) else {
                        continue;
                    };
                    let seen = detector.process(&frame, p.pts_ms);
                    still_now.store(detector.is_still(), Ordering::Relaxed);
                    if meter.receiver_count() > 0 {
                        let sample = MotionSample::new(&seen, p.pts_ms, detector.in_event());
                        meter.send_replace(Some(sample));
                    }
                    for e in seen.events {
                        if events.try_send(e).is_err() {
                            tracing::warn!(camera, "motion event dropped: the recorder is behind");
                        }
                    }
                }
            }
            if let Some(e) = detector.flush() {
                let _ = events.try_send(e);
            }
        });
        let (sub_clock, sub_task) = match &cam.sub {
            Some(sub) => {
                let clock = Arc::new(Mutex::new(PtsClock::default()));
                let task = tokio::spawn(run_sub_stream(
                    cam.id,
                    sub.clone(),
                    decoder.clone(),
                    clock.clone(),
                    cam.clock.clone(),
                    stop.clone(),
                ));
                (Some(clock), Some(task))
            }
            None => (None, None),
        };
        Some(Analyzer {
            decoder,
            sub_clock,
            stop,
            task,
            sub_task,
        })
    }

    /// The decoder the run's `Decode` actions feed (no sub-stream).
    fn main_decoder(&self) -> Option<Arc<dyn GrayDecode>> {
        self.sub_clock.is_none().then(|| self.decoder.clone())
    }

    fn sub_clock(&self) -> Option<PtsClock> {
        self.sub_clock
            .as_ref()
            .map(|c| *c.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Stops detection; the detector's last event is in the channel.
    /// Returns the sub-stream's clock, to place it.
    async fn finish(self) -> Option<PtsClock> {
        self.stop.cancel();
        if let Some(t) = self.sub_task {
            let _ = t.await;
        }
        let _ = self.task.await;
        self.sub_clock
            .map(|c| *c.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The main stream's motion decoder, for a camera without a sub-stream.
/// The run hands it what [`DecodeFilter`] passes: every frame of a stream
/// up to [`FULL_DECODE_PIXELS`], which a decoder of the stream's own
/// ([`DecodeKind::Stream`]) decodes; only the keyframes of a larger one,
/// which go to the factory's [`DecodeKind::Keyframes`] decoder (shared by
/// every camera). Each is started at the first keyframe that needs it, and
/// replaced when the stream's size crosses the line.
struct MainDecoder {
    camera: i64,
    start: StartGrayDecoder,
    fps: u32,
    /// Set by the detector while the scene is still: a stream decoded at
    /// its keyframes then gives one picture per [`STILL_KEYFRAME_STEP_90K`]
    /// instead of one per keyframe.
    still: Arc<AtomicBool>,
    state: Mutex<MainState>,
    /// Signalled when a decoder starts, for a pull waiting for one.
    started: Condvar,
}

#[derive(Default)]
struct MainState {
    /// What the stream's size asks for, as of its latest keyframe.
    wanted: Option<DecodeKind>,
    /// The decoder the stream's frames go to, and its kind; `None` when
    /// it would not start (not tried again until `wanted` changes).
    current: Option<(DecodeKind, Arc<dyn GrayDecode>)>,
    /// The pts of the last keyframe handed to a keyframe decoder.
    last_keyframe_90k: Option<i64>,
}

/// While the scene is still, a main stream decoded at its keyframes is
/// looked at every 2 s rather than at every keyframe: decoding a 1080p
/// keyframe is most of what motion detection costs. The first picture
/// with motion brings back every keyframe, so an event starts at most a
/// second later than it would (its pre-roll covers the footage).
const STILL_KEYFRAME_STEP_90K: i64 = 2 * 90_000;

impl MainDecoder {
    fn new(camera: i64, start: StartGrayDecoder, fps: u32, still: Arc<AtomicBool>) -> Self {
        MainDecoder {
            camera,
            start,
            fps,
            still,
            state: Mutex::default(),
            started: Condvar::new(),
        }
    }

    /// Starts a decoder of `kind`; a keyframe decoder that will not start
    /// falls back to one of the stream's own, which decodes keyframes too.
    fn start(&self, kind: DecodeKind) -> Option<(DecodeKind, Arc<dyn GrayDecode>)> {
        let mut tried = kind;
        loop {
            match (self.start)(MOTION_WIDTH, self.fps, tried) {
                Ok(d) => return Some((tried, Arc::from(d))),
                Err(e) if tried == DecodeKind::Keyframes => {
                    tracing::warn!(
                        camera = self.camera,
                        "motion: no shared keyframe decoder ({e}); decoding on a decoder of the camera's own"
                    );
                    tried = DecodeKind::Stream;
                }
                Err(e) => {
                    tracing::warn!(camera = self.camera, "motion detection off: {e}");
                    return None;
                }
            }
        }
    }
}

impl std::fmt::Debug for MainDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("MainDecoder")
            .field("camera", &self.camera)
            .field("kind", &state.current.as_ref().map(|c| c.0))
            .finish_non_exhaustive()
    }
}

impl GrayDecode for MainDecoder {
    fn push(&self, frame: &EncodedFrame) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if frame.keyframe {
            // The rule DecodeFilter applies: is every frame coming?
            let kind = match frame.params.stream_info() {
                Ok(i) if i.width * i.height <= FULL_DECODE_PIXELS => DecodeKind::Stream,
                _ => DecodeKind::Keyframes,
            };
            if state.wanted != Some(kind) {
                state.wanted = Some(kind);
                state.last_keyframe_90k = None;
                state.current = None;
                state.current = self.start(kind);
                self.started.notify_all();
            }
        }
        if frame.keyframe
            && let Some((DecodeKind::Keyframes, _)) = &state.current
        {
            // A pts that went back is a new run of the stream: take it.
            let soon = state
                .last_keyframe_90k
                .is_some_and(|last| (0..STILL_KEYFRAME_STEP_90K).contains(&(frame.pts_90k - last)));
            if soon && self.still.load(Ordering::Relaxed) {
                return;
            }
            state.last_keyframe_90k = Some(frame.pts_90k);
        }
        if let Some((_, d)) = &state.current {
            d.push(frame);
        }
    }

    fn pull(&self, timeout: Duration) -> Option<GrayPicture> {
        let began = std::time::Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.current.is_none() {
            // Nothing to decode yet (no keyframe, or no decoder): wait for
            // one to start.
            state = self
                .started
                .wait_timeout(state, timeout)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let current = state.current.as_ref().map(|c| c.1.clone());
        drop(state);
        current?.pull(timeout.saturating_sub(began.elapsed()))
    }
}

/// Captures the sub-stream for the decoder until `stop`, reconnecting with
/// a growing wait (1 s to 30 s) when it fails.
async fn run_sub_stream(
    camera: i64,
    sub: Arc<dyn FrameSource>,
    decoder: Arc<dyn GrayDecode>,
    clock: Arc<Mutex<PtsClock>>,
    now: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    let mut wait = Backoff::exact(Duration::from_secs(1), Duration::from_secs(30));
    let mut filter = DecodeFilter::default();
    loop {
        let (tx, mut rx) = reallive_core::frame_channel(64);
        let failure = match sub.start_frames(tx) {
            Ok(mut running) => {
                let mut frames = 0u64;
                let ended = loop {
                    tokio::select! {
                        () = stop.cancelled() => {
                            running.stop().await;
                            return;
                        }
                        f = rx.recv() => match f {
                            Some(f) => {
                                frames += 1;
                                if frames == 1 {
                                    tracing::info!(camera, source = %sub.describe(), "motion: sub-stream live");
                                    wait.reset();
                                }
                                clock
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .saw(f.pts_90k, now.utc());
                                if filter.wants(&f) {
                                    decoder.push(&f);
                                }
                            }
                            None => break running.wait().await,
                        },
                        r = running.wait() => break r,
                    }
                };
                match ended {
                    Ok(()) => "the sub-stream ended".to_string(),
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => e.to_string(),
        };
        let delay = wait.next_delay();
        tracing::warn!(camera, source = %sub.describe(), retry_in_secs = delay.as_secs(),
            "motion: sub-stream failed, no motion detection until it is back: {failure}");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;
    use reallive_core::{Codec, CodecParameters};

    use super::*;

    /// x264's SPS of a 1920x1080 constrained-baseline stream.
    const SPS_1080P: &str = "6742c028da01e0089f970110000003001000000303c0f1832a";

    fn hex(s: &str) -> Bytes {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .into()
    }

    /// A 1080p frame: only its parameter sets are read.
    fn big(keyframe: bool, pts_90k: i64) -> EncodedFrame {
        let mut params = CodecParameters::new(Codec::H264);
        params.sps.push(hex(SPS_1080P));
        EncodedFrame {
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
            pts_90k,
            dts_90k: pts_90k,
            duration_90k: Some(3000),
            keyframe,
            params: Arc::new(params),
        }
    }

    /// Counts what each decoder it starts is given.
    #[derive(Debug, Default)]
    struct Fake {
        kind: Option<DecodeKind>,
        pushed: AtomicUsize,
    }

    impl GrayDecode for Fake {
        fn push(&self, _frame: &EncodedFrame) {
            self.pushed.fetch_add(1, Ordering::Relaxed);
        }
        fn pull(&self, _timeout: Duration) -> Option<GrayPicture> {
            None
        }
    }

    /// A factory whose decoders the test can see; `keyframes` says whether
    /// it has a shared keyframe decoder.
    fn factory(keyframes: bool) -> (StartGrayDecoder, Arc<Mutex<Vec<Arc<Fake>>>>) {
        let started: Arc<Mutex<Vec<Arc<Fake>>>> = Arc::default();
        let seen = started.clone();
        let start: StartGrayDecoder = Arc::new(move |_, _, kind| {
            if kind == DecodeKind::Keyframes && !keyframes {
                return Err("no shared decoder here".into());
            }
            let d = Arc::new(Fake {
                kind: Some(kind),
                pushed: AtomicUsize::new(0),
            });
            seen.lock().unwrap().push(d.clone());
            Ok(Box::new(Shared(d)) as Box<dyn GrayDecode>)
        });
        (start, started)
    }

    #[derive(Debug)]
    struct Shared(Arc<Fake>);

    impl GrayDecode for Shared {
        fn push(&self, frame: &EncodedFrame) {
            self.0.push(frame);
        }
        fn pull(&self, timeout: Duration) -> Option<GrayPicture> {
            self.0.pull(timeout)
        }
    }

    fn kinds(started: &Mutex<Vec<Arc<Fake>>>) -> Vec<(Option<DecodeKind>, usize)> {
        started
            .lock()
            .unwrap()
            .iter()
            .map(|d| (d.kind, d.pushed.load(Ordering::Relaxed)))
            .collect()
    }

    #[test]
    fn a_large_main_stream_goes_to_the_keyframe_decoder_and_a_small_one_to_its_own() {
        let (start, started) = factory(true);
        let main = MainDecoder::new(1, start, 5, Arc::new(AtomicBool::new(false)));
        // Nothing starts before a keyframe says how large the stream is.
        main.push(&big(false, 0));
        assert!(kinds(&started).is_empty());
        for s in 0..3 {
            main.push(&big(true, s * 90_000));
        }
        assert_eq!(kinds(&started), [(Some(DecodeKind::Keyframes), 3)]);
        // The camera switched to a small stream: every frame, on its own.
        for f in reallive_test_support::clip::ball_frames(20) {
            main.push(&f);
        }
        assert_eq!(
            kinds(&started),
            [
                (Some(DecodeKind::Keyframes), 3),
                (Some(DecodeKind::Stream), 20)
            ]
        );
        assert!(main.pull(Duration::from_millis(1)).is_none());
    }

    /// A 1 s GOP: while the detector calls the scene still, every other
    /// keyframe is decoded; once it sees motion, every one; a pts that
    /// went back (a new run of the camera) is taken at once.
    #[test]
    fn a_still_scene_is_looked_at_every_two_seconds() {
        let (start, started) = factory(true);
        let still = Arc::new(AtomicBool::new(true));
        let main = MainDecoder::new(1, start, 5, still.clone());
        for s in 0..6 {
            main.push(&big(true, s * 90_000));
        }
        assert_eq!(kinds(&started), [(Some(DecodeKind::Keyframes), 3)]);
        still.store(false, Ordering::Relaxed);
        for s in 6..10 {
            main.push(&big(true, s * 90_000));
        }
        assert_eq!(kinds(&started), [(Some(DecodeKind::Keyframes), 7)]);
        still.store(true, Ordering::Relaxed);
        main.push(&big(true, 10 * 90_000));
        main.push(&big(true, 0));
        assert_eq!(kinds(&started), [(Some(DecodeKind::Keyframes), 8)]);
    }

    #[test]
    fn without_a_keyframe_decoder_a_large_stream_gets_one_of_its_own() {
        let (start, started) = factory(false);
        let main = MainDecoder::new(1, start, 5, Arc::new(AtomicBool::new(false)));
        main.push(&big(true, 0));
        main.push(&big(true, 90_000));
        assert_eq!(kinds(&started), [(Some(DecodeKind::Stream), 2)]);
    }
}
