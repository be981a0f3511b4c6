//! Directories that hold recordings, databases and secrets: created
//! readable by their owner alone.

use std::os::unix::fs::DirBuilderExt as _;
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

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
