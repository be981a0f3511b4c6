//! Scheduled re-encoding of old recordings to save space.
//!
//! Three pieces, each usable alone:
//!
//! - [`rewrite`] re-encodes one file into another **fragment for
//!   fragment**: the new file has the same fragments, each with the same
//!   decode time, duration and number of frames, and a keyframe wherever
//!   the original fragment started with one. Playback, HLS and the index
//!   see the same timeline, only in fewer bytes. The encoder itself is a
//!   [`Reencoder`] the caller supplies (RealLive's is GStreamer's x265 in
//!   `reallive-encode`), so this crate stays free of GStreamer.
//! - [`Store::begin_replacement`], [`Store::commit_replacement`] and
//!   [`Store::abort_replacement`] swap a recording's file for a new one
//!   without ever risking the original:
//!   1. the new file's path is entered in `garbage` *before* it is created,
//!      so a crash at any point before the swap leaves it to recovery to
//!      delete;
//!   2. the new file is checked against the index by walking its boxes:
//!      same fragments, frames, durations and keyframes, a different codec,
//!      and fewer bytes;
//!   3. one transaction points the row at the new file, takes the new path
//!      out of `garbage` and puts the old one in;
//!   4. only then is the original deleted.
//!
//!   A failure anywhere keeps the original and its row as they were.
//! - [`Store::transcode_candidates`] and [`Store::transcode_skipped`] feed
//!   the scheduler, which lives in `reallive-record`
//!   (`reallive_record::transcode::spawn`): it runs jobs in a daily time
//!   window, oldest recordings first, at most `max_jobs` at a time, each in
//!   a child process at the lowest CPU and I/O priority.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use reallive_core::reencode::{BoxError, Reencoded, Reencoder, SourceInfo};
use reallive_core::time::UtcNs;
use reallive_core::{Codec, CodecParameters};
use sqlx::Row;

use crate::fragment;
use crate::model::{Recording, RecordingState, parse_codec};
use crate::mp4::{self, Sample};
use crate::scan::{self, ScannedFile};
use crate::store::{blocking, fsync_dir, row_to_recording};
use crate::{Store, StoreError};

/// What [`rewrite`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewriteSummary {
    /// Frames written.
    pub frames: u64,
    /// Fragments written.
    pub fragments: usize,
    /// Bytes of the source.
    pub source_bytes: u64,
    /// Bytes of the new file.
    pub bytes: u64,
}

fn rewrite_error(src: &Path, msg: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidInput(format!("re-encoding {}: {msg}", src.display()))
}

/// Re-encodes the recording file `src` into a new file `dst` (which must
/// not exist), fragment for fragment. `make` builds the encoder once the
/// source's codec configuration is known.
///
/// Blocking: run it on a thread of its own (the NVR runs it in a child
/// process). `dst` is fsynced before this returns; on an error it may be
/// left partial, for the caller to delete.
pub fn rewrite(
    src: &Path,
    dst: &Path,
    make: impl FnOnce(&SourceInfo) -> Result<Box<dyn Reencoder>, BoxError>,
) -> Result<RewriteSummary, StoreError> {
    let mut input =
        File::open(src).map_err(|e| StoreError::io(format!("opening {}", src.display()), e))?;
    let scanned = scan::scan(&mut input).map_err(|e| rewrite_error(src, e))?;
    if scanned.fragments.is_empty() {
        return Err(rewrite_error(src, "it has no complete fragment"));
    }
    let info = SourceInfo {
        codec: scanned.codec.unwrap_or(Codec::H264),
        config: scanned.codec_config.clone(),
        width: scanned.width,
        height: scanned.height,
        bitrate_kbps: {
            let ticks: u64 = scanned
                .fragments
                .iter()
                .map(|f| u64::from(f.duration_90k))
                .sum();
            u32::try_from(scanned.valid_len * 8 * 90 / ticks.max(1)).unwrap_or(u32::MAX)
        },
    };
    let mut encoder = make(&info).map_err(|e| rewrite_error(src, e))?;
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| StoreError::io(format!("creating {}", dst.display()), e))?;
    let mut w = Writer {
        src,
        out: BufWriter::new(out),
        plans: Vec::with_capacity(scanned.fragments.len()),
        by_pts: HashMap::new(),
        done: BTreeMap::new(),
        next: 0,
        init: false,
        bytes: 0,
        frames: 0,
    };
    for (i, entry) in scanned.fragments.iter().enumerate() {
        let mut pair = vec![0u8; entry.size as usize];
        input
            .seek(SeekFrom::Start(entry.offset))
            .and_then(|_| input.read_exact(&mut pair))
            .map_err(|e| StoreError::io(format!("reading {}", src.display()), e))?;
        let frag = scan::read_fragment(&Bytes::from(pair))
            .ok_or_else(|| rewrite_error(src, format!("fragment {i} is damaged")))?;
        let mut dts = frag.base_decode_time_90k as i64;
        let mut plan = FragmentPlan {
            base_decode_time_90k: frag.base_decode_time_90k,
            durations: Vec::with_capacity(frag.samples.len()),
            keyframe: entry.keyframe,
        };
        for s in &frag.samples {
            let pts = dts + i64::from(s.composition_offset_90k);
            if w.by_pts.insert(pts, i).is_some() {
                return Err(rewrite_error(src, format!("two frames share pts {pts}")));
            }
            plan.durations.push(s.duration_90k);
            let ready = encoder
                .push(&s.data, pts, dts, s.keyframe)
                .map_err(|e| rewrite_error(src, e))?;
            w.take(ready)?;
            dts += i64::from(s.duration_90k);
        }
        w.plans.push(plan);
        w.flush_ready()?;
    }
    let rest = encoder.finish().map_err(|e| rewrite_error(src, e))?;
    w.take(rest)?;
    w.flush_ready()?;
    if w.next != w.plans.len() {
        let got: usize = w.done.values().map(Vec::len).sum();
        return Err(rewrite_error(
            src,
            format!(
                "the encoder stopped at fragment {} of {} ({got} frames held back)",
                w.next,
                w.plans.len()
            ),
        ));
    }
    let frames = w.frames;
    let bytes = w.bytes;
    let file = w
        .out
        .into_inner()
        .map_err(|e| StoreError::io(format!("writing {}", dst.display()), e.into_error()))?;
    file.sync_all()
        .map_err(|e| StoreError::io(format!("syncing {}", dst.display()), e))?;
    Ok(RewriteSummary {
        frames,
        fragments: scanned.fragments.len(),
        source_bytes: scanned.valid_len,
        bytes,
    })
}

/// The timeline of one source fragment, which its new fragment keeps.
#[derive(Debug)]
struct FragmentPlan {
    base_decode_time_90k: u64,
    durations: Vec<u32>,
    keyframe: bool,
}

struct Writer<'a> {
    src: &'a Path,
    out: BufWriter<File>,
    /// Fragments whose samples have all been pushed.
    plans: Vec<FragmentPlan>,
    /// Which fragment each input pts belongs to.
    by_pts: HashMap<i64, usize>,
    /// Pictures out of the encoder, by fragment, not yet written.
    done: BTreeMap<usize, Vec<Reencoded>>,
    /// The next fragment to write.
    next: usize,
    init: bool,
    bytes: u64,
    frames: u64,
}

impl Writer<'_> {
    /// Files pictures under their fragments.
    fn take(&mut self, pictures: Vec<Reencoded>) -> Result<(), StoreError> {
        for p in pictures {
            let Some(i) = self.by_pts.remove(&p.pts_90k) else {
                return Err(rewrite_error(
                    self.src,
                    format!(
                        "the encoder returned a picture for pts {} that was not pushed, or twice",
                        p.pts_90k
                    ),
                ));
            };
            self.done.entry(i).or_default().push(p);
        }
        Ok(())
    }

    /// Writes every complete fragment in order.
    fn flush_ready(&mut self) -> Result<(), StoreError> {
        while let Some(plan) = self.plans.get(self.next) {
            let complete = self
                .done
                .get(&self.next)
                .is_some_and(|d| d.len() == plan.durations.len());
            if !complete {
                return Ok(());
            }
            let (keyframe, base_decode_time_90k) = (plan.keyframe, plan.base_decode_time_90k);
            let durations = std::mem::take(&mut self.plans[self.next].durations);
            let mut pictures = self.done.remove(&self.next).unwrap_or_default();
            pictures.sort_by_key(|p| p.pts_90k);
            if keyframe && !pictures[0].keyframe {
                return Err(rewrite_error(
                    self.src,
                    format!(
                        "the encoder did not make a keyframe where fragment {} starts",
                        self.next
                    ),
                ));
            }
            if !self.init {
                let params = CodecParameters::from_annex_b(Codec::H265, &pictures[0].data)
                    .filter(CodecParameters::is_complete)
                    .or_else(|| {
                        CodecParameters::from_annex_b(Codec::H264, &pictures[0].data)
                            .filter(CodecParameters::is_complete)
                    })
                    .ok_or_else(|| {
                        rewrite_error(
                            self.src,
                            "the first picture carries no complete parameter sets",
                        )
                    })?;
                let init = mp4::init_segment(&params)?;
                self.write(&init)?;
                self.init = true;
            }
            // Each picture takes the decode time and duration of the frame
            // in the same place: the timeline is the source's.
            let samples: Vec<Sample> = pictures
                .into_iter()
                .zip(&durations)
                .map(|(p, d)| Sample {
                    data: p.data,
                    duration_90k: *d,
                    composition_offset_90k: 0,
                    keyframe: p.keyframe,
                })
                .collect();
            self.frames += samples.len() as u64;
            let seg = mp4::media_segment((self.next + 1) as u32, base_decode_time_90k, &samples);
            self.write(&seg)?;
            self.next += 1;
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.out
            .write_all(data)
            .map_err(|e| StoreError::io("writing the re-encoded file", e))?;
        self.bytes += data.len() as u64;
        Ok(())
    }
}

/// Checks a new file against the recording it is to replace: same
/// fragments (decode times, durations, frame counts, keyframes), a
/// different codec, and fewer bytes.
pub fn verify_replacement(rec: &Recording, new: &ScannedFile) -> Result<(), StoreError> {
    verify(rec, new).map_err(StoreError::InvalidInput)
}

fn verify(rec: &Recording, new: &ScannedFile) -> Result<(), String> {
    if new.fragments.len() != rec.fragments.len() {
        return Err(format!(
            "{} fragments, the original has {}",
            new.fragments.len(),
            rec.fragments.len()
        ));
    }
    let frames = |f: &[fragment::FragmentEntry]| f.iter().map(|e| u64::from(e.frames)).sum::<u64>();
    let duration =
        |f: &[fragment::FragmentEntry]| f.iter().map(|e| u64::from(e.duration_90k)).sum::<u64>();
    if frames(&new.fragments) != frames(&rec.fragments) {
        return Err(format!(
            "{} frames, the original has {}",
            frames(&new.fragments),
            frames(&rec.fragments)
        ));
    }
    if duration(&new.fragments) != duration(&rec.fragments) {
        return Err(format!(
            "{} ticks long, the original {}",
            duration(&new.fragments),
            duration(&rec.fragments)
        ));
    }
    for (i, (a, b)) in rec.fragments.iter().zip(&new.fragments).enumerate() {
        if a.decode_time_90k != b.decode_time_90k
            || a.duration_90k != b.duration_90k
            || a.frames != b.frames
            || (a.keyframe && !b.keyframe)
        {
            return Err(format!("fragment {i} differs: {b:?}, the original {a:?}"));
        }
    }
    if new.codec == Some(rec.codec) {
        return Err(format!("it is still {}", rec.codec));
    }
    if new.valid_len != new.file_len {
        return Err(format!(
            "it has {} bytes after its last fragment",
            new.file_len - new.valid_len
        ));
    }
    if new.valid_len >= rec.bytes {
        return Err(format!(
            "it is not smaller ({} bytes, the original {})",
            new.valid_len, rec.bytes
        ));
    }
    Ok(())
}

/// A replacement under way ([`Store::begin_replacement`]).
#[derive(Clone, Debug)]
pub struct Replacement {
    /// The recording as it was when the replacement began.
    pub recording: Recording,
    /// Its file.
    pub source: PathBuf,
    /// Where the new file goes; in `garbage` until the swap.
    pub target: PathBuf,
    target_rel: String,
}

/// What a swap saved ([`Store::commit_replacement`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replaced {
    /// Bytes of the original.
    pub bytes_before: u64,
    /// Bytes of the new file.
    pub bytes_after: u64,
}

impl Store {
    /// Complete H.264 recordings that ended before `ended_before_utc_ns`,
    /// oldest first, that the transcoder has not given up on. Metadata
    /// only: `fragments` is empty.
    pub async fn transcode_candidates(
        &self,
        ended_before_utc_ns: i64,
        limit: usize,
    ) -> Result<Vec<Recording>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, codecs, width, height, \
             state, first_seq, x'' AS fragments FROM recordings \
             WHERE state = 'complete' AND codec = 'h264' AND end_utc_ns < ? \
             AND path NOT IN (SELECT path FROM transcode_skip) \
             ORDER BY start_utc_ns, id LIMIT ?",
        )
        .bind(ended_before_utc_ns)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(row_to_recording).collect()
    }

    /// Prepares to replace recording `id`'s file: enters the new file's
    /// path in `garbage`, so that until [`commit_replacement`](Self::commit_replacement)
    /// a crash leaves it for recovery to delete.
    pub async fn begin_replacement(&self, id: i64) -> Result<Replacement, StoreError> {
        let rec = self
            .recording(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("recording {id}")))?;
        if rec.state != RecordingState::Complete {
            return Err(StoreError::InvalidInput(format!(
                "recording {id} is still being written"
            )));
        }
        let stem = rec.path.strip_suffix(".mp4").unwrap_or(&rec.path);
        let target_rel = format!("{stem}-h265.mp4");
        sqlx::query("INSERT OR REPLACE INTO garbage (path, marked_at_utc_ns) VALUES (?, ?)")
            .bind(&target_rel)
            .bind(UtcNs::now().0)
            .execute(&self.inner.pool)
            .await?;
        let target = self.inner.root.join(&target_rel);
        // A leftover from an attempt that died after this point.
        let t = target.clone();
        blocking(move || match fs::remove_file(&t) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(format!("deleting {}", t.display()), e)),
        })
        .await?;
        Ok(Replacement {
            source: self.inner.root.join(&rec.path),
            target,
            target_rel,
            recording: rec,
        })
    }

    /// Verifies the new file ([`verify_replacement`]) and swaps it in, in
    /// one transaction; then deletes the original. On any error the
    /// original stays as it was, and the caller should
    /// [`abort_replacement`](Self::abort_replacement).
    pub async fn commit_replacement(&self, r: &Replacement) -> Result<Replaced, StoreError> {
        let target = r.target.clone();
        let scanned = blocking(move || {
            let mut f = File::open(&target)
                .map_err(|e| StoreError::io(format!("opening {}", target.display()), e))?;
            scan::scan(&mut f).map_err(|e| {
                StoreError::InvalidInput(format!("{} is not a recording: {e}", target.display()))
            })
        })
        .await?;
        verify(&r.recording, &scanned).map_err(|why| {
            StoreError::InvalidInput(format!("{} fails verification: {why}", r.target.display()))
        })?;
        let dir = r.target.parent().map(Path::to_path_buf);
        if let Some(dir) = dir {
            blocking(move || fsync_dir(&dir)).await?;
        }
        let rec = &r.recording;
        let codec = scanned.codec.map_or("h265", Codec::name);
        let mut tx = self.inner.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE recordings SET path = ?, bytes = ?, init_bytes = ?, codec = ?, codecs = ?, width = ?, \
             height = ?, fragments = ? WHERE id = ? AND path = ? AND bytes = ? AND state = 'complete'",
        )
        .bind(&r.target_rel)
        .bind(scanned.valid_len as i64)
        .bind(scanned.init_bytes as i64)
        .bind(codec)
        .bind(&scanned.codecs)
        .bind(i64::from(scanned.width))
        .bind(i64::from(scanned.height))
        .bind(fragment::pack(&scanned.fragments))
        .bind(rec.id)
        .bind(&rec.path)
        .bind(rec.bytes as i64)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!(
                "recording {} changed or was deleted while it was re-encoded",
                rec.id
            )));
        }
        sqlx::query("DELETE FROM garbage WHERE path = ?")
            .bind(&r.target_rel)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT OR REPLACE INTO garbage (path, marked_at_utc_ns) VALUES (?, ?)")
            .bind(&rec.path)
            .bind(UtcNs::now().0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let replaced = Recording {
            path: r.target_rel.clone(),
            bytes: scanned.valid_len,
            init_bytes: scanned.init_bytes,
            codec: parse_codec(codec),
            codecs: scanned.codecs.clone(),
            width: u32::from(scanned.width),
            height: u32::from(scanned.height),
            fragments: Vec::new(),
            ..rec.clone()
        };
        self.cache_change(&rec.camera, |list| {
            if let Some(slot) = list.iter_mut().find(|x| x.id == rec.id) {
                *slot = replaced;
            }
        });
        self.forget_cached(rec.id);
        // The thumbnails keep their rows (same id, same times): their
        // sidecar follows the file before the old one is unlinked.
        let (old, new) = (
            crate::store::sidecar(&self.inner.root.join(&rec.path)),
            crate::store::sidecar(&self.inner.root.join(&r.target_rel)),
        );
        blocking(move || match std::fs::rename(&old, &new) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io(format!("moving {}", old.display()), e))
            }
            _ => Ok(()),
        })
        .await?;
        self.unlink_garbage(&rec.path).await?;
        Ok(Replaced {
            bytes_before: rec.bytes,
            bytes_after: scanned.valid_len,
        })
    }

    /// Gives up a replacement: deletes the new file, and with `skip`
    /// remembers the recording so it is not tried again.
    pub async fn abort_replacement(
        &self,
        r: &Replacement,
        skip: Option<&str>,
    ) -> Result<(), StoreError> {
        self.unlink_garbage(&r.target_rel).await?;
        if let Some(reason) = skip {
            sqlx::query(
                "INSERT OR REPLACE INTO transcode_skip (path, reason, at_utc_ns) VALUES (?, ?, ?)",
            )
            .bind(&r.recording.path)
            .bind(reason)
            .bind(UtcNs::now().0)
            .execute(&self.inner.pool)
            .await?;
        }
        Ok(())
    }

    /// Recordings the transcoder gave up on: (path, reason).
    pub async fn transcode_skipped(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT path, reason FROM transcode_skip ORDER BY at_utc_ns")
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("path")?, r.try_get("reason")?)))
            .collect()
    }
}
