//! Opening input files and writing output files, safely.
//!
//! Inputs must be regular files: a FIFO blocks the open (or the read)
//! forever and a device never ends (`/dev/zero` named `model.onnx`), so both
//! are refused by type before anything is read. Outputs are written to a
//! temporary file beside the target and moved into place, so a failed write
//! never leaves a half file; only a regular file is ever replaced, and only
//! when asked (a device, FIFO, symlink or folder is refused, even with
//! `--force`); a new name is taken only if still free.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Opens `path` for reading if it is a regular file (a symlink to one is).
pub fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    if !meta.is_file() {
        return Err(Error::NotAllowed {
            path: path.to_path_buf(),
            reason: format!("not a regular file ({}); refused", kind(&meta)),
        });
    }
    File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// Reads all of `path` if it is a regular file.
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    Ok(bytes)
}

/// What a file that is not a regular one is, for messages.
pub fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        } else if t.is_socket() {
            return "a socket";
        } else if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

/// What an output may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Only a new name: an existing file is an error, also one created by
    /// another writer meanwhile.
    Never,
    /// A new name or an existing regular file (`--force`).
    RegularFile,
}

/// Refuses `path` as an output: anything but a new name or (with
/// [`Overwrite::RegularFile`]) a regular file. Checked before the work and
/// again by [`write_atomically`].
pub fn check_output(path: &Path, overwrite: Overwrite) -> Result<()> {
    let bad = |reason: String| Err(Error::NotAllowed { path: path.to_path_buf(), reason });
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
        Ok(meta) if meta.file_type().is_symlink() => bad("is a symbolic link; not replaced, even with --force".into()),
        Ok(meta) if !meta.is_file() => bad(format!("is {}; not replaced, even with --force", kind(&meta))),
        Ok(_) if overwrite == Overwrite::Never => bad("exists; pass --force to overwrite it".into()),
        Ok(_) => Ok(()),
    }
}

/// Writes `data` to a temporary file beside `path`, then moves it to `path`
/// as `overwrite` allows; the temporary file is removed on every error.
pub fn write_atomically(path: &Path, data: &[u8], overwrite: Overwrite) -> Result<()> {
    check_output(path, overwrite)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io { path: tmp, source });
    }
    let moved = match overwrite {
        Overwrite::RegularFile => std::fs::rename(&tmp, path),
        // A hard link fails if the name was taken meanwhile: of two racing
        // writers, one fails cleanly.
        Overwrite::Never => std::fs::hard_link(&tmp, path),
    };
    let _ = std::fs::remove_file(&tmp);
    match moved {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::NotAllowed { path: path.to_path_buf(), reason: "exists; pass --force to overwrite it".into() })
        }
        Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
        Ok(()) => Ok(()),
    }
}
