//! `reallive-puller` as a library: [`run`] records cameras from a server
//! until the shutdown token fires. It wires `reallive-stream` (subscribing
//! through a [`Receiver`] built by [`receiver`], and signing in),
//! `reallive-store` (recording through the [`Storage`] trait, retention),
//! `reallive-http` (local playback) and `reallive-encode` (the optional
//! preview); the logic lives there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reallive_core::CameraId;
use reallive_http::recordings::LocalPlayback;
use reallive_store::retention::RetentionPolicy;
use reallive_store::{Storage, Store, StoreConfig};
use reallive_stream::{Credential, Login, Network, Receiver, SubscribeConfig, WebRtcSubscriber};
use tokio_util::sync::CancellationToken;

/// Everything the puller needs. `Debug` never shows `listen_token`.
#[derive(Clone)]
pub struct PullerConfig {
    /// The server, `http://host:port` or `https://host:port`.
    pub server: String,
    /// Whom to trust over TLS, and extra ICE servers.
    pub network: Network,
    /// How to sign in.
    pub login: Login,
    /// Camera ids on the server.
    pub cameras: Vec<i64>,
    /// Where the recordings and their index live.
    pub data_dir: PathBuf,
    /// Local playback address, if any.
    pub listen: Option<SocketAddr>,
    /// The bearer token local playback requires (needed beyond loopback).
    pub listen_token: Option<String>,
    /// Subscribe with WHEP instead of WS signaling.
    pub whep: bool,
    /// What the store keeps.
    pub retention: RetentionPolicy,
    /// Show each camera on this GStreamer sink as well (see
    /// `reallive_encode::preview_sink`); `None` is off.
    pub preview: Option<String>,
}

impl std::fmt::Debug for PullerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullerConfig")
            .field("server", &self.server)
            .field("network", &self.network)
            .field("login", &self.login)
            .field("cameras", &self.cameras)
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("listen_token", &self.listen_token.as_ref().map(|_| "***"))
            .field("whep", &self.whep)
            .field("retention", &self.retention)
            .field("preview", &self.preview)
            .finish()
    }
}

/// What a run recorded.
#[derive(Debug, Default)]
pub struct Summary {
    /// `(camera id, frames written)`.
    pub frames: Vec<(i64, u64)>,
    /// `(camera id, frames the preview decoded)`, with a preview.
    pub previewed: Vec<(i64, u64)>,
}

/// Opus packets held between a camera's session and its recorder: 5 s.
const AUDIO_QUEUE: usize = 250;

/// Records until `shutdown` fires; `on_ready` gets the playback address.
pub async fn run(
    config: PullerConfig,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(Option<SocketAddr>),
) -> anyhow::Result<Summary> {
    anyhow::ensure!(!config.cameras.is_empty(), "name at least one --camera");
    if let Some(addr) = config.listen
        && !addr.ip().is_loopback()
        && config.listen_token.is_none()
    {
        anyhow::bail!(
            "--listen {addr} is beyond loopback: playback there needs --listen-token (or REALLIVE_LISTEN_TOKEN)"
        );
    }
    if let Some(sink) = &config.preview {
        reallive_encode::Preview::check(sink).context("--preview")?;
    }
    let mut store_config = StoreConfig::new(&config.data_dir);
    store_config.retention = config.retention.clone();
    let (store, recovery) = Store::open(store_config)
        .await
        .with_context(|| format!("opening the recordings in {}", config.data_dir.display()))?;
    tracing::info!(?recovery, "store open");
    let stop = shutdown.child_token();
    let retention = store.spawn_retention(Duration::from_secs(60), stop.clone());

    // Local playback.
    let mut http = None;
    let mut bound = None;
    if let Some(addr) = config.listen {
        let playback = LocalPlayback::bind(
            addr,
            store.clone(),
            &config.cameras,
            config.listen_token.clone(),
            config.data_dir.join("exports"),
        )
        .await
        .with_context(|| format!("--listen {addr}"))?;
        bound = Some(playback.local_addr()?);
        http = Some(playback.spawn(stop.clone()));
    }
    on_ready(bound);

    // Sign in before subscribing; keep the token fresh.
    let credential = Credential::default();
    let signed_in = config
        .login
        .sign_in(&config.network, &config.server, &credential, &stop)
        .await;
    let signed_in = match signed_in {
        Ok(Some(s)) => s,
        Ok(None) => return finish(store, retention, http, Summary::default()).await,
        Err(e) => {
            stop.cancel();
            let _ = finish(store, retention, http, Summary::default()).await;
            return Err(e.into());
        }
    };

    // Recording goes through the Storage trait: another backend plugs in
    // here. Opening, retention and playback stay with the SQLite store.
    let storage: Arc<dyn Storage> = Arc::new(store.clone());
    let mut sessions = Vec::new();
    let mut recorders = Vec::new();
    let mut previews = Vec::new();
    for &camera in &config.cameras {
        let (tx, rx) = reallive_core::frame_channel(256);
        let rx = match &config.preview {
            None => rx,
            Some(sink) => {
                let preview = reallive_encode::Preview::start(sink)
                    .with_context(|| format!("camera {camera}: --preview"))?;
                let (to_store, rx2) = reallive_core::frame_channel(256);
                previews.push(tokio::spawn(show(camera, rx, preview, to_store)));
                rx2
            }
        };
        // The camera's sound too, when it has some (Opus from a pusher's
        // microphone): recorded beside the video.
        let (atx, arx) = reallive_core::audio_channel(AUDIO_QUEUE);
        let session = receiver(&config, camera, &credential)
            .start_with_audio(tx, atx)
            .map_err(|e| anyhow::anyhow!("camera {camera}: {e}"))?;
        sessions.push(session);
        let storage = storage.clone();
        let stop = stop.clone();
        recorders.push(tokio::spawn(async move {
            let name = CameraId(camera).store_key();
            let stats =
                reallive_record::camera::record(storage.as_ref(), &name, rx, Some(arx), &stop)
                    .await;
            (camera, stats.frames)
        }));
    }
    let failed = tokio::select! {
        () = stop.cancelled() => None,
        why = reallive_stream::first_failure(&sessions) => Some(why),
    };
    stop.cancel();
    drop(sessions);
    drop(signed_in);
    let mut summary = Summary::default();
    for r in recorders {
        if let Ok(x) = r.await {
            summary.frames.push(x);
        }
    }
    for p in previews {
        if let Ok(x) = p.await {
            summary.previewed.push(x);
        }
    }
    let summary = finish(store, retention, http, summary).await?;
    match failed {
        // An untrusted certificate: what was recorded is kept, and the
        // run ends with the reason.
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(summary),
    }
}

/// The one place that picks the transport: a [`Receiver`] for `camera` on
/// `config.server`, over WHEP when `config.whep`, signing in with
/// `credential`'s current value on each connection.
pub fn receiver(config: &PullerConfig, camera: i64, credential: &Credential) -> Box<dyn Receiver> {
    let whep = config
        .whep
        .then(|| format!("{}/whep/{camera}", config.server.trim_end_matches('/')));
    Box::new(WebRtcSubscriber::new(SubscribeConfig {
        server: config.server.clone(),
        camera,
        token: credential.clone(),
        whep,
        network: config.network.clone(),
    }))
}

/// Passes a camera's frames on to the store, showing each on `preview` on
/// the way; a preview that stops is reported once and recording goes on.
/// Returns `(camera, frames decoded)`.
async fn show(
    camera: i64,
    mut frames: reallive_core::FrameReceiver,
    preview: reallive_encode::Preview,
    to_store: reallive_core::FrameSender,
) -> (i64, u64) {
    let mut showing = true;
    while let Some(f) = frames.recv().await {
        if showing && let Err(e) = preview.push(&f) {
            tracing::warn!(camera, "{e}; recording goes on");
            showing = false;
        }
        if to_store.offer(f) == reallive_core::Offer::Closed {
            break;
        }
    }
    (camera, preview.decoded_frames())
}

async fn finish(
    store: Store,
    retention: tokio::task::JoinHandle<()>,
    http: Option<tokio::task::JoinHandle<()>>,
    summary: Summary,
) -> anyhow::Result<Summary> {
    let _ = retention.await;
    if let Some(h) = http {
        let _ = h.await;
    }
    store.close().await;
    Ok(summary)
}
