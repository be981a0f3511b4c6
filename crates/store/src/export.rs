//! Exporting a time range as one standalone MP4.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::StoreError;
use crate::hls::selected;
use crate::model::{Recording, TimeRange};

/// What an export holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// Fragments copied.
    pub fragments: u64,
    /// Frames in them.
    pub frames: u64,
    /// Size of the MP4.
    pub bytes: u64,
    /// Wall clock of its first frame (a keyframe at or before the range start).
    pub start_utc_ns: i64,
    /// Wall clock just past its last frame.
    pub end_utc_ns: i64,
    /// Whether it stopped early at a change of the video's parameters.
    pub truncated_at_parameter_change: bool,
    /// Fragments copied without their audio: files whose audio track the
    /// export's (its first file's) does not describe.
    pub fragments_without_audio: u64,
}

/// What an export's file layout comes from: its first file's init segment.
struct Layout {
    init: Vec<u8>,
    /// The video `trak` box, byte for byte: a file whose video differs
    /// ends the export.
    video: Vec<u8>,
    /// The audio `trak` box, if any: a file whose audio differs (or that
    /// has audio where the export has none) is copied without it.
    audio: Option<Vec<u8>>,
    audio_timescale: Option<u32>,
}

impl Layout {
    fn of(init: Vec<u8>) -> Result<Self, StoreError> {
        let traks = crate::mp4::traks(&init);
        let video = traks
            .iter()
            .find(|(id, _)| *id == 1)
            .map(|(_, t)| t.to_vec())
            .ok_or_else(|| StoreError::Corrupt("init segment without a video track".into()))?;
        let audio = traks
            .iter()
            .find(|(id, _)| *id == 2)
            .map(|(_, t)| t.to_vec());
        let audio_timescale = crate::mp4::audio_timescale(&init);
        Ok(Layout {
            init,
            video,
            audio,
            audio_timescale,
        })
    }
}

fn read_range(file: &mut File, offset: u64, len: u64, path: &Path) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![
        0u8;
        usize::try_from(len)
            .map_err(|_| StoreError::Corrupt("fragment too large".into()))?
    ];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
    Ok(buf)
}

/// Writes `[range]` of `recordings` (one camera, oldest first) under `root`
/// to `dest` as one fragmented MP4 whose timeline starts at zero. Blocking.
pub(crate) fn export(
    root: &Path,
    recordings: &[Recording],
    range: TimeRange,
    dest: &Path,
) -> Result<ExportSummary, StoreError> {
    let tmp = dest.with_extension("partial");
    let result = write_export(root, recordings, range, &tmp);
    match result {
        Ok(summary) => {
            fs::rename(&tmp, dest)
                .map_err(|e| StoreError::io(format!("renaming to {}", dest.display()), e))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn write_export(
    root: &Path,
    recordings: &[Recording],
    range: TimeRange,
    tmp: &Path,
) -> Result<ExportSummary, StoreError> {
    let mut out =
        File::create(tmp).map_err(|e| StoreError::io(format!("creating {}", tmp.display()), e))?;
    let summary = export_to(
        root,
        recordings,
        range,
        &mut out,
        &tmp.display().to_string(),
    )?;
    out.sync_all()
        .map_err(|e| StoreError::io(format!("syncing {}", tmp.display()), e))?;
    Ok(summary)
}

/// Writes `[range]` of `recordings` to `out` as one fragmented MP4, the
/// fragments as they are read: memory stays at one fragment whatever the
/// range. `NotFound` (before anything is written) when no fragment is in
/// the range. Blocking.
pub(crate) fn export_to(
    root: &Path,
    recordings: &[Recording],
    range: TimeRange,
    out: &mut impl Write,
    sink: &str,
) -> Result<ExportSummary, StoreError> {
    let mut layout: Option<Layout> = None;
    let mut summary = ExportSummary {
        fragments: 0,
        frames: 0,
        bytes: 0,
        start_utc_ns: 0,
        end_utc_ns: 0,
        truncated_at_parameter_change: false,
        fragments_without_audio: 0,
    };
    let mut sequence = 0u32;
    'files: for rec in recordings {
        let frags = selected(rec, range);
        if frags.is_empty() {
            continue;
        }
        let path = root.join(&rec.path);
        let mut file = File::open(&path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
        let this = Layout::of(read_range(&mut file, 0, rec.init_bytes, &path)?)?;
        // Whether this file's audio `traf`s can go in as they are.
        let keep_audio = match &layout {
            None => {
                out.write_all(&this.init)
                    .map_err(|e| StoreError::io(format!("writing {sink}"), e))?;
                summary.bytes += this.init.len() as u64;
                summary.start_utc_ns = rec.fragment_start_utc_ns(&frags[0]);
                layout = Some(this);
                true
            }
            // One file has one sample description per track: stop where
            // the video's changes.
            Some(first) if first.video != this.video => {
                summary.truncated_at_parameter_change = true;
                break 'files;
            }
            // The audio follows the first file's layout
            // (`docs/design/audio.md`, "Recording").
            Some(first) => first.audio.is_some() && first.audio == this.audio,
        };
        let audio_rate = layout.as_ref().and_then(|l| l.audio_timescale);
        // The audio moves with the video by the same time, once per file
        // (its first fragment's shift) so it gains no rounding jitter.
        let audio_delta: Cell<Option<i128>> = Cell::new(None);
        for f in frags {
            let mut data = read_range(&mut file, f.offset, u64::from(f.size), &path)?;
            let wall = rec.fragment_start_utc_ns(f);
            let decode_time =
                ((i128::from(wall - summary.start_utc_ns) * 90_000) / 1_000_000_000).max(0) as u64;
            if !keep_audio && crate::mp4::strip_audio(&mut data) > 0 {
                summary.fragments_without_audio += 1;
            }
            sequence += 1;
            let rebased = crate::mp4::rewrite_moof_with_audio(
                &mut data,
                Some(sequence),
                |old| {
                    if audio_delta.get().is_none()
                        && let Some(rate) = audio_rate
                    {
                        let scaled = (i128::from(decode_time) - i128::from(old)) * i128::from(rate);
                        // Rounded to the nearest sample.
                        audio_delta.set(Some((scaled + 45_000).div_euclid(90_000)));
                    }
                    decode_time
                },
                |old| {
                    u64::try_from((i128::from(old) + audio_delta.get().unwrap_or(0)).max(0))
                        .unwrap_or(u64::MAX)
                },
            );
            if !rebased {
                return Err(StoreError::Corrupt(format!(
                    "{}: fragment at {} is not a moof",
                    rec.path, f.offset
                )));
            }
            out.write_all(&data)
                .map_err(|e| StoreError::io(format!("writing {sink}"), e))?;
            summary.bytes += data.len() as u64;
            summary.fragments += 1;
            summary.frames += u64::from(f.frames);
            summary.end_utc_ns = wall + crate::model::ticks_to_ns(i64::from(f.duration_90k));
        }
    }
    if layout.is_none() {
        return Err(StoreError::NotFound("recordings in that range".into()));
    }
    out.flush()
        .map_err(|e| StoreError::io(format!("writing {sink}"), e))?;
    Ok(summary)
}
