//! Restream an RTSP camera to browsers through an embedded relay: a
//! `reallive-node` (accounts, relay, API and web UI) in this process, fed
//! by a `reallive-capture` RTSP source. No transcoding: the camera's H.264
//! goes to every viewer as it comes.
//!
//! `restream-rtsp --url rtsp://user:pass@192.0.2.10/stream1 --admin-password ...`

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use reallive_auth::{Role, Secret};
use reallive_capture::{CameraCapture, CaptureOptions, RtspCamera};
use reallive_core::{RtspUrl, frame_channel};
use reallive_node::{NodeFlags, NodeOptions};
use reallive_record::config::ServerSection;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    /// The camera.
    #[arg(long, env = "CAMERA_URL", hide_env_values = true)]
    url: String,
    #[command(flatten)]
    node: NodeFlags,
    /// Stop after this many seconds [default: run until Ctrl-C].
    #[arg(long)]
    seconds: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    gstreamer::init()?;
    let url = RtspUrl::parse(&cli.url)?;
    let options = NodeOptions::resolve(ServerSection::default(), cli.node)?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let node = reallive_node::start(options).await?;
        let password = node.first_admin_password().map(|p| p.expose().to_string());
        let admin = (node.state().accounts().snapshot().users())
            .find(|u| u.role == Role::Admin)
            .map(|u| u.id)
            .context("no admin")?;
        let (camera, _key) = node
            .state()
            .accounts()
            .create_camera(admin, "camera", None)
            .await?;
        let live = node.live().context("the relay is off")?.clone();
        let addr: SocketAddr = node.local_addr()?;
        let stop = CancellationToken::new();
        let serving = tokio::spawn(node.run(stop.clone()));
        announce(addr, camera.id, password.map(Secret::new));

        let (tx, mut frames) = frame_channel(64);
        let mut running = RtspCamera::new(url, CaptureOptions::default()).start(tx)?;
        let mut source = live.local_source(camera.id).await;
        let deadline = async {
            match cli.seconds {
                Some(s) => tokio::time::sleep(std::time::Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let ended = loop {
            tokio::select! {
                Some(f) = frames.recv() => source.offer(&f),
                r = running.wait() => break r.map_err(anyhow::Error::from),
                () = &mut deadline => break Ok(()),
                _ = tokio::signal::ctrl_c() => break Ok(()),
            }
        };
        running.stop().await;
        source.close().await;
        stop.cancel();
        serving.await??;
        ended
    })
}

#[allow(clippy::print_stdout)]
fn announce(addr: SocketAddr, camera: i64, password: Option<Secret>) {
    println!("open http://{addr}/ and watch camera {camera}");
    if let Some(p) = password {
        println!("sign in as admin with password {}", p.expose());
    }
}
