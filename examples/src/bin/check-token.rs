//! Issue a session token, verify it, and check a camera grant, with no
//! server: the two questions `reallive-server` asks on every request.
//!
//! A token only proves who the caller is; what they may do with a camera
//! comes from their grant in the accounts database, here `--grant`.
//!
//! `check-token --grant playback --need view` prints `allowed: ...` and
//! exits 0; a grant too weak, or `--tamper`, prints `refused: ...` and
//! exits 1.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use reallive_auth::{Claims, Permission, Role, TokenKeys, random_bytes};

#[derive(Parser)]
struct Cli {
    /// What the user was granted on the camera: view, playback or control.
    #[arg(long)]
    grant: Permission,
    /// What the request needs.
    #[arg(long)]
    need: Permission,
    /// Change one character of the token's payload before verifying it.
    #[arg(long)]
    tamper: bool,
}

#[allow(clippy::print_stdout)] // The answer is this program's output.
fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let keys = TokenKeys::new(&random_bytes::<32>())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let claims = Claims {
        sub: 7,
        role: Role::Viewer,
        ver: 0,
        iat: now,
        exp: now + 3600,
        jti: Some(Claims::new_jti()),
    };
    let mut token = keys.issue(&claims);
    if cli.tamper {
        // The payload sits between the two dots; flip its first character.
        let at = token.find('.').map_or(0, |i| i + 1);
        let flipped = if token[at..].starts_with('e') {
            "f"
        } else {
            "e"
        };
        token.replace_range(at..at + 1, flipped);
    }
    let verdict = match keys.verify(&token, now) {
        Err(e) => Err(format!("token: {e}")),
        Ok(c) if cli.grant.includes(cli.need) => Ok(format!(
            "user {} ({}) holds {} on the camera; {} needed",
            c.sub, c.role, cli.grant, cli.need
        )),
        Ok(c) => Err(format!(
            "user {} holds {}, but {} is needed",
            c.sub, cli.grant, cli.need
        )),
    };
    Ok(match verdict {
        Ok(why) => {
            println!("allowed: {why}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("refused: {why}");
            ExitCode::FAILURE
        }
    })
}
