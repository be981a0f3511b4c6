//! `reallive-nvr`: records many RTSP cameras under supervision, with live view and playback.
//!
//! Not built yet: this binary exists so the workspace has its final shape.
//! Its CLI offers no options until they work; see ARCHITECTURE.md and the
//! issue "NVR: record many RTSP cameras under supervision".

use std::process::ExitCode;

use clap::Parser;

/// records many RTSP cameras under supervision, with live view and playback.
///
/// Not available in this build yet: it arrives with "NVR: record many RTSP cameras under supervision".
#[derive(Debug, Parser)]
#[command(name = "reallive-nvr", version, about)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!(
        "reallive-nvr: not available in this build yet (arrives with \"NVR: record many RTSP cameras under supervision\")"
    );
    ExitCode::from(2)
}
