//! Config files. Apps read the file; this describes and checks it.
//!
//! - [`ServerSection`]: the `[server]` section shared by `reallive-server`
//!   and `reallive-nvr`; [`ServerConfigFile`] is the server's whole file.
//! - [`NvrConfigFile`]: the NVR's file (`[server]`, `[storage]` and
//!   `[[cameras]]`). [`NvrConfigFile::check`] reports every problem it can
//!   find in one pass, each as a [`ConfigError`] with its line and key, so
//!   `reallive-nvr --config nvr.toml --check` can print them all.
//!
//! Camera URLs are [`RtspUrl`]s (from `reallive-core`), whose password never
//! shows in `Debug`, `Display` or an error.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::RecordError;
use crate::transcode::Window;
use reallive_auth::Secret;
pub use reallive_core::RtspUrl;
use reallive_core::redact;
use reallive_store::retention::parse_bytes;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use reallive_signaling::IceServer;

/// `[server]`: every field optional; the CLI and environment override it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on; default `127.0.0.1:8080`.
    pub listen: Option<SocketAddr>,
    /// Where the databases and secrets live; default `./data`.
    pub data_dir: Option<PathBuf>,
    /// The first admin's password, used only on first start.
    pub admin_password: Option<Secret>,
    /// The token signing secret, at least 32 bytes. Default: generated
    /// once into `DATA_DIR/jwt.secret`.
    pub jwt_secret: Option<Secret>,
    /// Token lifetime; default one day.
    pub token_ttl_secs: Option<u64>,
    /// Whether anyone may create a viewer account; default false.
    pub allow_registration: Option<bool>,
    /// Origins allowed cross-origin requests; default none (CORS off).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// The names clients reach this server by (`nvr.example.org`). When
    /// set, or when listening on loopback, a request for any other `Host`
    /// (but `localhost` and IP literals) is refused: DNS rebinding.
    #[serde(default)]
    pub host_names: Vec<String>,
    /// STUN/TURN servers handed to clients.
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
    /// The relay's UDP port; default 8189.
    pub rtc_port: Option<u16>,
    /// Public addresses to advertise as relay candidates (a NATed box
    /// with the port forwarded).
    #[serde(default)]
    pub public_ips: Vec<std::net::IpAddr>,
    /// Reverse proxies (CIDRs) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed; from anyone else they are ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether the relay also takes ICE-TCP (passive candidates), for
    /// peers whose UDP is blocked; default true.
    pub ice_tcp: Option<bool>,
    /// The relay's ICE-TCP port; default the RTC port + 1 (8190).
    pub rtc_tcp_port: Option<u16>,
    /// Each camera's current GOP kept for a new viewer's instant first
    /// frame, at most this many MiB per camera; default 8, 0 turns it off.
    pub gop_cache_mib: Option<u32>,
    /// Local cameras transcoded live at once for viewers that cannot play
    /// their stream (H.265, B-frames); default one per core, 0 turns live
    /// transcoding off.
    pub max_live_transcodes: Option<u32>,
    /// `[server.turn]`: a TURN server sharing a secret with this one, for
    /// short-lived credentials minted per viewer and session.
    pub turn: Option<TurnSection>,
    /// How log lines are written: `text` (default) or `json`;
    /// `--log-format` overrides.
    pub log_format: Option<reallive_core::LogFormat>,
}

/// `[server.turn]`: a TURN server (coturn with `use-auth-secret`) whose
/// `static-auth-secret` is in `secret_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnSection {
    /// Its `turn:` and `turns:` URLs (`turn:turn.example.org:3478?transport=udp`,
    /// `turn:turn.example.org:3478?transport=tcp`, `turns:turn.example.org:5349`).
    pub urls: Vec<String>,
    /// A file (mode 0600) whose first line is the shared secret.
    pub secret_file: PathBuf,
    /// How long each credential lives; default 3600 (an hour), at most
    /// 86400.
    pub ttl_secs: Option<u64>,
}

/// A `reallive-server` config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfigFile {
    /// The only section.
    #[serde(default)]
    pub server: ServerSection,
}

impl ServerConfigFile {
    /// Parses TOML; the error names the line, column and key.
    pub fn from_toml(text: &str) -> Result<Self, RecordError> {
        toml::from_str(text).map_err(|e| RecordError::Invalid(e.to_string()))
    }
}

/// A `reallive-nvr` config file: the server, the disk, and the cameras.
///
/// Build one with [`NvrConfigFile::check`]. An empty file is valid: a
/// server with default settings and no cameras.
///
/// ```toml
/// [server]
/// listen = "127.0.0.1:8080"
///
/// [storage]
/// min_free = "5GiB"
///
/// [[cameras]]
/// name = "front"
/// url = "rtsp://user:pass@192.0.2.10/stream1"
/// [cameras.retention]
/// max_age_days = 14
/// max_bytes = "200GiB"
/// ```
#[derive(Debug, Default, Clone)]
pub struct NvrConfigFile {
    /// `[server]`, as for `reallive-server`.
    pub server: ServerSection,
    /// `[storage]`: how full the disk may get.
    pub storage: StorageSection,
    /// `[[cameras]]`, in file order. Names are unique, ignoring case.
    pub cameras: Vec<CameraConfig>,
    /// `[transcoding]`: re-encoding old recordings to H.265 (off by default).
    pub transcoding: TranscodingSection,
}

/// `[transcoding]`: when to re-encode old H.264 recordings to H.265.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodingSection {
    /// `enabled`; default false.
    pub enabled: bool,
    /// `older_than_days`: recordings that ended at least this long ago
    /// (fractions allowed); default 7.
    pub older_than_days: f64,
    /// `window`, `HH:MM-HH:MM` local time; default `02:00-06:00`.
    pub window: Window,
    /// `max_jobs`, 1 to 16; default 1.
    pub max_jobs: u32,
    /// `crf`, x265's quality, 0 to 51; default 28.
    pub crf: u8,
    /// `preset`, x265's speed preset (checked by the encoder at start);
    /// default `fast`.
    pub preset: String,
    /// `poll_secs`: how often to look for work inside the window, 1 to
    /// 3600; default 60.
    pub poll_secs: u32,
}

impl Default for TranscodingSection {
    fn default() -> Self {
        TranscodingSection {
            enabled: false,
            older_than_days: 7.0,
            window: Window {
                start: 120,
                end: 360,
            },
            max_jobs: 1,
            crf: 28,
            preset: "fast".into(),
            poll_secs: 60,
        }
    }
}

/// `[storage]`: the free space recordings must leave on the disk. Every
/// field is optional; the NVR picks the defaults.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct StorageSection {
    /// `min_free`, a size string: delete the oldest recordings to keep at
    /// least this many bytes free.
    pub min_free_bytes: Option<u64>,
    /// `min_free_percent`, 0 to 100: the same as a share of the disk.
    pub min_free_percent: Option<f64>,
    /// `critical_free`, a size string: below this, clean up at once,
    /// ahead of the normal retention pass.
    pub critical_free_bytes: Option<u64>,
}

/// One `[[cameras]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    /// 1 to 64 characters of `A-Z a-z 0-9 _ -`: it becomes a directory
    /// name and a URL path part.
    pub name: String,
    /// The main stream, recorded.
    pub url: RtspUrl,
    /// An optional low-resolution stream for motion detection and grids.
    pub sub_url: Option<RtspUrl>,
    /// When to record.
    pub mode: RecordMode,
    /// How RTP travels from the camera.
    pub transport: Transport,
    /// Which RTSP client reads the camera.
    pub backend: Backend,
    /// `[cameras.retention]`: how much of this camera's footage to keep.
    pub retention: CameraRetentionConfig,
    /// After this many restarts in a row the camera is `stopped`; `None`
    /// retries forever.
    pub max_restarts: Option<u32>,
    /// Seconds kept before an event (`mode = "motion"`); at most 60.
    pub pre_roll_secs: u32,
    /// Seconds kept after an event.
    pub post_roll_secs: u32,
    /// `[cameras.motion]`: how motion is detected.
    pub motion: MotionConfig,
    /// Record the camera's audio track beside its video when it has one
    /// (AAC as it is, G.711 transcoded to AAC); `audio = false` records
    /// video only. The GStreamer backend records video only.
    pub audio: bool,
}

/// `[cameras.motion]`: detection settings (see `reallive-motion`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default, expecting = "a motion table")]
pub struct MotionConfig {
    /// Detect motion at all. `mode = "motion"` needs it; with `continuous`
    /// it marks events on the timeline, at the cost of decoding the stream
    /// (the sub-stream when there is one).
    pub enabled: bool,
    /// 1 (only large, sharp changes) to 100 (the faintest).
    #[schema(minimum = 1, maximum = 100)]
    pub sensitivity: u8,
    /// The share of a zone, in percent, that must change.
    #[schema(minimum = 0, maximum = 100)]
    pub min_area_percent: f32,
    /// Pictures analysed per second (1 to 15).
    #[schema(minimum = 1, maximum = 15)]
    pub fps: u32,
    /// Consecutive pictures with motion before an event starts.
    #[schema(minimum = 1)]
    pub frames_to_start: u32,
    /// Seconds without motion before an event ends.
    #[schema(minimum = 0, maximum = 3600)]
    pub secs_to_end: f32,
    /// `[[cameras.motion.zones]]`; without an include zone the whole
    /// picture is watched.
    pub zones: Vec<ZoneConfig>,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            enabled: true,
            sensitivity: 60,
            min_area_percent: 0.5,
            fps: 5,
            frames_to_start: 2,
            secs_to_end: 3.0,
            zones: Vec::new(),
        }
    }
}

/// `[[cameras.motion.zones]]`: a polygon in 0..1 picture coordinates.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, expecting = "a zone table")]
pub struct ZoneConfig {
    /// Named in events.
    pub name: String,
    /// `include` (the default) or `exclude`.
    #[serde(default)]
    pub kind: ZoneKindConfig,
    /// `[[x, y], ...]`, at least three corners, each in 0..1.
    #[schema(min_items = 3)]
    pub points: Vec<[f32; 2]>,
}

impl MotionConfig {
    /// The detector's settings for this table.
    pub fn settings(&self) -> reallive_motion::MotionSettings {
        reallive_motion::MotionSettings {
            sensitivity: self.sensitivity,
            min_area_percent: self.min_area_percent,
            zones: self
                .zones
                .iter()
                .map(|z| reallive_motion::Zone {
                    name: z.name.clone(),
                    kind: match z.kind {
                        ZoneKindConfig::Include => reallive_motion::ZoneKind::Include,
                        ZoneKindConfig::Exclude => reallive_motion::ZoneKind::Exclude,
                    },
                    points: z.points.iter().map(|p| (p[0], p[1])).collect(),
                })
                .collect(),
            frames_to_start: self.frames_to_start,
            secs_to_end: self.secs_to_end,
            ..reallive_motion::MotionSettings::default()
        }
    }

    /// Checks the values as the config file's checker does.
    pub fn check(&self) -> Result<(), RecordError> {
        if !(1..=15).contains(&self.fps) {
            return Err(RecordError::Invalid(format!(
                "fps {} is outside 1..=15",
                self.fps
            )));
        }
        reallive_motion::Detector::new(self.settings())
            .map(|_| ())
            .map_err(|e| RecordError::Invalid(e.to_string()))
    }
}

/// Motion settings changed through the API for cameras from the config
/// file, by camera name: `[cameras.NAME]` tables in the `[cameras.motion]`
/// format. They override the file's at start.
pub fn motion_overrides_to_toml(
    overrides: &std::collections::BTreeMap<String, MotionConfig>,
) -> String {
    #[derive(serde::Serialize)]
    struct File<'a> {
        cameras: &'a std::collections::BTreeMap<String, MotionConfig>,
    }
    let body = toml::to_string(&File { cameras: overrides }).unwrap_or_default();
    format!(
        "# Motion settings changed through the API; they override nvr.toml's.\n\
         # reallive-nvr rewrites this file.\n{body}"
    )
}

/// Reads what [`motion_overrides_to_toml`] wrote, checking every table.
pub fn motion_overrides_from_toml(
    text: &str,
) -> Result<std::collections::BTreeMap<String, MotionConfig>, RecordError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        cameras: std::collections::BTreeMap<String, MotionConfig>,
    }
    let file: File = toml::from_str(text).map_err(|e| RecordError::Invalid(e.to_string()))?;
    for (name, m) in &file.cameras {
        m.check()
            .map_err(|e| RecordError::Invalid(format!("cameras.{name}: {e}")))?;
    }
    Ok(file.cameras)
}

/// Whether a zone is watched or ignored.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ZoneKindConfig {
    /// Motion here counts.
    #[default]
    Include,
    /// Motion here never counts.
    Exclude,
}

/// `[cameras.retention]`: limits for one camera; `None` is no limit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CameraRetentionConfig {
    /// Delete recordings that ended longer ago than this.
    pub max_age_days: Option<u32>,
    /// `max_bytes`, a size string or a number of bytes: keep the camera's
    /// recordings under this.
    pub max_bytes: Option<u64>,
}

/// When a camera records: `mode = "continuous" | "motion" | "off"`.
#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Deserialize,
    serde::Serialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RecordMode {
    /// Always.
    #[default]
    Continuous,
    /// Only around motion.
    Motion,
    /// Not at all; the camera is not opened. This is how a camera is
    /// disabled without deleting its entry.
    Off,
}

/// How RTP travels from a camera: `transport = "tcp" | "udp"`.
#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Deserialize,
    serde::Serialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Interleaved in the RTSP connection: no loss, passes NAT.
    #[default]
    Tcp,
    /// Separate UDP ports: lower latency, loses packets on a busy network.
    Udp,
}

/// Which RTSP client reads a camera: `backend = "retina" | "gstreamer"`.
#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Deserialize,
    serde::Serialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// retina, on the NVR's own runtime: RTP timestamps, no jitter buffer,
    /// the least CPU and memory.
    #[default]
    Retina,
    /// GStreamer's `rtspsrc`: for a camera that retina cannot read (its
    /// status says so).
    Gstreamer,
}

impl Backend {
    /// Whether this is the default (the field is then left out of files).
    pub fn is_default(&self) -> bool {
        *self == Backend::default()
    }
}

/// `[[cameras]]` entries as TOML that [`NvrConfigFile::check`] reads back
/// to the same values: how the NVR keeps the cameras added through its
/// API. The text holds the URLs' passwords, as a config file does.
pub fn cameras_to_toml(cameras: &[CameraConfig]) -> String {
    #[derive(serde::Serialize)]
    struct Retention {
        #[serde(skip_serializing_if = "Option::is_none")]
        max_age_days: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_bytes: Option<u64>,
    }
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        name: &'a str,
        url: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        sub_url: Option<&'a str>,
        mode: RecordMode,
        transport: Transport,
        #[serde(skip_serializing_if = "Backend::is_default")]
        backend: Backend,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_restarts: Option<u32>,
        pre_roll_secs: u32,
        post_roll_secs: u32,
        retention: Retention,
        motion: &'a MotionConfig,
        #[serde(skip_serializing_if = "Option::is_none")]
        audio: Option<bool>,
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        cameras: Vec<Entry<'a>>,
    }
    let file = File {
        cameras: cameras
            .iter()
            .map(|c| Entry {
                name: &c.name,
                url: c.url.expose(),
                sub_url: c.sub_url.as_ref().map(RtspUrl::expose),
                mode: c.mode,
                transport: c.transport,
                backend: c.backend,
                max_restarts: c.max_restarts,
                pre_roll_secs: c.pre_roll_secs,
                post_roll_secs: c.post_roll_secs,
                motion: &c.motion,
                audio: (!c.audio).then_some(false),
                retention: Retention {
                    max_age_days: c.retention.max_age_days,
                    max_bytes: c.retention.max_bytes,
                },
            })
            .collect(),
    };
    // Plain data with string, integer and enum fields: it always serializes.
    toml::to_string(&file).unwrap_or_default()
}

/// One problem in a config file. Neither field quotes a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line of the offending key or value; for a missing key, the
    /// line of its table's header (`[[cameras]]`).
    pub line: usize,
    /// Dotted path to the key, such as `cameras[2].retention.max_bytes`
    /// (array indexes count from 0); empty for a TOML syntax error.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// Displays as `FILE:LINE: KEY: MESSAGE`, one line, the form the
    /// `--check` CLI prints.
    pub fn in_file<'a>(&'a self, file: &'a Path) -> impl fmt::Display + 'a {
        InFile { file, error: self }
    }
}

/// Displays as `line LINE: KEY: MESSAGE`; see [`ConfigError::in_file`] for
/// the form with the file name.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        self.fmt_key_message(f)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn fmt_key_message(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

struct InFile<'a> {
    file: &'a Path,
    error: &'a ConfigError,
}

impl fmt::Display for InFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.error.line)?;
        self.error.fmt_key_message(f)
    }
}

impl NvrConfigFile {
    /// Checks one camera given outside a file (the API's `POST
    /// /api/nvr/cameras` body) with exactly the rules of a `[[cameras]]`
    /// entry. `entry` must serialize to that entry's keys. The error lists
    /// every problem as `key: message`, keys relative to the entry.
    pub fn check_camera(entry: &impl serde::Serialize) -> Result<CameraConfig, RecordError> {
        #[derive(serde::Serialize)]
        struct One<'a, T> {
            cameras: [&'a T; 1],
        }
        let text = toml::to_string(&One { cameras: [entry] })
            .map_err(|e| RecordError::Invalid(e.to_string()))?;
        let mut file = NvrConfigFile::check(&text).map_err(|errors| {
            let what: Vec<String> = errors
                .iter()
                .map(|e| {
                    let key = e
                        .key
                        .trim_start_matches("cameras[0]")
                        .trim_start_matches('.');
                    if key.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{key}: {}", e.message)
                    }
                })
                .collect();
            RecordError::Invalid(what.join("; "))
        })?;
        file.cameras
            .pop()
            .ok_or_else(|| RecordError::Invalid("no camera".into()))
    }

    /// Parses and validates a TOML config, collecting every error it can.
    ///
    /// A TOML syntax error stops everything and is the only error. After
    /// that each table (`[server]`, `[storage]`, each `[[cameras]]` entry)
    /// is read on its own, so one table's unknown key or wrong type does
    /// not hide another's. Within a table that reads, every value is
    /// checked: required keys, names (valid and unique), URLs, sizes and
    /// ranges. Errors come back sorted by line.
    pub fn check(text: &str) -> Result<Self, Vec<ConfigError>> {
        let root = match DeTable::parse(text) {
            Ok(root) => root,
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                let c = Checker::new(text, Vec::new());
                return Err(vec![c.error(at, String::new(), e.message())]);
            }
        };
        let mut secrets = Vec::new();
        for value in root.get_ref().values() {
            collect_passwords(value, &mut secrets);
        }
        let mut c = Checker::new(text, secrets);
        let mut file = NvrConfigFile::default();
        for (key, value) in root.get_ref() {
            match key.get_ref().as_ref() {
                "server" => {
                    if let Some(server) = c.table::<ServerSection>(value, "server") {
                        file.server = server;
                    }
                }
                "storage" => {
                    if let Some(raw) = c.table::<RawStorage>(value, "storage") {
                        file.storage = c.storage(raw);
                    }
                }
                "cameras" => file.cameras = c.cameras(value),
                "transcoding" => {
                    if let Some(raw) = c.table::<RawTranscoding>(value, "transcoding") {
                        file.transcoding = c.transcoding(raw);
                    }
                }
                other => c.push(
                    key.span().start,
                    other.to_owned(),
                    "unknown key, expected one of `server`, `storage`, `cameras`, `transcoding`",
                ),
            }
        }
        if c.errors.is_empty() {
            Ok(file)
        } else {
            c.errors.sort_by_key(|e| e.line);
            Err(c.errors)
        }
    }
}

/// A `[[cameras]]` entry as written. Every check that can report more than
/// one problem happens after serde, so `name` and `url` are optional here
/// and sizes are kept as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a camera table")]
struct RawCamera {
    name: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    sub_url: Option<Spanned<String>>,
    #[serde(default)]
    mode: RecordMode,
    #[serde(default)]
    transport: Transport,
    #[serde(default)]
    backend: Backend,
    #[serde(default)]
    retention: RawRetention,
    max_restarts: Option<u32>,
    pre_roll_secs: Option<Spanned<u32>>,
    post_roll_secs: Option<Spanned<u32>>,
    motion: Option<Spanned<MotionConfig>>,
    audio: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a retention table")]
struct RawRetention {
    max_age_days: Option<u32>,
    max_bytes: Option<Spanned<RawSize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a storage table")]
struct RawStorage {
    min_free: Option<Spanned<RawSize>>,
    min_free_percent: Option<Spanned<f64>>,
    critical_free: Option<Spanned<RawSize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a transcoding table")]
struct RawTranscoding {
    enabled: Option<bool>,
    older_than_days: Option<Spanned<f64>>,
    window: Option<Spanned<String>>,
    max_jobs: Option<Spanned<u32>>,
    crf: Option<Spanned<u32>>,
    preset: Option<String>,
    poll_secs: Option<Spanned<u32>>,
}

/// A size as written: `"200GiB"` or a number of bytes.
enum RawSize {
    Text(String),
    Integer(i64),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"200GiB\", or a whole number of bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Integer(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawSize, E> {
                i64::try_from(v)
                    .map(RawSize::Integer)
                    .map_err(|_| E::custom("size is out of range"))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Turns the parsed document into values and errors with lines.
struct Checker<'t> {
    text: &'t str,
    /// Passwords found in any URL-like string in the file, scrubbed from
    /// every message: serde quotes wrong values ("unknown variant `...`"),
    /// and a password with a space or quote in it defeats
    /// [`redact`].
    secrets: Vec<String>,
    errors: Vec<ConfigError>,
}

impl<'t> Checker<'t> {
    fn new(text: &'t str, secrets: Vec<String>) -> Self {
        Checker {
            text,
            secrets,
            errors: Vec::new(),
        }
    }

    fn error(&self, offset: usize, key: String, message: &str) -> ConfigError {
        ConfigError {
            line: line_of(self.text, offset),
            key: self.scrub(&key),
            message: self.scrub(message),
        }
    }

    fn scrub(&self, text: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        redact(text, &secrets)
    }

    fn push(&mut self, offset: usize, key: String, message: impl AsRef<str>) {
        let e = self.error(offset, key, message.as_ref());
        self.errors.push(e);
    }

    /// Deserializes one table on its own; serde's error (only the first in
    /// the table) is recorded against the key its span falls in.
    fn table<T: DeserializeOwned>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: &str,
    ) -> Option<T> {
        match T::deserialize(value.clone().into_deserializer()) {
            Ok(t) => Some(t),
            Err(e) => {
                let at = e.span().map_or(value.span().start, |s| s.start);
                let mut key = key_at(value, path, at);
                let message = match field_in(e.message(), "missing field `") {
                    Some(field) => {
                        key = format!("{key}.{field}");
                        "missing".to_owned()
                    }
                    None => e.message().replacen("unknown field", "unknown key", 1),
                };
                self.push(at, key, message);
                None
            }
        }
    }

    fn storage(&mut self, raw: RawStorage) -> StorageSection {
        let min_free_percent = raw.min_free_percent.and_then(|p| {
            if (0.0..=100.0).contains(p.get_ref()) {
                Some(*p.get_ref())
            } else {
                self.push(
                    p.span().start,
                    "storage.min_free_percent".to_owned(),
                    "must be from 0 to 100",
                );
                None
            }
        });
        StorageSection {
            min_free_bytes: self.size(raw.min_free, "storage.min_free"),
            min_free_percent,
            critical_free_bytes: self.size(raw.critical_free, "storage.critical_free"),
        }
    }

    fn transcoding(&mut self, raw: RawTranscoding) -> TranscodingSection {
        let mut t = TranscodingSection {
            enabled: raw.enabled.unwrap_or(false),
            preset: raw.preset.unwrap_or_else(|| "fast".into()),
            ..TranscodingSection::default()
        };
        if let Some(d) = raw.older_than_days {
            if d.get_ref().is_finite() && (0.0..=36_500.0).contains(d.get_ref()) {
                t.older_than_days = *d.get_ref();
            } else {
                self.push(
                    d.span().start,
                    "transcoding.older_than_days".into(),
                    "must be from 0 to 36500",
                );
            }
        }
        if let Some(w) = raw.window {
            match Window::parse(w.get_ref()) {
                Ok(window) => t.window = window,
                Err(e) => self.push(w.span().start, "transcoding.window".into(), e.to_string()),
            }
        }
        let mut ranged =
            |v: Option<Spanned<u32>>, key: &str, range: std::ops::RangeInclusive<u32>| {
                let v = v?;
                if range.contains(v.get_ref()) {
                    Some(*v.get_ref())
                } else {
                    self.push(
                        v.span().start,
                        format!("transcoding.{key}"),
                        format!("must be from {} to {}", range.start(), range.end()),
                    );
                    None
                }
            };
        if let Some(n) = ranged(raw.max_jobs, "max_jobs", 1..=16) {
            t.max_jobs = n;
        }
        if let Some(n) = ranged(raw.crf, "crf", 0..=51) {
            t.crf = n as u8;
        }
        if let Some(n) = ranged(raw.poll_secs, "poll_secs", 1..=3600) {
            t.poll_secs = n;
        }
        t
    }

    fn cameras(&mut self, value: &Spanned<DeValue<'_>>) -> Vec<CameraConfig> {
        let DeValue::Array(items) = value.get_ref() else {
            self.push(
                value.span().start,
                "cameras".to_owned(),
                "must be an array of tables, written as [[cameras]]",
            );
            return Vec::new();
        };
        // Lowercased name -> line of first use. Names become directory
        // names, and "Front" and "front" are one directory on macOS.
        let mut names = HashMap::new();
        let mut cameras = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("cameras[{i}]");
            if let Some(raw) = self.table::<RawCamera>(item, &path)
                && let Some(camera) = self.camera(raw, &path, item.span().start, &mut names)
            {
                cameras.push(camera);
            }
        }
        cameras
    }

    fn camera(
        &mut self,
        raw: RawCamera,
        path: &str,
        header_at: usize,
        names: &mut HashMap<String, usize>,
    ) -> Option<CameraConfig> {
        let name = match raw.name {
            None => {
                self.push(header_at, format!("{path}.name"), "missing");
                None
            }
            Some(name) => self.name(name, path, names),
        };
        let url = match raw.url {
            None => {
                self.push(header_at, format!("{path}.url"), "missing");
                None
            }
            Some(url) => self.url(url, format!("{path}.url")),
        };
        let sub_url = match raw.sub_url {
            None => Some(None),
            Some(url) => self.url(url, format!("{path}.sub_url")).map(Some),
        };
        let max_bytes = self.size(
            raw.retention.max_bytes,
            &format!("{path}.retention.max_bytes"),
        );
        let pre_roll_secs = match raw.pre_roll_secs {
            Some(p) if *p.get_ref() > 60 => {
                self.push(
                    p.span().start,
                    format!("{path}.pre_roll_secs"),
                    "at most 60 seconds",
                );
                None
            }
            Some(p) => Some(p.into_inner()),
            None => Some(5),
        };
        let post_roll_secs = match raw.post_roll_secs {
            Some(p) if *p.get_ref() > 3600 => {
                self.push(
                    p.span().start,
                    format!("{path}.post_roll_secs"),
                    "at most 3600 seconds",
                );
                None
            }
            Some(p) => Some(p.into_inner()),
            None => Some(5),
        };
        let motion = match raw.motion {
            None => Some(MotionConfig::default()),
            Some(m) => {
                let at = m.span().start;
                let m = m.into_inner();
                let checked = if raw.mode == RecordMode::Motion && !m.enabled {
                    Err("mode = \"motion\" needs motion.enabled = true".to_string())
                } else {
                    m.check().map_err(|e| e.to_string())
                };
                match checked {
                    Ok(()) => Some(m),
                    Err(why) => {
                        self.push(at, format!("{path}.motion"), why);
                        None
                    }
                }
            }
        };
        Some(CameraConfig {
            name: name?,
            url: url?,
            sub_url: sub_url?,
            mode: raw.mode,
            transport: raw.transport,
            backend: raw.backend,
            retention: CameraRetentionConfig {
                max_age_days: raw.retention.max_age_days,
                max_bytes,
            },
            max_restarts: raw.max_restarts,
            pre_roll_secs: pre_roll_secs?,
            post_roll_secs: post_roll_secs?,
            motion: motion?,
            audio: raw.audio.unwrap_or(true),
        })
    }

    fn name(
        &mut self,
        name: Spanned<String>,
        path: &str,
        names: &mut HashMap<String, usize>,
    ) -> Option<String> {
        let at = name.span().start;
        let key = format!("{path}.name");
        let n = name.get_ref();
        let valid = (1..=64).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            self.push(
                at,
                key,
                "must be 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-` \
                 (it becomes a directory name and part of URLs)",
            );
            return None;
        }
        match names.entry(n.to_ascii_lowercase()) {
            Entry::Occupied(first) => {
                let message = format!(
                    "`{n}` is already the name of the camera on line {} (names are unique, ignoring case)",
                    first.get()
                );
                self.push(at, key, message);
                None
            }
            Entry::Vacant(slot) => {
                slot.insert(line_of(self.text, at));
                Some(name.into_inner())
            }
        }
    }

    fn url(&mut self, url: Spanned<String>, key: String) -> Option<RtspUrl> {
        match RtspUrl::parse(url.get_ref()) {
            Ok(u) => Some(u),
            Err(e) => {
                let message = match e {
                    reallive_core::Error::InvalidUrl { reason } => reason.to_owned(),
                    other => other.to_string(),
                };
                self.push(url.span().start, key, message);
                None
            }
        }
    }

    /// `None` both when the size is absent and when it is bad (and
    /// recorded as an error).
    fn size(&mut self, raw: Option<Spanned<RawSize>>, key: &str) -> Option<u64> {
        let raw = raw?;
        let at = raw.span().start;
        let bytes = match raw.into_inner() {
            RawSize::Text(s) => parse_bytes(&s).map_err(|e| e.to_string()),
            RawSize::Integer(n) => u64::try_from(n).map_err(|_| "must not be negative".to_owned()),
        };
        bytes
            .map_err(|message| self.push(at, key.to_owned(), message))
            .ok()
    }
}

/// Adds the password of every `scheme://user:password@` string under
/// `value` to `secrets`. Short ones are skipped: scrubbing "ab" from every
/// message would garble them and hide little.
fn collect_passwords(value: &Spanned<DeValue<'_>>, secrets: &mut Vec<String>) {
    match value.get_ref() {
        DeValue::String(s) => {
            let password = s
                .split_once("://")
                .and_then(|(_, rest)| rest.rsplit_once('@'))
                .and_then(|(userinfo, _)| userinfo.split_once(':'))
                .map(|(_, password)| password);
            if let Some(p) = password.filter(|p| p.len() >= 3) {
                secrets.push(p.to_owned());
            }
        }
        DeValue::Array(items) => items.iter().for_each(|v| collect_passwords(v, secrets)),
        DeValue::Table(t) => t.values().for_each(|v| collect_passwords(v, secrets)),
        _ => {}
    }
}

/// The dotted path of the deepest key under `value` (itself at `path`)
/// whose key or value covers byte `offset`; `path` if none does.
///
/// Children are searched whatever the parent's span: a `[table]` header's
/// span is the header alone, not its body.
fn key_at(value: &Spanned<DeValue<'_>>, path: &str, offset: usize) -> String {
    fn find(value: &Spanned<DeValue<'_>>, path: &str, offset: usize) -> Option<String> {
        match value.get_ref() {
            DeValue::Table(t) => t.iter().find_map(|(k, v)| {
                let child = format!("{path}.{}", k.get_ref());
                if covers(&k.span(), offset) {
                    Some(child)
                } else {
                    within(v, child, offset)
                }
            }),
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| within(v, format!("{path}[{i}]"), offset)),
            _ => None,
        }
    }
    fn within(value: &Spanned<DeValue<'_>>, path: String, offset: usize) -> Option<String> {
        find(value, &path, offset).or_else(|| covers(&value.span(), offset).then_some(path))
    }
    find(value, path, offset).unwrap_or_else(|| path.to_owned())
}

fn covers(span: &std::ops::Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// The name in a serde message such as "missing field `url`".
fn field_in<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_keys() {
        let c = ServerConfigFile::from_toml(
            "[server]\nlisten = \"0.0.0.0:9000\"\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n\
             [[server.ice_servers]]\nurls = [\"stun:127.0.0.1:3478\"]\n",
        )
        .unwrap();
        assert_eq!(c.server.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(format!("{:?}", c.server.jwt_secret), "Some(Secret(***))");
        assert_eq!(c.server.ice_servers.len(), 1);
        let e = ServerConfigFile::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("listne"), "{e}");
        assert!(ServerConfigFile::from_toml("").is_ok());
    }

    const PASSWORD: &str = "hunter2";

    const FULL: &str = r#"[server]
listen = "127.0.0.1:8080"
data_dir = "./data"

[storage]
min_free = "5GiB"
min_free_percent = 5.0
critical_free = "1GiB"

[[cameras]]
name = "front"
url = "rtsp://user:hunter2@192.0.2.10/stream1"
sub_url = "rtsp://user:hunter2@192.0.2.10:554/stream2"
mode = "continuous"
transport = "tcp"
max_restarts = 10
[cameras.retention]
max_age_days = 14
max_bytes = "200GiB"

[[cameras]]
name = "Back_door-2"
url = "rtsps://[2001:db8::1]:322/live?channel=1"
mode = "motion"
transport = "udp"
audio = false
retention = { max_bytes = 1048576 }

[[cameras]]
name = "garage"
url = "rtsp://192.0.2.12"
mode = "off"
"#;

    fn errors(text: &str) -> Vec<ConfigError> {
        match NvrConfigFile::check(text) {
            Ok(c) => panic!("accepted {text:?}: {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn transcoding_is_off_by_default_and_checked_with_lines() {
        let c = NvrConfigFile::check("").unwrap();
        assert!(!c.transcoding.enabled);
        assert_eq!(c.transcoding.window.to_string(), "02:00-06:00");
        let c = NvrConfigFile::check(
            "[transcoding]\nenabled = true\nolder_than_days = 0.5\nwindow = \"22:00-05:30\"\n\
             max_jobs = 2\ncrf = 30\npreset = \"slow\"\npoll_secs = 5\n",
        )
        .unwrap();
        let t = &c.transcoding;
        assert!(t.enabled);
        assert_eq!(
            (
                t.older_than_days,
                t.window.to_string(),
                t.max_jobs,
                t.crf,
                t.preset.as_str(),
                t.poll_secs
            ),
            (0.5, "22:00-05:30".to_string(), 2, 30, "slow", 5)
        );
        let e = errors(
            "[transcoding]\nenabled = true\nwindow = \"2am-6am\"\nmax_jobs = 0\ncrf = 99\n\
             older_than_days = -1\npoll_secs = 0\n",
        );
        let got: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(
            got,
            [
                (3, "transcoding.window"),
                (4, "transcoding.max_jobs"),
                (5, "transcoding.crf"),
                (6, "transcoding.older_than_days"),
                (7, "transcoding.poll_secs"),
            ]
        );
        let e = errors("[transcoding]\nenable = true\n");
        assert_eq!(
            (e[0].line, e[0].key.as_str()),
            (2, "transcoding.enable"),
            "{e:?}"
        );
    }

    #[test]
    fn cameras_written_as_toml_read_back_the_same() {
        let c = NvrConfigFile::check(FULL).unwrap();
        // Audio is recorded unless turned off.
        assert_eq!(
            c.cameras.iter().map(|c| c.audio).collect::<Vec<_>>(),
            [true, false, true]
        );
        let text = cameras_to_toml(&c.cameras);
        let back = NvrConfigFile::check(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(back.cameras, c.cameras);
        assert_eq!(
            NvrConfigFile::check(&cameras_to_toml(&[])).unwrap().cameras,
            []
        );
    }

    #[test]
    fn full_valid_file_parses() {
        let c = NvrConfigFile::check(FULL).unwrap();
        assert_eq!(c.server.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(c.server.data_dir, Some(PathBuf::from("./data")));
        assert_eq!(
            c.storage,
            StorageSection {
                min_free_bytes: Some(5 << 30),
                min_free_percent: Some(5.0),
                critical_free_bytes: Some(1 << 30),
            }
        );
        let names: Vec<_> = c.cameras.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["front", "Back_door-2", "garage"]);
        let front = &c.cameras[0];
        assert_eq!(front.url.expose(), "rtsp://user:hunter2@192.0.2.10/stream1");
        assert_eq!(
            front.sub_url.as_ref().map(RtspUrl::expose),
            Some("rtsp://user:hunter2@192.0.2.10:554/stream2")
        );
        assert_eq!(
            (front.mode, front.transport, front.max_restarts),
            (RecordMode::Continuous, Transport::Tcp, Some(10))
        );
        assert_eq!(
            front.retention,
            CameraRetentionConfig {
                max_age_days: Some(14),
                max_bytes: Some(200 << 30),
            }
        );
        let back = &c.cameras[1];
        assert_eq!(
            (back.mode, back.transport, back.sub_url.is_none()),
            (RecordMode::Motion, Transport::Udp, true)
        );
        assert_eq!(back.retention.max_bytes, Some(1 << 20));
        let garage = &c.cameras[2];
        assert_eq!(garage.mode, RecordMode::Off);
        assert_eq!(garage.transport, Transport::Tcp, "the default");
        assert_eq!(garage.retention, CameraRetentionConfig::default());
        assert_eq!(garage.max_restarts, None);
    }

    #[test]
    fn empty_file_is_valid() {
        for text in ["", "\n", "# nothing yet\n", "[server]\n", "cameras = []\n"] {
            let c = NvrConfigFile::check(text).unwrap();
            assert!(c.cameras.is_empty(), "{text:?}");
            assert_eq!(c.storage, StorageSection::default(), "{text:?}");
        }
    }

    /// Each case is one mistake; the check must name its line and key.
    #[test]
    fn each_error_names_its_line_and_key() {
        const CAM: &str = "[[cameras]]\nname = \"front\"\n";
        const URL: &str = "url = \"rtsp://192.0.2.10/s\"\n";
        let cases: &[(&str, String, usize, &str, &str)] = &[
            (
                "missing url",
                format!("\n{CAM}"),
                2,
                "cameras[0].url",
                "missing",
            ),
            (
                "missing name",
                format!("[[cameras]]\n{URL}"),
                1,
                "cameras[0].name",
                "missing",
            ),
            (
                "unknown key",
                format!("{CAM}urll = \"rtsp://192.0.2.10/s\"\n"),
                3,
                "cameras[0].urll",
                "unknown key",
            ),
            (
                "a pre-roll over a minute",
                format!("{CAM}{URL}pre_roll_secs = 90\n"),
                4,
                "cameras[0].pre_roll_secs",
                "at most 60",
            ),
            (
                "a motion zone with two points",
                format!(
                    "{CAM}{URL}[cameras.motion]\nsensitivity = 50\n[[cameras.motion.zones]]\nname = \"z\"\npoints = [[0.0, 0.0], [1.0, 1.0]]\n"
                ),
                4,
                "cameras[0].motion",
                "at least 3 points",
            ),
            (
                "an unknown key in a motion table",
                format!("{CAM}{URL}[cameras.motion]\nsensitivty = 50\n"),
                5,
                "cameras[0].motion.sensitivty",
                "unknown key",
            ),
            (
                "unknown key in retention",
                format!("{CAM}{URL}[cameras.retention]\nmax_age = 3\n"),
                5,
                "cameras[0].retention.max_age",
                "unknown key",
            ),
            (
                "bad size",
                format!("{CAM}{URL}[cameras.retention]\nmax_bytes = \"12 parsecs\"\n"),
                5,
                "cameras[0].retention.max_bytes",
                "unknown unit",
            ),
            (
                "negative size",
                format!("{CAM}{URL}retention = {{ max_bytes = -1 }}\n"),
                4,
                "cameras[0].retention.max_bytes",
                "negative",
            ),
            (
                "size of the wrong type",
                format!("{CAM}{URL}retention = {{ max_bytes = true }}\n"),
                4,
                "cameras[0].retention.max_bytes",
                "a size",
            ),
            (
                "duplicate name",
                format!("{CAM}{URL}\n{CAM}{URL}"),
                6,
                "cameras[1].name",
                "already the name of the camera on line 2",
            ),
            (
                "duplicate name in another case",
                format!("{CAM}{URL}[[cameras]]\nname = \"FRONT\"\n{URL}"),
                5,
                "cameras[1].name",
                "ignoring case",
            ),
            (
                "name with a space",
                format!("[[cameras]]\n{URL}name = \"front door\"\n"),
                3,
                "cameras[0].name",
                "1 to 64 characters",
            ),
            (
                "name with a slash",
                format!("[[cameras]]\n{URL}name = \"../etc\"\n"),
                3,
                "cameras[0].name",
                "1 to 64 characters",
            ),
            (
                "empty name",
                format!("[[cameras]]\n{URL}name = \"\"\n"),
                3,
                "cameras[0].name",
                "1 to 64 characters",
            ),
            (
                "name too long",
                format!("[[cameras]]\n{URL}name = \"{}\"\n", "a".repeat(65)),
                3,
                "cameras[0].name",
                "1 to 64 characters",
            ),
            (
                "http url",
                format!("{CAM}url = \"http://192.0.2.10/s\"\n"),
                3,
                "cameras[0].url",
                "rtsp://",
            ),
            (
                "url with no host",
                format!("{CAM}url = \"rtsp:///s\"\n"),
                3,
                "cameras[0].url",
                "no host",
            ),
            (
                "bad sub_url",
                format!("{CAM}{URL}sub_url = \"192.0.2.10/s2\"\n"),
                4,
                "cameras[0].sub_url",
                "not a URL",
            ),
            (
                "unknown mode",
                format!("{CAM}{URL}mode = \"always\"\n"),
                4,
                "cameras[0].mode",
                "unknown variant `always`",
            ),
            (
                "wrong type",
                format!("{CAM}{URL}max_restarts = \"5\"\n"),
                4,
                "cameras[0].max_restarts",
                "invalid type",
            ),
            (
                "min_free_percent over 100",
                "[storage]\nmin_free = \"5GiB\"\nmin_free_percent = 150\n".to_owned(),
                3,
                "storage.min_free_percent",
                "0 to 100",
            ),
            (
                "min_free_percent is not a number",
                "[storage]\nmin_free_percent = nan\n".to_owned(),
                2,
                "storage.min_free_percent",
                "0 to 100",
            ),
            (
                "bad storage size",
                "[storage]\n\ncritical_free = \"1 GiBi\"\n".to_owned(),
                3,
                "storage.critical_free",
                "unknown unit",
            ),
            (
                "unknown key in [server]",
                "[server]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n".to_owned(),
                3,
                "server.listne",
                "unknown key",
            ),
            (
                "bad listen address",
                "[server]\n\nlisten = \"localhost\"\n".to_owned(),
                3,
                "server.listen",
                "socket address",
            ),
            (
                "unknown section",
                "[server]\n[camera]\nname = \"x\"\n".to_owned(),
                2,
                "camera",
                "unknown key",
            ),
            (
                "cameras is not an array",
                "cameras = \"front\"\n".to_owned(),
                1,
                "cameras",
                "[[cameras]]",
            ),
            (
                "TOML syntax",
                format!("{CAM}{URL}max_restarts = \n"),
                4,
                "",
                "",
            ),
        ];
        for (what, text, line, key, message) in cases {
            let e = errors(text);
            assert_eq!(e.len(), 1, "{what}: {e:?}");
            assert_eq!(
                (e[0].line, e[0].key.as_str()),
                (*line, *key),
                "{what}: {e:?}"
            );
            assert!(e[0].message.contains(message), "{what}: {e:?}");
        }
    }

    #[test]
    fn collects_every_error_in_one_pass() {
        let text = r#"
[storage]
min_free_percent = -1

[[cameras]]
name = "front"
urll = "rtsp://192.0.2.10/s"

[[cameras]]
name = "front door"
url = "http://192.0.2.11/s"
[cameras.retention]
max_bytes = "12 parsecs"

[[cameras]]
url = "rtsp://192.0.2.12/s"

[[cameras]]
name = "ok"
url = "rtsp://192.0.2.13/s"
[[cameras]]
name = "OK"
url = "rtsp://192.0.2.14/s"
"#;
        let got: Vec<_> = errors(text).into_iter().map(|e| (e.line, e.key)).collect();
        let want = [
            (3, "storage.min_free_percent"),
            (7, "cameras[0].urll"),
            (10, "cameras[1].name"),
            (11, "cameras[1].url"),
            (13, "cameras[1].retention.max_bytes"),
            (15, "cameras[2].name"),
            (22, "cameras[4].name"),
        ];
        let want: Vec<_> = want.iter().map(|&(l, k)| (l, k.to_owned())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn passwords_never_appear_in_errors_or_debug() {
        let cases = [
            // Rejected URLs.
            "[[cameras]]\nname = \"a\"\nurl = \"http://admin:hunter2@192.0.2.10/s\"\n",
            "[[cameras]]\nname = \"a\"\nurl = \"rtsp://admin:hunter2@/s\"\n",
            "[[cameras]]\nname = \"a\"\nurl = \"rtsp://admin:hunter2@192.0.2.10:99999/s\"\n",
            "[[cameras]]\nname = \"a\"\nurl = \"rtsp://admin:hun/ter2@192.0.2.10/s\"\n",
            "[[cameras]]\nname = \"a\"\nurl = \"rtsp://admin:hunter2 @192.0.2.10/s\"\n",
            // A URL where serde quotes the value back.
            "[[cameras]]\nname = \"a\"\nmode = \"rtsp://admin:hunter2@192.0.2.10/s\"\n",
            "[[cameras]]\nname = \"a\"\nmax_restarts = \"rtsp://admin:hunter2@h/s\"\n",
            "[[cameras]]\nname = \"a\"\nmode = \"rtsp://admin:hunter2 x@h/s\"\n",
            // A bad camera beside a good one that has a password.
            "[[cameras]]\nname = \"a\"\nurl = \"rtsp://admin:hunter2@192.0.2.10/s\"\n\
             [[cameras]]\nname = \"a\"\nurl = \"rtsp://admin:hunter2@192.0.2.10/s\"\n",
            // Broken TOML on the URL's line.
            "[[cameras]]\nname = \"a\"\nurl = \"rtsp://admin:hunter2@192.0.2.10/s\n",
        ];
        for text in cases {
            let e = errors(text);
            let shown = format!(
                "{e:?}\n{}",
                e.iter()
                    .map(|e| format!("{e}\n{}", e.in_file(Path::new("nvr.toml"))))
                    .collect::<String>()
            );
            assert!(!shown.contains(PASSWORD), "{text:?} showed {shown}");
            let ter = "ter2";
            assert!(!shown.contains(ter), "{text:?} showed {shown}");
        }

        let c = NvrConfigFile::check(FULL).unwrap();
        let shown = format!("{c:?} {} {:?}", c.cameras[0].url, c.cameras[0].url);
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(
            shown.contains("rtsp://user:***@192.0.2.10/stream1"),
            "{shown}"
        );
    }

    #[test]
    fn rtsp_urls_are_checked_and_redacted() {
        let valid = [
            ("rtsp://192.0.2.10/s", "rtsp://192.0.2.10/s"),
            ("RTSP://cam.local:8554", "RTSP://cam.local:8554"),
            (
                "rtsps://u:p@[::1]:322/s?x=1",
                "rtsps://u:***@[::1]:322/s?x=1",
            ),
            ("rtsp://u:p%2Fq%40r@h/s", "rtsp://u:***@h/s"),
            ("rtsp://a:b@c@h/s", "rtsp://a:***@h/s"),
            ("rtsp://token@h/s", "rtsp://***@h/s"),
            ("rtsp://h:/s", "rtsp://h:/s"),
        ];
        for (url, shown) in valid {
            let u = RtspUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(u.expose(), url);
            assert_eq!(u.to_string(), shown);
            assert_eq!(format!("{u:?}"), format!("RtspUrl({shown:?})"));
        }
        let invalid = [
            ("", "not a URL"),
            ("192.0.2.10/s", "not a URL"),
            ("http://h/s", "rtsp://"),
            ("rtspx://h/s", "rtsp://"),
            ("rtsp://", "no host"),
            ("rtsp://u:p@:554/s", "no host"),
            ("rtsp://h:0/s", "bad port"),
            ("rtsp://h:65536/s", "bad port"),
            ("rtsp://h:+554/s", "bad port"),
            ("rtsp://u:pa/ss@h/s", "after the host"),
            ("rtsp://[::1/s", "unclosed"),
            ("rtsp://[zz]/s", "IPv6"),
            ("rtsp://[::1]x/s", "after its"),
            ("rtsp://h st/s", "whitespace"),
            ("rtsp://h%41/s", "bad host"),
        ];
        for (url, want) in invalid {
            let e = RtspUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
        }
    }

    #[test]
    fn errors_display_as_file_line_key_message() {
        let e = errors("\n[[cameras]]\nname = \"front\"\n");
        assert_eq!(e[0].to_string(), "line 2: cameras[0].url: missing");
        assert_eq!(
            e[0].in_file(Path::new("/etc/nvr.toml")).to_string(),
            "/etc/nvr.toml:2: cameras[0].url: missing"
        );
        let e = errors("a = \n");
        let shown = e[0].in_file(Path::new("nvr.toml")).to_string();
        assert!(shown.starts_with("nvr.toml:1: "), "{shown}");
        assert!(!shown.contains(": :"), "{shown}");
    }

    #[test]
    fn one_camera_from_the_api_is_checked_by_the_file_rules() {
        #[derive(serde::Serialize)]
        struct Entry {
            name: &'static str,
            url: &'static str,
            mode: &'static str,
        }
        let ok = NvrConfigFile::check_camera(&Entry {
            name: "gate",
            url: "rtsp://u:pw@192.0.2.10/s",
            mode: "continuous",
        })
        .unwrap();
        assert_eq!(ok.name, "gate");
        assert_eq!(ok.url.expose(), "rtsp://u:pw@192.0.2.10/s");
        let e = NvrConfigFile::check_camera(&Entry {
            name: "gate",
            url: "http://u:secret@192.0.2.10/s",
            mode: "continuous",
        })
        .unwrap_err()
        .to_string();
        assert_eq!(e, "url: must be an rtsp:// or rtsps:// URL");
        let e = NvrConfigFile::check_camera(&Entry {
            name: "gate",
            url: "rtsp://u:secret@192.0.2.10/s",
            mode: "sometimes",
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("mode: unknown variant `sometimes`"), "{e}");
        assert!(!e.contains("secret") && !e.contains("cameras[0]"), "{e}");
    }
}
