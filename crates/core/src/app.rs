//! What every RealLive program's `main` does the same way (feature `app`):
//! the `-v` flag and logging to stderr, the runtime, and shutdown on SIGINT
//! or SIGTERM.

use tokio_util::sync::CancellationToken;

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

    /// Logs to stderr at `levels[verbose]` (an `EnvFilter` directive; the
    /// last for `-vv` and beyond), unless `RUST_LOG` says otherwise. Stdout
    /// stays free for a program's own output.
    pub fn init(self, levels: [&str; 3]) {
        let default = levels[usize::from(self.verbose.min(2))];
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
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
