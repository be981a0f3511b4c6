//! A WHEP viewer on GStreamer's `webrtcbin` (feature `gst`): a second
//! WebRTC stack, with its own ICE (libnice), DTLS, SRTP, depayloaders and
//! an FFmpeg decoder, to check that what the relay sends plays outside
//! str0m. Headless Chromium on Linux decodes no H.265; this does.
//!
//! [`WhepViewer::connect`] offers one recvonly video m-line with only the
//! codecs asked for, gathers ICE to the end (no trickle, as WHEP allows),
//! POSTs the offer, applies the answer, and decodes what arrives:
//! `rtph265depay ! h265parse ! avdec_h265 ! fakesink` (or the H.264 chain).
//! [`WhepViewer::wait_decoded`] reports the frames decoded and their size.
//!
//! # ICE on loopback
//!
//! The viewer gathers on 127.0.0.1 only: libnice skips loopback
//! interfaces unless told, and the NVR under test advertises loopback.
//!
//! # DTLS
//!
//! The relay (str0m's dimpl) accepts only an ECDSA client certificate;
//! GStreamer 1.22's default is RSA. The viewer makes an ECDSA P-256 one
//! and gives it to webrtcbin's `dtlssrtpdec` as it is created, before
//! the offer (see `WhepViewer::use_certificate`). webrtcbin 1.22 hashes
//! certificate and key together for the offer's fingerprint; the viewer
//! puts the certificate's own in the SDP it POSTs.
//!
//! # Threading
//!
//! webrtcbin calls back on its own threads; the callbacks only send on
//! channels and count. Every wait here is bounded, every method runs on
//! any tokio runtime, and dropping the viewer sets its pipeline to `Null`.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use reallive_test_support::webrtcbin::{OfferCodec, WhepViewer, WhepViewerConfig};
//!
//! # async fn f(addr: std::net::SocketAddr, token: String) {
//! let viewer = WhepViewer::connect(WhepViewerConfig {
//!     addr,
//!     path: "/whep/1".into(),
//!     token,
//!     codecs: vec![OfferCodec::H265],
//! })
//! .await
//! .expect("the relay answers");
//! assert_eq!(viewer.negotiated_codec(), Some("H265"));
//! let decoded = viewer.wait_decoded(30, Duration::from_secs(15)).await;
//! println!("{} frames at {:?}", decoded.frames, decoded.size);
//! viewer.stop().await;
//! # }
//! ```
#![cfg(feature = "gst")]

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use gstreamer_webrtc::prelude::WebRTCICEExt as _;
use tokio::sync::{oneshot, watch};

/// The elements a viewer needs, for [`crate::require_elements`]: ICE,
/// DTLS-SRTP, and both decode chains.
pub const ELEMENTS: &[&str] = &[
    "webrtcbin",
    "nicesrc",
    "nicesink",
    "dtlssrtpenc",
    "dtlssrtpdec",
    "dtlsdec",
    "rtph265depay",
    "h265parse",
    "avdec_h265",
    "rtph264depay",
    "h264parse",
    "avdec_h264",
    "fakesink",
];

/// Each step of the setup (offer, gathering, the POST, the answer) gets
/// this long.
const STEP: Duration = Duration::from_secs(10);

/// A codec the viewer's offer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferCodec {
    /// H.265 (payload type 96).
    H265,
    /// H.264, packetization mode 1, constrained baseline (payload type 97).
    H264,
}

impl OfferCodec {
    fn caps(self) -> &'static str {
        match self {
            OfferCodec::H265 => {
                "application/x-rtp,media=video,encoding-name=H265,clock-rate=90000,payload=96"
            }
            OfferCodec::H264 => {
                "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=97,\
                 packetization-mode=(string)1,profile-level-id=(string)42e01f,\
                 level-asymmetry-allowed=(string)1"
            }
        }
    }
}

/// Where and how to watch.
#[derive(Clone)]
pub struct WhepViewerConfig {
    /// The server.
    pub addr: SocketAddr,
    /// The WHEP resource, e.g. `/whep/1`.
    pub path: String,
    /// Sent as `Authorization: Bearer`.
    pub token: String,
    /// What the offer lists, most preferred first.
    pub codecs: Vec<OfferCodec>,
}

impl fmt::Debug for WhepViewerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhepViewerConfig")
            .field("addr", &self.addr)
            .field("path", &self.path)
            .field("token", &"<redacted>")
            .field("codecs", &self.codecs)
            .finish()
    }
}

/// Why a viewer did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum WhepError {
    /// The server answered the offer with this status and body.
    Refused {
        /// HTTP status.
        status: u16,
        /// The body, as text.
        body: String,
    },
    /// webrtcbin or the HTTP exchange failed, or a step timed out.
    Failed(String),
}

impl fmt::Display for WhepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WhepError::Refused { status, body } => write!(f, "WHEP refused: {status} {body}"),
            WhepError::Failed(m) => write!(f, "WHEP viewer failed: {m}"),
        }
    }
}

impl std::error::Error for WhepError {}

fn failed(m: impl Into<String>) -> WhepError {
    WhepError::Failed(m.into())
}

/// What the viewer has decoded so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Pictures out of the decoder.
    pub frames: u64,
    /// Their width and height, from the decoder's caps.
    pub size: Option<(i32, i32)>,
    /// The depayloader linked to the incoming stream (`rtph265depay`...),
    /// once RTP arrived.
    pub depayloader: Option<&'static str>,
    /// When the first picture came out of the decoder.
    pub first_frame: Option<Instant>,
}

/// A running webrtcbin WHEP viewer. Dropping it sets the pipeline to `Null`.
pub struct WhepViewer {
    started: Instant,
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    addr: SocketAddr,
    token: String,
    answer_sdp: String,
    session: Option<String>,
    decoded: watch::Receiver<Decoded>,
    connected: watch::Receiver<bool>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for WhepViewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhepViewer")
            .field("addr", &self.addr)
            .field("session", &self.session)
            .field("decoded", &*self.decoded.borrow())
            .finish_non_exhaustive()
    }
}

impl WhepViewer {
    /// Offers `config.codecs`, gathers ICE candidates, POSTs the offer and
    /// applies the answer. Media flows after this returns.
    pub async fn connect(config: WhepViewerConfig) -> Result<WhepViewer, WhepError> {
        crate::init_gst();
        // GStreamer 1.22 makes an RSA key for its default DTLS certificate
        // the first time a process makes a DTLS element (0.5 to 2 s of a
        // loaded core), a certificate the viewer replaces. A browser has
        // its certificate before the user presses play: so does the
        // viewer, before its clock starts.
        gst::ElementFactory::make("dtlsdec")
            .build()
            .map_err(|e| failed(format!("dtlsdec: {e}")))?;
        let started = Instant::now();
        if config.codecs.is_empty() {
            return Err(failed("no codec to offer"));
        }
        let pipeline = gst::Pipeline::with_name("whep-viewer");
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .build()
            .map_err(|e| failed(format!("webrtcbin: {e}")))?;
        pipeline
            .add(&webrtc)
            .map_err(|e| failed(format!("add webrtcbin: {e}")))?;
        let (decoded_tx, decoded) = watch::channel(Decoded::default());
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (connected_tx, connected) = watch::channel(false);
        webrtc.connect_notify(Some("connection-state"), move |webrtc, _| {
            let state: gst_webrtc::WebRTCPeerConnectionState = webrtc.property("connection-state");
            let connected = state == gst_webrtc::WebRTCPeerConnectionState::Connected;
            connected_tx.send_modify(|c| *c = connected);
        });
        let mut viewer = WhepViewer {
            started,
            pipeline,
            webrtc,
            addr: config.addr,
            token: config.token.clone(),
            answer_sdp: String::new(),
            session: None,
            decoded,
            connected,
            errors,
        };
        viewer.collect_errors();
        viewer.decode_incoming(Arc::new(decoded_tx));
        let identity = DtlsIdentity::generate()?;
        viewer.use_certificate(identity.pem.clone());

        // libnice leaves out loopback interfaces; the relay under test
        // listens on loopback only.
        let ice: gst_webrtc::WebRTCICE = viewer.webrtc.property("ice-agent");
        if !ice.emit_add_local_ip_address("127.0.0.1") {
            return Err(failed("webrtcbin refused 127.0.0.1 as a local address"));
        }

        let caps_text = config
            .codecs
            .iter()
            .map(|c| c.caps())
            .collect::<Vec<_>>()
            .join("; ");
        let caps = gst::Caps::from_str(&caps_text)
            .map_err(|e| failed(format!("codec preferences {caps_text}: {e}")))?;
        viewer
            .webrtc
            .emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );

        viewer
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| failed(format!("pipeline to Playing: {e}")))?;

        let gathered = viewer.gathering_complete();
        let reply = viewer
            .promise("create-offer", |p| {
                viewer
                    .webrtc
                    .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, p]);
            })
            .await?;
        let offer = reply
            .get::<gst_webrtc::WebRTCSessionDescription>("offer")
            .map_err(|e| failed(format!("create-offer replied without an offer: {e}")))?;
        viewer
            .promise("set-local-description", |p| {
                viewer
                    .webrtc
                    .emit_by_name::<()>("set-local-description", &[&offer, p]);
            })
            .await?;
        tokio::time::timeout(STEP, gathered)
            .await
            .map_err(|_| failed("ICE gathering did not complete in 10 s"))?;
        let local = viewer
            .webrtc
            .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
            .ok_or_else(|| failed("no local description after set-local-description"))?;
        let offer_sdp = local
            .sdp()
            .as_text()
            .map_err(|e| failed(format!("the offer as text: {e}")))?;
        // webrtcbin 1.22 hashes the whole `pem` (certificate and key) for
        // the offer's fingerprint; the relay checks the certificate's.
        let offer_sdp = identity.fix_offer_fingerprint(&offer_sdp)?;

        let auth = format!("Bearer {}", config.token);
        let response = tokio::time::timeout(
            STEP,
            crate::http::request(
                config.addr,
                "POST",
                &config.path,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/sdp"),
                ],
                offer_sdp.as_bytes(),
            ),
        )
        .await
        .map_err(|_| failed("the WHEP POST took over 10 s"))?
        .map_err(|e| failed(format!("the WHEP POST: {e}")))?;
        if response.status != 201 && response.status != 200 {
            return Err(WhepError::Refused {
                status: response.status,
                body: response.text(),
            });
        }
        viewer.session = response.header("location").map(str::to_owned);
        viewer.answer_sdp = response.text();
        let answer = gst_sdp::SDPMessage::parse_buffer(viewer.answer_sdp.as_bytes())
            .map_err(|e| failed(format!("the answer does not parse: {e}")))?;
        let answer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, answer);
        let reply = viewer
            .promise("set-remote-description", |p| {
                viewer
                    .webrtc
                    .emit_by_name::<()>("set-remote-description", &[&answer, p]);
            })
            .await?;
        if let Ok(e) = reply.get::<gst::glib::Error>("error") {
            return Err(failed(format!("set-remote-description: {e}")));
        }
        Ok(viewer)
    }

    /// The SDP answer the server sent.
    pub fn answer_sdp(&self) -> &str {
        &self.answer_sdp
    }

    /// The codec the answer picked for video (`H265`, `H264`), by its
    /// rtpmap; `None` when it rejected the m-line.
    pub fn negotiated_codec(&self) -> Option<&str> {
        video_codec_of(&self.answer_sdp)
    }

    /// The time from [`connect`](Self::connect)'s start to the first
    /// decoded picture, what a user waits after pressing play: the offer,
    /// ICE gathering, the POST, ICE and DTLS, the first keyframe, and its
    /// decoding. `None` before that picture.
    pub fn first_frame_after(&self) -> Option<Duration> {
        let first = self.decoded.borrow().first_frame?;
        Some(first.saturating_duration_since(self.started))
    }

    /// What has been decoded so far.
    pub fn decoded(&self) -> Decoded {
        self.decoded.borrow().clone()
    }

    /// Waits until `frames` pictures are decoded, at most `within`; what
    /// was decoded by then either way.
    pub async fn wait_decoded(&self, frames: u64, within: Duration) -> Decoded {
        let mut rx = self.decoded.clone();
        let _ = tokio::time::timeout(within, rx.wait_for(|d| d.frames >= frames)).await;
        self.decoded()
    }

    /// Waits until the peer connection is connected (ICE and DTLS), at
    /// most `within`; whether it is.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let mut rx = self.connected.clone();
        tokio::time::timeout(within, rx.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// webrtcbin's `ice-connection-state` and `connection-state`, for
    /// failure messages.
    pub fn connection_state(&self) -> String {
        let ice: gst_webrtc::WebRTCICEConnectionState =
            self.webrtc.property("ice-connection-state");
        let pc: gst_webrtc::WebRTCPeerConnectionState = self.webrtc.property("connection-state");
        format!("ice {ice:?}, peer connection {pc:?}")
    }

    /// Errors the pipeline posted.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Ends the WHEP session (DELETE, at most 2 s) and stops the pipeline.
    pub async fn stop(self) {
        if let Some(session) = &self.session {
            let auth = format!("Bearer {}", self.token);
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                crate::http::request(
                    self.addr,
                    "DELETE",
                    session,
                    &[("Authorization", &auth)],
                    b"",
                ),
            )
            .await;
        }
        // Drop sets the pipeline to Null.
    }

    /// Emits a signal that takes a promise; its reply, at most [`STEP`].
    async fn promise(
        &self,
        what: &str,
        emit: impl FnOnce(&gst::Promise),
    ) -> Result<gst::Structure, WhepError> {
        let (tx, rx) = oneshot::channel();
        let promise = gst::Promise::with_change_func(move |reply| {
            let _ = tx.send(match reply {
                Ok(Some(s)) => Ok(s.to_owned()),
                Ok(None) => Ok(gst::Structure::new_empty("empty")),
                Err(e) => Err(format!("{e:?}")),
            });
        });
        emit(&promise);
        tokio::time::timeout(STEP, rx)
            .await
            .map_err(|_| failed(format!("{what} did not reply in 10 s")))?
            .map_err(|_| failed(format!("{what} dropped its promise")))?
            .map_err(|e| failed(format!("{what}: {e}")))
    }

    /// Resolves when ICE gathering is complete.
    fn gathering_complete(&self) -> impl Future<Output = ()> + use<> {
        let (tx, mut rx) = watch::channel(false);
        self.webrtc
            .connect_notify(Some("ice-gathering-state"), move |webrtc, _| {
                let state: gst_webrtc::WebRTCICEGatheringState =
                    webrtc.property("ice-gathering-state");
                if state == gst_webrtc::WebRTCICEGatheringState::Complete {
                    let _ = tx.send(true);
                }
            });
        async move {
            let _ = rx.wait_for(|done| *done).await;
        }
    }

    /// Gives each `dtlssrtpdec` webrtcbin creates the certificate `pem`
    /// (an ECDSA one: str0m asks a DTLS client for ECDSA, and GStreamer
    /// 1.22's default is RSA).
    ///
    /// webrtcbin makes its DTLS transport, and reads the fingerprint for
    /// its offer from the transport's `dtlssrtpdec`, while it creates the
    /// offer. The certificate has to be set right then, as the element is
    /// added and still in `Null`: setting `pem` later makes the element a
    /// new DTLS connection without its `on-peer-certificate` handler
    /// (connected on `Null` to `Ready`), so OpenSSL rejects the relay's
    /// certificate with `unknown_ca`, and `dtlssrtpenc` keeps the old
    /// connection, with the old certificate.
    fn use_certificate(&self, pem: String) {
        self.pipeline
            .connect_deep_element_added(move |_, _, element| {
                if element.factory().is_some_and(|f| f.name() == "dtlssrtpdec") {
                    element.set_property("pem", &pem);
                }
            });
    }

    /// Keeps the pipeline's errors and warnings for failure messages.
    fn collect_errors(&self) {
        let errors = self.errors.clone();
        let Some(bus) = self.pipeline.bus() else {
            return;
        };
        bus.set_sync_handler(move |_, msg| {
            let text = match msg.view() {
                gst::MessageView::Error(e) => Some(format!(
                    "error from {:?}: {} ({:?})",
                    e.src().map(|s| s.path_string()),
                    e.error(),
                    e.debug()
                )),
                gst::MessageView::Warning(w) => Some(format!(
                    "warning from {:?}: {} ({:?})",
                    w.src().map(|s| s.path_string()),
                    w.error(),
                    w.debug()
                )),
                _ => None,
            };
            if let (Some(t), Ok(mut list)) = (text, errors.lock()) {
                list.push(t);
            }
            gst::BusSyncReply::Drop
        });
    }

    /// Links each incoming RTP pad to a depayloader, parser, decoder and
    /// fakesink by its encoding name, counting the decoder's pictures.
    fn decode_incoming(&self, decoded: Arc<watch::Sender<Decoded>>) {
        let pipeline = self.pipeline.downgrade();
        let errors = self.errors.clone();
        self.webrtc.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let Some(pipeline) = pipeline.upgrade() else {
                return;
            };
            if let Err(e) = link_decoder(&pipeline, pad, &decoded)
                && let Ok(mut list) = errors.lock()
            {
                list.push(e);
            }
        });
    }
}

impl Drop for WhepViewer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The viewer's DTLS certificate: a self-signed ECDSA P-256 one.
struct DtlsIdentity {
    /// The certificate then its key, as `dtlssrtpdec`'s `pem` takes them.
    pem: String,
    /// `sha-256 AB:CD:...`, the certificate's fingerprint (RFC 8122).
    fingerprint: String,
    /// The fingerprint GStreamer 1.22's webrtcbin puts in its offer for
    /// `pem`: it hashes every base64 line of the property, the key's too.
    webrtcbin_fingerprint: String,
}

impl DtlsIdentity {
    fn generate() -> Result<DtlsIdentity, WhepError> {
        let key = rcgen::KeyPair::generate().map_err(|e| failed(format!("DTLS key: {e}")))?;
        let cert = rcgen::CertificateParams::new(vec!["webrtcbin".to_owned()])
            .and_then(|p| p.self_signed(&key))
            .map_err(|e| failed(format!("DTLS certificate: {e}")))?;
        let cert_der: &[u8] = cert.der();
        let key_der = key.serialize_der();
        Ok(DtlsIdentity {
            pem: format!("{}{}", cert.pem(), key.serialize_pem()),
            fingerprint: sdp_fingerprint(&[cert_der]),
            webrtcbin_fingerprint: sdp_fingerprint(&[cert_der, &key_der]),
        })
    }

    /// `offer` with its `a=fingerprint` lines naming the certificate.
    ///
    /// GStreamer 1.22 computes the fingerprint of a `pem` set by the
    /// application over the certificate *and* the key (its own generated
    /// certificate's `pem` holds no key), so the relay, rightly, finds
    /// that the certificate in the handshake does not match the offer.
    /// Only that known wrong value is replaced: any other fingerprint is
    /// an error, so a webrtcbin that gets it right passes untouched.
    fn fix_offer_fingerprint(&self, offer: &str) -> Result<String, WhepError> {
        let mut lines = Vec::new();
        let mut found = false;
        for line in offer.split_inclusive('\n') {
            let Some(value) = line.trim_end().strip_prefix("a=fingerprint:") else {
                lines.push(line.to_owned());
                continue;
            };
            found = true;
            if value.eq_ignore_ascii_case(&self.fingerprint) {
                lines.push(line.to_owned());
            } else if value.eq_ignore_ascii_case(&self.webrtcbin_fingerprint) {
                let end = &line[line.trim_end().len()..];
                lines.push(format!("a=fingerprint:{}{end}", self.fingerprint));
            } else {
                return Err(failed(format!(
                    "the offer's fingerprint {value} is neither the certificate's ({}) \
                     nor webrtcbin 1.22's hash of certificate and key",
                    self.fingerprint
                )));
            }
        }
        if !found {
            return Err(failed("the offer has no a=fingerprint"));
        }
        Ok(lines.concat())
    }
}

/// `sha-256 AB:CD:...` over the concatenation of `parts`.
fn sdp_fingerprint(parts: &[&[u8]]) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    for part in parts {
        hash.update(part);
    }
    let hex = hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    format!("sha-256 {hex}")
}

/// `rtpXdepay ! Xparse ! avdec_X ! fakesink` behind `pad`.
fn link_decoder(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    decoded: &Arc<watch::Sender<Decoded>>,
) -> Result<(), String> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let encoding = caps
        .structure(0)
        .and_then(|s| s.get::<String>("encoding-name").ok())
        .unwrap_or_default();
    let (depay, parse, dec) = match encoding.as_str() {
        "H265" => ("rtph265depay", "h265parse", "avdec_h265"),
        "H264" => ("rtph264depay", "h264parse", "avdec_h264"),
        other => {
            return Err(format!(
                "no decoder for an incoming {other:?} stream: {caps}"
            ));
        }
    };
    let make = |name: &str| {
        gst::ElementFactory::make(name)
            .build()
            .map_err(|e| format!("{name}: {e}"))
    };
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| format!("fakesink: {e}"))?;
    let elements = [make(depay)?, make(parse)?, make(dec)?, sink];
    pipeline
        .add_many(&elements)
        .map_err(|e| format!("adding the decode chain: {e}"))?;
    gst::Element::link_many(&elements).map_err(|e| format!("linking the decode chain: {e}"))?;
    for e in &elements {
        e.sync_state_with_parent()
            .map_err(|err| format!("{} to the pipeline's state: {err}", e.name()))?;
    }
    let decoder_src = elements[2]
        .static_pad("src")
        .ok_or_else(|| format!("{dec} has no src pad"))?;
    let decoded_probe = decoded.clone();
    decoder_src.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
        let size = pad.current_caps().and_then(|c| {
            let s = c.structure(0)?;
            Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?))
        });
        decoded_probe.send_modify(|d| {
            d.frames += 1;
            d.first_frame.get_or_insert_with(Instant::now);
            if size.is_some() {
                d.size = size;
            }
        });
        gst::PadProbeReturn::Ok
    });
    decoded.send_modify(|d| d.depayloader = Some(depay));
    let depay_sink = elements[0]
        .static_pad("sink")
        .ok_or_else(|| format!("{depay} has no sink pad"))?;
    pad.link(&depay_sink)
        .map_err(|e| format!("linking webrtcbin to {depay}: {e:?}"))?;
    Ok(())
}

/// The codec of the first payload type on the first video m-line of `sdp`
/// (`H265`, `H264`), by its rtpmap. `None` when there is no video m-line,
/// it is rejected (port 0), or its type has no rtpmap.
pub fn video_codec_of(sdp: &str) -> Option<&str> {
    let mut lines = sdp.lines().map(str::trim_end);
    let m = lines.by_ref().find(|l| l.starts_with("m=video "))?;
    let mut fields = m.split_whitespace().skip(1);
    if fields.next()? == "0" {
        return None;
    }
    let pt = fields.nth(1)?;
    let prefix = format!("a=rtpmap:{pt} ");
    lines
        .take_while(|l| !l.starts_with("m="))
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|codec| codec.split('/').next())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only webrtcbin 1.22's known wrong fingerprint is replaced: the
    /// right one stays, any other is an error, as is none.
    #[test]
    fn the_offer_gets_the_certificates_fingerprint() {
        let id = DtlsIdentity {
            pem: String::new(),
            fingerprint: "sha-256 AA:BB".into(),
            webrtcbin_fingerprint: "sha-256 CC:DD".into(),
        };
        let offer = |f: &str| format!("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n{f}a=mid:0\r\n");
        let cases = [
            (
                "a=fingerprint:sha-256 CC:DD\r\n",
                Some("a=fingerprint:sha-256 AA:BB\r\n"),
            ),
            (
                "a=fingerprint:sha-256 cc:dd\r\n",
                Some("a=fingerprint:sha-256 AA:BB\r\n"),
            ),
            (
                "a=fingerprint:sha-256 AA:BB\r\n",
                Some("a=fingerprint:sha-256 AA:BB\r\n"),
            ),
            ("a=fingerprint:sha-256 EE:FF\r\n", None),
            ("", None),
        ];
        for (line, want) in cases {
            let got = id.fix_offer_fingerprint(&offer(line)).ok();
            assert_eq!(got, want.map(offer), "{line}");
        }
    }

    #[test]
    fn the_video_codec_is_the_first_payload_types_rtpmap() {
        let cases = [
            (
                "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                 m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:97 H264/90000\r\n\
                 a=rtpmap:96 H265/90000\r\n",
                Some("H265"),
            ),
            (
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 H264/90000\r\n",
                Some("H264"),
            ),
            (
                "v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H265/90000\r\n",
                None,
            ),
            (
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n\
                 a=rtpmap:96 opus/48000/2\r\n",
                None,
            ),
            ("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", None),
        ];
        for (sdp, want) in cases {
            assert_eq!(video_codec_of(sdp), want, "{sdp}");
        }
    }
}
