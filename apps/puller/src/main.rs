//! `reallive-puller`: records a server's cameras locally, with local playback.
//!
//! Not built yet: this binary exists so the workspace has its final shape.
//! Its CLI offers no options until they work; see ARCHITECTURE.md and the
//! issue "Puller: record a server's cameras locally".

use std::process::ExitCode;

use clap::Parser;

/// records a server's cameras locally, with local playback.
///
/// Not available in this build yet: it arrives with "Puller: record a server's cameras locally".
#[derive(Debug, Parser)]
#[command(name = "reallive-puller", version, about)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!(
        "reallive-puller: not available in this build yet (arrives with \"Puller: record a server's cameras locally\")"
    );
    ExitCode::from(2)
}
