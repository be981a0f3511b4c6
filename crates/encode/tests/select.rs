//! Encoder selection and bin construction against the installed GStreamer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gstreamer as gst;
use gstreamer::prelude::*;
use reallive_encode::{EncodeError, Encoder, EncoderKind, EncoderSettings, OpenH264, X264, select};

fn init() {
    gst::init().expect("GStreamer initialises");
}

#[test]
fn software_encoders_are_installed_and_build() {
    init();
    for enc in [&X264 as &dyn Encoder, &OpenH264] {
        enc.probe()
            .unwrap_or_else(|e| panic!("{} must be installed by scripts/setup: {e}", enc.name()));
        let bin = enc.build(&EncoderSettings::default()).unwrap();
        assert!(bin.static_pad("sink").is_some() && bin.static_pad("src").is_some());
    }
}

#[test]
fn auto_never_picks_an_unusable_hardware_encoder() {
    init();
    let enc = select(EncoderKind::Auto).unwrap();
    // This CI machine has no V4L2 M2M encoder device, so auto must fall
    // through to software; on a Pi 4 the probe succeeds and it picks v4l2m2m.
    if reallive_encode::V4l2M2m.probe().is_err() {
        assert_eq!(enc.name(), "x264");
    } else {
        assert_eq!(enc.name(), "v4l2m2m");
    }
}

#[test]
fn explicit_hardware_without_device_is_a_clear_error() {
    init();
    if reallive_encode::V4l2M2m.probe().is_ok() {
        return; // real hardware present: nothing to refuse
    }
    let err = select(EncoderKind::V4l2M2m).unwrap_err();
    assert!(
        matches!(
            err,
            EncodeError::MissingElement {
                element: "v4l2h264enc",
                ..
            } | EncodeError::DeviceUnusable { .. }
                | EncodeError::NoDevice { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("v4l2h264enc"), "{err}");
}

#[test]
fn settings_are_validated() {
    init();
    let bad = EncoderSettings {
        bitrate_kbps: 0,
        ..EncoderSettings::default()
    };
    assert!(X264.build(&bad).is_err());
    assert!("h266".parse::<EncoderKind>().is_err());
    assert_eq!(
        "OpenH264".parse::<EncoderKind>().unwrap(),
        EncoderKind::OpenH264
    );
}
