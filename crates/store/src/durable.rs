//! Durable file operations: what the store's write order rests on, and
//! [`write_atomically`] for small files other crates keep (secrets,
//! configuration) that must never be left half written.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::StoreError;

/// `fsync`s a directory, making the entries created or renamed in it durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("syncing directory {}", dir.display()), e))
}

/// Replaces `dir/name` with `bytes`, so that a crash at any point leaves
/// either the old file or the new one, never a torn one.
///
/// The bytes go to `dir/.name.tmp`, created with exactly `mode` (the umask
/// does not apply, so `0o600` keeps a secret private), which is `fsync`ed,
/// renamed over `dir/name`, and then `dir` is `fsync`ed so the rename
/// itself survives power loss. `name` must be a plain file name.
///
/// ```no_run
/// reallive_store::write_atomically(
///     std::path::Path::new("/var/lib/reallive"),
///     "secret",
///     b"s3cr3t",
///     0o600,
/// )?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{name}' is not a plain file name"),
        ));
    }
    let tmp = dir.join(format!(".{name}.tmp"));
    // A temporary file left by a crash may carry another mode: start afresh.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` at creation is masked by the umask; set it exactly.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(name))
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_the_bytes_with_the_mode_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o600, 0o644, 0o640] {
            write_atomically(dir.path(), "secret", b"first", mode).unwrap();
            assert_eq!(fs::read(dir.path().join("secret")).unwrap(), b"first");
            assert_eq!(mode_of(&dir.path().join("secret")), mode, "{mode:o}");
            assert_eq!(entries(dir.path()), ["secret"]);
        }
    }

    #[test]
    fn replaces_an_existing_file_and_a_stale_tmp() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("config.toml"),
            b"old, and longer than the new",
        )
        .unwrap();
        // Left by a crash mid-write, readable by all.
        fs::write(dir.path().join(".config.toml.tmp"), b"torn").unwrap();
        fs::set_permissions(
            dir.path().join(".config.toml.tmp"),
            Permissions::from_mode(0o666),
        )
        .unwrap();
        write_atomically(dir.path(), "config.toml", b"new", 0o600).unwrap();
        assert_eq!(fs::read(dir.path().join("config.toml")).unwrap(), b"new");
        assert_eq!(mode_of(&dir.path().join("config.toml")), 0o600);
        assert_eq!(entries(dir.path()), ["config.toml"]);
    }

    #[test]
    fn refuses_names_that_are_not_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", ".", "..", "a/b", "../escape"] {
            let e = write_atomically(dir.path(), bad, b"x", 0o600).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn a_missing_directory_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let e = write_atomically(&gone, "secret", b"x", 0o600).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(entries(dir.path()).is_empty());
    }
}
