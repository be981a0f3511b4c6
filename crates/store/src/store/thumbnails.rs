//! Thumbnails: small JPEGs of keyframes, kept beside their recording in
//! `<recording>.thumbs` (concatenated) and indexed in the `thumbnails`
//! table, so a lookup is one index seek plus one `pread`. They go with
//! their recording: the rows by `ON DELETE CASCADE`, the sidecar when the
//! recording's file is unlinked. Making them (decoding) is not the
//! store's job: [`Store::keyframe_at`] hands out the keyframe, and
//! [`Store::add_thumbnail`] keeps the picture made of it.

use std::fs::{self, File, OpenOptions};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use reallive_core::Codec;
use sqlx::Row;

use super::{Store, blocking};
use crate::StoreError;
use crate::model::ticks_to_ns;
use crate::scan;

/// The largest thumbnail kept or read (a 320 px JPEG is ~10–30 KB).
pub const MAX_THUMBNAIL_BYTES: usize = 512 * 1024;

/// One keyframe of a recording, as [`Store::keyframe_at`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyframe {
    /// The recording it is in.
    pub recording_id: i64,
    /// Its wall-clock time.
    pub at_utc_ns: i64,
    /// Its codec.
    pub codec: Codec,
    /// The body of the sample entry's `avcC` / `hvcC`.
    pub codec_config: Vec<u8>,
    /// The access unit: NAL units with 4-byte length prefixes.
    pub data: Bytes,
}

/// The sidecar of the recording at `path` (absolute or relative).
pub(crate) fn sidecar(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".thumbs");
    PathBuf::from(s)
}

/// A JPEG's start and end markers: a torn append reads as missing.
fn looks_like_jpeg(b: &[u8]) -> bool {
    b.len() >= 4 && b.starts_with(&[0xFF, 0xD8]) && b.ends_with(&[0xFF, 0xD9])
}

impl Store {
    /// The recording of `camera` holding `at_utc_ns` (its id and path).
    async fn recording_at(
        &self,
        camera: &str,
        at_utc_ns: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, path FROM recordings WHERE camera = ? AND start_utc_ns <= ? \
             AND end_utc_ns >= ? ORDER BY start_utc_ns DESC LIMIT 1",
        )
        .bind(camera)
        .bind(at_utc_ns)
        .bind(at_utc_ns)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|r| Ok((r.try_get("id")?, r.try_get("path")?)))
            .transpose()
    }

    /// The stored thumbnail of `camera` nearest at or before `at_utc_ns`,
    /// at most `within_ns` before it and in the same recording: its time
    /// and JPEG. `None` when there is none (or its bytes are torn).
    pub async fn thumbnail_near(
        &self,
        camera: &str,
        at_utc_ns: i64,
        within_ns: i64,
    ) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let Some((recording_id, path)) = self.recording_at(camera, at_utc_ns).await? else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT at_utc_ns, offset, len FROM thumbnails WHERE recording_id = ? \
             AND at_utc_ns <= ? AND at_utc_ns >= ? ORDER BY at_utc_ns DESC LIMIT 1",
        )
        .bind(recording_id)
        .bind(at_utc_ns)
        .bind(at_utc_ns.saturating_sub(within_ns))
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let at: i64 = row.try_get("at_utc_ns")?;
        let offset = u64::try_from(row.try_get::<i64, _>("offset")?).unwrap_or(u64::MAX);
        let len = usize::try_from(row.try_get::<i64, _>("len")?).unwrap_or(usize::MAX);
        if len > MAX_THUMBNAIL_BYTES {
            return Ok(None);
        }
        let file = sidecar(&self.inner.root.join(path));
        let jpeg = blocking(move || {
            let mut buf = vec![0; len];
            let read = File::open(&file)
                .and_then(|mut f| {
                    f.seek(SeekFrom::Start(offset))?;
                    f.read_exact(&mut buf)
                })
                .is_ok();
            Ok(read.then_some(buf))
        })
        .await?;
        Ok(jpeg.filter(|b| looks_like_jpeg(b)).map(|b| (at, b)))
    }

    /// The keyframe of `camera` at or before `at_utc_ns`, in the recording
    /// holding that instant; `None` in a gap. Reads the file's init
    /// segment and one fragment.
    pub async fn keyframe_at(
        &self,
        camera: &str,
        at_utc_ns: i64,
    ) -> Result<Option<Keyframe>, StoreError> {
        let Some((id, _)) = self.recording_at(camera, at_utc_ns).await? else {
            return Ok(None);
        };
        let Some(rec) = self.recording(id).await? else {
            return Ok(None);
        };
        let Some(frag) = rec
            .fragments
            .iter()
            .rfind(|f| f.keyframe && rec.fragment_start_utc_ns(f) <= at_utc_ns)
            .or_else(|| rec.fragments.iter().find(|f| f.keyframe))
            .copied()
        else {
            return Ok(None);
        };
        let at = rec.start_utc_ns + ticks_to_ns(frag.decode_time_90k as i64);
        let abs = self.inner.root.join(&rec.path);
        let init_len = usize::try_from(rec.init_bytes).unwrap_or(usize::MAX);
        let codec = rec.codec;
        blocking(move || {
            let mut f = File::open(&abs)
                .map_err(|e| StoreError::io(format!("opening {}", abs.display()), e))?;
            if init_len > 4 * 1024 * 1024 || frag.size > 64 * 1024 * 1024 {
                return Err(StoreError::Corrupt(format!(
                    "{}: oversized boxes",
                    abs.display()
                )));
            }
            let mut init = vec![0; init_len];
            f.read_exact(&mut init)
                .map_err(|e| StoreError::io(format!("reading {}", abs.display()), e))?;
            let scanned = scan::scan(&mut Cursor::new(init))
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", abs.display())))?;
            let mut pair = vec![0; frag.size as usize];
            f.seek(SeekFrom::Start(frag.offset))
                .and_then(|_| f.read_exact(&mut pair))
                .map_err(|e| StoreError::io(format!("reading {}", abs.display()), e))?;
            let sample = scan::read_fragment(&Bytes::from(pair))
                .and_then(|r| r.samples.into_iter().next())
                .filter(|s| s.keyframe)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("{}: no keyframe at its index", abs.display()))
                })?;
            Ok(Some(Keyframe {
                recording_id: id,
                at_utc_ns: at,
                codec,
                codec_config: scanned.codec_config,
                data: sample.data,
            }))
        })
        .await
    }

    /// Times of `camera`'s keyframes in `range`, oldest first, from the
    /// fragment index (a fragment starts on a keyframe when it has one).
    pub async fn keyframe_times(
        &self,
        camera: &str,
        range: crate::TimeRange,
    ) -> Result<Vec<i64>, StoreError> {
        let mut out = Vec::new();
        for rec in self.recordings(camera, range).await? {
            for f in rec.fragments.iter().filter(|f| f.keyframe) {
                let at = rec.fragment_start_utc_ns(f);
                if range.overlaps(at, at + 1) {
                    out.push(at);
                }
            }
        }
        Ok(out)
    }

    /// Keeps `jpeg` as recording `recording_id`'s thumbnail at `at_utc_ns`
    /// (appended to its sidecar). A second one at the same instant is
    /// ignored; a recording gone meanwhile is `NotFound`.
    pub async fn add_thumbnail(
        &self,
        recording_id: i64,
        at_utc_ns: i64,
        jpeg: Vec<u8>,
    ) -> Result<(), StoreError> {
        if !looks_like_jpeg(&jpeg) || jpeg.len() > MAX_THUMBNAIL_BYTES {
            return Err(StoreError::InvalidInput(
                "a thumbnail is one JPEG of at most 512 KiB".into(),
            ));
        }
        // One writer per store: offsets into a sidecar never race.
        let _one = self.inner.thumbnail_writer.lock().await;
        let Some(rec) = self.recording(recording_id).await? else {
            return Err(StoreError::NotFound(format!("recording {recording_id}")));
        };
        let file = sidecar(&self.inner.root.join(&rec.path));
        let len = jpeg.len();
        let offset = blocking(move || {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .map_err(|e| StoreError::io(format!("opening {}", file.display()), e))?;
            let offset = f
                .seek(SeekFrom::End(0))
                .and_then(|o| f.write_all(&jpeg).map(|()| o))
                .map_err(|e| StoreError::io(format!("writing {}", file.display()), e))?;
            Ok(offset)
        })
        .await?;
        // The row cascades with its recording; if the recording went
        // between the two steps, the insert fails on the foreign key and
        // the sidecar is unlinked with the file.
        sqlx::query(
            "INSERT OR IGNORE INTO thumbnails (recording_id, at_utc_ns, offset, len) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(recording_id)
        .bind(at_utc_ns)
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .bind(len as i64)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Times of the thumbnails kept for `recording_id`, oldest first.
    pub async fn thumbnail_times(&self, recording_id: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT at_utc_ns FROM thumbnails WHERE recording_id = ? ORDER BY at_utc_ns",
        )
        .bind(recording_id)
        .fetch_all(&self.inner.pool)
        .await?)
    }
}

/// Unlinks `file`'s sidecar, if any.
pub(crate) fn remove_sidecar(file: &Path) -> std::io::Result<()> {
    match fs::remove_file(sidecar(file)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{SEC, T0, frames, open, record};
    use crate::TimeRange;

    fn jpeg(tag: u8) -> Vec<u8> {
        vec![0xFF, 0xD8, tag, tag, 0xFF, 0xD9]
    }

    /// The keyframe at or before an instant: fragments are one GOP of 1/3 s.
    #[tokio::test]
    async fn the_keyframe_at_an_instant_is_the_one_at_or_before_it() {
        let (_dir, store) = open(|c| c).await;
        record(&store, "cam", frames(60), T0).await; // 0..2 s
        let k = store
            .keyframe_at("cam", T0 + SEC / 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(k.at_utc_ns, T0 + SEC / 3);
        assert!(!k.codec_config.is_empty());
        assert!(k.data.len() > 100, "a real IDR");
        // Nothing in a gap or before the footage.
        assert!(
            store
                .keyframe_at("cam", T0 + 5 * SEC)
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.keyframe_at("cam", T0 - 1).await.unwrap().is_none());
        // Every GOP (1/3 s) of the first second, from the index.
        let times = store
            .keyframe_times("cam", crate::TimeRange::new(T0, T0 + SEC).unwrap())
            .await
            .unwrap();
        assert_eq!(times, [T0, T0 + SEC / 3, T0 + 2 * SEC / 3]);
    }

    /// Stored thumbnails are found within the window, read back whole, and
    /// go with their recording under retention (rows and sidecar).
    #[tokio::test]
    async fn thumbnails_are_kept_beside_and_deleted_with_their_recording() {
        let (dir, store) = open(|c| c).await;
        record(&store, "cam", frames(60), T0).await;
        let rec = store.recordings("cam", TimeRange::all()).await.unwrap()[0].clone();
        store.add_thumbnail(rec.id, T0, jpeg(1)).await.unwrap();
        store
            .add_thumbnail(rec.id, T0 + SEC, jpeg(2))
            .await
            .unwrap();
        store
            .add_thumbnail(rec.id, T0 + SEC, jpeg(3))
            .await
            .unwrap(); // ignored
        let near = |at, within| {
            let store = store.clone();
            async move { store.thumbnail_near("cam", at, within).await.unwrap() }
        };
        assert_eq!(near(T0 + SEC + 5, SEC).await, Some((T0 + SEC, jpeg(2))));
        assert_eq!(near(T0 + SEC / 2, SEC).await, Some((T0, jpeg(1))));
        assert_eq!(near(T0 + SEC / 2, SEC / 4).await, None, "too far back");
        assert!(
            store
                .add_thumbnail(rec.id, T0, vec![1, 2, 3])
                .await
                .is_err()
        );
        let side = super::sidecar(&dir.path().join("recordings").join(&rec.path));
        assert!(side.exists());
        store.delete(rec.id).await.unwrap();
        assert!(!side.exists(), "the sidecar goes with the file");
        assert!(store.thumbnail_times(rec.id).await.unwrap().is_empty());
        assert_eq!(near(T0 + SEC, SEC).await, None);
    }
}
