//! Supervision of one long-running source (an NVR camera), sans-IO.
//!
//! [`Supervisor`] holds the state (`starting`, `running`, `unhealthy`,
//! `backoff`, `stopped`) and decides when to start and stop the source; a
//! driver feeds it what happened (started, a frame, failed, stopped, the
//! time) and does what it asks. The rules:
//!
//! - Frames arriving are the heartbeat. A source that is up but has sent
//!   nothing for [`RestartPolicy::stall_after`] (10 s) is a stall: it goes
//!   `unhealthy` and is stopped.
//! - After a failure or a stall it waits in `backoff`: 1 s, 2 s, 4 s … up
//!   to 60 s. Sixty healthy seconds of `running` reset the wait to 1 s.
//! - With `max_restarts`, the restart after that many moves it to
//!   `stopped` instead, with the reason kept.
//! - A manual stop is `stopped` until a manual start, which also resets
//!   the backoff and the restart budget.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::Backoff;

/// Where a supervised source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkerState {
    /// Connecting; no frame yet.
    Starting,
    /// Frames arrive.
    Running,
    /// Up but silent past the stall limit; being stopped.
    Unhealthy,
    /// Waiting before the next start.
    Backoff,
    /// Not running: stopped by hand, or out of restarts.
    Stopped,
}

impl WorkerState {
    /// The lowercase name used in APIs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Running => "running",
            WorkerState::Unhealthy => "unhealthy",
            WorkerState::Backoff => "backoff",
            WorkerState::Stopped => "stopped",
        }
    }

    /// A number for metrics: 0 stopped, 1 starting, 2 running, 3
    /// unhealthy, 4 backoff.
    pub fn as_gauge(self) -> u8 {
        match self {
            WorkerState::Stopped => 0,
            WorkerState::Starting => 1,
            WorkerState::Running => 2,
            WorkerState::Unhealthy => 3,
            WorkerState::Backoff => 4,
        }
    }
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stall detection and restart timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// No frame for this long while up is a stall.
    pub stall_after: Duration,
    /// The first backoff.
    pub backoff_initial: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
    /// This long `running` resets the backoff.
    pub healthy_reset: Duration,
    /// Give up (`stopped`) instead of the restart after this many.
    pub max_restarts: Option<u32>,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            stall_after: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            healthy_reset: Duration::from_secs(60),
            max_restarts: None,
        }
    }
}

/// What the driver must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start the source.
    Start,
    /// Stop the source; report [`Supervisor::on_stopped`] when it is down.
    Stop,
}

/// A state change as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Unix time in milliseconds.
    pub at_unix_ms: i64,
    /// The new state.
    pub state: WorkerState,
    /// Why.
    pub reason: String,
}

/// One worker's status.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerStatus {
    /// The state.
    pub state: WorkerState,
    /// Frames per second over the last few seconds.
    pub fps: f64,
    /// Kilobits per second over the last few seconds.
    pub bitrate_kbps: f64,
    /// Milliseconds since the last frame; `None` before the first.
    pub last_frame_age_ms: Option<u64>,
    /// Restarts in total.
    pub restarts: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// Frames received in total.
    pub frames: u64,
    /// Bytes received in total.
    pub bytes: u64,
    /// What the stream is, from its last parameter sets.
    pub stream: Option<crate::StreamInfo>,
    /// Recent state changes, oldest first.
    pub history: Vec<Change>,
}

/// One state change, for `/api/workers/{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// When.
    pub at: Instant,
    /// The new state.
    pub state: WorkerState,
    /// Why, in words.
    pub reason: String,
}

/// State changes kept per source.
const HISTORY: usize = 32;

/// The sans-IO supervisor of one source.
#[derive(Debug)]
pub struct Supervisor {
    policy: RestartPolicy,
    state: WorkerState,
    /// The source is up (started and not yet reported stopped or failed).
    up: bool,
    /// When the source came up, or its last frame.
    last_sign: Option<Instant>,
    /// The last frame.
    last_frame: Option<Instant>,
    /// When `running` began.
    running_since: Option<Instant>,
    /// The restart delays.
    backoff: Backoff,
    /// When backoff ends.
    wake: Option<Instant>,
    /// Restarts since the last manual start (the `max_restarts` budget).
    budget_used: u32,
    /// Restarts in total.
    restarts_total: u32,
    last_error: Option<String>,
    history: VecDeque<StateChange>,
    /// Set on a manual stop: stay down until a manual start.
    held: bool,
}

impl Supervisor {
    /// A supervisor that wants the source started now.
    pub fn new(policy: RestartPolicy, now: Instant) -> (Self, Command) {
        let mut s = Supervisor {
            policy,
            state: WorkerState::Starting,
            up: false,
            last_sign: None,
            last_frame: None,
            running_since: None,
            backoff: Backoff::exact(policy.backoff_initial, policy.backoff_max),
            wake: None,
            budget_used: 0,
            restarts_total: 0,
            last_error: None,
            history: VecDeque::new(),
            held: false,
        };
        s.record(now, WorkerState::Starting, "started".into());
        (s, Command::Start)
    }

    /// The current state.
    pub fn state(&self) -> WorkerState {
        self.state
    }

    /// Restarts in total (failures and stalls that were followed by a
    /// start).
    pub fn restarts(&self) -> u32 {
        self.restarts_total
    }

    /// The last failure, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The last frame's arrival.
    pub fn last_frame(&self) -> Option<Instant> {
        self.last_frame
    }

    /// Recent state changes, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &StateChange> {
        self.history.iter()
    }

    /// When [`on_tick`](Self::on_tick) next has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        match self.state {
            WorkerState::Backoff => self.wake,
            WorkerState::Starting | WorkerState::Running if self.up => {
                let stall = self.last_sign.map(|t| t + self.policy.stall_after);
                let reset = self
                    .running_since
                    .filter(|_| self.backoff.is_raised())
                    .map(|t| t + self.policy.healthy_reset);
                match (stall, reset) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            _ => None,
        }
    }

    /// The source was started and is connecting.
    pub fn on_started(&mut self, now: Instant) {
        self.up = true;
        self.last_sign = Some(now);
    }

    /// A frame arrived at `at`.
    pub fn on_frame(&mut self, at: Instant) {
        if !self.up {
            return;
        }
        self.last_sign = Some(at);
        self.last_frame = Some(at);
        if matches!(self.state, WorkerState::Starting) {
            self.running_since = Some(at);
            self.record(at, WorkerState::Running, "frames arrive".into());
        }
    }

    /// The source failed or ended on its own (`why` says how); it is down.
    pub fn on_failed(&mut self, now: Instant, why: String) -> Option<Command> {
        self.up = false;
        self.running_since = None;
        if self.held || self.state == WorkerState::Stopped {
            return None;
        }
        self.last_error = Some(why.clone());
        self.back_off(now, why)
    }

    /// The source is down after a [`Command::Stop`].
    pub fn on_stopped(&mut self, now: Instant) -> Option<Command> {
        self.up = false;
        self.running_since = None;
        match self.state {
            WorkerState::Unhealthy => {
                let why = self.last_error.clone().unwrap_or_else(|| "stalled".into());
                self.back_off(now, why)
            }
            _ => None,
        }
    }

    /// Time passed; returns what to do now, if anything.
    pub fn on_tick(&mut self, now: Instant) -> Option<Command> {
        match self.state {
            WorkerState::Starting | WorkerState::Running if self.up => {
                if let Some(since) = self.running_since
                    && now.saturating_duration_since(since) >= self.policy.healthy_reset
                {
                    self.backoff.reset();
                }
                let quiet = self
                    .last_sign
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                if quiet >= self.policy.stall_after {
                    let why = match self.state {
                        WorkerState::Running => {
                            format!("no frames for {} s", quiet.as_secs())
                        }
                        _ => format!("connected but no frames for {} s", quiet.as_secs()),
                    };
                    self.last_error = Some(why.clone());
                    self.running_since = None;
                    self.record(now, WorkerState::Unhealthy, why);
                    return Some(Command::Stop);
                }
                None
            }
            WorkerState::Backoff if self.wake.is_some_and(|w| now >= w) => {
                self.wake = None;
                self.budget_used += 1;
                self.restarts_total += 1;
                self.record(
                    now,
                    WorkerState::Starting,
                    format!("restart {}", self.restarts_total),
                );
                Some(Command::Start)
            }
            _ => None,
        }
    }

    /// A manual stop: `stopped` until [`request_start`](Self::request_start).
    pub fn request_stop(&mut self, now: Instant) -> Option<Command> {
        self.held = true;
        self.wake = None;
        if self.state == WorkerState::Stopped {
            return None;
        }
        self.record(now, WorkerState::Stopped, "stopped by request".into());
        self.up.then_some(Command::Stop)
    }

    /// A manual start: resets the backoff and the restart budget.
    pub fn request_start(&mut self, now: Instant) -> Option<Command> {
        self.held = false;
        self.backoff.reset();
        self.budget_used = 0;
        match self.state {
            WorkerState::Stopped | WorkerState::Backoff if !self.up => {
                self.wake = None;
                self.record(now, WorkerState::Starting, "started by request".into());
                Some(Command::Start)
            }
            _ => None,
        }
    }

    fn back_off(&mut self, now: Instant, why: String) -> Option<Command> {
        if let Some(max) = self.policy.max_restarts
            && self.budget_used >= max
        {
            self.record(
                now,
                WorkerState::Stopped,
                format!("gave up after {max} restarts: {why}"),
            );
            return None;
        }
        let wait = self.backoff.next_delay();
        self.wake = Some(now + wait);
        self.record(
            now,
            WorkerState::Backoff,
            format!("{why}; retrying in {} s", wait.as_secs_f64()),
        );
        None
    }

    fn record(&mut self, at: Instant, state: WorkerState, reason: String) {
        self.state = state;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(StateChange { at, state, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkerState::*;

    const S: Duration = Duration::from_secs(1);

    /// Runs `steps` and checks the state and command after each.
    enum Step {
        Started,
        Frame,
        Failed,
        Stopped,
        Tick,
        StopReq,
        StartReq,
    }

    fn run(
        policy: RestartPolicy,
        steps: &[(u64, Step, WorkerState, Option<Command>)],
    ) -> Supervisor {
        let t0 = Instant::now();
        let (mut s, first) = Supervisor::new(policy, t0);
        assert_eq!(first, Command::Start);
        for (i, (at, step, state, cmd)) in steps.iter().enumerate() {
            let now = t0 + Duration::from_millis(*at);
            let got = match step {
                Step::Started => {
                    s.on_started(now);
                    None
                }
                Step::Frame => {
                    s.on_frame(now);
                    None
                }
                Step::Failed => s.on_failed(now, "connection refused".into()),
                Step::Stopped => s.on_stopped(now),
                Step::Tick => s.on_tick(now),
                Step::StopReq => s.request_stop(now),
                Step::StartReq => s.request_start(now),
            };
            assert_eq!((s.state(), got), (*state, *cmd), "step {i} at {at} ms");
        }
        s
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_a_healthy_minute() {
        let p = RestartPolicy::default();
        let mut steps = vec![
            (0, Step::Started, Starting, None),
            (100, Step::Frame, Running, None),
            (5_000, Step::Failed, Backoff, None),
            (5_999, Step::Tick, Backoff, None),
            (6_000, Step::Tick, Starting, Some(Command::Start)),
        ];
        // Fails at once each time: waits 2, 4, 8, 16, 32, 60, 60 s.
        let mut t = 6_000;
        for wait in [2, 4, 8, 16, 32, 60, 60] {
            steps.push((t, Step::Started, Starting, None));
            steps.push((t + 10, Step::Failed, Backoff, None));
            steps.push((t + 10 + wait * 1000 - 1, Step::Tick, Backoff, None));
            t += 10 + wait * 1000;
            steps.push((t, Step::Tick, Starting, Some(Command::Start)));
        }
        // Sixty healthy seconds, then a failure waits 1 s again.
        steps.push((t, Step::Started, Starting, None));
        steps.push((t + 1, Step::Frame, Running, None));
        for k in 1..=60 {
            steps.push((t + 1 + k * 1000, Step::Frame, Running, None));
            steps.push((t + 1 + k * 1000, Step::Tick, Running, None));
        }
        t += 61_001;
        steps.push((t, Step::Failed, Backoff, None));
        steps.push((t + 999, Step::Tick, Backoff, None));
        steps.push((t + 1000, Step::Tick, Starting, Some(Command::Start)));
        let s = run(p, &steps);
        assert_eq!(s.restarts(), 9);
        assert_eq!(s.last_error(), Some("connection refused"));
    }

    #[test]
    fn silence_is_a_stall_whether_or_not_frames_ever_came() {
        run(
            RestartPolicy::default(),
            &[
                (0, Step::Started, Starting, None),
                (9_999, Step::Tick, Starting, None),
                (10_000, Step::Tick, Unhealthy, Some(Command::Stop)),
                (10_200, Step::Stopped, Backoff, None),
                (11_200, Step::Tick, Starting, Some(Command::Start)),
                (11_300, Step::Started, Starting, None),
                (11_400, Step::Frame, Running, None),
                (21_399, Step::Tick, Running, None),
                (21_400, Step::Tick, Unhealthy, Some(Command::Stop)),
                (21_500, Step::Stopped, Backoff, None),
            ],
        );
    }

    #[test]
    fn max_restarts_stops_with_the_reason() {
        let p = RestartPolicy {
            max_restarts: Some(1),
            ..RestartPolicy::default()
        };
        let s = run(
            p,
            &[
                (0, Step::Started, Starting, None),
                (10, Step::Failed, Backoff, None),
                (1_010, Step::Tick, Starting, Some(Command::Start)),
                (1_020, Step::Started, Starting, None),
                (1_030, Step::Failed, Stopped, None),
                (99_000, Step::Tick, Stopped, None),
            ],
        );
        let last = s.history().last().unwrap();
        assert!(
            last.reason
                .contains("gave up after 1 restarts: connection refused"),
            "{last:?}"
        );
    }

    #[test]
    fn manual_stop_holds_until_a_manual_start() {
        run(
            RestartPolicy::default(),
            &[
                (0, Step::Started, Starting, None),
                (10, Step::Frame, Running, None),
                (20, Step::StopReq, Stopped, Some(Command::Stop)),
                // The source going down after the stop is no failure.
                (30, Step::Failed, Stopped, None),
                (99_000, Step::Tick, Stopped, None),
                (99_010, Step::StartReq, Starting, Some(Command::Start)),
                (99_020, Step::Started, Starting, None),
                (99_030, Step::Frame, Running, None),
                // A start while running does nothing.
                (99_040, Step::StartReq, Running, None),
                // A stop while in backoff cancels the restart.
                (99_050, Step::Failed, Backoff, None),
                (99_060, Step::StopReq, Stopped, None),
                (200_000, Step::Tick, Stopped, None),
            ],
        );
    }

    #[test]
    fn frames_before_start_or_after_failure_are_ignored() {
        let t0 = Instant::now();
        let (mut s, _) = Supervisor::new(RestartPolicy::default(), t0);
        s.on_frame(t0);
        assert_eq!(s.state(), Starting);
        s.on_started(t0);
        s.on_failed(t0 + S, "x".into());
        s.on_frame(t0 + S);
        assert_eq!(s.state(), Backoff);
        assert_eq!(s.next_wake(), Some(t0 + 2 * S));
        assert!(s.history().count() <= HISTORY);
    }
}
