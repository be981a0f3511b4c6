//! A supervised camera: one [`FrameSource`] kept running by a
//! [`Supervisor`], its frames handed to a consumer (the recorder) one run
//! at a time.
//!
//! Each run (a start of the source) gets a fresh frame channel and a fresh
//! consumer future; when the run ends (failure, stall, stop) the channel
//! closes, so the consumer finishes its file, and the next run starts a new
//! one. One worker's failures never reach another's: each is its own task,
//! with its own pipeline.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reallive_core::source::{FrameSource, FrameSourceRun};
use reallive_core::supervise::{
    Change, Command, RestartPolicy, Supervisor, WorkerState, WorkerStatus,
};
use reallive_core::{AudioReceiver, FrameReceiver, StreamInfo, audio_channel, frame_channel};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// Takes one run's frames, and its audio when the worker asks the source
/// for audio; the future ends when the frame receiver closes.
pub type Consumer = Arc<
    dyn Fn(FrameReceiver, Option<AudioReceiver>) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Audio packets queued between a source and its consumer: about five
/// seconds of AAC, more than any write takes.
const AUDIO_QUEUE: usize = 256;

/// Asks a worker to start or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    Start,
    Stop,
}

/// A running worker. Dropping it does not stop it: cancel the token it was
/// spawned with, then [`join`](Worker::join) to wait for its last file to
/// close.
#[derive(Debug)]
pub struct Worker {
    status: Arc<Mutex<WorkerStatus>>,
    control: mpsc::Sender<Control>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Worker {
    /// Starts supervising `capture` on the current runtime; every run's
    /// frames go to `consumer`, and with `audio` the source's audio too
    /// ([`FrameSource::start_with_audio`]). Ends when `shutdown` fires, after the
    /// last run's consumer has finished. `label` names the camera in the
    /// task's `tracing` span: pass a redacted name, never a URL.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(
        label: &str,
        capture: Arc<dyn FrameSource>,
        policy: RestartPolicy,
        consumer: Consumer,
        audio: bool,
        shutdown: CancellationToken,
    ) -> Worker {
        let status = Arc::new(Mutex::new(WorkerStatus {
            state: WorkerState::Starting,
            fps: 0.0,
            bitrate_kbps: 0.0,
            last_frame_age_ms: None,
            restarts: 0,
            last_error: None,
            frames: 0,
            bytes: 0,
            stream: None,
            history: Vec::new(),
        }));
        let (control, rx) = mpsc::channel(8);
        let span = tracing::info_span!("camera", name = label);
        let task = tokio::spawn(
            drive(
                capture,
                policy,
                (consumer, audio),
                shutdown,
                rx,
                status.clone(),
            )
            .instrument(span),
        );
        Worker {
            status,
            control,
            task: Mutex::new(Some(task)),
        }
    }

    /// The current status.
    pub fn status(&self) -> WorkerStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts a stopped worker (resetting its backoff); no-op if running.
    /// Never waits: the request is dropped if eight are already queued.
    pub fn start(&self) {
        let _ = self.control.try_send(Control::Start);
    }

    /// Stops the source and keeps it stopped until [`start`](Self::start).
    pub fn stop(&self) {
        let _ = self.control.try_send(Control::Stop);
    }

    /// Waits until the worker has ended (after its shutdown token fired)
    /// and its last recording is closed. Only the first call waits.
    pub async fn join(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// Counters the frame forwarder keeps for the supervisor.
#[derive(Debug, Default)]
struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    /// Milliseconds after the worker's epoch of the last frame, plus one
    /// (0: none yet).
    last_frame: AtomicU64,
    stream: Mutex<Option<StreamInfo>>,
}

/// One start of the source.
struct Run {
    running: Box<dyn FrameSourceRun>,
    forward: tokio::task::JoinHandle<()>,
    consume: tokio::task::JoinHandle<()>,
    cancel: CancellationToken,
}

impl Run {
    /// Stops the source, then lets the consumer finish what it has.
    async fn stop(self) {
        self.running.stop().await;
        self.cancel.cancel();
        let _ = self.forward.await;
        let _ = self.consume.await;
    }
}

enum Event {
    Shutdown,
    Ended(String),
    Tick,
    Control(Option<Control>),
}

async fn drive(
    capture: Arc<dyn FrameSource>,
    policy: RestartPolicy,
    (consumer, audio): (Consumer, bool),
    shutdown: CancellationToken,
    mut control: mpsc::Receiver<Control>,
    status: Arc<Mutex<WorkerStatus>>,
) {
    let epoch = Instant::now();
    let counters = Arc::new(Counters::default());
    let (mut sup, first) = Supervisor::new(policy, epoch);
    let mut pending = Some(first);
    let mut run: Option<Run> = None;
    let mut seen_frame = 0u64;
    let mut window: VecDeque<(Instant, u64, u64)> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while let Some(cmd) = pending.take() {
            let now = Instant::now();
            match cmd {
                Command::Start => match start_run(&*capture, &consumer, audio, &counters, epoch) {
                    Ok(r) => {
                        tracing::info!("started");
                        run = Some(r);
                        sup.on_started(now);
                    }
                    Err(why) => {
                        tracing::warn!("cannot start: {why}");
                        pending = sup.on_failed(now, why);
                    }
                },
                Command::Stop => {
                    if let Some(r) = run.take() {
                        r.stop().await;
                    }
                    pending = sup.on_stopped(Instant::now());
                }
            }
            publish(&status, &sup, &counters, &window, epoch);
        }
        let event = {
            let ended = async {
                match run.as_mut() {
                    Some(r) => match r.running.wait().await {
                        Ok(()) => "the camera ended the stream".to_string(),
                        Err(e) => e.to_string(),
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => Event::Shutdown,
                why = ended => Event::Ended(why),
                _ = tick.tick() => Event::Tick,
                c = control.recv() => Event::Control(c),
            }
        };
        let now = Instant::now();
        match event {
            Event::Shutdown => break,
            Event::Ended(why) => {
                tracing::warn!("{why}");
                if let Some(r) = run.take() {
                    r.stop().await;
                }
                pending = sup.on_failed(Instant::now(), why);
            }
            Event::Tick => {
                let last = counters.last_frame.load(Ordering::Relaxed);
                if last != seen_frame && last > 0 {
                    seen_frame = last;
                    sup.on_frame(epoch + Duration::from_millis(last - 1));
                }
                pending = sup.on_tick(now);
                window.push_back((
                    now,
                    counters.frames.load(Ordering::Relaxed),
                    counters.bytes.load(Ordering::Relaxed),
                ));
                while window.len() > 6 {
                    window.pop_front();
                }
            }
            Event::Control(Some(Control::Start)) => pending = sup.request_start(now),
            Event::Control(Some(Control::Stop)) => pending = sup.request_stop(now),
            // The handle is gone; keep running until shutdown.
            Event::Control(None) => {}
        }
        publish(&status, &sup, &counters, &window, epoch);
    }
    if let Some(r) = run.take() {
        r.stop().await;
    }
    let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
    s.state = WorkerState::Stopped;
    s.fps = 0.0;
    s.bitrate_kbps = 0.0;
}

/// Starts the source with a fresh channel, a counting forwarder and a
/// consumer.
fn start_run(
    capture: &dyn FrameSource,
    consumer: &Consumer,
    audio: bool,
    counters: &Arc<Counters>,
    epoch: Instant,
) -> Result<Run, String> {
    let (tx, mut rx) = frame_channel(256);
    // The audio goes straight to the consumer: it needs no counting, and
    // a hop would only add a queue.
    let (running, audio_rx) = if audio {
        let (audio_tx, audio_rx) = audio_channel(AUDIO_QUEUE);
        let running = capture
            .start_with_audio(tx, audio_tx)
            .map_err(|e| e.to_string())?;
        (running, Some(audio_rx))
    } else {
        (capture.start_frames(tx).map_err(|e| e.to_string())?, None)
    };
    let (to_consumer, consumer_rx) = frame_channel(256);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let c = counters.clone();
    let forward = tokio::spawn(async move {
        let mut last_sps = None;
        loop {
            let frame = tokio::select! {
                () = stop.cancelled() => break,
                f = rx.recv() => match f {
                    Some(f) => f,
                    None => break,
                },
            };
            c.frames.fetch_add(1, Ordering::Relaxed);
            c.bytes
                .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
            c.last_frame
                .store(epoch.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
            if frame.keyframe && last_sps.as_ref() != frame.params.sps.first() {
                last_sps = frame.params.sps.first().cloned();
                let info = frame.params.stream_info().ok();
                *c.stream.lock().unwrap_or_else(PoisonError::into_inner) = info;
            }
            if to_consumer.offer(frame) == reallive_core::Offer::Closed {
                break;
            }
        }
    });
    let consume = tokio::spawn(consumer(consumer_rx, audio_rx));
    Ok(Run {
        running,
        forward,
        consume,
        cancel,
    })
}

fn publish(
    status: &Mutex<WorkerStatus>,
    sup: &Supervisor,
    counters: &Counters,
    window: &VecDeque<(Instant, u64, u64)>,
    epoch: Instant,
) {
    let now = Instant::now();
    let unix_now = reallive_core::time::UtcNs::now().millis();
    let to_unix = |t: Instant| unix_now - now.saturating_duration_since(t).as_millis() as i64;
    let (fps, kbps) = match (window.front(), window.back()) {
        (Some(a), Some(b)) if b.0 > a.0 && sup.state() == WorkerState::Running => {
            let dt = (b.0 - a.0).as_secs_f64();
            (
                (b.1 - a.1) as f64 / dt,
                (b.2 - a.2) as f64 * 8.0 / 1000.0 / dt,
            )
        }
        _ => (0.0, 0.0),
    };
    let last = counters.last_frame.load(Ordering::Relaxed);
    let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
    s.state = sup.state();
    s.fps = (fps * 10.0).round() / 10.0;
    s.bitrate_kbps = kbps.round();
    s.last_frame_age_ms = (last > 0).then(|| {
        now.saturating_duration_since(epoch + Duration::from_millis(last - 1))
            .as_millis() as u64
    });
    s.restarts = sup.restarts();
    s.last_error = sup.last_error().map(str::to_string);
    s.frames = counters.frames.load(Ordering::Relaxed);
    s.bytes = counters.bytes.load(Ordering::Relaxed);
    s.stream = counters
        .stream
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    s.history = sup
        .history()
        .map(|c| Change {
            at_unix_ms: to_unix(c.at),
            state: c.state,
            reason: c.reason.clone(),
        })
        .collect();
}
