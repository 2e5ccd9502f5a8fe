//! The run-scoped spill directory, created on first need and removed on drop.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::SpillError;

/// A private `garner-spill-*` directory under a parent, created lazily.
///
/// Dropping it removes the directory and everything in it (best effort, as
/// `tempfile::TempDir` does); that happens on every exit of the owning store,
/// including error returns and panic unwinding.
pub(crate) struct RunDir {
    parent: PathBuf,
    dir: Option<TempDir>,
    next_file: u64,
}

impl RunDir {
    pub(crate) fn new(parent: Option<PathBuf>) -> Self {
        Self { parent: parent.unwrap_or_else(std::env::temp_dir), dir: None, next_file: 0 }
    }

    /// The directory, if it has been created.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.dir.as_ref().map(TempDir::path)
    }

    /// Creates a new, empty file `{stem}-{n}.{ext}` for reading and writing,
    /// creating the directory first if needed.
    pub(crate) fn create_file(&mut self, stem: &str, ext: &str) -> Result<(File, PathBuf), SpillError> {
        let dir = match &mut self.dir {
            Some(dir) => dir,
            empty @ None => {
                let dir = tempfile::Builder::new()
                    .prefix("garner-spill-")
                    .tempdir_in(&self.parent)
                    .map_err(|e| SpillError::io(&self.parent, e))?;
                empty.insert(dir)
            }
        };
        self.next_file += 1;
        let path = dir.path().join(format!("{stem}-{:06}.{ext}", self.next_file));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| SpillError::io(&path, e))?;
        Ok((file, path))
    }
}
