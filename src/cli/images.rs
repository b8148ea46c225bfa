//! Finding the images to classify: folders are walked recursively, and
//! every path that yields none is reported by name. Decoding is the
//! library's (`lcnet_zoo::decode_rgb`).

use std::path::{Path, PathBuf};

/// File endings picked up when walking a folder (decoders compiled in).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// An image file to classify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its name relative to the folder given on the command line (the file
    /// name for a file given directly): where `--upright` writes it.
    pub name: PathBuf,
}

/// Expands folders (recursively, sorted) into image files; files named
/// directly are kept whatever their ending. Paths that do not exist, and
/// symlinked folders that loop back, come back as failures (a loop once).
pub fn collect(inputs: &[PathBuf]) -> (Vec<ImageFile>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut failed = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            walk(input, &mut files, &mut failed);
            if files.len() == before {
                failed.push((input.clone(), format!("no images ({}) in this folder", EXTENSIONS.join(", "))));
            }
        } else if input.exists() {
            let name = input.file_name().map(PathBuf::from).unwrap_or_else(|| input.clone());
            files.push(ImageFile { path: input.clone(), name });
        } else {
            failed.push((input.clone(), "no such file or folder".to_string()));
        }
    }
    (files, failed)
}

/// The image files under `dir`, by name; symlinks are followed, but a link
/// to a folder being walked is reported as a loop and not entered (walkdir
/// tracks the device and inode of every open folder).
fn walk(dir: &Path, files: &mut Vec<ImageFile>, failed: &mut Vec<(PathBuf, String)>) {
    let is_image = |p: &Path| {
        p.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
    };
    for entry in walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name() {
        match entry {
            Ok(e) if !e.file_type().is_dir() && is_image(e.path()) => {
                let name = e.path().strip_prefix(dir).unwrap_or(e.path()).to_path_buf();
                files.push(ImageFile { path: e.path().to_path_buf(), name });
            }
            Ok(_) => {}
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                let why = match e.loop_ancestor() {
                    Some(ancestor) => format!("a link back to {} (a loop); not followed", ancestor.display()),
                    None => format!("cannot read: {}", e.io_error().map_or(e.to_string(), |io| io.to_string())),
                };
                failed.push((path, why));
            }
        }
    }
}
