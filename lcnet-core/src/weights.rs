//! Reading tensors from safetensors files: checkpoints (memory-mapped, every
//! key accounted for) and the NCHW tensors that `lcnet infer` runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::DerefMut;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use safetensors::SafeTensors;

use crate::aligned::AlignedVec;
use crate::files::Overwrite;
use crate::{Error, Result};

/// A memory-mapped safetensors file whose tensors are taken one by one.
///
/// Loading code asks for every tensor it needs with [`take`](Self::take),
/// stating the shape it expects; [`finish`](Self::finish) then reports every
/// tensor nobody asked for, so a checkpoint of another architecture cannot
/// load silently.
pub struct Checkpoint {
    path: PathBuf,
    bytes: Bytes,
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
    taken: BTreeSet<String>,
}

/// Where a checkpoint's bytes live.
enum Bytes {
    Mapped(Mmap),
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Static(b) => b,
            Bytes::Owned(b) => b,
        }
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        if let Bytes::Static(bytes) = self {
            page_out(bytes);
        }
    }
}

/// Tells the kernel that `bytes`' pages will not be read again soon: weights
/// compiled into the binary are read once, while loading, and then would stay
/// in the process's resident memory (7 MB for doc_ori) for nothing. A later
/// read pages them in again, unchanged: `MADV_PAGEOUT` keeps the contents of
/// any memory (file pages are re-read, anonymous ones swapped), so this is
/// only a hint, whatever `bytes` is. Kernels older than 5.4 ignore it.
fn page_out(bytes: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
        if page == 0 {
            return;
        }
        let start = (bytes.as_ptr() as usize).next_multiple_of(page);
        let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
        if end > start {
            // SAFETY: [start, end) is whole pages inside `bytes`, memory this
            // process has mapped; MADV_PAGEOUT neither unmaps nor changes
            // it (see above), so every reference to it stays valid. A
            // failure (EINVAL on old kernels) leaves everything as it was.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = bytes;
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint").field("path", &self.path).field("tensors", &self.tensors.len()).finish()
    }
}

impl Checkpoint {
    /// Maps `path` and reads its header. Fails with the file name on a
    /// missing, empty, truncated or malformed file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| Error::Io { path: path.clone(), source };
        let file = crate::files::open_regular(&path)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len < 8 {
            return Err(Error::BadFile { path, reason: format!("file is {len} bytes long, too short for a header") });
        }
        // SAFETY: the map is read-only and private to this process; a file
        // changed by another process while mapped is outside our contract, as
        // for every mmap-based loader (safetensors, candle, memmap2 docs).
        let mmap = unsafe { Mmap::map(&file) }.map_err(io_err)?;
        Self::parse(path, Bytes::Mapped(mmap))
    }

    /// Reads a checkpoint compiled into the binary (`include_bytes!`);
    /// `label` names it in messages.
    pub fn from_static(label: &str, bytes: &'static [u8]) -> Result<Self> {
        Self::parse(PathBuf::from(label), Bytes::Static(bytes))
    }

    /// Reads a checkpoint held in memory; `label` names it in messages.
    pub fn from_vec(label: &str, bytes: Vec<u8>) -> Result<Self> {
        Self::parse(PathBuf::from(label), Bytes::Owned(bytes))
    }

    fn parse(path: PathBuf, bytes: Bytes) -> Result<Self> {
        let (header_len, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::BadFile { path: path.clone(), reason: describe(&e) })?;
        let tensors = tensor_infos(&meta);
        let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
        Ok(Checkpoint { path, bytes, data_start: 8 + header_len, tensors, metadata, taken: BTreeSet::new() })
    }

    /// The file this checkpoint was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `__metadata__` entries of the file.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Takes tensor `name`, which must be f32 of shape `expected`.
    pub fn take(&mut self, name: &str, expected: &[usize]) -> Result<Vec<f32>> {
        self.take_with(name, expected, |len| vec![0.0; len])
    }

    /// [`take`](Self::take) into 64-byte aligned memory (for weights the
    /// kernels read as they are), decoded there directly rather than copied.
    pub fn take_aligned(&mut self, name: &str, expected: &[usize]) -> Result<AlignedVec> {
        self.take_with(name, expected, AlignedVec::zeroed)
    }

    /// Checks tensor `name` against `expected`, then decodes it into a buffer
    /// from `alloc` (given the value count) and marks it used.
    fn take_with<B: DerefMut<Target = [f32]>>(
        &mut self,
        name: &str,
        expected: &[usize],
        alloc: impl FnOnce(usize) -> B,
    ) -> Result<B> {
        let info = self.info_with_shape(name, expected)?;
        let mut out = alloc(expected.iter().product());
        self.decode_f32(name, info, &mut out)?;
        self.taken.insert(name.to_string());
        Ok(out)
    }

    /// Tensor `name`'s entry, refused when absent or not of shape `expected`.
    fn info_with_shape(&self, name: &str, expected: &[usize]) -> Result<&TensorInfo> {
        let info = self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
            expected: expected.to_vec(),
        })?;
        if info.shape != expected {
            return Err(Error::ShapeMismatch {
                path: self.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                got: info.shape.clone(),
            });
        }
        Ok(info)
    }

    /// Takes tensor `name`, which must be I8 of shape `expected` (int8 weights).
    pub fn take_i8(&mut self, name: &str, expected: &[usize]) -> Result<Vec<i8>> {
        let info = self.info_with_shape(name, expected)?;
        if info.dtype != Dtype::I8 {
            return Err(Error::WrongDtype {
                path: self.path.clone(),
                name: name.to_string(),
                got: format!("{:?}", info.dtype),
            });
        }
        let (start, end) = info.data_offsets;
        let bytes = &self.bytes[self.data_start + start..self.data_start + end];
        if bytes.len() != expected.iter().product::<usize>() {
            return Err(Error::BadFile {
                path: self.path.clone(),
                reason: format!(
                    "tensor `{name}` holds {} bytes, its shape {expected:?} needs {}",
                    bytes.len(),
                    expected.iter().product::<usize>()
                ),
            });
        }
        let values = bytes.iter().map(|&b| b as i8).collect();
        self.taken.insert(name.to_string());
        Ok(values)
    }

    /// Takes tensor `name` whatever its shape; returns the shape and the values.
    pub fn take_any(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
            expected: vec![],
        })?;
        let data = self.read_f32(name, info)?;
        let shape = info.shape.clone();
        self.taken.insert(name.to_string());
        Ok((shape, data))
    }

    /// Fails if any tensor was not taken; `model` names what was being loaded.
    pub fn finish(&self, model: &str) -> Result<()> {
        let mut extra: Vec<String> = self.tensors.keys().filter(|k| !self.taken.contains(*k)).cloned().collect();
        if extra.is_empty() {
            return Ok(());
        }
        extra.sort();
        Err(Error::UnexpectedTensors { path: self.path.clone(), model: model.to_string(), names: extra })
    }

    fn read_f32(&self, name: &str, info: &TensorInfo) -> Result<Vec<f32>> {
        // Sized by the bytes the file holds, not by the shape it claims.
        let (start, end) = info.data_offsets;
        let width = element_width(info.dtype).unwrap_or(4);
        let mut values = vec![0.0; end.saturating_sub(start) / width];
        self.decode_f32(name, info, &mut values)?;
        Ok(values)
    }

    /// Decodes tensor `name` into `out` (its element count) as f32: f32 as
    /// it is, f16 and bf16 widened exactly (Hugging Face's PaddleX
    /// checkpoints store fp16); other dtypes and non-finite values are refused.
    fn decode_f32(&self, name: &str, info: &TensorInfo, out: &mut [f32]) -> Result<()> {
        let width = element_width(info.dtype).ok_or_else(|| Error::WrongDtype {
            path: self.path.clone(),
            name: name.to_string(),
            got: format!("{:?}", info.dtype),
        })?;
        let (start, end) = info.data_offsets;
        let bytes = &self.bytes[self.data_start + start..self.data_start + end];
        if bytes.len() != out.len() * width {
            return Err(Error::BadFile {
                path: self.path.clone(),
                reason: format!(
                    "tensor `{name}` holds {} bytes, its shape {:?} needs {}",
                    bytes.len(),
                    info.shape,
                    out.len() * width
                ),
            });
        }
        // The data may sit at any byte offset in the file, so decode rather than cast.
        match info.dtype {
            Dtype::F16 => out
                .iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(v, b)| *v = f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            Dtype::BF16 => out
                .iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(v, b)| *v = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            _ => out
                .iter_mut()
                .zip(bytes.chunks_exact(4))
                .for_each(|(v, b)| *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteTensor {
                path: self.path.clone(),
                name: name.to_string(),
                index: i,
                value: out[i],
            });
        }
        Ok(())
    }
}

/// IEEE half precision (`f16` bits) to f32, exactly.
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// bfloat16 bits to f32, exactly (the high half of an f32).
pub fn bf16_to_f32(bits: u16) -> f32 {
    half::bf16::from_bits(bits).to_f32()
}

/// Bytes per element of the dtypes read as f32.
fn element_width(dtype: Dtype) -> Option<usize> {
    match dtype {
        Dtype::F32 => Some(4),
        Dtype::F16 | Dtype::BF16 => Some(2),
        _ => None,
    }
}

fn tensor_infos(meta: &Metadata) -> HashMap<String, TensorInfo> {
    meta.tensors().into_iter().map(|(name, info)| (name, info.clone())).collect()
}

/// safetensors errors in words a user can act on.
fn describe(e: &safetensors::SafeTensorError) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::MetadataIncompleteBuffer => {
            "the file is truncated (the header announces more data than the file holds)".into()
        }
        E::HeaderTooSmall | E::HeaderTooLarge | E::InvalidHeaderLength => {
            "the header length is invalid (truncated or not a safetensors file)".into()
        }
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            "the header is not valid JSON (not a safetensors file?)".into()
        }
        other => other.to_string(),
    }
}

/// Writes f32 tensors to `path` as safetensors, atomically (a temporary file
/// in the same folder, then a rename), so a failed write never leaves a half
/// file behind; an existing regular file is replaced, anything else refused.
/// The header's keys are sorted and the data follows in name
/// order, so the same tensors always give the same bytes.
pub fn save_f32(
    path: &Path,
    tensors: &[(&str, Vec<usize>, &[f32])],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    save_f32_as(path, tensors, metadata, Overwrite::RegularFile)
}

/// [`save_f32`], replacing an existing file only as `overwrite` allows.
pub fn save_f32_as(
    path: &Path,
    tensors: &[(&str, Vec<usize>, &[f32])],
    metadata: &BTreeMap<String, String>,
    overwrite: Overwrite,
) -> Result<()> {
    crate::files::write_atomically(path, &to_bytes(tensors, metadata)?, overwrite)
}

/// The safetensors bytes of f32 `tensors` (see [`save_f32`]).
pub fn to_bytes(tensors: &[(&str, Vec<usize>, &[f32])], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let tensors: Vec<(&str, Vec<usize>, TensorData)> =
        tensors.iter().map(|(name, shape, data)| (*name, shape.clone(), TensorData::F32(data))).collect();
    to_bytes_with(&tensors, metadata)
}

/// The values of one tensor to write.
#[derive(Debug, Clone, Copy)]
pub enum TensorData<'a> {
    /// `F32` values.
    F32(&'a [f32]),
    /// `I8` values (int8 weights).
    I8(&'a [i8]),
}

impl TensorData<'_> {
    fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I8(v) => v.len(),
        }
    }
}

/// [`to_bytes`] for tensors of several dtypes.
pub fn to_bytes_with(
    tensors: &[(&str, Vec<usize>, TensorData)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut sorted: Vec<&(&str, Vec<usize>, TensorData)> = tensors.iter().collect();
    sorted.sort_by_key(|(name, ..)| *name);
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), serde_json::to_value(metadata).expect("strings serialise"));
    }
    let mut offset = 0usize;
    for (name, shape, data) in &sorted {
        let expected: usize = shape.iter().product();
        if data.len() != expected {
            return Err(Error::BadInput {
                expected: format!("{} values for tensor `{name}` of shape {shape:?}", expected),
                got: vec![data.len()],
            });
        }
        let (dtype, width) = match data {
            TensorData::F32(_) => ("F32", 4),
            TensorData::I8(_) => ("I8", 1),
        };
        let end = offset + width * data.len();
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&header).expect("JSON map serialises");
    // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    for (_, _, data) in &sorted {
        match data {
            TensorData::F32(values) => values.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
            TensorData::I8(values) => bytes.extend(values.iter().map(|&v| v as u8)),
        }
    }
    Ok(bytes)
}
