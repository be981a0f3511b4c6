//! What every RealLive program's `main` does the same way (feature `app`):
//! the `-v` flag and logging (to stderr, and to the process's
//! [`LogRing`] for `/api/logs`), the runtime, and shutdown on SIGINT or
//! SIGTERM.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::logring::{LogLevel, LogRing, camera_of};

/// `-v`/`-vv`, flattened into a program's clap arguments.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct LogArgs {
    /// More logging: -v, then -vv (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl LogArgs {
    /// The levels of a server: info, then debug, then trace.
    pub const SERVER: [&'static str; 3] = ["info", "debug", "trace"];

    /// Logs to stderr and to [`LogRing::global`] at `levels[verbose]` (an
    /// `EnvFilter` directive; the last for `-vv` and beyond), unless
    /// `RUST_LOG` says otherwise. Stdout stays free for a program's own
    /// output.
    pub fn init(self, levels: [&str; 3]) {
        let default = levels[usize::from(self.verbose.min(2))];
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        use tracing_subscriber::util::SubscriberInitExt;
        subscriber(filter, std::io::stderr, Arc::clone(LogRing::global())).init();
    }
}

/// What [`LogArgs::init`] installs: `filter` over a text layer writing to
/// `writer` and a [`RingLayer`] feeding `ring`. Both layers see the same
/// events, so the ring holds what stderr shows.
pub fn subscriber<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
    ring: Arc<LogRing>,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(writer))
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
    token.cancel();
}

/// A program's `main` after its flags: runs `main` on a multi-threaded
/// runtime with a shutdown token that SIGINT and SIGTERM cancel. An error
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

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
        let ring = Arc::new(LogRing::new(RING_LINES));
        let text = Captured::default();
        let out = text.clone();
        let sub = super::subscriber(
            tracing_subscriber::EnvFilter::new("trace"),
            move || out.clone(),
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
}
