//! `reallive-server`: the hub: users, cameras, signaling, the WebRTC relay and the web UI.
//!
//! Not built yet: this binary exists so the workspace has its final shape.
//! Its CLI offers no options until they work; see ARCHITECTURE.md and the
//! issue "Server: accounts, auth and the camera API".

use std::process::ExitCode;

use clap::Parser;

/// the hub: users, cameras, signaling, the WebRTC relay and the web UI.
///
/// Not available in this build yet: it arrives with "Server: accounts, auth and the camera API".
#[derive(Debug, Parser)]
#[command(name = "reallive-server", version, about)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!(
        "reallive-server: not available in this build yet (arrives with \"Server: accounts, auth and the camera API\")"
    );
    ExitCode::from(2)
}
