use gstreamer as gst;
use gstreamer::prelude::*;

use crate::v4l2::summarize_caps;

/// A camera found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Human-readable name.
    pub name: String,
    /// What to pass to `--source` (e.g. `v4l2:/dev/video0`), when known.
    pub source: Option<String>,
    /// The media types and formats it offers.
    pub formats: String,
}

/// Three lines: the name, then indented, what to pass to `--source` and
/// the formats.
impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n  source:  {}\n  formats: {}",
            self.name,
            self.source.as_deref().unwrap_or("(not usable as a source)"),
            self.formats
        )
    }
}

/// Lists V4L2 and libcamera cameras through GStreamer's device monitor.
///
/// Returns an empty list on a machine without cameras. Opens no device for
/// streaming; call at setup time, not on a streaming thread.
pub fn list_devices() -> Vec<DeviceInfo> {
    let monitor = gst::DeviceMonitor::new();
    monitor.add_filter(Some("Video/Source"), None);
    if monitor.start().is_err() {
        return Vec::new();
    }
    let devices = monitor.devices();
    monitor.stop();
    devices
        .iter()
        .map(|d| {
            let props = d.properties();
            let prop = |k: &str| props.as_ref().and_then(|p| p.get::<String>(k).ok());
            let source = match prop("device.api").as_deref() {
                Some("v4l2") => prop("api.v4l2.path")
                    .or_else(|| prop("device.path"))
                    .map(|p| format!("v4l2:{p}")),
                Some("libcamera") => Some(format!("libcamera:{}", d.display_name())),
                _ => None,
            };
            DeviceInfo {
                name: d.display_name().to_string(),
                source,
                formats: d.caps().map(|c| summarize_caps(&c)).unwrap_or_default(),
            }
        })
        .collect()
}
