//! Durable file operations: what the store's write order rests on.

use std::fs::File;
use std::path::Path;

use crate::StoreError;

/// `fsync`s a directory, making the entries created or renamed in it durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("syncing directory {}", dir.display()), e))
}
