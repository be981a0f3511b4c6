//! Recording around events (motion, a manual trigger), sans-IO: which
//! frames to write, and when a recording ends.
//!
//! Idle, it keeps a pre-roll ring of encoded frames that always starts at
//! a keyframe (whole GOPs are dropped from the front), bounded by time
//! (`pre_roll`) and by bytes. An event writes the ring, then every frame
//! while the event lasts, then `post_roll` more; an event that starts
//! before the post-roll is over continues the same recording. A camera
//! drop ends the recording at once.
//!
//! Times are the frames' own 90 kHz presentation times.

use std::collections::VecDeque;
use std::time::Duration;

use reallive_core::EncodedFrame;

/// How much to keep around events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TriggerConfig {
    /// Video kept before an event (at most 60 s).
    pub pre_roll: Duration,
    /// Video kept after an event ends.
    pub post_roll: Duration,
    /// The pre-roll ring never holds more than this.
    pub max_pre_roll_bytes: usize,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            pre_roll: Duration::from_secs(5),
            post_roll: Duration::from_secs(5),
            // 5 s of 4 Mbit/s is 2.5 MB; room for a burst.
            max_pre_roll_bytes: 8 << 20,
        }
    }
}

/// What to do with the store.
#[derive(Clone, Debug)]
pub enum Action {
    /// Append this frame to the current recording (starting one if none).
    Write(EncodedFrame),
    /// Close the current recording.
    Finish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    /// An event is open; with `until`, it ends by itself then (a manual
    /// trigger).
    Event {
        until: Option<i64>,
    },
    /// Writing the post-roll, up to this pts.
    PostRoll {
        until: i64,
    },
}

/// The state machine of one camera.
#[derive(Debug)]
pub struct Triggered {
    config: TriggerConfig,
    state: State,
    ring: VecDeque<EncodedFrame>,
    ring_bytes: usize,
    /// A recording is open (something was written since the last finish).
    open: bool,
    /// The last frame's pts.
    now: Option<i64>,
}

fn ticks(d: Duration) -> i64 {
    (d.as_micros() * 9 / 100) as i64
}

impl Triggered {
    /// Idle, with an empty ring. `pre_roll` is capped at 60 s.
    pub fn new(mut config: TriggerConfig) -> Self {
        config.pre_roll = config.pre_roll.min(Duration::from_secs(60));
        Triggered {
            config,
            state: State::Idle,
            ring: VecDeque::new(),
            ring_bytes: 0,
            open: false,
            now: None,
        }
    }

    /// Bytes in the pre-roll ring now.
    pub fn pre_roll_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// Whether frames are being written.
    pub fn recording(&self) -> bool {
        self.state != State::Idle
    }

    /// A frame from the camera.
    pub fn frame(&mut self, frame: EncodedFrame) -> Vec<Action> {
        let pts = frame.pts_90k;
        self.now = Some(pts);
        let mut out = Vec::new();
        match self.state {
            State::Idle => self.remember(frame),
            State::Event { until } => {
                self.write(frame, &mut out);
                if let Some(u) = until
                    && pts >= u
                {
                    self.state = State::PostRoll {
                        until: u + ticks(self.config.post_roll),
                    };
                }
            }
            State::PostRoll { until } => {
                if pts >= until {
                    self.finish(&mut out);
                    self.remember(frame);
                } else {
                    self.write(frame, &mut out);
                }
            }
        }
        out
    }

    /// Motion began (or an alarm fired): write the pre-roll, then record.
    pub fn start(&mut self) -> Vec<Action> {
        self.begin(None)
    }

    /// Records from now for `duration`, as if motion had been seen for
    /// that long (a manual trigger); an open event is extended if need be.
    pub fn trigger(&mut self, duration: Duration) -> Vec<Action> {
        let until = self.now.unwrap_or(0) + ticks(duration);
        match self.state {
            // Motion is open: it ends with the later of the two.
            State::Event { until: None } => Vec::new(),
            State::Event { until: Some(u) } => {
                self.state = State::Event {
                    until: Some(u.max(until)),
                };
                Vec::new()
            }
            _ => self.begin(Some(until)),
        }
    }

    /// Motion ended at the last frame: the post-roll follows.
    pub fn end(&mut self) {
        if let State::Event { until: None } = self.state {
            let now = self.now.unwrap_or(0);
            self.state = State::PostRoll {
                until: now + ticks(self.config.post_roll),
            };
        }
    }

    /// The camera went away: close what is open and forget the ring (the
    /// next frames start a new one, at a keyframe).
    pub fn camera_dropped(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.finish(&mut out);
        self.state = State::Idle;
        self.ring.clear();
        self.ring_bytes = 0;
        out
    }

    fn begin(&mut self, until: Option<i64>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Idle {
            while let Some(f) = self.ring.pop_front() {
                self.write(f, &mut out);
            }
            self.ring_bytes = 0;
        }
        self.state = State::Event { until };
        out
    }

    fn write(&mut self, frame: EncodedFrame, out: &mut Vec<Action>) {
        // A recording starts at a keyframe; deltas before the first one
        // (an event at startup) cannot be decoded.
        if !self.open && !frame.keyframe {
            return;
        }
        self.open = true;
        out.push(Action::Write(frame));
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        if self.open {
            out.push(Action::Finish);
            self.open = false;
        }
        self.state = State::Idle;
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
            let too_long = next_gop
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
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use reallive_core::{Codec, CodecParameters};

    use super::*;

    /// Frame `n` at 10 fps, a keyframe every 10 frames, `size` bytes.
    fn frame(n: i64, size: usize) -> EncodedFrame {
        EncodedFrame {
            data: Bytes::from(vec![0u8; size]),
            pts_90k: n * 9000,
            dts_90k: n * 9000,
            duration_90k: Some(9000),
            keyframe: n % 10 == 0,
            params: Arc::new(CodecParameters::new(Codec::H264)),
        }
    }

    enum Step {
        /// Frames `a..b`.
        Frames(i64, i64),
        Start,
        End,
        Trigger(u64),
        Drop,
    }

    /// Runs the steps; returns the recordings as lists of frame numbers.
    fn run(config: TriggerConfig, steps: &[Step]) -> (Vec<Vec<i64>>, Triggered) {
        let mut t = Triggered::new(config);
        let mut files: Vec<Vec<i64>> = Vec::new();
        let mut open = false;
        let mut take = |actions: Vec<Action>, files: &mut Vec<Vec<i64>>| {
            for a in actions {
                match a {
                    Action::Write(f) => {
                        if !open {
                            files.push(Vec::new());
                            open = true;
                        }
                        files.last_mut().unwrap().push(f.pts_90k / 9000);
                    }
                    Action::Finish => open = false,
                }
            }
        };
        for s in steps {
            match s {
                Step::Frames(a, b) => {
                    for n in *a..*b {
                        let actions = t.frame(frame(n, 1000));
                        take(actions, &mut files);
                    }
                }
                Step::Start => {
                    let actions = t.start();
                    take(actions, &mut files);
                }
                Step::End => t.end(),
                Step::Trigger(s) => {
                    let actions = t.trigger(Duration::from_secs(*s));
                    take(actions, &mut files);
                }
                Step::Drop => {
                    let actions = t.camera_dropped();
                    take(actions, &mut files);
                }
            }
        }
        (files, t)
    }

    fn span(files: &[Vec<i64>]) -> Vec<(i64, i64, usize)> {
        files
            .iter()
            .map(|f| (f[0], *f.last().unwrap(), f.len()))
            .collect()
    }

    #[test]
    fn table() {
        use Step::*;
        // Pre-roll 2 s, post-roll 1 s, at 10 fps with a keyframe each 1 s.
        let c = TriggerConfig {
            pre_roll: Duration::from_secs(2),
            post_roll: Duration::from_secs(1),
            max_pre_roll_bytes: 1 << 20,
        };
        /// (what, steps, recordings as (first frame, last frame, frames)).
        type Case = (&'static str, Vec<Step>, Vec<(i64, i64, usize)>);
        let cases: Vec<Case> = vec![
            ("no event, no recording", vec![Frames(0, 100)], vec![]),
            (
                "an event: the pre-roll from a keyframe, the event, the post-roll",
                vec![Frames(0, 55), Start, Frames(55, 70), End, Frames(70, 100)],
                // The ring at 54 starts at keyframe 30: at least 2 s back, at
                // most a GOP more. It ends 1 s after frame 69.
                vec![(30, 78, 49)],
            ),
            (
                "an event at startup: from the first keyframe there is",
                vec![Frames(3, 5), Start, Frames(5, 25), End, Frames(25, 40)],
                vec![(10, 33, 24)],
            ),
            (
                "an event longer than a file's length: one recording (the store rotates files)",
                vec![
                    Frames(0, 20),
                    Start,
                    Frames(20, 1000),
                    End,
                    Frames(1000, 1030),
                ],
                vec![(0, 1008, 1009)],
            ),
            (
                "back-to-back events merge",
                vec![
                    Frames(0, 30),
                    Start,
                    Frames(30, 40),
                    End,
                    Frames(40, 45),
                    Start,
                    Frames(45, 50),
                    End,
                    Frames(50, 80),
                ],
                vec![(0, 58, 59)],
            ),
            (
                "events far apart are two recordings, the second with its own pre-roll",
                vec![
                    Frames(0, 30),
                    Start,
                    Frames(30, 40),
                    End,
                    Frames(40, 90),
                    Start,
                    Frames(90, 95),
                    End,
                    Frames(95, 120),
                ],
                vec![(0, 48, 49), (60, 103, 44)],
            ),
            (
                "a camera drop during an event closes it; the next event starts clean",
                vec![
                    Frames(0, 30),
                    Start,
                    Frames(30, 35),
                    Drop,
                    Frames(35, 45),
                    Start,
                    Frames(45, 60),
                    End,
                    Frames(60, 80),
                ],
                vec![(0, 34, 35), (40, 68, 29)],
            ),
            (
                "a manual trigger of 2 s with no motion",
                vec![Frames(0, 30), Trigger(2), Frames(30, 60)],
                vec![(0, 58, 59)],
            ),
        ];
        for (name, steps, want) in cases {
            let (files, t) = run(c, &steps);
            assert_eq!(span(&files), want, "{name}");
            assert!(t.pre_roll_bytes() <= c.max_pre_roll_bytes, "{name}");
            // Every recording starts at a keyframe.
            assert!(files.iter().all(|f| f[0] % 10 == 0), "{name}");
        }
    }

    #[test]
    fn the_ring_stays_within_its_byte_bound() {
        // 5 s of 4 Mbit/s at 10 fps is 50 frames of 50 kB: 2.5 MB.
        let c = TriggerConfig {
            pre_roll: Duration::from_secs(5),
            post_roll: Duration::from_secs(5),
            max_pre_roll_bytes: 2_500_000,
        };
        let mut t = Triggered::new(c);
        let mut peak = 0;
        for n in 0..1000 {
            assert!(t.frame(frame(n, 50_000)).is_empty());
            peak = peak.max(t.pre_roll_bytes());
        }
        assert!(peak <= 2_500_000, "{peak}");
        assert!(peak >= 2_000_000, "{peak}: it does hold about 5 s");
        // A GOP larger than the bound is not kept at all.
        let mut small = Triggered::new(TriggerConfig {
            max_pre_roll_bytes: 100_000,
            ..c
        });
        for n in 0..30 {
            small.frame(frame(n, 50_000));
            assert!(small.pre_roll_bytes() <= 100_000);
        }
    }
}
