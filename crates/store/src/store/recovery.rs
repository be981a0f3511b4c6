//! Recovery at open: finish interrupted deletions, repair files that were
//! being written (truncate after the last complete fragment, re-index),
//! index files nobody knows or move them aside, and drop rows whose file is
//! gone.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::path::Path;

use reallive_core::time::UtcNs;
use sqlx::Row;

use super::{Store, blocking, row_to_recording};
use crate::StoreError;
use crate::fragment;
use crate::model::{Recording, start_from_file_name, ticks_to_ns, validate_camera};
use crate::scan::{self, ScanError};

/// What recovery did when the store opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// `writing` recordings repaired and closed.
    pub repaired: u64,
    /// Fragments found in files but missing from the index, now indexed.
    pub fragments_recovered: u64,
    /// Fragments the index claimed but the files lacked.
    pub fragments_dropped: u64,
    /// Bytes of partial tails cut off.
    pub bytes_truncated: u64,
    /// Files on disk that had no row, now indexed.
    pub files_indexed: u64,
    /// Unreadable files moved to `.quarantine/`.
    pub files_quarantined: u64,
    /// Rows whose file was gone, removed.
    pub rows_removed: u64,
    /// Deletions left half-done by a crash, finished.
    pub garbage_finished: u64,
}

const QUARANTINE: &str = ".quarantine";

impl Store {
    pub(super) async fn recover(&self) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        let pool = &self.inner.pool;

        // 1. Finish deletions a crash interrupted.
        let garbage: Vec<String> = sqlx::query("SELECT path FROM garbage")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.try_get("path"))
            .collect::<Result<_, _>>()?;
        for path in garbage {
            self.unlink_garbage(&path).await?;
            report.garbage_finished += 1;
        }

        // 2. Repair recordings that were being written.
        let writing = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE state = 'writing'"
        ))
        .fetch_all(pool)
        .await?;
        for row in &writing {
            let rec = row_to_recording(row)?;
            self.repair(rec, &mut report).await?;
        }

        // 2b. A closed file whose size no longer matches its row was cut
        // short (a disk that lost writes): rescan it like an open one.
        // Only sizes are compared, in one trip to the blocking pool; the
        // fragment tables are read just for the files that need repair.
        let sizes: Vec<(i64, String, u64)> = sqlx::query("SELECT id, path, bytes FROM recordings")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("path")?,
                    r.try_get::<i64, _>("bytes")? as u64,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let root = self.inner.root.clone();
        let changed: Vec<i64> = blocking(move || {
            Ok(sizes
                .into_iter()
                .filter(|(_, path, bytes)| {
                    fs::metadata(root.join(path)).is_ok_and(|m| m.len() != *bytes)
                })
                .map(|(id, _, _)| id)
                .collect())
        })
        .await?;
        for id in changed {
            if let Some(rec) = self.recording(id).await? {
                self.repair(rec, &mut report).await?;
            }
        }

        // 3. Index files nobody knows, and 4. drop rows whose file is gone.
        let known: HashSet<String> = sqlx::query("SELECT path FROM recordings")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.try_get("path"))
            .collect::<Result<_, _>>()?;
        let root = self.inner.root.clone();
        let on_disk = blocking(move || list_mp4(&root)).await?;
        for rel in on_disk.difference(&known) {
            self.index_orphan(rel, &mut report).await?;
        }
        for rel in known.difference(&on_disk) {
            sqlx::query("DELETE FROM recordings WHERE path = ?")
                .bind(rel)
                .execute(pool)
                .await?;
            report.rows_removed += 1;
        }
        if report != RecoveryReport::default() {
            tracing::warn!(?report, "recovered the recording store");
        } else {
            tracing::info!("recording store is consistent");
        }
        Ok(report)
    }

    async fn repair(&self, rec: Recording, report: &mut RecoveryReport) -> Result<(), StoreError> {
        let abs = self.inner.root.join(&rec.path);
        let abs2 = abs.clone();
        let scanned = blocking(move || {
            let mut f = match OpenOptions::new().read(true).write(true).open(&abs2) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::io(format!("opening {}", abs2.display()), e)),
            };
            let s = match scan::scan(&mut f) {
                Ok(s) => s,
                Err(ScanError::NoInit(_)) => return Ok(Some(Err(()))),
                Err(ScanError::Io(e)) => {
                    return Err(StoreError::io(format!("reading {}", abs2.display()), e));
                }
            };
            if s.file_len > s.valid_len && !s.fragments.is_empty() {
                f.set_len(s.valid_len)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| StoreError::io(format!("truncating {}", abs2.display()), e))?;
            }
            Ok(Some(Ok(s)))
        })
        .await?;
        let s = match scanned {
            None => return Ok(()), // file gone: step 4 removes the row
            Some(Ok(s)) if !s.fragments.is_empty() => s,
            Some(_) => {
                self.quarantine(&rec.path).await?;
                sqlx::query("DELETE FROM recordings WHERE id = ?")
                    .bind(rec.id)
                    .execute(&self.inner.pool)
                    .await?;
                report.files_quarantined += 1;
                return Ok(());
            }
        };
        report.repaired += 1;
        report.bytes_truncated += s.file_len - s.valid_len;
        let kept = rec
            .fragments
            .iter()
            .zip(&s.fragments)
            .take_while(|(a, b)| a == b)
            .count();
        report.fragments_dropped += (rec.fragments.len() - kept) as u64;
        report.fragments_recovered += (s.fragments.len() - kept) as u64;
        let duration: i64 = s.fragments.iter().map(|f| i64::from(f.duration_90k)).sum();
        sqlx::query(
            "UPDATE recordings SET state = 'complete', bytes = ?, end_utc_ns = ?, fragments = ? WHERE id = ?",
        )
        .bind(s.valid_len as i64)
        .bind(rec.start_utc_ns + ticks_to_ns(duration))
        .bind(fragment::pack(&s.fragments))
        .bind(rec.id)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    async fn index_orphan(&self, rel: &str, report: &mut RecoveryReport) -> Result<(), StoreError> {
        let abs = self.inner.root.join(rel);
        let camera = rel.split('/').next().unwrap_or_default().to_string();
        let scanned = blocking(move || {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&abs)
                .map_err(|e| StoreError::io(format!("opening {}", abs.display()), e))?;
            let s = match scan::scan(&mut f) {
                Ok(s) if !s.fragments.is_empty() => s,
                Ok(_) | Err(ScanError::NoInit(_)) => return Ok(None),
                Err(ScanError::Io(e)) => {
                    return Err(StoreError::io(format!("reading {}", abs.display()), e));
                }
            };
            if s.file_len > s.valid_len {
                f.set_len(s.valid_len)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| StoreError::io(format!("truncating {}", abs.display()), e))?;
            }
            let mtime = f
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| UtcNs::from(t).0)
                .ok();
            Ok(Some((s, mtime)))
        })
        .await?;
        let name = rel.rsplit('/').next().unwrap_or_default();
        let Some((s, mtime)) = scanned.filter(|_| validate_camera(&camera).is_ok()) else {
            self.quarantine(rel).await?;
            report.files_quarantined += 1;
            return Ok(());
        };
        let duration = ticks_to_ns(s.fragments.iter().map(|f| i64::from(f.duration_90k)).sum());
        let start = start_from_file_name(name)
            .or_else(|| mtime.map(|m| m - duration))
            .unwrap_or(0);
        let first_seq = self.take_seq(&camera, crate::hls::segment_count(&s.fragments) as i64);
        sqlx::query(
            "INSERT INTO recordings (camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, codecs, width, \
             height, state, first_seq, fragments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'complete', ?, ?)",
        )
        .bind(&camera)
        .bind(rel)
        .bind(start)
        .bind(start + duration)
        .bind(s.valid_len as i64)
        .bind(s.init_bytes as i64)
        .bind(s.codec.map_or("h264", |c| c.name()))
        .bind(&s.codecs)
        .bind(i64::from(s.width))
        .bind(i64::from(s.height))
        .bind(first_seq)
        .bind(fragment::pack(&s.fragments))
        .execute(&self.inner.pool)
        .await?;
        report.files_indexed += 1;
        Ok(())
    }

    async fn quarantine(&self, rel: &str) -> Result<(), StoreError> {
        let from = self.inner.root.join(rel);
        let to = self.inner.root.join(QUARANTINE).join(rel);
        blocking(move || {
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| StoreError::io(format!("creating {}", parent.display()), e))?;
            }
            match fs::rename(&from, &to) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::io(
                    format!("moving {} aside", from.display()),
                    e,
                )),
            }
        })
        .await?;
        tracing::warn!(path = rel, "moved an unreadable recording to .quarantine");
        Ok(())
    }
}

/// Every `*.mp4` under `root` (relative, `/`-separated), quarantine excluded.
fn list_mp4(root: &Path) -> Result<HashSet<String>, StoreError> {
    let mut out = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir)
            .map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
            let path = entry.path();
            let ty = entry
                .file_type()
                .map_err(|e| StoreError::io(format!("inspecting {}", path.display()), e))?;
            if ty.is_dir() {
                if path != root.join(QUARANTINE) {
                    stack.push(path);
                }
            } else if ty.is_file()
                && path.extension().is_some_and(|e| e == "mp4")
                && let Ok(rel) = path.strip_prefix(root)
                && let Some(rel) = rel.to_str()
            {
                out.insert(rel.replace('\\', "/"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::fs;
    use std::time::{Duration, SystemTime};

    use super::super::testutil::{SEC, T0, arrival, config, frames, record};
    use super::{QUARANTINE, list_mp4};
    use crate::{RecordingState, Store, TimeRange};

    #[test]
    fn recordings_on_disk_are_the_mp4_files_outside_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "cam/2025/11/21/a.mp4",
            "cam/b.mp4",
            "cam/notes.txt",
            "cam/.a.mp4.tmp",
            ".quarantine/cam/junk.mp4",
        ] {
            let p = root.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, b"x").unwrap();
        }
        fs::create_dir_all(root.join("cam/dir.mp4")).unwrap();
        let want: HashSet<String> = ["cam/2025/11/21/a.mp4", "cam/b.mp4"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(list_mp4(root).unwrap(), want);
    }

    /// The writer commits once a second: a crash loses the index rows of
    /// the parts written since, which are safely in the file (a killed
    /// process's writes are in the page cache): recovery indexes them again.
    #[tokio::test]
    async fn fragments_written_but_not_yet_indexed_are_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = || config(dir.path());
        {
            let (store, _) = Store::open(cfg()).await.unwrap();
            let mut s = store.session("cam").unwrap();
            // Parts of 6 and 4 frames: ten are closed by frame 50, six
            // indexed (the flush at 1 s, frame 30).
            for f in frames(51) {
                let now = arrival(&f, T0);
                s.write_at(f, now).await.unwrap();
            }
            assert_eq!(
                store.recordings("cam", TimeRange::all()).await.unwrap()[0]
                    .fragments
                    .len(),
                6
            );
            drop(s); // a crash
            store.close().await;
        }
        let (store, report) = Store::open(cfg()).await.unwrap();
        assert_eq!(
            (
                report.repaired,
                report.fragments_recovered,
                report.fragments_dropped
            ),
            (1, 4, 0),
            "{report:?}"
        );
        let r = &store.recordings("cam", TimeRange::all()).await.unwrap()[0];
        assert_eq!(r.state, RecordingState::Complete);
        assert_eq!(r.fragments.len(), 10);
        assert_eq!(r.end_utc_ns, T0 + 50 * SEC / 30);
        assert_eq!(
            fs::metadata(store.root().join(&r.path)).unwrap().len(),
            r.bytes
        );
    }

    /// A crash between "row to garbage" and "unlink": the file is still
    /// there, and opening finishes the deletion rather than re-indexing it.
    #[tokio::test]
    async fn a_deletion_cut_short_by_a_crash_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(config(dir.path())).await.unwrap();
        record(&store, "cam", frames(120), T0).await;
        let victim = store.recordings("cam", TimeRange::all()).await.unwrap()[0].clone();
        sqlx::query("INSERT INTO garbage (path, marked_at_utc_ns) VALUES (?, 0)")
            .bind(&victim.path)
            .execute(&store.inner.pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM recordings WHERE id = ?")
            .bind(victim.id)
            .execute(&store.inner.pool)
            .await
            .unwrap();
        store.close().await;
        let (store, report) = Store::open(config(dir.path())).await.unwrap();
        assert_eq!(report.garbage_finished, 1, "{report:?}");
        assert_eq!(report.files_indexed, 0, "{report:?}");
        assert!(!store.root().join(&victim.path).exists());
        let left = store.recordings("cam", TimeRange::all()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_ne!(left[0].path, victim.path);
    }

    /// A crash before the first fragment leaves a file with only its init
    /// segment: there is nothing to play, so it is set aside with its row.
    #[tokio::test]
    async fn a_file_with_no_fragment_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let rel;
        {
            let (store, _) = Store::open(config(dir.path())).await.unwrap();
            let mut s = store.session("cam").unwrap();
            for f in frames(5) {
                let now = arrival(&f, T0);
                s.write_at(f, now).await.unwrap();
            }
            rel = store.recordings("cam", TimeRange::all()).await.unwrap()[0]
                .path
                .clone();
            drop(s);
            store.close().await;
        }
        let (store, report) = Store::open(config(dir.path())).await.unwrap();
        assert_eq!(
            (report.files_quarantined, report.repaired),
            (1, 0),
            "{report:?}"
        );
        assert!(
            store
                .recordings("cam", TimeRange::all())
                .await
                .unwrap()
                .is_empty()
        );
        assert!(!store.root().join(&rel).exists());
        assert!(store.root().join(QUARANTINE).join(&rel).exists());
    }

    /// Files nobody indexed: where the start comes from, and which are set
    /// aside.
    #[tokio::test]
    async fn unknown_files_are_indexed_or_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(config(dir.path())).await.unwrap();
        record(&store, "src", frames(60), T0).await; // one 2 s file
        let src = store
            .root()
            .join(&store.recordings("src", TimeRange::all()).await.unwrap()[0].path);
        store.close().await;
        let mtime = T0 + 100 * SEC;
        // (where it is copied, the start recovery gives it; None: set aside)
        let cases = [
            // Our file name carries the start.
            (
                "named/2025/11/21/20251121T050000.000Z.mp4",
                Some(1_763_701_200 * SEC),
            ),
            // Any other name: it ended when it was last modified.
            ("renamed/clip.mp4", Some(mtime - 2 * SEC)),
            // Not a camera name the store would make.
            ("bad name/clip.mp4", None),
        ];
        let root = dir.path().join("recordings");
        for (rel, _) in &cases {
            let to = root.join(rel);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(&src, &to).unwrap();
            let when = SystemTime::UNIX_EPOCH + Duration::from_nanos(mtime as u64);
            fs::File::options()
                .write(true)
                .open(&to)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        let (store, report) = Store::open(config(dir.path())).await.unwrap();
        assert_eq!(
            (report.files_indexed, report.files_quarantined),
            (2, 1),
            "{report:?}"
        );
        for (rel, start) in cases {
            let camera = rel.split('/').next().unwrap();
            match start {
                Some(start) => {
                    let recs = store.recordings(camera, TimeRange::all()).await.unwrap();
                    assert_eq!(recs.len(), 1, "{rel}");
                    assert_eq!(recs[0].start_utc_ns, start, "{rel}");
                    assert_eq!(recs[0].end_utc_ns, start + 2 * SEC, "{rel}");
                    assert_eq!(recs[0].fragments.len(), 12, "{rel}");
                }
                None => assert!(root.join(QUARANTINE).join(rel).exists(), "{rel}"),
            }
        }
    }
}
