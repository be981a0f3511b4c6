//! Writing a single stream to a standalone file: the pusher's `--output`,
//! up to a media duration.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use reallive_core::{EncodedFrame, FrameReceiver, StreamInfo};
use tokio_util::sync::CancellationToken;

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

    /// Writes what arrives on `frames` until the channel closes, `stop`
    /// fires (checked after each frame), or the media reaches `limit_90k`,
    /// then finishes the file. Blocks, like the rest of `FileSink`.
    ///
    /// The limit counts from the first frame's start and keeps a frame
    /// that starts within it, allowing half a frame of rounding, so 10 s at
    /// 30 fps is exactly 300 frames. A write error finishes the file with
    /// what is already written, so it stays playable, and is returned. A
    /// source that delivered no frames is [`StoreError::InvalidInput`]. An
    /// error leaves no empty file behind.
    pub fn write_from(
        self,
        frames: FrameReceiver,
        limit_90k: Option<i64>,
        stop: &CancellationToken,
    ) -> Result<FileSummary, StoreError> {
        let path = self.path.clone();
        let result = self.drain(frames, limit_90k, stop);
        if result.is_err() && std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(&path);
        }
        result
    }

    fn drain(
        mut self,
        mut frames: FrameReceiver,
        limit_90k: Option<i64>,
        stop: &CancellationToken,
    ) -> Result<FileSummary, StoreError> {
        let mut first_pts = None;
        while let Some(frame) = frames.blocking_recv() {
            let first = *first_pts.get_or_insert(frame.pts_90k);
            if !within(
                limit_90k,
                first,
                frame.pts_90k,
                frame.duration_90k.unwrap_or(3000),
            ) {
                break;
            }
            if let Err(e) = self.write(frame) {
                // Keep what is already written playable.
                let _ = self.finish();
                return Err(e);
            }
            if stop.is_cancelled() {
                break;
            }
        }
        let summary = self.finish()?;
        if summary.frames == 0 {
            return Err(StoreError::InvalidInput(
                "the source produced no frames".into(),
            ));
        }
        Ok(summary)
    }
}

/// Media time kept: frames whose start lies within `limit` of the first,
/// allowing half a frame of rounding so 10 s at 30 fps is exactly 300.
fn within(limit_90k: Option<i64>, first_pts: i64, frame_pts: i64, duration_90k: u32) -> bool {
    limit_90k.is_none_or(|l| frame_pts - first_pts < l - i64::from(duration_90k / 2))
}

#[cfg(test)]
mod tests {
    use reallive_core::frame_channel;

    use super::*;

    #[test]
    fn duration_limit_is_frame_exact() {
        // 30 fps: frames at 0, 3000, ... ; 10 s keeps indices 0..300.
        let kept = (0..400)
            .filter(|i| within(Some(900_000), 7, 7 + i * 3000, 3000))
            .count();
        assert_eq!(kept, 300);
        // 29.97 fps (3003 ticks): 10 s keeps 300 frames (0..=9.99 s).
        let kept = (0..400)
            .filter(|i| within(Some(900_000), 0, i * 3003, 3003))
            .count();
        assert_eq!(kept, 300);
        assert!(within(None, 0, i64::MAX / 2, 3000));
    }

    /// `n` frames at 30 fps from a real x264 clip, on a closed channel.
    fn queued(n: usize) -> FrameReceiver {
        let (tx, rx) = frame_channel(n.max(1));
        for f in reallive_test_support::clip::ball_frames(n) {
            assert_eq!(tx.offer(f), reallive_core::Offer::Sent);
        }
        rx
    }

    #[test]
    fn one_second_of_a_longer_stream_is_thirty_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.mp4");
        let sink = FileSink::create(&path).unwrap();
        let summary = sink
            .write_from(queued(45), Some(90_000), &CancellationToken::new())
            .unwrap();
        assert_eq!(summary.frames, 30);
        assert_eq!(summary.duration_90k, 90_000);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), summary.bytes);
    }

    #[test]
    fn no_frames_is_an_error_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.h264");
        let sink = FileSink::create(&path).unwrap();
        let err = sink
            .write_from(queued(0), None, &CancellationToken::new())
            .unwrap_err();
        assert_eq!(err.to_string(), "the source produced no frames");
        assert!(!path.exists());
    }
}
