//! What every RealLive program's `main` does the same way (feature `app`):
//! the `-v` and `--log-format` flags and logging (to stderr, and to the
//! process's [`LogRing`] for `/api/logs`), the runtime, shutdown on SIGINT
//! or SIGTERM, and systemd's readiness and watchdog notifications
//! ([`systemd`]).

use std::io::IsTerminal;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::LogFormat;
use crate::logjson::JsonLayer;
use crate::logring::{LogLevel, LogRing, camera_of};

/// `-v`/`-vv` and `--log-format`, flattened into a program's clap
/// arguments.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct LogArgs {
    /// More logging: -v, then -vv (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log lines as text (coloured only on a terminal) or as json (one
    /// object per line, for a log collector) [default: a config file's
    /// log_format, else text].
    #[arg(long, env = "REALLIVE_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
}

impl LogArgs {
    /// The levels of a server: info, then debug, then trace.
    pub const SERVER: [&'static str; 3] = ["info", "debug", "trace"];

    /// Logs to stderr and to [`LogRing::global`] at `levels[verbose]` (an
    /// `EnvFilter` directive; the last for `-vv` and beyond), unless
    /// `RUST_LOG` says otherwise. Stdout stays free for a program's own
    /// output.
    pub fn init(self, levels: [&str; 3]) {
        self.init_with(levels, None);
    }

    /// [`LogArgs::init`], in `--log-format` if given, else in `configured`
    /// (a config file's `log_format`), else as text. Text is coloured only
    /// when stderr is a terminal and `NO_COLOR` is unset.
    pub fn init_with(self, levels: [&str; 3], configured: Option<LogFormat>) {
        let default = levels[usize::from(self.verbose.min(2))];
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        let format = self.log_format.or(configured).unwrap_or_default();
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        use tracing_subscriber::util::SubscriberInitExt;
        let out = Output {
            format,
            colour,
            writer: std::io::stderr,
        };
        subscriber(filter, out, Arc::clone(LogRing::global())).init();
    }
}

/// Where and how [`subscriber`] writes the lines it shows.
#[derive(Debug, Clone)]
pub struct Output<W> {
    /// Text or JSON.
    pub format: LogFormat,
    /// Whether text may carry ANSI colour codes.
    pub colour: bool,
    /// Where lines go (stderr for a program).
    pub writer: W,
}

/// What [`LogArgs::init`] installs: `filter` over a text or JSON layer
/// writing to `out` and a [`RingLayer`] feeding `ring`. Both layers see the
/// same events, so the ring holds what stderr shows.
pub fn subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    out: Output<W>,
    ring: Arc<LogRing>,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    let (text, json) = match out.format {
        LogFormat::Text => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(out.colour)
                    .with_writer(out.writer),
            ),
            None,
        ),
        LogFormat::Json => (None, Some(JsonLayer::new(out.writer))),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(RingLayer::new(ring))
}

/// A `tracing` layer that formats each event into a [`LogRing`] line: its
/// level, target, camera (a `camera` field of the event or of its nearest
/// span that has one) and message with the other fields as ` k=v`, as
/// the text layer writes them.
#[derive(Debug, Clone)]
pub struct RingLayer {
    ring: Arc<LogRing>,
}

impl RingLayer {
    /// A layer feeding `ring`.
    pub fn new(ring: Arc<LogRing>) -> Self {
        RingLayer { ring }
    }
}

/// A span's camera, kept in its extensions.
struct SpanCamera(i64);

impl<S> tracing_subscriber::Layer<S> for RingLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut v = CameraField(None);
        attrs.record(&mut v);
        if let (Some(c), Some(span)) = (v.0, ctx.span(id)) {
            span.extensions_mut().replace(SpanCamera(c));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut v = CameraField(None);
        values.record(&mut v);
        if let (Some(c), Some(span)) = (v.0, ctx.span(id)) {
            span.extensions_mut().replace(SpanCamera(c));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut v = EventFields::default();
        event.record(&mut v);
        let camera = v.camera.or_else(|| {
            ctx.event_scope(event)?
                .find_map(|span| span.extensions().get::<SpanCamera>().map(|c| c.0))
        });
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        };
        let mut message = v.message;
        if !v.fields.is_empty() {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(&v.fields);
        }
        self.ring.push(
            crate::time::UtcNs::now().millis(),
            level,
            meta.target(),
            camera,
            message,
        );
    }
}

/// Finds a `camera` field.
struct CameraField(Option<i64>);

impl tracing::field::Visit for CameraField {
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "camera" {
            self.0 = Some(value);
        }
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "camera" {
            self.0 = i64::try_from(value).ok();
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "camera" {
            self.0 = camera_of(value);
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "camera" {
            self.0 = camera_of(&format!("{value:?}"));
        }
    }
}

/// An event's message, its other fields as `k=v` (strings quoted, as the
/// text layer writes them), and its camera.
#[derive(Default)]
struct EventFields {
    message: String,
    fields: String,
    camera: Option<i64>,
}

impl EventFields {
    fn field(&mut self, name: &str, value: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        // `log` records bridged by tracing-log carry their origin as
        // `log.*` fields; the text layer hides them too.
        if name.starts_with("log.") {
            return;
        }
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let _ = write!(self.fields, "{name}={value}");
        // Stop growing far past what the ring keeps.
        if self.fields.len() > 2 * crate::logring::MAX_LINE_BYTES {
            self.fields.truncate(floor_char_boundary(
                &self.fields,
                2 * crate::logring::MAX_LINE_BYTES,
            ));
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl tracing::field::Visit for EventFields {
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "camera" {
            self.camera = Some(value);
        }
        self.field(field.name(), format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "camera" {
            self.camera = i64::try_from(value).ok();
        }
        self.field(field.name(), format_args!("{value}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
            return;
        }
        if field.name() == "camera" {
            self.camera = camera_of(value);
        }
        self.field(field.name(), format_args!("{value:?}"));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
            return;
        }
        if field.name() == "camera" {
            self.camera = camera_of(&format!("{value:?}"));
        }
        self.field(field.name(), format_args!("{value:?}"));
    }
}

/// Warns for each `(flag, instead)` given on this process's command line
/// (`--password` or `--password=…`): a secret there is in `ps` for every
/// local user to read. Call after logging starts. The flag still works.
pub fn warn_secret_flags(flags: &[(&str, &str)]) {
    for flag in secret_flags_used(std::env::args_os().skip(1), flags) {
        let instead = flags
            .iter()
            .find(|(f, _)| *f == flag)
            .map_or("", |(_, i)| *i);
        tracing::warn!(
            "{flag} puts a secret on the command line, where any local user can read it; \
             use {instead} (or the environment) instead"
        );
    }
}

/// The `flags` that `args` uses, each once, in `flags`' order.
fn secret_flags_used<'a>(
    args: impl Iterator<Item = std::ffi::OsString>,
    flags: &[(&'a str, &str)],
) -> Vec<&'a str> {
    let args: Vec<std::ffi::OsString> = args.collect();
    flags
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| {
            args.iter().any(|a| {
                let a = a.to_string_lossy();
                a == *f || a.strip_prefix(f).is_some_and(|rest| rest.starts_with('='))
            })
        })
        .collect()
}

/// Cancels `token` at the first SIGINT or SIGTERM; spawn it on the
/// program's runtime. Without a SIGTERM handler (it could not be
/// installed) Ctrl-C still works.
pub async fn cancel_on_signals(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let ctrl_c = tokio::signal::ctrl_c();
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("no SIGTERM handler ({e}); stop with Ctrl-C");
            let _ = ctrl_c.await;
        }
    }
    tracing::info!("shutting down");
    systemd::stopping();
    token.cancel();
}

/// A program's `main` after its flags: runs `main` on a multi-threaded
/// runtime with a shutdown token that SIGINT and SIGTERM cancel, pinging
/// systemd's watchdog when a unit asks for one ([`systemd::keep_alive`]). An error
/// goes to stderr as one line, `{prefix}: {error:#}` (with its causes;
/// the prefix is the program's name, and whatever its documented error
/// lines start with, such as `reallive-pusher: error`), and exits 1.
pub fn run_until_signalled<F, Fut, E>(prefix: &str, main: F) -> std::process::ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{prefix}: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signals(shutdown.clone()));
        if let Some(interval) = systemd::watchdog_interval() {
            tokio::spawn(systemd::keep_alive(interval, shutdown.clone()));
        }
        main(shutdown).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{prefix}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// systemd's service notifications, for `Type=notify` units: readiness,
/// status, stopping, and the watchdog. Each is a no-op outside systemd
/// (no `NOTIFY_SOCKET`), and a failure to notify is logged, never fatal.
pub mod systemd {
    use std::time::Duration;

    use sd_notify::NotifyState;
    use tokio_util::sync::CancellationToken;

    fn send(states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!("could not notify systemd ({e})");
        }
    }

    /// `READY=1`: the program serves (it listens, or it captures).
    /// `status` is what `systemctl status` shows.
    pub fn ready(status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `STATUS=…`: what the program is doing now.
    pub fn status(status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    /// `STOPPING=1`: shutting down on purpose.
    pub fn stopping() {
        send(&[NotifyState::Stopping]);
    }

    /// The watchdog interval systemd expects pings within
    /// (`WatchdogSec=`), when it watches this process.
    pub fn watchdog_interval() -> Option<Duration> {
        interval_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        )
    }

    /// `WATCHDOG_USEC` when it is for `pid` (`WATCHDOG_PID` unset, or
    /// ours: a child inherits the variables but is not watched).
    pub(crate) fn interval_from(
        usec: Option<&str>,
        pid: Option<&str>,
        me: u32,
    ) -> Option<Duration> {
        if pid.is_some_and(|p| p.parse::<u32>().ok() != Some(me)) {
            return None;
        }
        let usec: u64 = usec?.parse().ok()?;
        (usec > 0).then(|| Duration::from_micros(usec))
    }

    /// Pings `WATCHDOG=1` at half of `interval` until `shutdown`. It runs
    /// as a task on the program's runtime, beside the supervisors: when
    /// the runtime wedges (every worker blocked), the pings stop and
    /// systemd restarts the program.
    pub async fn keep_alive(interval: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(interval / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => send(&[NotifyState::Watchdog]),
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use crate::LogFormat;
    use crate::logring::{LogFilter, LogLevel, LogLine, LogRing, RING_LINES};

    /// What the text layer wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` under the subscriber `LogArgs::init` installs (at `trace`),
    /// over a fresh ring; returns the ring's lines and the text output.
    fn logged(f: impl FnOnce()) -> (Vec<Arc<LogLine>>, String) {
        logged_as(LogFormat::Text, f)
    }

    /// [`logged`] in `format`, with colour allowed.
    fn logged_as(format: LogFormat, f: impl FnOnce()) -> (Vec<Arc<LogLine>>, String) {
        let ring = Arc::new(LogRing::new(RING_LINES));
        let text = Captured::default();
        let out = text.clone();
        let sub = super::subscriber(
            tracing_subscriber::EnvFilter::new("trace"),
            super::Output {
                format,
                colour: false,
                writer: move || out.clone(),
            },
            Arc::clone(&ring),
        );
        tracing::subscriber::with_default(sub, f);
        let all = LogFilter {
            min_level: LogLevel::Trace,
            camera: None,
        };
        let text = String::from_utf8(text.0.lock().unwrap().clone()).unwrap();
        (ring.lines(&all, None), text)
    }

    #[test]
    fn a_camera_password_never_reaches_the_ring() {
        let (lines, text) = logged(|| {
            let url: crate::RtspUrl = "rtsp://admin:s3cretPw@192.0.2.10:554/stream1"
                .parse()
                .unwrap();
            tracing::info!(camera = 3, url = %url, "connecting");
            tracing::warn!(camera = "camera-3", ?url, "retrying");
            // A library error that echoes the real URL goes through the redactor.
            let gst = format!("could not open resource {}: 401", url.expose());
            tracing::error!("source failed: {}", crate::redact(&gst, &url.secrets()));
            tracing::error!(error = %crate::redact(&gst, &url.secrets()), "source failed");
        });
        assert_eq!(lines.len(), 4);
        for l in &lines {
            assert!(!l.message.contains("s3cretPw"), "{l:?}");
            assert!(l.message.contains("192.0.2.10"), "{l:?}");
        }
        assert!(!text.contains("s3cretPw"));
        assert_eq!(lines[0].camera, Some(3));
        assert_eq!(lines[1].camera, Some(3));
        assert_eq!(lines[1].level, LogLevel::Warn);
    }

    #[test]
    fn lines_carry_level_target_fields_and_the_span_camera() {
        let (lines, text) = logged(|| {
            let span = tracing::info_span!("capture", camera = 7);
            let entered = span.enter();
            tracing::debug!(frames = 12u64, name = "front", ok = true, "stalled");
            let inner = tracing::info_span!("inner", camera = "camera-9");
            inner.in_scope(|| tracing::trace!("inside"));
            drop(entered);
            tracing::info!(target: "reallive::test", camera = "front door", "by name");
        });
        let l = &lines[0];
        assert_eq!(l.level, LogLevel::Debug);
        assert_eq!(l.target, module_path!());
        assert_eq!(l.camera, Some(7), "from the span");
        assert_eq!(l.message, r#"stalled frames=12 name="front" ok=true"#);
        assert_eq!(lines[1].camera, Some(9), "the nearest span wins");
        assert_eq!(lines[2].target, "reallive::test");
        assert_eq!(lines[2].camera, None, "a name is not an id");
        assert!(text.contains("stalled") && text.contains("inside"));
        assert!(lines.windows(2).all(|w| w[0].seq < w[1].seq));
    }

    #[test]
    fn the_ring_keeps_the_newest_2000_of_2100_events() {
        let (lines, _) = logged(|| {
            for i in 0..2_100 {
                tracing::info!(i, "event");
            }
        });
        assert_eq!(lines.len(), 2_000);
        assert_eq!(lines[0].message, "event i=100");
        assert_eq!(lines[1_999].message, "event i=2099");
    }

    #[test]
    fn secret_flags_are_found_in_both_spellings() {
        let flags = [
            ("--password", "--password-file"),
            ("--token", "--token-file"),
        ];
        let used = |args: &[&str]| {
            super::secret_flags_used(args.iter().map(std::ffi::OsString::from), &flags)
        };
        assert_eq!(used(&["--password", "x"]), ["--password"]);
        assert_eq!(
            used(&["--token=abc", "--password=y"]),
            ["--password", "--token"]
        );
        assert!(used(&["--password-file", "/run/pw", "--tokens", "--x=--password"]).is_empty());
    }

    #[test]
    fn json_lines_carry_span_and_event_fields_and_no_secret() {
        let (lines, out) = logged_as(LogFormat::Json, || {
            let url: crate::RtspUrl = "rtsp://admin:s3cretPw@192.0.2.10:554/stream1"
                .parse()
                .unwrap();
            let span = tracing::info_span!("capture", camera = 7, peer = "p-12");
            let _e = span.enter();
            let request = tracing::info_span!("request", request = "r-9", camera = 8);
            request.in_scope(|| {
                tracing::warn!(frames = 12u64, ok = true, url = %url, "stalled \"now\"");
            });
            tracing::info!(ratio = 0.5, "outer");
        });
        let rows: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(rows.len(), 2, "{out}");
        let r = &rows[0];
        assert_eq!(r["level"], "WARN");
        assert_eq!(r["target"], module_path!());
        assert_eq!(r["message"], "stalled \"now\"");
        assert_eq!(r["camera"], 8, "the nearest span wins");
        assert_eq!(r["peer"], "p-12", "outer spans' fields too");
        assert_eq!(r["request"], "r-9");
        assert_eq!(r["span"], "request");
        assert_eq!(r["frames"], 12);
        assert_eq!(r["ok"], true);
        let ts = r["timestamp"].as_str().unwrap();
        assert!(crate::time::parse_rfc3339_secs(ts).is_some(), "{ts}");
        assert_eq!(rows[1]["camera"], 7);
        assert_eq!(rows[1]["ratio"], 0.5);
        assert!(!out.contains("s3cretPw"), "{out}");
        assert!(out.contains("192.0.2.10"));
        // The ring (/api/logs) is the same in either format.
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].camera, Some(8));
    }

    #[test]
    fn text_without_colour_has_no_escape_codes() {
        let (_, out) = logged(|| {
            let span = tracing::info_span!("capture", camera = 7);
            span.in_scope(|| tracing::error!(frames = 3u64, "gone"));
        });
        assert!(out.contains("gone") && out.contains("camera=7"), "{out}");
        assert!(!out.contains('\x1b'), "{out:?}");
    }

    #[test]
    fn the_watchdog_interval_is_ours_only() {
        use super::systemd::interval_from;
        let s = std::time::Duration::from_secs(30);
        assert_eq!(interval_from(Some("30000000"), None, 7), Some(s));
        assert_eq!(interval_from(Some("30000000"), Some("7"), 7), Some(s));
        assert_eq!(
            interval_from(Some("30000000"), Some("8"), 7),
            None,
            "a parent's"
        );
        assert_eq!(interval_from(Some("0"), None, 7), None);
        assert_eq!(interval_from(Some("soon"), None, 7), None);
        assert_eq!(interval_from(None, None, 7), None);
    }
}
