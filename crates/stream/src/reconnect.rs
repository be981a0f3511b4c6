//! The one reconnect driver for publishing and subscribing: connect, run
//! until the connection ends, wait (with [`Backoff`]), connect again, until
//! stopped; and the [`ReconnectingSession`] handle that watches and stops it.
//!
//! What one connection does is a [`Connect`]; the driver owns the loop, the
//! delays and the state reported on the watch channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use reallive_core::Backoff;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::signal::Ended;
use crate::{Session, StreamError};

/// What a publish or subscribe session is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// Setting up signaling and WebRTC.
    Connecting,
    /// Media flows: frames go out (publishing) or arrive (subscribing).
    Live,
    /// Waiting before the next attempt; the reason is in the string.
    Retrying(String),
    /// The server refused the credential (a stream key, a token or grant);
    /// retrying slowly, at the backoff's ceiling. The server's reason is in
    /// the string.
    Refused(String),
    /// Stopped, for good.
    Stopped,
    /// Ended for good by something retrying cannot fix: the server's
    /// certificate is not trusted, or a clear-text URL was redirected to
    /// `https://`. The reason, one line, is in the string.
    Failed(String),
}

impl SessionState {
    /// Whether no state follows this one.
    pub fn is_final(&self) -> bool {
        matches!(self, SessionState::Stopped | SessionState::Failed(_))
    }
}

/// How the driver waits between attempts, and what it logs.
#[derive(Debug)]
pub(crate) struct Policy {
    backoff: Backoff,
    /// The slow retry after a refusal, and how long a connection must have
    /// lasted to count as healthy (the backoff starts over after it).
    ceiling: Duration,
    /// What a connection does, for logs: "publishing", "receiving".
    doing: &'static str,
    /// Whom the server refuses, for logs: "this viewer".
    who: &'static str,
}

impl Policy {
    /// Delays from `floor` doubling to `ceiling`, jittered by ±20 %.
    pub(crate) fn new(
        floor: Duration,
        ceiling: Duration,
        doing: &'static str,
        who: &'static str,
    ) -> Self {
        Policy {
            backoff: Backoff::new(floor, ceiling),
            ceiling,
            doing,
            who,
        }
    }
}

/// One connection, from signaling until it ends. The driver calls
/// [`connect`](Connect::connect) again after each end but
/// [`Ended::Stopped`].
pub(crate) trait Connect: Send + 'static {
    /// Connects and runs until the connection ends. Reports
    /// [`Link::live`] once media flows, and returns [`Ended::Stopped`] soon
    /// after [`Link::stop`] fires.
    fn connect<'a>(&'a mut self, link: &'a Link) -> BoxFuture<'a, Ended>;

    /// Runs while the driver waits for the next attempt, and returns when
    /// the session should end instead (what it publishes has ended).
    /// Cancel-safe. By default never returns.
    fn idle(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
}

/// What a [`Connect`] shares with the driver and the session handle.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    state: watch::Sender<SessionState>,
    stop: CancellationToken,
    frames: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl Link {
    /// Media flows on this connection.
    pub(crate) fn live(&self) {
        self.set(SessionState::Live);
    }

    /// Reports `state`, waking watchers only if it differs.
    fn set(&self, state: SessionState) {
        self.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    /// Counts one frame sent or delivered; returns how many went before.
    pub(crate) fn count_frame(&self) -> u64 {
        self.frames.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts one connection made (set up as far as media).
    pub(crate) fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Fires when the session is asked to stop.
    pub(crate) fn stop(&self) -> &CancellationToken {
        &self.stop
    }
}

/// A running publish or subscribe session, reconnecting on its own;
/// dropping it ends the session.
#[derive(Debug)]
pub struct ReconnectingSession {
    stop: CancellationToken,
    state: watch::Receiver<SessionState>,
    frames: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl ReconnectingSession {
    /// The current state, and changes to it.
    pub fn state(&self) -> watch::Receiver<SessionState> {
        self.state.clone()
    }

    /// Ends the session now.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Frames moved over all connections: sent by a publisher, delivered by
    /// a subscriber.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Connections set up as far as media (1 + reconnects).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for ReconnectingSession {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Session for ReconnectingSession {
    fn state(&self) -> watch::Receiver<SessionState> {
        ReconnectingSession::state(self)
    }

    fn stop(&self) {
        ReconnectingSession::stop(self);
    }

    fn frames(&self) -> u64 {
        ReconnectingSession::frames(self)
    }
}

/// Spawns the driver for `conn` on the current tokio runtime, in `span`.
pub(crate) fn spawn(
    conn: impl Connect,
    policy: Policy,
    span: tracing::Span,
) -> Result<ReconnectingSession, StreamError> {
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|_| StreamError::Unavailable("no tokio runtime".into()))?;
    let (link, session) = link();
    rt.spawn(drive(conn, policy, link).instrument(span));
    Ok(session)
}

/// A linked pair: the driver's side and the handle's.
fn link() -> (Link, ReconnectingSession) {
    let (state_tx, state) = watch::channel(SessionState::Connecting);
    let link = Link {
        state: state_tx,
        stop: CancellationToken::new(),
        frames: Arc::new(AtomicU64::new(0)),
        connections: Arc::new(AtomicU64::new(0)),
    };
    let session = ReconnectingSession {
        stop: link.stop.clone(),
        state,
        frames: link.frames.clone(),
        connections: link.connections.clone(),
    };
    (link, session)
}

/// Connects, and connects again, until stopped.
async fn drive(mut conn: impl Connect, mut policy: Policy, link: Link) {
    loop {
        link.set(SessionState::Connecting);
        let started = tokio::time::Instant::now();
        let ended = conn.connect(&link).await;
        if started.elapsed() >= policy.ceiling {
            policy.backoff.reset();
        }
        let wait = match ended {
            Ended::Stopped => break,
            Ended::Fatal(why) => {
                link.set(SessionState::Failed(why));
                return;
            }
            Ended::Refused(why) => {
                tracing::error!(
                    "the server refused {} ({why}); retrying every {} s",
                    policy.who,
                    policy.ceiling.as_secs()
                );
                link.set(SessionState::Refused(why));
                policy.backoff.max()
            }
            Ended::Failed(why) => {
                let wait = policy.backoff.next_delay();
                tracing::warn!(
                    "{} stopped: {why}; retrying in {:.1} s",
                    policy.doing,
                    wait.as_secs_f64()
                );
                link.set(SessionState::Retrying(why));
                wait
            }
        };
        tokio::select! {
            () = link.stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            () = conn.idle() => break,
        }
    }
    link.set(SessionState::Stopped);
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;

    /// How long every scripted attempt spends setting up before it ends or
    /// goes live: the state watcher runs (and sees `Connecting`) meanwhile.
    const SETUP: Duration = Duration::from_millis(500);

    /// Connections that end as scripted: `(live for, how it ends)`, with
    /// `live for` zero for an attempt that never got media. Records when
    /// each attempt started and ended.
    struct Scripted {
        outcomes: VecDeque<(Duration, Ended)>,
        spans: Arc<Mutex<Vec<(Instant, Instant)>>>,
    }

    impl Connect for Scripted {
        fn connect<'a>(&'a mut self, link: &'a Link) -> BoxFuture<'a, Ended> {
            Box::pin(async move {
                let start = Instant::now();
                let next = self.outcomes.pop_front();
                let ended = tokio::select! {
                    () = link.stop().cancelled() => Ended::Stopped,
                    ended = async {
                        tokio::time::sleep(SETUP).await;
                        let Some((live_for, ended)) = next else {
                            // Out of script: stay connected until stopped.
                            link.live();
                            link.count_connection();
                            return std::future::pending().await;
                        };
                        if live_for > Duration::ZERO {
                            link.live();
                            link.count_connection();
                            tokio::time::sleep(live_for).await;
                        }
                        ended
                    } => ended,
                };
                self.spans.lock().unwrap().push((start, Instant::now()));
                ended
            })
        }
    }

    fn failed(why: &str) -> Ended {
        Ended::Failed(why.into())
    }

    fn exact(floor_secs: u64, ceiling_secs: u64) -> Policy {
        let s = Duration::from_secs;
        Policy {
            backoff: Backoff::exact(s(floor_secs), s(ceiling_secs)),
            ceiling: s(ceiling_secs),
            doing: "testing",
            who: "this test",
        }
    }

    /// Every state the session reports, until `Stopped`. Each scripted
    /// step takes (paused) time, so the watcher runs between changes and
    /// sees every one.
    async fn states(mut rx: watch::Receiver<SessionState>) -> Vec<SessionState> {
        let mut seen = vec![rx.borrow_and_update().clone()];
        while rx.changed().await.is_ok() {
            let s = rx.borrow_and_update().clone();
            let stopped = s.is_final();
            seen.push(s);
            if stopped {
                break;
            }
        }
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn retries_double_to_the_ceiling_refusals_wait_the_ceiling_and_health_resets() {
        let s = Duration::from_secs;
        let script = VecDeque::from([
            (s(0), failed("no route")),
            (s(0), failed("no route")),
            (s(0), failed("no route")),
            (s(0), Ended::Refused("bad key".into())),
            (s(0), failed("no route")),
            (s(0), failed("no route")),
            // Live for the ceiling: healthy, so the backoff starts over.
            (s(10), failed("lost")),
            (s(0), failed("no route")),
        ]);
        let spans = Arc::new(Mutex::new(Vec::new()));
        let conn = Scripted {
            outcomes: script,
            spans: spans.clone(),
        };
        let (link, session) = link();
        let watched = tokio::spawn(states(session.state()));
        let driver = tokio::spawn(drive(conn, exact(1, 10), link));
        // Past the whole script: it ends connected.
        tokio::time::sleep(s(100)).await;
        assert_eq!(*session.state().borrow(), SessionState::Live);
        assert_eq!(session.connections(), 2);
        session.stop();
        driver.await.unwrap();

        let spans = spans.lock().unwrap().clone();
        let delays_ms: Vec<u128> = spans
            .windows(2)
            .map(|w| (w[1].0 - w[0].1).as_millis())
            .collect();
        // 1, 2, 4 s; the refusal waits the ceiling and leaves the doubling
        // where it was (8, then 10 capped); after the healthy connection,
        // 1 and 2 s again.
        assert_eq!(
            delays_ms,
            [1000, 2000, 4000, 10_000, 8000, 10_000, 1000, 2000]
        );
        use SessionState::*;
        let retrying = |w: &str| Retrying(w.into());
        assert_eq!(
            watched.await.unwrap(),
            [
                Connecting,
                retrying("no route"),
                Connecting,
                retrying("no route"),
                Connecting,
                retrying("no route"),
                Connecting,
                Refused("bad key".into()),
                Connecting,
                retrying("no route"),
                Connecting,
                retrying("no route"),
                Connecting,
                Live,
                retrying("lost"),
                Connecting,
                retrying("no route"),
                Connecting,
                Live,
                Stopped,
            ]
        );
    }

    /// An untrusted certificate is not retried: the session ends at once
    /// in `Failed`, with the reason, and no `Stopped` follows.
    #[tokio::test(start_paused = true)]
    async fn a_fatal_end_is_final_and_not_retried() {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let conn = Scripted {
            outcomes: VecDeque::from([
                (Duration::ZERO, failed("no route")),
                (
                    Duration::ZERO,
                    Ended::Fatal("certificate not trusted".into()),
                ),
                (Duration::ZERO, failed("never reached")),
            ]),
            spans: spans.clone(),
        };
        let (link, session) = link();
        let watched = tokio::spawn(states(session.state()));
        tokio::spawn(drive(conn, exact(1, 10), link)).await.unwrap();
        use SessionState::*;
        assert_eq!(
            watched.await.unwrap(),
            [
                Connecting,
                Retrying("no route".into()),
                Connecting,
                Failed("certificate not trusted".into()),
            ]
        );
        assert_eq!(spans.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_handle_ends_a_wait_at_once() {
        let conn = Scripted {
            outcomes: VecDeque::from([(Duration::ZERO, failed("down"))]),
            spans: Arc::default(),
        };
        let (link, session) = link();
        let watched = tokio::spawn(states(session.state()));
        let driver = tokio::spawn(drive(conn, exact(60, 60), link));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t = Instant::now();
        drop(session);
        driver.await.unwrap();
        // Not after the 60 s wait.
        assert_eq!(t.elapsed(), Duration::ZERO);
        assert_eq!(
            watched.await.unwrap(),
            [
                SessionState::Connecting,
                SessionState::Retrying("down".into()),
                SessionState::Stopped
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn close_returns_once_the_session_said_goodbye() {
        let conn = Scripted {
            outcomes: VecDeque::new(),
            spans: Arc::default(),
        };
        let (link, session) = link();
        let driver = tokio::spawn(drive(conn, exact(1, 10), link));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let session: Box<dyn Session> = Box::new(session);
        assert_eq!(*session.state().borrow(), SessionState::Live);
        let t = Instant::now();
        session.close(Duration::from_secs(2)).await;
        assert_eq!(*session.state().borrow(), SessionState::Stopped);
        assert!(t.elapsed() < Duration::from_secs(2));
        driver.await.unwrap();
    }

    /// A connector whose source ends 3 s into the wait.
    struct SourceEnds;

    impl Connect for SourceEnds {
        fn connect<'a>(&'a mut self, _link: &'a Link) -> BoxFuture<'a, Ended> {
            Box::pin(async { Ended::Failed("down".into()) })
        }

        fn idle(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(tokio::time::sleep(Duration::from_secs(3)))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_that_ends_while_waiting_stops_the_session() {
        let s = Duration::from_secs;
        // Jittered: the first wait is 24 to 36 s, far beyond the 3 s.
        let policy = Policy::new(s(30), s(60), "testing", "this test");
        let (link, session) = link();
        let t = Instant::now();
        drive(SourceEnds, policy, link).await;
        assert_eq!(t.elapsed(), s(3));
        assert_eq!(*session.state().borrow(), SessionState::Stopped);
    }
}
