//! Directories that hold recordings, databases and secrets, created
//! readable by their owner alone; secrets read from and written to files
//! of the owner's alone (never the command line, which `ps` shows).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// The mode data, recordings and exports directories are created with.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `path` and any missing parents with [`PRIVATE_DIR_MODE`]; an
/// existing directory is left as it is (its owner chose its mode).
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(path)
}

/// The mode secret files are written with.
pub const SECRET_FILE_MODE: u32 = 0o600;

/// The secret in the file at `path` (a `--password-file` and the like):
/// its first line, without the line ending. Refused if it is empty, or if
/// its group or others may read it (so it is not shared by accident).
pub fn read_secret_file(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} is readable by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            ),
        ));
    }
    let text = std::fs::read_to_string(path)?;
    let secret = text.lines().next().unwrap_or("").to_owned();
    if secret.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{} holds no secret on its first line", path.display()),
        ));
    }
    Ok(secret)
}

/// Writes `secret` and a newline to a new file at `path`, mode
/// [`SECRET_FILE_MODE`], and syncs it. An existing file is never
/// overwritten (`AlreadyExists`).
pub fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(SECRET_FILE_MODE)
        .open(path)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_the_owners_alone() {
        let dir = std::env::temp_dir().join(format!("reallive-core-secret-{}", std::process::id()));
        create_private_dir(&dir).unwrap();
        let path = dir.join("pw");
        write_secret_file(&path, "s3cret pass").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_secret_file(&path).unwrap(), "s3cret pass");
        let again = write_secret_file(&path, "other").unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(read_secret_file(&path).unwrap(), "s3cret pass", "kept");

        // Only the first line; CRLF and a missing newline are fine.
        for (text, want) in [("a b\r\nsecond\n", "a b"), ("tail", "tail")] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(read_secret_file(&path).unwrap(), want);
        }
        for (text, mode) in [
            ("", 0o600),
            ("\nlater", 0o600),
            ("x\n", 0o640),
            ("x\n", 0o604),
        ] {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert!(read_secret_file(&path).is_err(), "{text:?} {mode:o}");
        }
        assert!(read_secret_file(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn new_directories_are_the_owners_alone_and_old_ones_stay() {
        let dir = std::env::temp_dir().join(format!("reallive-core-fs-{}", std::process::id()));
        let deep = dir.join("a/b");
        create_private_dir(&deep).unwrap();
        for d in [&dir, &dir.join("a"), &deep] {
            let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        std::fs::set_permissions(&deep, std::fs::Permissions::from_mode(0o750)).unwrap();
        create_private_dir(&deep).unwrap();
        let mode = std::fs::metadata(&deep).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o750);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
