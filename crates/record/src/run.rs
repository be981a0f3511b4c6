//! [`CameraRun`]: one run of one camera (from a start of its source to its
//! end) as a sans-IO state machine. See `docs/design/camera-run.md`.
//!
//! It takes the camera's frames, motion results, manual triggers, settings
//! changes and the outcome of each write, every input stamped with [`Now`],
//! and queues [`RunAction`]s for a shell to carry out, in order, through
//! [`CameraRun::poll`]. It never touches a file, a socket, a task or a
//! clock, so every decision is table-tested.
//!
//! Continuous and motion recording are the same machine: continuous is an
//! event that never ends. Both keep one pre-roll ring, bounded by time and
//! bytes, which always starts at a keyframe, and one retry rule for failed
//! writes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use reallive_core::time::UtcNs;
use reallive_core::{AudioFrame, Backoff, EncodedFrame};

/// Streams up to this size are decoded whole for motion; larger ones only
/// at their keyframes (about one a second), which keeps a 1080p or 4K main
/// stream from costing a full decode.
pub const FULL_DECODE_PIXELS: u32 = 1280 * 720;

/// The pre-roll ring never holds more than this by default.
pub const MAX_PRE_ROLL_BYTES: usize = 8 << 20;

/// The longest pre-roll kept.
pub const MAX_PRE_ROLL: Duration = Duration::from_secs(60);

/// With audio expected, a run's first file waits this long (from the first
/// video frame's arrival) for the audio's first packet, so that the file
/// starts with its audio track rather than being cut at the next keyframe
/// when the audio comes (`docs/design/audio.md`). A transcoded camera's
/// first AAC comes a few hundred ms after its video, more on a busy host;
/// a WebRTC subscriber holds its first sound until the relay's sender
/// reports can place it, 1–3 s. Live viewers never wait; the ring keeps
/// every frame meanwhile (within its byte bound).
pub const AUDIO_WAIT: Duration = Duration::from_secs(4);

/// The audio ring's bound, in packets: a minute of AAC at 48 kHz.
const MAX_AUDIO_RING: usize = 3000;

/// Pauses after failed writes: 1 s, doubling to 30 s.
const RETRY_FLOOR: Duration = Duration::from_secs(1);
const RETRY_CEILING: Duration = Duration::from_secs(30);

/// When an input happened: monotonic time for the retry pause, and the
/// wall clock for the index (from a [`reallive_core::Clock`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time.
    pub at: Instant,
    /// Wall-clock time.
    pub utc: UtcNs,
}

impl Now {
    /// Both readings of `clock`.
    pub fn of(clock: &dyn reallive_core::Clock) -> Self {
        Now {
            at: clock.now(),
            utc: clock.utc(),
        }
    }
}

/// What a run writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Every frame.
    Continuous,
    /// Around motion and triggers, with pre- and post-roll.
    Events,
}

/// A run's settings. A change ([`CameraRun::set_config`]) applies at the
/// next keyframe, never in the middle of a GOP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunConfig {
    /// Continuous or around events.
    pub mode: RunMode,
    /// Video kept before an event (capped at [`MAX_PRE_ROLL`]); also what
    /// a pause after a failed write keeps for when writing resumes.
    pub pre_roll: Duration,
    /// Video kept after an event ends.
    pub post_roll: Duration,
    /// The ring's byte bound.
    pub max_pre_roll_bytes: usize,
    /// Motion is detected on this stream (no sub-stream): ask for its
    /// frames to be decoded.
    pub decode_main: bool,
    /// The source was asked for audio: the first file waits up to
    /// [`AUDIO_WAIT`] for it (see [`CameraRun::audio`]).
    pub audio: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            mode: RunMode::Continuous,
            pre_roll: Duration::from_secs(5),
            post_roll: Duration::from_secs(5),
            max_pre_roll_bytes: MAX_PRE_ROLL_BYTES,
            decode_main: false,
            audio: false,
        }
    }
}

/// What an event row is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The motion detector.
    Motion,
    /// A manual trigger through the API.
    Trigger,
}

impl EventKind {
    /// The event row's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Motion => "motion",
            EventKind::Trigger => "trigger",
        }
    }
}

/// What the shell does next.
#[derive(Clone, Debug)]
pub enum RunAction {
    /// Hand the frame to live viewers (the relay sends H.265 only to
    /// viewers that offered it).
    Offer(EncodedFrame),
    /// Hand the frame to the motion decoder.
    Decode(EncodedFrame),
    /// Record the audio packet beside the video (it goes into the file
    /// with the video it plays with).
    WriteAudio(AudioFrame),
    /// Append the frame to the open file, starting one if none is open
    /// (then `frame` is a keyframe); `utc_ns` is when it was captured.
    /// Report the outcome with [`CameraRun::write_done`].
    Write {
        /// The frame.
        frame: EncodedFrame,
        /// When it was captured.
        utc_ns: i64,
    },
    /// Close the open file (after a failure too: the shell drops it).
    FinishFile,
    /// Add an event row. A trigger's row carries its end; a motion row
    /// gets an [`RunAction::EndEvent`].
    StartEvent {
        /// Motion or trigger.
        kind: EventKind,
        /// The zone with the most change (motion).
        zone: Option<String>,
        /// Its score, in percent (motion).
        score: Option<f32>,
        /// When it began.
        utc_ns: i64,
        /// When it ends, if known now (a trigger).
        end_utc_ns: Option<i64>,
    },
    /// Close the open motion event's row.
    EndEvent {
        /// The last motion.
        utc_ns: i64,
        /// The highest score seen.
        peak_score: f32,
        /// The frame of that score, when the detector said.
        peak_utc_ns: Option<i64>,
        /// The zone of the peak.
        zone: String,
    },
}

/// The one mapping from a stream's 90 kHz pts to UTC: by the newest
/// frame's arrival, `utc = arrived_utc - (arrived_pts - pts)`. A frame
/// written as it arrives is stamped with its arrival; a pre-roll frame
/// written seconds later is stamped with when it was seen. A wall-clock
/// step moves only frames that arrive after it, and the store's segmenter
/// starts a new file when a file's media time and the wall clock part, so
/// each file's frames stay contiguous in the index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PtsClock {
    newest: Option<(i64, i64)>,
}

impl PtsClock {
    /// A frame with `pts_90k` arrived at `utc`.
    pub fn saw(&mut self, pts_90k: i64, utc: UtcNs) {
        self.newest = Some((pts_90k, utc.0));
    }

    /// When the frame with `pts_90k` was captured; `None` before any frame.
    pub fn utc_ns(&self, pts_90k: i64) -> Option<i64> {
        let (at, utc) = self.newest?;
        Some(utc.saturating_sub(at.saturating_sub(pts_90k).saturating_mul(100_000) / 9))
    }

    /// [`utc_ns`](Self::utc_ns) for a time in milliseconds of pts (the
    /// motion decoder's pictures).
    pub fn utc_ns_ms(&self, pts_ms: i64) -> Option<i64> {
        self.utc_ns(pts_ms.saturating_mul(90))
    }
}

/// Which frames of a stream the motion decoder gets: every frame up to
/// [`FULL_DECODE_PIXELS`], keyframes only above that.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeFilter {
    full: bool,
}

impl DecodeFilter {
    /// Whether to decode `f`.
    pub fn wants(&mut self, f: &EncodedFrame) -> bool {
        if f.keyframe {
            self.full = f
                .params
                .stream_info()
                .is_ok_and(|i| i.width * i.height <= FULL_DECODE_PIXELS);
        }
        f.keyframe || self.full
    }
}

fn ticks(d: Duration) -> i64 {
    i64::try_from(d.as_micros() * 9 / 100).unwrap_or(i64::MAX)
}

/// Whether a run still waits for its first audio packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AudioWait {
    /// Since the first video frame's arrival, once there is one.
    Waiting(Option<Instant>),
    /// It came, it ended, or none is expected.
    Done,
}

/// One run of one camera. See the [module docs](self).
#[derive(Debug)]
pub struct CameraRun {
    config: RunConfig,
    /// Waits for the next keyframe.
    next_config: Option<RunConfig>,
    clock: PtsClock,
    decode: DecodeFilter,
    /// The newest frame's pts.
    pts_now: Option<i64>,
    /// The open motion event's zone and score.
    motion: Option<(String, f32)>,
    /// Events mode records until this pts (a trigger, a post-roll).
    hold_until: Option<i64>,
    /// Frames go straight to `Write` (else to the ring).
    writing: bool,
    /// A file is open (a `Write` since the last `FinishFile`).
    open: bool,
    ring: VecDeque<EncodedFrame>,
    ring_bytes: usize,
    /// Audio kept with the ring's video, oldest first.
    audio_ring: VecDeque<AudioFrame>,
    /// Audio is expected and none has come yet: since this video pts.
    audio_wait: AudioWait,
    /// Writing is paused until then, after a failed write.
    paused_until: Option<Instant>,
    retry: Backoff,
    queue: VecDeque<RunAction>,
}

impl CameraRun {
    /// A run that has seen nothing yet.
    pub fn new(mut config: RunConfig) -> Self {
        config.pre_roll = config.pre_roll.min(MAX_PRE_ROLL);
        let audio_wait = if config.audio {
            AudioWait::Waiting(None)
        } else {
            AudioWait::Done
        };
        CameraRun {
            config,
            next_config: None,
            clock: PtsClock::default(),
            decode: DecodeFilter::default(),
            pts_now: None,
            motion: None,
            hold_until: None,
            writing: false,
            open: false,
            ring: VecDeque::new(),
            ring_bytes: 0,
            audio_ring: VecDeque::new(),
            audio_wait,
            paused_until: None,
            retry: Backoff::exact(RETRY_FLOOR, RETRY_CEILING),
            queue: VecDeque::new(),
        }
    }

    /// The next action, in order; `None` when there is nothing to do.
    pub fn poll(&mut self) -> Option<RunAction> {
        self.queue.pop_front()
    }

    /// The main stream's clock, to place its motion results in UTC.
    pub fn clock(&self) -> &PtsClock {
        &self.clock
    }

    /// Bytes held in the pre-roll ring.
    pub fn pre_roll_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// Whether writing is paused after a failure.
    pub fn paused(&self) -> bool {
        self.paused_until.is_some()
    }

    /// New settings, from the next keyframe on.
    pub fn set_config(&mut self, mut config: RunConfig) {
        config.pre_roll = config.pre_roll.min(MAX_PRE_ROLL);
        self.next_config = Some(config);
    }

    /// A frame from the camera.
    pub fn frame(&mut self, f: EncodedFrame, now: Now) {
        self.clock.saw(f.pts_90k, now.utc);
        self.pts_now = Some(f.pts_90k);
        if f.keyframe
            && let Some(c) = self.next_config.take()
        {
            self.config = c;
        }
        // Counted from the first frame whatever the mode, so that the ring
        // is trimmed by time again 2 s in, wanted or not.
        let audio_wait = self.waiting_for_audio(now.at);
        self.queue.push_back(RunAction::Offer(f.clone()));
        if self.config.decode_main && self.decode.wants(&f) {
            self.queue.push_back(RunAction::Decode(f.clone()));
        }
        if let Some(until) = self.paused_until {
            if now.at < until {
                self.remember(f);
                return;
            }
            self.paused_until = None;
        }
        if self.wanted(f.pts_90k) && !self.writing && audio_wait {
            self.remember(f);
        } else if self.wanted(f.pts_90k) {
            self.start_writing();
            self.write(f);
        } else {
            if self.writing {
                self.writing = false;
                self.hold_until = None;
                self.finish();
            }
            self.remember(f);
        }
    }

    /// An audio packet from the camera, on its video's clock. It is
    /// written while video is, and otherwise kept with the ring's video
    /// (the pre-roll), to go first when writing starts. The first one
    /// ends the wait of [`RunConfig::audio`].
    pub fn audio(&mut self, a: AudioFrame) {
        let was_waiting = matches!(self.audio_wait, AudioWait::Waiting(_));
        self.audio_wait = AudioWait::Done;
        if self.writing && self.paused_until.is_none() {
            self.queue.push_back(RunAction::WriteAudio(a));
            return;
        }
        self.remember_audio(a);
        // The video held for it goes now.
        if was_waiting
            && self.paused_until.is_none()
            && !self.ring.is_empty()
            && self.pts_now.is_some_and(|p| self.wanted(p))
        {
            self.start_writing();
        }
    }

    /// The camera's audio ended (it has none, or it stopped): nothing
    /// waits for it any more.
    pub fn audio_ended(&mut self) {
        self.audio_wait = AudioWait::Done;
    }

    /// Motion began at `utc_ns` (mapped from the analysed stream's clock).
    pub fn motion_started(&mut self, zone: String, score: f32, utc_ns: i64) {
        if self.motion.is_some() {
            return;
        }
        self.motion = Some((zone.clone(), score));
        self.queue.push_back(RunAction::StartEvent {
            kind: EventKind::Motion,
            zone: Some(zone),
            score: Some(score),
            utc_ns,
            end_utc_ns: None,
        });
    }

    /// Motion ended; `utc_ns` is its last motion, `peak_utc_ns` the frame
    /// of its highest score. The post-roll runs from the newest frame.
    pub fn motion_ended(
        &mut self,
        zone: String,
        peak_score: f32,
        utc_ns: i64,
        peak_utc_ns: Option<i64>,
    ) {
        if self.motion.take().is_none() {
            return;
        }
        self.queue.push_back(RunAction::EndEvent {
            utc_ns,
            peak_score,
            peak_utc_ns,
            zone,
        });
        if let Some(now) = self.pts_now {
            self.hold(now + ticks(self.config.post_roll));
        }
    }

    /// A manual trigger: record from now for `duration`, then the
    /// post-roll; an open event ends with the later of the two.
    pub fn trigger(&mut self, duration: Duration, now: Now) {
        let end = now
            .utc
            .0
            .saturating_add(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX));
        self.queue.push_back(RunAction::StartEvent {
            kind: EventKind::Trigger,
            zone: None,
            score: None,
            utc_ns: now.utc.0,
            end_utc_ns: Some(end),
        });
        let from = self.pts_now.unwrap_or(0);
        self.hold(from + ticks(duration) + ticks(self.config.post_roll));
    }

    /// The outcome of the last `Write`. A failure closes the file, pauses
    /// writing (1 s, doubling to 30 s, reset by a success) and keeps the
    /// frames queued behind it in the ring; the first write after the
    /// pause is a keyframe.
    pub fn write_done(&mut self, ok: bool, now: Now) {
        if ok {
            self.retry.reset();
            return;
        }
        let pause = self.retry.next_delay();
        self.paused_until = Some(now.at + pause);
        self.writing = false;
        self.open = false;
        let queued = std::mem::take(&mut self.queue);
        let mut kept = Vec::new();
        for a in queued {
            match a {
                RunAction::Write { frame, .. } => self.remember(frame),
                RunAction::WriteAudio(a) => self.remember_audio(a),
                RunAction::FinishFile => {}
                other => kept.push(other),
            }
        }
        self.queue.push_back(RunAction::FinishFile);
        self.queue.extend(kept);
    }

    /// The camera's frames ended (a failure, a stop): the open motion
    /// event ends at the newest frame, and the file is finished (the
    /// post-roll is cut).
    pub fn camera_dropped(&mut self) {
        if let Some((zone, score)) = self.motion.clone() {
            let utc = self
                .pts_now
                .and_then(|p| self.clock.utc_ns(p))
                .unwrap_or_else(|| UtcNs::now().0);
            self.motion_ended(zone, score, utc, None);
        }
        self.finish();
        self.writing = false;
        self.hold_until = None;
        self.ring.clear();
        self.ring_bytes = 0;
        self.audio_ring.clear();
    }

    /// Whether video arriving at `at` waits for the first audio packet.
    fn waiting_for_audio(&mut self, at: Instant) -> bool {
        match &mut self.audio_wait {
            AudioWait::Done => false,
            AudioWait::Waiting(since) => {
                let since = *since.get_or_insert(at);
                if at.saturating_duration_since(since) < AUDIO_WAIT {
                    return true;
                }
                self.audio_wait = AudioWait::Done;
                false
            }
        }
    }

    /// Writing starts: the audio kept, then the ring (the pre-roll, or
    /// what a pause kept). No file is open yet, so the store holds the
    /// audio for the file the ring's keyframe starts.
    fn start_writing(&mut self) {
        if self.writing {
            return;
        }
        self.writing = true;
        // What plays with the ring's video; at least the newest packet,
        // even one from before it: the store drops it, but the file it
        // opens gets its audio track from the start, rather than being cut
        // at the next keyframe when the next packet comes.
        let first = self.ring.front().map(|f| f.pts_90k);
        let kept = std::mem::take(&mut self.audio_ring);
        let last = kept.len().saturating_sub(1);
        for (i, a) in kept.into_iter().enumerate() {
            if i == last || first.is_some_and(|p| a.pts_90k + i64::from(a.duration_90k) > p) {
                self.queue.push_back(RunAction::WriteAudio(a));
            }
        }
        while let Some(r) = self.ring.pop_front() {
            self.write(r);
        }
        self.ring_bytes = 0;
    }

    /// Keeps an audio packet for when writing starts: as far back as the
    /// ring's video, within its own bound, and always the newest.
    fn remember_audio(&mut self, a: AudioFrame) {
        self.audio_ring.push_back(a);
        let first = self.ring.front().map(|f| f.pts_90k);
        while let Some(old) = self.audio_ring.front() {
            let stale = first.is_some_and(|p| old.pts_90k + i64::from(old.duration_90k) <= p);
            if self.audio_ring.len() == 1 || !(stale || self.audio_ring.len() > MAX_AUDIO_RING) {
                break;
            }
            self.audio_ring.pop_front();
        }
    }

    fn hold(&mut self, until: i64) {
        self.hold_until = Some(self.hold_until.map_or(until, |u| u.max(until)));
    }

    fn wanted(&self, pts: i64) -> bool {
        match self.config.mode {
            RunMode::Continuous => true,
            RunMode::Events => self.motion.is_some() || self.hold_until.is_some_and(|u| pts < u),
        }
    }

    fn write(&mut self, frame: EncodedFrame) {
        // A file starts at a keyframe: deltas before it cannot be decoded.
        if !self.open && !frame.keyframe {
            return;
        }
        self.open = true;
        let utc_ns = self
            .clock
            .utc_ns(frame.pts_90k)
            .unwrap_or_else(|| UtcNs::now().0);
        self.queue.push_back(RunAction::Write { frame, utc_ns });
    }

    fn finish(&mut self) {
        if self.open {
            self.open = false;
            self.queue.push_back(RunAction::FinishFile);
        }
    }

    /// Adds to the ring, which starts at a keyframe and holds whole GOPs:
    /// at least `pre_roll` (at most one GOP more), within the byte bound.
    fn remember(&mut self, frame: EncodedFrame) {
        if self.ring.is_empty() && !frame.keyframe {
            return;
        }
        self.ring_bytes += frame.data.len();
        self.ring.push_back(frame);
        let newest = self.ring.back().map_or(0, |f| f.pts_90k);
        let span = ticks(self.config.pre_roll);
        loop {
            // The second GOP's start: dropping the first keeps a keyframe
            // at the front.
            let next_gop = self.ring.iter().skip(1).position(|f| f.keyframe);
            // Dropping the first GOP still leaves `pre_roll`.
            // While the first file waits for its audio, nothing is old.
            let waiting = matches!(self.audio_wait, AudioWait::Waiting(_));
            let too_long = !waiting
                && next_gop
                    .and_then(|k| self.ring.get(k + 1))
                    .is_some_and(|f| newest - f.pts_90k >= span);
            let too_big = self.ring_bytes > self.config.max_pre_roll_bytes;
            if !(too_long || too_big) {
                break;
            }
            match next_gop {
                Some(k) => {
                    for f in self.ring.drain(..=k) {
                        self.ring_bytes -= f.data.len();
                    }
                }
                None if too_big => {
                    // One GOP larger than the bound: nothing decodable
                    // fits; start again at the next keyframe.
                    self.ring.clear();
                    self.ring_bytes = 0;
                    break;
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests;
