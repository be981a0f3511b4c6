//! Wiring for `[transcoding]`: the store's scheduler and swap
//! (`reallive_store::transcode`) run jobs through [`ChildRunner`], which
//! starts `reallive-nvr transcode-file` as a child process at the lowest
//! CPU priority (`nice -n 19`) and the idle I/O class (`ionice -c 3`); the
//! child re-encodes with [`transcode_file`], which puts the GStreamer x265
//! transcoder of `reallive-encode`, a [`Reencoder`].
//!
//! A child process, not a thread: its priority covers every thread x265
//! and the decoder start, it cannot take the recorders down with it, and
//! killing it (or the NVR) leaves only a file the store's `garbage` table
//! already marks for deletion. The child exits when its stdin closes, so
//! it never outlives the NVR.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reallive_core::Codec;
use reallive_core::reencode::{Reencoder, SourceInfo};
use reallive_encode::transcode::{H265Settings, H265Transcoder};
use reallive_record::config::TranscodingSection;
use reallive_store::transcode::{
    self, RewriteSummary, TranscodePolicy, TranscodeRunner, Transcoder,
};
use reallive_store::{Store, StoreError};
use tokio::io::AsyncReadExt as _;
use tokio_util::sync::CancellationToken;

/// The new file's bitrate is capped at this share of the source's: x265
/// needs about half the bits of x264 for the same picture, and a file
/// that did not shrink would be re-encoded for nothing.
const MAX_PERCENT: u32 = 60;

/// The hidden subcommand a job runs.
pub const SUBCOMMAND: &str = "transcode-file";

/// Re-encodes the H.264 recording `input` to H.265 in `output`, fragment
/// for fragment (what `reallive-nvr transcode-file` does).
pub fn transcode_file(
    input: &Path,
    output: &Path,
    settings: &H265Settings,
) -> Result<RewriteSummary, StoreError> {
    transcode::rewrite(input, output, |info: &SourceInfo| {
        if info.codec != Codec::H264 {
            return Err(format!("it is {}, not H.264", info.codec).into());
        }
        let settings = H265Settings {
            max_kbps: settings
                .max_kbps
                .or(Some(info.bitrate_kbps.saturating_mul(MAX_PERCENT) / 100)),
            ..settings.clone()
        };
        H265Transcoder::new(&info.config, &settings)
            .map(|t| Box::new(t) as Box<dyn Reencoder>)
            .map_err(Into::into)
    })
}

/// Runs each job as `nice -n 19 ionice -c 3 reallive-nvr transcode-file`.
#[derive(Debug, Clone)]
pub struct ChildRunner {
    program: PathBuf,
    settings: H265Settings,
    nice: Option<PathBuf>,
    ionice: Option<PathBuf>,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

impl ChildRunner {
    /// Runs `program` (this executable, normally) with the hidden
    /// subcommand.
    pub fn new(program: PathBuf, settings: H265Settings) -> Self {
        let (nice, ionice) = (on_path("nice"), on_path("ionice"));
        if nice.is_none() || ionice.is_none() {
            tracing::warn!(
                nice = nice.is_some(),
                ionice = ionice.is_some(),
                "transcoding jobs run without a lower CPU or I/O priority: nice or ionice is missing"
            );
        }
        ChildRunner {
            program,
            settings,
            nice,
            ionice,
        }
    }

    fn command(&self, source: &Path, target: &Path) -> tokio::process::Command {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(n) = &self.nice {
            argv.extend([n.as_os_str().into(), "-n".into(), "19".into()]);
        }
        if let Some(i) = &self.ionice {
            argv.extend([i.as_os_str().into(), "-c".into(), "3".into()]);
        }
        argv.extend([
            self.program.as_os_str().into(),
            SUBCOMMAND.into(),
            "--input".into(),
            source.as_os_str().into(),
            "--output".into(),
            target.as_os_str().into(),
            "--crf".into(),
            self.settings.crf.to_string().into(),
            "--preset".into(),
            self.settings.preset.clone().into(),
        ]);
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

#[async_trait::async_trait]
impl TranscodeRunner for ChildRunner {
    async fn run(
        &self,
        source: &Path,
        target: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        let mut child = self
            .command(source, target)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.program.display()))?;
        // Held open for the child's life: it exits when this closes.
        let _stdin = child.stdin.take();
        let mut stderr = child.stderr.take();
        let read_err = async {
            let mut text = String::new();
            if let Some(e) = stderr.as_mut() {
                // A bounded read: the child prints one line on failure.
                let _ = e.take(64 * 1024).read_to_string(&mut text).await;
            }
            text
        };
        let waited = tokio::select! {
            () = cancel.cancelled() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err("stopped".into());
            }
            r = async { tokio::join!(child.wait(), read_err) } => r,
        };
        match waited {
            (Ok(st), _) if st.success() => Ok(()),
            (Ok(st), err) => {
                let last = err.lines().rev().find(|l| !l.trim().is_empty());
                Err(match last {
                    Some(l) => format!("the re-encoder failed ({st}): {}", l.trim()),
                    None => format!("the re-encoder failed ({st})"),
                })
            }
            (Err(e), _) => Err(format!("waiting for the re-encoder: {e}")),
        }
    }
}

/// Starts the transcoder `section` describes, running jobs through this
/// executable. `None` when it is off.
pub fn start(
    section: &TranscodingSection,
    store: &Store,
    cancel: CancellationToken,
) -> anyhow::Result<Option<(Transcoder, tokio::task::JoinHandle<()>)>> {
    if !section.enabled {
        return Ok(None);
    }
    let settings = H265Settings {
        crf: section.crf,
        preset: section.preset.clone(),
        max_kbps: None,
    };
    settings
        .check()
        .map_err(|e| anyhow::anyhow!("transcoding.{e}"))?;
    let program = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("transcoding: finding this program: {e}"))?;
    let policy = TranscodePolicy {
        older_than: Duration::from_secs_f64(section.older_than_days * 86_400.0),
        window: section.window,
        max_jobs: section.max_jobs as usize,
        poll: Duration::from_secs(u64::from(section.poll_secs)),
    };
    tracing::info!(
        window = %policy.window,
        older_than_days = section.older_than_days,
        max_jobs = policy.max_jobs,
        crf = settings.crf,
        preset = %settings.preset,
        "transcoding old recordings to H.265"
    );
    Ok(Some(transcode::spawn(
        store.clone(),
        policy,
        Arc::new(ChildRunner::new(program, settings)),
        Arc::new(local_minute),
        cancel,
    )))
}

/// Minutes since local midnight (the system time zone; UTC if it is
/// unknown).
fn local_minute() -> u16 {
    let now = jiff::Zoned::now();
    (now.hour() as u16) * 60 + now.minute() as u16
}
