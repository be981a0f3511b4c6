//! One run of one camera (from a start of its source to its end): frames
//! to the live viewers, to motion detection, and to the store, continuously
//! or around events. The pieces are the crates'; this wires them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reallive_core::source::FrameSource;
use reallive_core::{Codec, EncodedFrame, FrameReceiver, Offer};
use reallive_encode::motion::GrayDecoder;
use reallive_motion::{Detector, GrayFrame, MotionEvent};
use reallive_node::live::LiveState;
use reallive_record::config::{MotionConfig, RecordMode};
use reallive_store::triggered::{Action, TriggerConfig, Triggered};
use reallive_store::{NewEvent, RecordingWriter, Storage, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Streams up to this size are decoded whole for motion; larger ones
/// only at their keyframes.
const FULL_DECODE_PIXELS: u32 = 1280 * 720;

/// What every run of a camera shares.
pub(crate) struct Camera {
    pub id: i64,
    /// The store's name.
    pub name: String,
    pub mode: RecordMode,
    pub pre_roll: Duration,
    pub post_roll: Duration,
    /// Motion settings; a change applies to the live run at once.
    pub motion: tokio::sync::watch::Receiver<MotionConfig>,
    /// The low-resolution stream motion is detected on, when the camera
    /// has one (`sub_url`); otherwise the main stream is decoded.
    pub sub: Option<Arc<dyn FrameSource>>,
    /// Where both modes write.
    pub storage: Arc<dyn Storage>,
    /// Events and their rows.
    pub store: Store,
    pub live: Option<LiveState>,
    /// Ends recording (the NVR is stopping).
    pub stop: CancellationToken,
    /// Manual triggers, in seconds; the run that is live takes them.
    pub triggers: tokio::sync::Mutex<mpsc::Receiver<u32>>,
}

fn utc_now_ns() -> i64 {
    reallive_core::time::UtcNs::now().0
}

/// Motion detection beside the run: a low-rate decoder and the detector on
/// a blocking thread, events out on a small channel. With a sub-stream, a
/// capture of its own feeds the decoder; otherwise the run feeds it the
/// main stream.
struct Analyzer {
    feeder: Option<Feeder>,
    /// The clock of the stream being analysed, for event times.
    clock: Arc<Mutex<Clock>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    sub_task: Option<tokio::task::JoinHandle<()>>,
}

/// Hands one stream's frames to the motion decoder.
struct Feeder {
    decoder: Arc<GrayDecoder>,
    clock: Arc<Mutex<Clock>>,
    full_decode: bool,
}

impl Feeder {
    fn feed(&mut self, f: &EncodedFrame) {
        self.clock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saw(f);
        // Up to 720p every frame is decoded; above that only keyframes
        // (about one a second), which keeps a 1080p or 4K main stream from
        // costing a full decode.
        if f.keyframe {
            self.full_decode = f
                .params
                .stream_info()
                .is_ok_and(|i| i.width * i.height <= FULL_DECODE_PIXELS);
        }
        if f.keyframe || self.full_decode {
            self.decoder.push(f);
        }
    }
}

/// Captures the sub-stream for the analyser until `stop`, reconnecting
/// with a growing wait (1 s to 30 s) when it fails.
async fn run_sub_stream(
    camera: i64,
    sub: Arc<dyn FrameSource>,
    mut feeder: Feeder,
    stop: CancellationToken,
) {
    let mut wait = Duration::from_secs(1);
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
                                    wait = Duration::from_secs(1);
                                }
                                feeder.feed(&f);
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
        tracing::warn!(camera, source = %sub.describe(), retry_in_secs = wait.as_secs(),
            "motion: sub-stream failed, no motion detection until it is back: {failure}");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(30));
    }
}

impl Analyzer {
    fn start(
        config: &MotionConfig,
        camera: i64,
        sub: Option<Arc<dyn FrameSource>>,
        events: mpsc::Sender<MotionEvent>,
    ) -> Option<Self> {
        let detector = match Detector::new(config.settings()) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(camera, "motion detection off: {e}");
                return None;
            }
        };
        let decoder = match GrayDecoder::start(320, config.fps) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                tracing::warn!(camera, "motion detection off: {e}");
                return None;
            }
        };
        let stop = CancellationToken::new();
        let (d, s) = (decoder.clone(), stop.clone());
        let task = tokio::task::spawn_blocking(move || {
            let mut detector = detector;
            while !s.is_cancelled() {
                let Some(p) = d.pull(Duration::from_millis(200)) else {
                    continue;
                };
                let Ok(frame) = GrayFrame::new(&p.data, p.width, p.height, p.stride) else {
                    continue;
                };
                for e in detector.process(&frame, p.pts_ms).events {
                    if events.try_send(e).is_err() {
                        tracing::warn!(camera, "motion event dropped: the recorder is behind");
                    }
                }
            }
            if let Some(e) = detector.flush() {
                let _ = events.try_send(e);
            }
        });
        let clock = Arc::new(Mutex::new(Clock::default()));
        let feeder = Feeder {
            decoder,
            clock: clock.clone(),
            full_decode: false,
        };
        let (feeder, sub_task) = match sub {
            Some(sub) => (
                None,
                Some(tokio::spawn(run_sub_stream(
                    camera,
                    sub,
                    feeder,
                    stop.clone(),
                ))),
            ),
            None => (Some(feeder), None),
        };
        Some(Analyzer {
            feeder,
            clock,
            stop,
            task,
            sub_task,
        })
    }

    /// A main-stream frame: decoded unless a sub-stream feeds the analyser.
    fn main_frame(&mut self, f: &EncodedFrame) {
        if let Some(feeder) = self.feeder.as_mut() {
            feeder.feed(f);
        }
    }

    fn utc_ns(&self, pts_ms: i64) -> i64 {
        self.clock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .utc_ns(pts_ms)
    }

    async fn finish(self) {
        self.stop.cancel();
        if let Some(t) = self.sub_task {
            let _ = t.await;
        }
        let _ = self.task.await;
    }
}

/// Maps the frames' clock (ms of pts) to UTC, from the newest frame.
#[derive(Clone, Copy, Default)]
struct Clock {
    anchor: Option<(i64, i64)>,
}

impl Clock {
    fn saw(&mut self, frame: &EncodedFrame) {
        self.anchor = Some((frame.pts_90k / 90, utc_now_ns()));
    }

    fn utc_ns(&self, pts_ms: i64) -> i64 {
        match self.anchor {
            Some((at_ms, utc)) => utc - (at_ms - pts_ms) * 1_000_000,
            None => utc_now_ns(),
        }
    }
}

/// Writes around events: the triggered state machine's actions.
struct EventRecorder {
    machine: Triggered,
    session: Option<Box<dyn RecordingWriter>>,
}

impl EventRecorder {
    /// Carries out the state machine's actions. Frames are stamped with
    /// the wall-clock time they were captured (from `clock`), not the time
    /// they are written: the pre-roll goes to disk seconds after it was
    /// seen, and the index must place it where it happened.
    async fn apply(&mut self, cam: &Camera, clock: &Clock, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Write(f) => {
                    let captured = clock.utc_ns(f.pts_90k.div_euclid(90));
                    if self.session.is_none() {
                        match cam.storage.start_recording(&cam.name).await {
                            Ok(s) => self.session = Some(s),
                            Err(e) => {
                                tracing::error!(camera = cam.id, "cannot record: {e}");
                                continue;
                            }
                        }
                    }
                    if let Some(s) = self.session.as_mut()
                        && let Err(e) = s.write_at(f, captured).await
                    {
                        tracing::error!(camera = cam.id, "recording failed: {e}");
                        if let Some(s) = self.session.take() {
                            let _ = s.finish().await;
                        }
                    }
                }
                Action::Finish => {
                    if let Some(s) = self.session.take()
                        && let Err(e) = s.finish().await
                    {
                        tracing::warn!(camera = cam.id, "closing a recording: {e}");
                    }
                }
            }
        }
    }
}

/// One run: until the camera's frames end (a failure, a stop) or the NVR
/// stops.
pub(crate) async fn run(cam: Arc<Camera>, mut frames: FrameReceiver) {
    let (ev_tx, mut ev_rx) = mpsc::channel(16);
    let mut motion = cam.motion.clone();
    let settings = motion.borrow_and_update().clone();
    let mut analyzer = if settings.enabled {
        Analyzer::start(&settings, cam.id, cam.sub.clone(), ev_tx.clone())
    } else {
        None
    };
    // Continuous: everything to the store's recorder.
    let (to_store, recording) = if cam.mode == RecordMode::Motion {
        (None, None)
    } else {
        let (tx, rx) = reallive_core::frame_channel(256);
        let (storage, name, stop) = (cam.storage.clone(), cam.name.clone(), cam.stop.clone());
        let task = tokio::spawn(async move {
            reallive_store::record(&*storage, &name, rx, &stop).await;
        });
        (Some(tx), Some(task))
    };
    let mut events = if cam.mode == RecordMode::Motion {
        Some(EventRecorder {
            machine: Triggered::new(TriggerConfig {
                pre_roll: cam.pre_roll,
                post_roll: cam.post_roll,
                ..TriggerConfig::default()
            }),
            session: None,
        })
    } else {
        None
    };
    let mut triggers = cam.triggers.lock().await;
    let mut clock = Clock::default();
    let mut source = None;
    let mut open_event: Option<i64> = None;
    loop {
        tokio::select! {
            () = cam.stop.cancelled() => break,
            f = frames.recv() => {
                let Some(f) = f else { break };
                clock.saw(&f);
                if let Some(live) = &cam.live {
                    if source.is_none() && f.params.codec == Codec::H264 {
                        source = Some(live.local_source(cam.id).await);
                    }
                    if let Some(s) = source.as_mut() {
                        s.offer(&f);
                    }
                }
                if let Some(a) = analyzer.as_mut() {
                    a.main_frame(&f);
                }
                if let Some(r) = events.as_mut() {
                    let actions = r.machine.frame(f);
                    r.apply(&cam, &clock, actions).await;
                } else if let Some(tx) = &to_store
                    && tx.offer(f) == Offer::Closed
                {
                    break;
                }
            }
            Ok(()) = motion.changed() => {
                // New settings: the old detector's open event ends here,
                // and a new one starts learning the scene.
                let settings = motion.borrow_and_update().clone();
                if let Some(a) = analyzer.take() {
                    let analysed = a.clock.clone();
                    a.finish().await;
                    let analysed = *analysed.lock().unwrap_or_else(PoisonError::into_inner);
                    while let Ok(e) = ev_rx.try_recv() {
                        on_motion(&cam, e, &analysed, &clock, &mut open_event, events.as_mut()).await;
                    }
                }
                if settings.enabled {
                    analyzer = Analyzer::start(&settings, cam.id, cam.sub.clone(), ev_tx.clone());
                }
            }
            Some(e) = ev_rx.recv() => {
                let at = analyzer.as_ref().map_or(&clock as &dyn EventClock, |a| a as &dyn EventClock);
                on_motion(&cam, e, at, &clock, &mut open_event, events.as_mut()).await;
            }
            Some(secs) = triggers.recv() => {
                let start = utc_now_ns();
                let ev = NewEvent {
                    camera: cam.name.clone(),
                    kind: "trigger".into(),
                    start_utc_ns: start,
                    end_utc_ns: Some(start + i64::from(secs) * 1_000_000_000),
                    score: None,
                    zone: None,
                };
                if let Err(e) = cam.store.add_event(&ev).await {
                    tracing::warn!(camera = cam.id, "recording a trigger: {e}");
                }
                if let Some(r) = events.as_mut() {
                    let actions = r.machine.trigger(Duration::from_secs(u64::from(secs)));
                    r.apply(&cam, &clock, actions).await;
                }
            }
        }
    }
    // The run is over: close what is open.
    drop(triggers);
    if let Some(a) = analyzer {
        let analysed = a.clock.clone();
        a.finish().await;
        let analysed = *analysed.lock().unwrap_or_else(PoisonError::into_inner);
        while let Ok(e) = ev_rx.try_recv() {
            on_motion(&cam, e, &analysed, &clock, &mut open_event, events.as_mut()).await;
        }
    }
    if let Some(mut r) = events {
        let actions = r.machine.camera_dropped();
        r.apply(&cam, &clock, actions).await;
    }
    drop(to_store);
    if let Some(t) = recording {
        let _ = t.await;
    }
    if let Some(s) = source {
        s.close().await;
    }
}

/// Turns an analysed stream's pts (ms) into UTC.
trait EventClock: Sync {
    fn utc_ns(&self, pts_ms: i64) -> i64;
}

impl EventClock for Clock {
    fn utc_ns(&self, pts_ms: i64) -> i64 {
        Clock::utc_ns(self, pts_ms)
    }
}

impl EventClock for Analyzer {
    fn utc_ns(&self, pts_ms: i64) -> i64 {
        Analyzer::utc_ns(self, pts_ms)
    }
}

async fn on_motion(
    cam: &Camera,
    event: MotionEvent,
    clock: &dyn EventClock,
    main: &Clock,
    open: &mut Option<i64>,
    recorder: Option<&mut EventRecorder>,
) {
    match event {
        MotionEvent::Started { at_ms, zone, score } => {
            tracing::info!(camera = cam.id, %zone, score, "motion");
            let ev = NewEvent {
                camera: cam.name.clone(),
                kind: "motion".into(),
                start_utc_ns: clock.utc_ns(at_ms),
                end_utc_ns: None,
                score: Some(score),
                zone: Some(zone),
            };
            match cam.store.add_event(&ev).await {
                Ok(id) => *open = Some(id),
                Err(e) => tracing::warn!(camera = cam.id, "recording an event: {e}"),
            }
            if let Some(r) = recorder {
                let actions = r.machine.start();
                r.apply(cam, main, actions).await;
            }
        }
        MotionEvent::Ended {
            end_ms,
            peak_score,
            zone,
            ..
        } => {
            tracing::info!(camera = cam.id, %zone, peak_score, "motion ended");
            if let Some(id) = open.take()
                && let Err(e) = cam
                    .store
                    .end_event(id, clock.utc_ns(end_ms), peak_score, &zone)
                    .await
            {
                tracing::warn!(camera = cam.id, "closing an event: {e}");
            }
            if let Some(r) = recorder {
                r.machine.end();
            }
        }
    }
}
