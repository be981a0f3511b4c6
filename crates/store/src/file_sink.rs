//! Writing a single stream to a standalone file: the pusher's `--output`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use reallive_core::{EncodedFrame, StreamInfo};

use crate::StoreError;
use crate::mp4::Fmp4Muxer;

/// The container of an output file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// `.h264`/`.264`/`.h265`/`.265`: the raw Annex-B elementary stream.
    AnnexB,
    /// `.mp4`: fragmented MP4, ~1 s fragments.
    Mp4,
}

impl FileFormat {
    /// The format for `path`'s extension.
    pub fn from_path(path: &Path) -> Result<Self, StoreError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("h264" | "264" | "h265" | "265") => Ok(FileFormat::AnnexB),
            Some("mp4") => Ok(FileFormat::Mp4),
            _ => Err(StoreError::InvalidInput(format!(
                "{}: output must end in .mp4 or .h264",
                path.display()
            ))),
        }
    }
}

/// What a finished file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    /// Frames written.
    pub frames: u64,
    /// Bytes written.
    pub bytes: u64,
    /// From the first frame's start to the last frame's end, 90 kHz.
    pub duration_90k: i64,
    /// The stream, from its first keyframe's parameter sets.
    pub info: Option<StreamInfo>,
}

/// Writes frames to one file, blocking. Run it on a dedicated or blocking
/// thread, never on an async worker.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
    muxer: Option<Fmp4Muxer>,
    frames: u64,
    bytes: u64,
    first_pts: Option<i64>,
    end_pts: i64,
    info: Option<StreamInfo>,
}

impl FileSink {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        let format = FileFormat::from_path(path)?;
        let file = File::create(path).map_err(|source| StoreError::Io {
            context: format!("cannot create {}", path.display()),
            source,
        })?;
        Ok(FileSink {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            muxer: (format == FileFormat::Mp4).then(|| Fmp4Muxer::new(90_000)),
            frames: 0,
            bytes: 0,
            first_pts: None,
            end_pts: 0,
            info: None,
        })
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            context: format!("writing {}", self.path.display()),
            source,
        }
    }

    fn put(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.out.write_all(data).map_err(|e| self.io(e))?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Appends a frame. Frames before the first keyframe are skipped, since
    /// nothing can decode them.
    pub fn write(&mut self, frame: EncodedFrame) -> Result<(), StoreError> {
        if self.frames == 0 && !frame.keyframe {
            return Ok(());
        }
        if self.info.is_none() {
            self.info = frame.params.stream_info().ok();
        }
        let pts = frame.pts_90k;
        let end = pts + i64::from(frame.duration_90k.unwrap_or(0));
        match self.muxer.as_mut() {
            Some(m) => {
                let out = m.push(frame)?;
                for bytes in out
                    .init
                    .iter()
                    .chain(out.fragment.as_ref().map(|f| &f.data))
                {
                    self.put(bytes)?;
                }
            }
            None => self.put(&frame.data)?,
        }
        self.first_pts.get_or_insert(pts);
        self.end_pts = self.end_pts.max(end).max(pts);
        self.frames += 1;
        Ok(())
    }

    /// Writes what is buffered, syncs the file to disk and closes it.
    pub fn finish(mut self) -> Result<FileSummary, StoreError> {
        if let Some(tail) = self.muxer.as_mut().and_then(|m| m.finish(None)) {
            self.put(&tail.data)?;
        }
        self.out.flush().map_err(|e| self.io(e))?;
        self.out.get_ref().sync_all().map_err(|e| self.io(e))?;
        Ok(FileSummary {
            frames: self.frames,
            bytes: self.bytes,
            duration_90k: self.end_pts - self.first_pts.unwrap_or(self.end_pts),
            info: self.info,
        })
    }
}
