//! `reallive-nvr` as a library: [`run`] serves the server's API, relay and
//! UI, and records every configured RTSP camera under supervision, until
//! the shutdown token fires. It wires `reallive-http` (the routers, the
//! config file), `reallive-capture` (RTSP ingest and the supervised
//! worker), `reallive-core` (the supervisor) and `reallive-store`
//! (recording, retention); the logic lives there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reallive_capture::{CaptureOptions, RetinaCamera, RtspCamera, RtspTransport};
use reallive_encode::transcode::H265Settings;
use reallive_http::nvr::NvrState;
use reallive_http::recordings::{ApiAccess, RecordingsState};
use reallive_http::review::ReviewState;
use reallive_node::{NodeFlags, NodeOptions};
use reallive_record::config::{Backend, NvrConfigFile, Transport};
use reallive_record::recorders::{OpenSource, Recorders, RecordersConfig};
use reallive_record::thumbnails::{ThumbnailConfig, Thumbnails};
use reallive_store::{Store, StoreConfig};
use tokio_util::sync::CancellationToken;

/// The NVR's settings: the file, with the command line over its
/// `[server]` section.
#[derive(Debug, Clone, Default)]
pub struct NvrConfig {
    /// The parsed config file (empty without one).
    pub file: NvrConfigFile,
    /// The command line's values over the file's `[server]` section.
    pub node: NodeFlags,
}

/// What `on_ready` is told.
#[derive(Debug)]
pub struct Ready<'a> {
    /// The API's address.
    pub addr: SocketAddr,
    /// The relay's UDP address.
    pub rtc: Option<SocketAddr>,
    /// The file (mode 0600) holding the first admin's generated password,
    /// on first start only.
    pub admin_password_file: Option<&'a std::path::Path>,
    /// `(camera id, name)` of every configured camera.
    pub cameras: Vec<(i64, String)>,
    /// `https` with TLS on, else `http`.
    pub scheme: &'static str,
    /// A self-signed certificate's SHA-256, when it was made at this start.
    pub new_certificate_sha256: Option<&'a str>,
}

/// RTSP cameras through `reallive-capture`; a camera's G.711 audio is
/// transcoded to AAC by `reallive-encode` (the GStreamer backend records
/// video only).
fn open_rtsp() -> OpenSource {
    let g711 = reallive_encode::audio::start_audio_transcoder();
    Arc::new(move |url, transport, backend| {
        let options = CaptureOptions {
            rtsp_transport: match transport {
                Transport::Tcp => RtspTransport::Tcp,
                Transport::Udp => RtspTransport::Udp,
            },
            ..CaptureOptions::default()
        };
        match backend {
            Backend::Retina => Arc::new(
                RetinaCamera::new(url.clone(), options).with_audio_transcoder(g711.clone()),
            ),
            Backend::Gstreamer => Arc::new(RtspCamera::new(url.clone(), options)),
        }
    })
}

/// Serves and records until `shutdown` fires, then closes every open
/// recording cleanly.
pub async fn run(
    config: NvrConfig,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(Ready<'_>),
) -> anyhow::Result<()> {
    let NvrConfig { file, node } = config;
    let options = NodeOptions::resolve(file.server.clone(), node)?;
    let data_dir = options.data_dir.clone();
    let server = reallive_node::start(options)
        .await
        .with_context(|| format!("starting in {}", data_dir.display()))?;
    let api = server.state().clone();

    // The cameras, bound to their accounts cameras by id.
    let cameras =
        reallive_record::recorders::bind_cameras(api.accounts(), &file.cameras, &data_dir)
            .await
            .context("loading the cameras")?;

    // The store, with each camera's retention.
    let retention = reallive_record::recorders::retention_policy(&file.storage, &cameras);
    let mut store_config = StoreConfig::new(&data_dir);
    store_config.retention = retention.clone();
    let (store, recovery) = Store::open(store_config)
        .await
        .with_context(|| format!("opening the recordings in {}", data_dir.display()))?;
    tracing::info!(?recovery, "recordings open");
    let stop_recording = CancellationToken::new();
    let retention_task = store.spawn_retention(Duration::from_secs(30), stop_recording.clone());
    let transcoding = if file.transcoding.enabled {
        H265Settings {
            crf: file.transcoding.crf,
            preset: file.transcoding.preset.clone(),
            max_kbps: None,
        }
        .check()
        .map_err(|e| anyhow::anyhow!("transcoding.{e}"))?;
        let program = std::env::current_exe().context("transcoding: finding this program")?;
        reallive_record::transcode::start(
            &file.transcoding,
            &store,
            program,
            stop_recording.clone(),
        )
    } else {
        None
    };

    // A camera's AAC goes live as Opus while a viewer listens; its H.265
    // or B-frames as H.264 while a viewer cannot play them.
    if let Some(live) = server.live() {
        live.set_opus_transcoder(reallive_encode::audio::start_opus_transcoder());
        live.set_video_transcoder(reallive_encode::live::start_video_transcoder());
    }
    // One supervised recorder per camera, shown live through the relay.
    let floor_warning: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let recorders = Arc::new(Recorders::new(RecordersConfig {
        accounts: api.accounts().clone(),
        store: store.clone(),
        live: server
            .live()
            .map(|l| Arc::new(l.clone()) as Arc<dyn reallive_record::live::LiveOutlet>),
        open_source: open_rtsp(),
        decoder: Some(reallive_encode::motion::start_gray_decoder()),
        clock: Arc::new(reallive_core::SystemClock),
        floor_warning: floor_warning.clone(),
        stop: stop_recording.clone(),
    }));
    let ready_cameras: Vec<(i64, String)> = cameras
        .iter()
        .map(|b| (b.id, b.config.name.clone()))
        .collect();
    for b in cameras {
        recorders.insert(b);
    }
    let space_task = tokio::spawn(reallive_record::space::watch(
        store.clone(),
        retention.clone(),
        file.storage.critical_free_bytes,
        floor_warning,
        stop_recording.clone(),
    ));

    // Health and metrics.
    let r = recorders.clone();
    api.add_health_source(Box::new(move |out| r.health(out)));
    let r = recorders.clone();
    api.add_metrics_source(Box::new(move |out| {
        reallive_record::metrics::render(&r.metrics(), out)
    }));
    // `/api/system`: the recordings index, and each camera's last hour.
    let (series, series_task) = reallive_http::sysinfo::CameraSeries::start(
        recorders.clone() as Arc<dyn reallive_record::CameraRegistry>,
        stop_recording.clone(),
    );
    let index_file = Store::index_path(&data_dir);
    api.add_system_source(Box::new(move |out| {
        out.db_files.push(index_file.clone());
        out.cameras.extend(series.report());
    }));

    let thumbnails = Thumbnails::start(
        store.clone(),
        reallive_encode::thumbnail::start_thumbnailer(),
        ThumbnailConfig::default(),
        stop_recording.clone(),
    );
    let mut nvr_state = NvrState::new(api.clone(), recorders.clone(), store.clone())
        .with_thumbnails(thumbnails.clone());
    let mut transcode_task = None;
    if let Some((transcoder, task)) = transcoding {
        nvr_state = nvr_state.with_transcoder(transcoder);
        transcode_task = Some(task);
    }
    // Export jobs share the exports directory and its budget with the
    // resumable `export.mp4`; jobs a stop interrupted start again here.
    let export_jobs = reallive_store::ExportJobs::open(
        store.clone(),
        reallive_store::ExportJobsConfig::new(data_dir.join("exports")),
    )
    .await
    .context("opening the exports")?;
    export_jobs
        .recover()
        .await
        .context("recovering the exports")?;
    let server = server
        .merge(reallive_http::recordings::router(
            RecordingsState::new(
                store.clone(),
                Arc::new(ApiAccess::new(api.clone())),
                data_dir.join("exports"),
            )
            .with_export_jobs(export_jobs.clone()),
        ))
        .merge(reallive_http::exports::router(
            reallive_http::exports::ExportsState::new(
                export_jobs,
                Arc::new(ApiAccess::new(api.clone())),
            ),
        ))
        .merge(reallive_http::nvr::router(nvr_state))
        .merge(reallive_http::review::router(ReviewState::new(
            store.clone(),
            Arc::new(ApiAccess::new(api.clone())),
            Some(thumbnails),
        )));
    on_ready(Ready {
        addr: server.local_addr()?,
        rtc: server.live().map(|l| l.relay().local_addr()),
        admin_password_file: server.first_admin_password_file(),
        cameras: ready_cameras,
        scheme: server.scheme(),
        new_certificate_sha256: server.new_self_signed_fingerprint(),
    });
    let served = server.run(shutdown).await;

    // Close every recording, then the index.
    stop_recording.cancel();
    recorders.join_all().await;
    let _ = retention_task.await;
    let _ = space_task.await;
    let _ = series_task.await;
    if let Some(task) = transcode_task {
        let _ = task.await;
    }
    store.close().await;
    served?;
    Ok(())
}
