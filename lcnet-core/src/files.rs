//! Opening input files: regular files only. A FIFO blocks the open (or the
//! read) forever and a device never ends (`/dev/zero` named `model.onnx`),
//! so both are refused by type before anything is read.

use std::fs::File;
use std::path::Path;

use crate::{Error, Result};

/// Opens `path` for reading if it is a regular file (a symlink to one is).
pub fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    if !meta.is_file() {
        return Err(Error::BadFile {
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
