//! [`Reencoder`]: the seam where the store's transcoder meets an encoder.
//!
//! `reallive-store` rewrites a recording fragment for fragment
//! (`reallive_store::transcode::rewrite`); what turns its stored samples
//! into new pictures is a [`Reencoder`], which `reallive-encode`
//! implements with GStreamer's x265. The store never sees GStreamer, and a
//! test can plug in an identity re-encoder.

use bytes::Bytes;

use crate::Codec;

/// An error from a backend behind a trait of this crate, kept whole for
/// its message and source chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a [`Reencoder`] is given to start: the source's codec, its codec
/// configuration record (`avcC` or `hvcC` body) and picture size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// The source codec.
    pub codec: Codec,
    /// The sample entry's configuration record.
    pub config: Vec<u8>,
    /// Picture width.
    pub width: u16,
    /// Picture height.
    pub height: u16,
    /// The source's average bitrate, kbit/s.
    pub bitrate_kbps: u32,
}

/// One picture out of a [`Reencoder`].
#[derive(Clone, Debug)]
pub struct Reencoded {
    /// The presentation time of the input frame it encodes, as given to
    /// [`Reencoder::push`].
    pub pts_90k: i64,
    /// The access unit, Annex-B (with parameter sets before every
    /// keyframe).
    pub data: Bytes,
    /// Whether it can be decoded on its own.
    pub keyframe: bool,
}

/// A decoder and encoder in one: stored samples in, new pictures out.
///
/// It must return exactly one picture per frame pushed, carrying that
/// frame's `pts_90k`, in any order and at any delay; the store's rewrite
/// checks. Calls block (the encoder runs in the caller's thread or its
/// own); the NVR runs the whole rewrite in a child process.
pub trait Reencoder {
    /// Takes one stored sample (NAL units with 4-byte length prefixes) and
    /// returns whatever pictures are ready. With `keyframe` the picture
    /// for this frame must be a keyframe.
    fn push(
        &mut self,
        data: &Bytes,
        pts_90k: i64,
        dts_90k: i64,
        keyframe: bool,
    ) -> Result<Vec<Reencoded>, BoxError>;
    /// Drains the pictures still inside.
    fn finish(&mut self) -> Result<Vec<Reencoded>, BoxError>;
}
