//! `reallive-nvr transcode-file`: the child process a transcoding job runs
//! (`reallive_record::transcode::ChildRunner` starts it). It wires the
//! GStreamer x265 transcoder of `reallive-encode`, a
//! [`Reencoder`], into the store's
//! fragment-for-fragment rewrite.

use std::path::Path;

use reallive_core::Codec;
use reallive_core::reencode::{Reencoder, SourceInfo};
use reallive_encode::transcode::{H265Settings, H265Transcoder};
use reallive_store::StoreError;
use reallive_store::transcode::{self, RewriteSummary};

/// The new file's bitrate is capped at this share of the source's: x265
/// needs about half the bits of x264 for the same picture, and a file
/// that did not shrink would be re-encoded for nothing.
const MAX_PERCENT: u32 = 60;

/// Re-encodes the H.264 recording `input` to H.265 in `output`, fragment
/// for fragment (what `reallive-nvr transcode-file` does).
pub fn transcode_file(
    input: &Path,
    output: &Path,
    settings: &H265Settings,
) -> Result<RewriteSummary, StoreError> {
    transcode::rewrite(input, output, |info: &SourceInfo| {
        if info.codec != Codec::H264 {
            return Err(format!("it is {}, not H.264", info.codec).into());
        }
        let settings = H265Settings {
            max_kbps: settings
                .max_kbps
                .or(Some(info.bitrate_kbps.saturating_mul(MAX_PERCENT) / 100)),
            ..settings.clone()
        };
        H265Transcoder::new(&info.config, &settings)
            .map(|t| Box::new(t) as Box<dyn Reencoder>)
            .map_err(Into::into)
    })
}
