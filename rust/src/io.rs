//! Files users keep: tensors in the safetensors format, written atomically (temporary file in the
//! same folder, fsync, rename) and fully validated when read back.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::with_dtype;

#[cfg(not(target_endian = "little"))]
compile_error!("safetensors files are little-endian; big-endian machines need a byte swap here");

fn st_dtype(d: DType) -> StDtype {
    match d {
        DType::Bool => StDtype::BOOL,
        DType::U8 => StDtype::U8,
        DType::I32 => StDtype::I32,
        DType::I64 => StDtype::I64,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::F32 => StDtype::F32,
        DType::F64 => StDtype::F64,
    }
}

fn our_dtype(d: StDtype) -> Option<DType> {
    Some(match d {
        StDtype::BOOL => DType::Bool,
        StDtype::U8 => DType::U8,
        StDtype::I32 => DType::I32,
        StDtype::I64 => DType::I64,
        StDtype::F16 => DType::F16,
        StDtype::BF16 => DType::BF16,
        StDtype::F32 => DType::F32,
        StDtype::F64 => DType::F64,
        _ => return None,
    })
}

/// The elements of `t` in row-major order as little-endian bytes.
fn le_bytes(t: &Tensor) -> Vec<u8> {
    with_dtype!(t.dtype(), T, {
        let v = t.to_vec::<T>();
        // SAFETY: every dtype is plain old data (bool is one byte holding 0 or 1), and the
        // format's little-endian order is the machine's (checked at compile time below).
        unsafe {
            std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(&v[..]))
        }
        .to_vec()
    })
}

/// Writes `tensors` and the string `metadata` to `path` as one safetensors file. The file appears
/// complete or not at all: a crash mid-write leaves any previous file at `path` untouched.
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (name, _) in tensors {
        if !seen.insert(name.as_str()) {
            return Err(Error::runtime(format!(
                "cannot save {}: the tensor name '{name}' appears twice",
                path.display()
            )));
        }
    }
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| le_bytes(t)).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, t), b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(st_dtype(t.dtype()), t.shape().to_vec(), b)
            .map_err(|e| Error::runtime(format!("cannot save tensor '{name}': {e}")))?;
        views.push((name.as_str(), view));
    }
    let meta = (!metadata.is_empty()).then_some(metadata);
    let buf = safetensors::tensor::serialize(views, meta)
        .map_err(|e| Error::runtime(format!("cannot save {}: {e}", path.display())))?;
    write_atomic(path, &buf)
}

/// Writes `data` to a temporary file next to `path`, flushes it to disk and renames it over
/// `path` (rename is atomic within one filesystem).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let io_err = |what: &str, p: &Path, e: std::io::Error| {
        Error::runtime(format!(
            "cannot save {}: {what} {} failed: {e}",
            path.display(),
            p.display()
        ))
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        Error::runtime(format!(
            "cannot save to {}: not a file path",
            path.display()
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
        f.write_all(data).map_err(|e| io_err("writing", &tmp, e))?;
        f.sync_all().map_err(|e| io_err("syncing", &tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| io_err("renaming to", &tmp, e))?;
        // Make the rename itself durable; not every filesystem lets a folder be synced.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a safetensors file: every tensor (in file order) and the string metadata. The header,
/// dtypes, shapes, offsets and the file size are all checked; a damaged file is an error that
/// names the file and the problem, never a crash.
pub type Loaded = (Vec<(String, Tensor)>, HashMap<String, String>);

pub fn load(path: &Path) -> Result<Loaded> {
    let buf = fs::read(path)
        .map_err(|e| Error::runtime(format!("cannot read {}: {e}", path.display())))?;
    let bad = |why: String| {
        Error::runtime(format!(
            "{} is not a valid safetensors file ({why}); it may be truncated or corrupt",
            path.display()
        ))
    };
    let (_, meta) = SafeTensors::read_metadata(&buf).map_err(|e| bad(e.to_string()))?;
    let st = SafeTensors::deserialize(&buf).map_err(|e| bad(e.to_string()))?;
    let mut named: Vec<(usize, String, Tensor)> = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let dt = our_dtype(view.dtype()).ok_or_else(|| {
            bad(format!(
                "tensor '{name}' has dtype {:?}, which ferrotorch does not support",
                view.dtype()
            ))
        })?;
        let t = from_le_bytes(dt, view.shape(), view.data())
            .map_err(|why| bad(format!("tensor '{name}': {why}")))?;
        let start = meta.info(&name).map_or(0, |i| i.data_offsets.0);
        named.push((start, name, t));
    }
    named.sort_by_key(|(start, name, _)| (*start, name.clone()));
    let tensors = named.into_iter().map(|(_, n, t)| (n, t)).collect();
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

fn from_le_bytes(dt: DType, shape: &[usize], data: &[u8]) -> std::result::Result<Tensor, String> {
    let size = dt.size_in_bytes();
    let n: usize = shape.iter().product();
    if data.len() != n * size {
        return Err(format!("{} bytes for shape {shape:?} of {dt}", data.len()));
    }
    if dt == DType::Bool {
        if let Some(b) = data.iter().find(|&&b| b > 1) {
            return Err(format!("bool byte {b} is neither 0 nor 1"));
        }
        let v: Vec<bool> = data.iter().map(|&b| b == 1).collect();
        return Tensor::from_vec(v, shape).map_err(|e| e.to_string());
    }
    with_dtype!(dt, T, {
        let mut v: Vec<T> = vec![<T as Elem>::zero(); n];
        // SAFETY: `data` holds exactly n elements' bytes (checked above) and every bit pattern
        // is a valid value of these numeric types.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), v.as_mut_ptr().cast::<u8>(), data.len());
        }
        Tensor::from_vec(v, shape).map_err(|e| e.to_string())
    })
}
