//! Typed, shared, possibly borrowed memory. A `Storage` is one flat buffer of one dtype; tensors
//! reference it through an `Arc` together with a `Layout`, so views share it. The buffer either
//! belongs to us (a `Vec`) or to another owner (a numpy array) that is kept alive here, which is
//! what makes `from_numpy` and `.numpy()` zero-copy.
//!
//! A storage on a torch device holds the `torch.Tensor` that owns its memory (see `device.rs`);
//! when that memory is host memory (`torch:cpu`) it stays readable by our kernels as well.

use crate::device::Device;
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How many storages are alive and how many bytes they span: the leak tests' ground truth.
static LIVE_STORAGES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// `(storages, bytes)` alive right now, counting borrowed (numpy) buffers too.
pub fn live_stats() -> (usize, usize) {
    (
        LIVE_STORAGES.load(Ordering::Relaxed),
        LIVE_BYTES.load(Ordering::Relaxed),
    )
}

pub struct Storage {
    ptr: *mut u8,
    len: usize,
    dtype: DType,
    /// Keeps the memory alive.
    owner: Owner,
    /// Bumped by every in-place write; autograd compares it with the value it saved.
    version: AtomicU64,
    device: Device,
    /// The address of the elements in the device's memory (a GPU pointer; equal to `ptr` for
    /// host memory): what `data_ptr` reports, never dereferenced here.
    device_addr: usize,
}

/// Who frees a storage's buffer.
enum Owner {
    /// A `Vec` we allocated, taken apart (no second box around it): freed with the allocation
    /// layout the `Vec` used (its capacity times the element size).
    Vec(std::alloc::Layout),
    /// Memory someone else frees once this object is dropped (a numpy array, a torch tensor).
    Foreign(Box<dyn Any + Send + Sync>),
}

// SAFETY: the buffer is plain old data owned by `owner`; concurrent access follows torch's
// model (reads may run in parallel; writes happen from one op at a time, see `write`).
unsafe impl Send for Storage {}
unsafe impl Sync for Storage {}

impl Storage {
    fn new(ptr: *mut u8, len: usize, dtype: DType, owner: Owner) -> Arc<Storage> {
        LIVE_STORAGES.fetch_add(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_add(len * dtype.size_in_bytes(), Ordering::Relaxed);
        Arc::new(Storage {
            ptr,
            len,
            dtype,
            owner,
            version: AtomicU64::new(0),
            device: Device::Cpu,
            device_addr: ptr as usize,
        })
    }

    /// A storage on a torch device: `owner` is the flat `torch.Tensor` holding the `len`
    /// elements; `host_ptr` their address when they are in host memory (else null), and
    /// `device_addr` their address on the device (what `data_ptr` reports).
    ///
    /// # Safety
    /// A non-null `host_ptr` must point to `len` valid, aligned elements of `dtype` that stay
    /// alive while `owner` lives.
    pub unsafe fn from_device(
        host_ptr: *mut u8,
        len: usize,
        dtype: DType,
        owner: Box<dyn Any + Send + Sync>,
        device: Device,
        device_addr: usize,
    ) -> Arc<Storage> {
        let mut s = Storage::new(host_ptr, len, dtype, Owner::Foreign(owner));
        let new = Arc::get_mut(&mut s).expect("a new storage has one owner");
        new.device = device;
        new.device_addr = device_addr;
        s
    }

    /// A storage with no elements that stands for a tensor the autograd graph records but whose
    /// values its backward formula never reads (see `Tensor::husk`): it keeps the dtype and the
    /// device, and frees nothing.
    pub fn husk(dtype: DType, device: Device) -> Arc<Storage> {
        let ptr = std::ptr::NonNull::<u128>::dangling().as_ptr() as *mut u8;
        let mut s = Storage::new(ptr, 0, dtype, Owner::Vec(std::alloc::Layout::new::<()>()));
        Arc::get_mut(&mut s)
            .expect("a new storage has one owner")
            .device = device;
        s
    }

    pub fn device(&self) -> Device {
        self.device
    }
    /// The object that owns the memory (the `torch.Tensor` of a torch-backed storage); `None`
    /// for a buffer we allocated.
    pub fn owner(&self) -> Option<&(dyn Any + Send + Sync)> {
        match &self.owner {
            Owner::Foreign(o) => Some(o.as_ref()),
            Owner::Vec(_) => None,
        }
    }
    /// Whether our kernels can address the elements (host memory).
    pub fn is_host(&self) -> bool {
        self.len == 0 || !self.ptr.is_null()
    }
    /// Whether the two buffers share memory: the same storage, or two made from one numpy
    /// array.
    pub fn overlaps(&self, other: &Storage) -> bool {
        let (a, b) = (self.device_addr, other.device_addr);
        let la = self.len * self.dtype.size_in_bytes();
        let lb = other.len * other.dtype.size_in_bytes();
        la > 0 && lb > 0 && a < b + lb && b < a + la
    }
    fn check_host(&self) {
        assert!(
            self.is_host(),
            "kernel reached a storage on {} (a missing torch-backend dispatch)",
            self.device
        );
    }

    pub fn from_vec<T: Elem>(v: Vec<T>) -> Arc<Storage> {
        let mut v = std::mem::ManuallyDrop::new(v);
        let ptr = v.as_mut_ptr() as *mut u8;
        let layout = std::alloc::Layout::array::<T>(v.capacity()).expect("a Vec's layout is valid");
        Storage::new(ptr, v.len(), T::DTYPE, Owner::Vec(layout))
    }

    /// Wraps memory owned by someone else.
    ///
    /// # Safety
    /// `ptr` must point to `len` valid, aligned elements of `dtype` that stay alive and are not
    /// freed while `owner` lives.
    pub unsafe fn from_external(
        ptr: *mut u8,
        len: usize,
        dtype: DType,
        owner: Box<dyn Any + Send + Sync>,
    ) -> Arc<Storage> {
        Storage::new(ptr, len, dtype, Owner::Foreign(owner))
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The address of the first element in the memory of the storage's device (a GPU
    /// address for a CUDA storage): an identity for tensors sharing memory, like torch's.
    pub fn data_ptr(&self) -> usize {
        self.device_addr
    }
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
    /// Puts the counter back (writes through `.data`, which torch hides from autograd).
    pub fn restore_version(&self, v: u64) {
        self.version.store(v, Ordering::Release);
    }
    pub fn bump_version(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The buffer as a slice of `T`; the dtype must match (checked: a mismatch is a bug).
    pub fn as_slice<T: Elem>(&self) -> &[T] {
        assert_eq!(T::DTYPE, self.dtype, "storage dtype mismatch");
        if self.len == 0 {
            return &[];
        }
        self.check_host();
        // SAFETY: ptr/len describe `len` initialised elements of T kept alive by `owner`.
        unsafe { std::slice::from_raw_parts(self.ptr as *const T, self.len) }
    }

    /// Writes `values` at the given storage offsets. Callers compute everything they read from
    /// this storage before calling, so no shared slice is alive during the write.
    pub fn write<T: Elem>(&self, offsets: impl Iterator<Item = usize>, values: &[T]) {
        assert_eq!(T::DTYPE, self.dtype, "storage dtype mismatch");
        self.check_host();
        let base = self.ptr as *mut T;
        for (o, &v) in offsets.zip(values) {
            assert!(o < self.len);
            // SAFETY: o is in bounds (checked above), memory is valid for writes.
            unsafe { base.add(o).write(v) };
        }
        self.bump_version();
    }

    /// The buffer as a mutable slice of `T`, for kernels that update in place (optimizer
    /// steps). Bumps the version counter.
    ///
    /// # Safety
    /// No other slice of this storage may be alive while the returned one is used, and no two
    /// calls may hand out overlapping slices to concurrent writers.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice<T: Elem>(&self) -> &mut [T] {
        assert_eq!(T::DTYPE, self.dtype, "storage dtype mismatch");
        self.bump_version();
        if self.len == 0 {
            return &mut [];
        }
        self.check_host();
        std::slice::from_raw_parts_mut(self.ptr as *mut T, self.len)
    }

    /// Writes `values` (row-major, one per element of `layout`) into the positions of
    /// `layout`, a row at a time (a contiguous layout is one row): the write of `copy_`, `cat` and index
    /// assignment.
    pub fn write_layout<T: Elem>(&self, layout: &crate::layout::Layout, values: &[T]) {
        use crate::strided_index::{coalesce, for_each_row};
        assert_eq!(T::DTYPE, self.dtype, "storage dtype mismatch");
        assert_eq!(values.len(), layout.elem_count(), "one value per element");
        if values.is_empty() {
            return;
        }
        self.check_host();
        let base = self.ptr as *mut T;
        let (shape, [l]) = coalesce(layout.shape(), [layout]);
        let mut done = 0;
        for_each_row(&shape, [&l], |[o], [s], n| {
            assert!(
                o + (n - 1) * s < self.len,
                "write past the end of the storage"
            );
            let row = &values[done..done + n];
            if s == 1 {
                // SAFETY: the run o..o+n is in bounds (checked above) and `values` is not
                // this storage's memory (callers compute it before writing).
                unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), base.add(o), n) };
            } else {
                for (i, &v) in row.iter().enumerate() {
                    // SAFETY: o + i*s <= o + (n-1)*s is in bounds (checked above).
                    unsafe { base.add(o + i * s).write(v) };
                }
            }
            done += n;
        });
        self.bump_version();
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        LIVE_STORAGES.fetch_sub(1, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(self.len * self.dtype.size_in_bytes(), Ordering::Relaxed);
        if let Owner::Vec(layout) = self.owner {
            if layout.size() != 0 {
                // SAFETY: ptr came from a Vec whose allocation had exactly this layout, and
                // nothing else frees it (the Vec was taken apart in `from_vec`).
                unsafe { std::alloc::dealloc(self.ptr, layout) };
            }
        }
    }
}

/// Fails with `OutOfMemory` when a buffer for `shape` x `dtype` cannot be had, before a kernel
/// tries (and aborts the process). The probe reserves address space only and frees it at once.
pub fn check_alloc(op: &'static str, shape: &[usize], dtype: DType) -> Result<()> {
    let bytes = shape.iter().map(|&d| d as u128).product::<u128>() * dtype.size_in_bytes() as u128;
    let oom = || Error::OutOfMemory {
        op,
        bytes,
        shape: shape.to_vec(),
        dtype,
    };
    // Small buffers cannot fail in a way worth probing for.
    if bytes < (1 << 30) {
        return Ok(());
    }
    let n = usize::try_from(bytes).map_err(|_| oom())?;
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(n).map_err(|_| oom())?;
    Ok(())
}

/// Allocates a vector of `n` copies of `value`, reporting failure instead of aborting.
pub fn try_vec<T: Elem>(op: &'static str, shape: &[usize], value: T) -> Result<Vec<T>> {
    let n = crate::shape::checked_elem_count(shape);
    let oom = || Error::OutOfMemory {
        op,
        bytes: shape.iter().map(|&d| d as u128).product::<u128>()
            * T::DTYPE.size_in_bytes() as u128,
        shape: shape.to_vec(),
        dtype: T::DTYPE,
    };
    let n = n.ok_or_else(oom)?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| oom())?;
    v.resize(n, value);
    Ok(v)
}
