//! `reallive-nvr`: records many RTSP cameras under supervision, with the
//! server's API, relay and UI beside them. All the work is in
//! `reallive_nvr::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reallive_core::app::{LogArgs, systemd};
use reallive_node::NodeFlags;
use reallive_nvr::{NvrConfig, run};
use reallive_record::config::NvrConfigFile;

// As in reallive-server: the relay allocates per packet.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records every camera in the config (RTSP, no transcoding) under
/// supervision, and serves the API, live view, playback and export.
///
/// Precedence: flags, then REALLIVE_* environment variables, then the
/// config file, then defaults. Without a config it starts empty.
#[derive(Debug, Parser)]
#[command(name = "reallive-nvr", version, about, long_about = None)]
struct Cli {
    /// TOML config: [server], [storage] and [[cameras]].
    #[arg(long, env = "REALLIVE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Validate the config, print every error with its line and key, and
    /// exit (0 when it is valid; without --config, the built-in defaults).
    #[arg(long)]
    check: bool,

    #[command(flatten)]
    node: NodeFlags,

    #[command(flatten)]
    log: LogArgs,

    #[command(subcommand)]
    job: Option<Job>,
}

/// Work the NVR hands to a child process of its own.
#[derive(Debug, clap::Subcommand)]
enum Job {
    /// Re-encode one H.264 recording file to H.265, fragment for fragment
    /// (run by `[transcoding]`; exits when stdin closes).
    #[command(name = "transcode-file", hide = true)]
    TranscodeFile {
        /// The recording.
        #[arg(long)]
        input: PathBuf,
        /// The new file; must not exist.
        #[arg(long)]
        output: PathBuf,
        /// x265 quality, 0 to 51.
        #[arg(long, default_value_t = 28)]
        crf: u8,
        /// x265 speed preset.
        #[arg(long, default_value = "fast")]
        preset: String,
    },
}

/// `transcode-file`: one job, one line on stderr if it fails.
fn transcode_file(
    input: &std::path::Path,
    output: &std::path::Path,
    crf: u8,
    preset: String,
) -> ExitCode {
    // The NVR holds our stdin: when it goes, so do we.
    let watch = std::thread::Builder::new()
        .name("stdin-eof".into())
        .spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            eprintln!("reallive-nvr transcode-file: the NVR went away; stopping");
            std::process::exit(3);
        });
    if let Err(e) = watch {
        eprintln!("reallive-nvr transcode-file: stdin watch thread: {e}");
        return ExitCode::FAILURE;
    }
    let settings = reallive_encode::transcode::H265Settings {
        crf,
        preset,
        max_kbps: None,
    };
    let make = reallive_encode::transcode::h264_to_h265(&settings);
    match reallive_store::transcode::rewrite(input, output, make) {
        Ok(s) => {
            eprintln!(
                "reallive-nvr transcode-file: {} frames in {} fragments, {} -> {} bytes",
                s.frames, s.fragments, s.source_bytes, s.bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reallive-nvr transcode-file: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads and validates the config; every error goes to stderr, one line
/// each.
fn load(path: &std::path::Path) -> Result<NvrConfigFile, ExitCode> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("reallive-nvr: reading {}: {e}", path.display());
            return Err(ExitCode::from(2));
        }
    };
    NvrConfigFile::check(&text).map_err(|errors| {
        for e in &errors {
            eprintln!("{}", e.in_file(path));
        }
        eprintln!(
            "reallive-nvr: {} error{} in {}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            path.display()
        );
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Job::TranscodeFile {
        input,
        output,
        crf,
        preset,
    }) = cli.job
    {
        return transcode_file(&input, &output, crf, preset);
    }
    let file = match &cli.config {
        Some(path) => match load(path) {
            Ok(f) => f,
            Err(code) => return code,
        },
        None => NvrConfigFile::default(),
    };
    if cli.check {
        let what = match &cli.config {
            Some(path) => path.display().to_string(),
            None => "the built-in default config".to_owned(),
        };
        eprintln!(
            "reallive-nvr: {what} is valid ({} camera{})",
            file.cameras.len(),
            if file.cameras.len() == 1 { "" } else { "s" }
        );
        return ExitCode::SUCCESS;
    }
    cli.log.init_with(LogArgs::SERVER, file.server.log_format);
    reallive_core::app::warn_secret_flags(&[("--admin-password", "--admin-password-file")]);
    let config = NvrConfig {
        file,
        node: cli.node,
    };
    reallive_core::app::run_until_signalled("reallive-nvr", |shutdown| {
        run(config, shutdown, |ready| {
            if let Some(file) = ready.admin_password_file {
                eprintln!(
                    "reallive-nvr: created user 'admin'; its password is in {} (readable by you alone)\n\
                     reallive-nvr: sign in, change it, then delete that file",
                    file.display()
                );
            }
            for (id, name) in &ready.cameras {
                eprintln!("reallive-nvr: camera {id}: {name}");
            }
            if let Some(sha) = ready.new_certificate_sha256 {
                eprintln!(
                    "reallive-nvr: made a self-signed TLS certificate, SHA-256 {sha}\n\
                     reallive-nvr: give clients --pin-sha256 {sha}"
                );
            }
            eprintln!(
                "reallive-nvr: listening on {}://{}",
                ready.scheme, ready.addr
            );
            if let Some(rtc) = ready.rtc {
                eprintln!("reallive-nvr: WebRTC relay on udp://{rtc}");
            }
            systemd::ready(&format!(
                "listening on {}://{}, {} camera{}",
                ready.scheme,
                ready.addr,
                ready.cameras.len(),
                if ready.cameras.len() == 1 { "" } else { "s" }
            ));
        })
    })
}
