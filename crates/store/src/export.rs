//! Exporting a time range as one standalone MP4.

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
    /// Whether it stopped early at a parameter change.
    pub truncated_at_parameter_change: bool,
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
    let mut init: Option<Vec<u8>> = None;
    let mut summary = ExportSummary {
        fragments: 0,
        frames: 0,
        bytes: 0,
        start_utc_ns: 0,
        end_utc_ns: 0,
        truncated_at_parameter_change: false,
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
        let this_init = read_range(&mut file, 0, rec.init_bytes, &path)?;
        match &init {
            None => {
                out.write_all(&this_init)
                    .map_err(|e| StoreError::io(format!("writing {sink}"), e))?;
                summary.bytes += this_init.len() as u64;
                summary.start_utc_ns = rec.fragment_start_utc_ns(&frags[0]);
                init = Some(this_init);
            }
            // One file has one sample description: stop where it changes.
            Some(first) if *first != this_init => {
                summary.truncated_at_parameter_change = true;
                break 'files;
            }
            Some(_) => {}
        }
        for f in frags {
            let mut data = read_range(&mut file, f.offset, u64::from(f.size), &path)?;
            let wall = rec.fragment_start_utc_ns(f);
            let decode_time =
                ((i128::from(wall - summary.start_utc_ns) * 90_000) / 1_000_000_000).max(0) as u64;
            sequence += 1;
            if !crate::mp4::rewrite_moof(&mut data, Some(sequence), |_| decode_time) {
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
    if init.is_none() {
        return Err(StoreError::NotFound("recordings in that range".into()));
    }
    out.flush()
        .map_err(|e| StoreError::io(format!("writing {sink}"), e))?;
    Ok(summary)
}
