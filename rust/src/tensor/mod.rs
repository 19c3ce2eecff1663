//! The tensor: shared storage + layout. Cloning a `Tensor` is cheap (an `Arc`); every movement op
//! returns a new `Tensor` on the same storage.

mod create;
mod index;
mod linalg;
pub mod linear;
pub mod math;
pub mod nn;
pub mod reduce;
mod view;

#[cfg(test)]
mod tests;

pub use create::Scalar;
pub use index::TensorIndex;

use crate::device::{self, Device, Value};
use crate::dtype::{DType, Elem};
use crate::error::{Error, Result};
use crate::kernels::copy;
use crate::layout::Layout;
use crate::op::{self, Node, Op};
use crate::storage::Storage;
use crate::with_dtype;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct TensorInner {
    storage: Arc<Storage>,
    layout: Layout,
    grad: GradMeta,
}

/// What autograd knows about a tensor: leaves have no node; results of recorded ops do.
#[derive(Default)]
struct GradMeta {
    requires_grad: AtomicBool,
    /// The history; replaced when an in-place op rebases the tensor (recorded edges keep the
    /// node they saw, so earlier uses still backpropagate into the old history).
    node: Mutex<Option<Arc<Node>>>,
    /// Mirrors `node.is_some()` for the hot `requires_grad` check.
    has_node: AtomicBool,
    grad: Mutex<Option<Tensor>>,
    retains_grad: AtomicBool,
    /// Writes through this tensor are hidden from the version counter (`.data`).
    untracked: bool,
    hooks: Mutex<Vec<Option<GradHook>>>,
    /// Called with the tensor itself once backward has accumulated into its `.grad` (leaves).
    post_accumulate_hooks: Mutex<Vec<Option<GradHook>>>,
}

/// A hook on a tensor's gradient: may return a replacement gradient.
pub type GradHook = Arc<dyn Fn(&Tensor) -> Result<Option<Tensor>> + Send + Sync>;

#[derive(Clone)]
pub struct Tensor(Arc<TensorInner>);

/// A tensor object that the graph does not keep alive (hooks, view bases).
pub type WeakTensor = std::sync::Weak<TensorInner>;

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor[{:?}, {}]", self.shape(), self.dtype())
    }
}

impl Tensor {
    pub fn from_storage(storage: Arc<Storage>, layout: Layout) -> Tensor {
        Tensor(Arc::new(TensorInner {
            storage,
            layout,
            grad: GradMeta::default(),
        }))
    }

    // *** autograd metadata ***

    /// Identity of this tensor object (not of its storage), for gradient bookkeeping.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
    pub fn requires_grad(&self) -> bool {
        self.0.grad.has_node.load(Ordering::Relaxed)
            || self.0.grad.requires_grad.load(Ordering::Relaxed)
    }
    pub fn set_requires_grad(&self, value: bool) -> Result<()> {
        if value && !self.dtype().is_float() {
            return Err(Error::runtime(format!(
                "only Tensors of floating point and complex dtype can require gradients (got {})",
                self.dtype().name()
            )));
        }
        if !value && self.node().is_some() {
            return Err(Error::runtime(
                "you can only change requires_grad flags of leaf variables. If you want to use a computed variable in a subgraph that doesn't require differentiation use var_no_grad = var.detach().",
            ));
        }
        self.0.grad.requires_grad.store(value, Ordering::Relaxed);
        Ok(())
    }
    pub fn node(&self) -> Option<Arc<Node>> {
        self.0
            .grad
            .node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// A new tensor object for the same values and history, to be held by the graph: a graph
    /// that held the object itself would form a cycle once an in-place op rebases the object
    /// onto a node that (through its inputs) refers back to it. Leaves that require grad stay
    /// themselves (their `.grad` is where gradients land; they are never rebased).
    pub fn alias(&self) -> Tensor {
        self.kept_by_graph(|| self.0.storage.clone())
    }
    /// What the graph keeps of an input whose values the backward formula never reads (the
    /// operands of an addition, the input of a cast): its shape, dtype, device and history,
    /// but not its elements, so that the memory is freed as soon as nothing else needs it (as
    /// torch saves only what a formula reads). Leaves that require grad stay themselves.
    pub fn husk(&self) -> Tensor {
        self.kept_by_graph(|| Storage::husk(self.dtype(), self.device()))
    }
    /// A new tensor object with this one's layout and history on `storage` (a leaf that
    /// requires grad: the object itself).
    fn kept_by_graph(&self, storage: impl FnOnce() -> Arc<Storage>) -> Tensor {
        if self.is_leaf() && self.requires_grad() {
            return self.clone();
        }
        let t = Tensor::from_storage(storage(), self.0.layout.clone());
        match self.node() {
            Some(n) => t.with_node(n),
            None => t,
        }
    }
    pub fn downgrade(&self) -> WeakTensor {
        Arc::downgrade(&self.0)
    }
    pub fn upgrade(w: &WeakTensor) -> Option<Tensor> {
        w.upgrade().map(Tensor)
    }
    /// Gives this tensor a new history (the rebase of an in-place op on a result).
    pub fn set_node(&self, node: Arc<Node>) {
        *self.0.grad.node.lock().unwrap_or_else(|e| e.into_inner()) = Some(node);
        self.0.grad.has_node.store(true, Ordering::Relaxed);
    }
    /// Whether `node` is this tensor's current history.
    pub fn is_current(&self, node: &Arc<Node>) -> bool {
        self.node().is_some_and(|n| Arc::ptr_eq(&n, node))
    }
    pub fn is_leaf(&self) -> bool {
        !self.0.grad.has_node.load(Ordering::Relaxed)
    }
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .grad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Replaces `.grad` with `f(current)` under the gradient's lock (no update is lost when
    /// threads accumulate into the same tensor).
    pub fn update_grad(&self, f: impl FnOnce(Option<&Tensor>) -> Result<Tensor>) -> Result<()> {
        let mut slot = self.0.grad.grad.lock().unwrap_or_else(|e| e.into_inner());
        let new = f(slot.as_ref())?;
        *slot = Some(new);
        Ok(())
    }
    pub fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.grad.lock().unwrap_or_else(|e| e.into_inner()) = g;
    }
    pub fn retain_grad(&self) {
        if !self.is_leaf() {
            self.0.grad.retains_grad.store(true, Ordering::Relaxed);
        }
    }
    pub fn retains_grad(&self) -> bool {
        self.0.grad.retains_grad.load(Ordering::Relaxed)
    }
    pub fn register_hook(&self, hook: GradHook) -> usize {
        let mut hooks = self.0.grad.hooks.lock().unwrap_or_else(|e| e.into_inner());
        hooks.push(Some(hook));
        hooks.len() - 1
    }
    /// Removes a hook by the id `register_hook` returned (ids of the others stay valid).
    pub fn remove_hook(&self, id: usize) {
        let mut hooks = self.0.grad.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hooks.get_mut(id) {
            *h = None;
        }
    }
    pub fn hooks(&self) -> Vec<GradHook> {
        let hooks = self.0.grad.hooks.lock().unwrap_or_else(|e| e.into_inner());
        hooks.iter().flatten().cloned().collect()
    }
    /// Registers a hook run with this leaf after backward has stored its `.grad` (what
    /// data-parallel training uses to start reducing a gradient as soon as it is final).
    pub fn register_post_accumulate_hook(&self, hook: GradHook) -> usize {
        let mut hooks = self.post_hook_list();
        hooks.push(Some(hook));
        hooks.len() - 1
    }
    pub fn remove_post_accumulate_hook(&self, id: usize) {
        if let Some(h) = self.post_hook_list().get_mut(id) {
            *h = None;
        }
    }
    pub fn post_accumulate_hooks(&self) -> Vec<GradHook> {
        self.post_hook_list().iter().flatten().cloned().collect()
    }
    fn post_hook_list(&self) -> std::sync::MutexGuard<'_, Vec<Option<GradHook>>> {
        self.0
            .grad
            .post_accumulate_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `.data`: like `detach`, and in-place writes through it are not seen by autograd's
    /// version check (torch's semantics, used by old-style optimizer code).
    pub fn data_alias(&self) -> Tensor {
        Tensor(Arc::new(TensorInner {
            storage: self.0.storage.clone(),
            layout: self.0.layout.clone(),
            grad: GradMeta {
                untracked: true,
                ..GradMeta::default()
            },
        }))
    }

    /// Runs an in-place write; for a `.data` alias the version counter is left as it was.
    pub fn write_guard<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        let before = self.storage().version();
        let r = f()?;
        if self.0.grad.untracked {
            self.storage().restore_version(before);
        }
        Ok(r)
    }

    /// The same values, cut from the graph (shares storage).
    pub fn detach(&self) -> Tensor {
        Tensor::from_storage(self.0.storage.clone(), self.0.layout.clone())
    }

    /// This result with a backward node attached (a new tensor object on the same storage).
    pub fn with_node(&self, node: Arc<Node>) -> Tensor {
        Tensor(Arc::new(TensorInner {
            storage: self.0.storage.clone(),
            layout: self.0.layout.clone(),
            grad: GradMeta {
                node: Mutex::new(Some(node)),
                has_node: AtomicBool::new(true),
                ..GradMeta::default()
            },
        }))
    }

    /// Attaches `op` as this result's node when grad mode is on and an input requires grad.
    pub fn record(self, inputs: &[&Tensor], op: impl FnOnce() -> Op) -> Tensor {
        if !op::is_grad_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
            return self;
        }
        if !self.dtype().is_float() {
            return self;
        }
        let op = op();
        self.with_node(Node::new(op::node_name(&op), op))
    }

    /// A contiguous tensor owning `data`.
    pub fn from_vec<T: Elem>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        if !crate::shape::strides_fit(shape) {
            return Err(Error::runtime(format!(
                "Stride calculation overflowed for shape {shape:?}"
            )));
        }
        let n = crate::shape::elem_count(shape);
        if data.len() != n {
            return Err(Error::shape(
                "tensor",
                format!("{} elements cannot have shape {shape:?}", data.len()),
            ));
        }
        Ok(Tensor::from_storage(
            Storage::from_vec(data),
            Layout::contiguous(shape),
        ))
    }

    /// The same storage seen through another layout (all movement ops end here).
    pub fn with_layout(&self, layout: Layout) -> Tensor {
        self.view_named(layout, "ViewBackward0")
    }

    /// A view recorded under torch's grad_fn name for the movement op that made it.
    pub fn view_named(&self, layout: Layout, name: &'static str) -> Tensor {
        let out = Tensor::from_storage(self.0.storage.clone(), layout.clone());
        out.record(&[self], || Op::View {
            x: self.clone(),
            layout,
            name,
        })
    }

    /// The storage seen through `layout`, recorded as a view of `self` (used by backward).
    pub fn as_view(&self, layout: Layout) -> Tensor {
        self.with_layout(layout)
    }

    /// Sums `src` (shaped like `view_layout`) onto the elements of `x_layout` over a storage
    /// of `storage_len` elements: the gradient of a view (overlapping views such as expand
    /// accumulate). Differentiable: its own gradient is the view again.
    pub fn view_scatter(
        src: &Tensor,
        x_layout: &Layout,
        view_layout: &Layout,
        storage_len: usize,
    ) -> Result<Tensor> {
        let fast = op::no_grad(|| Self::view_scatter_disjoint(src, x_layout, view_layout));
        let out = match (fast, src.device()) {
            (Some(out), _) => out,
            (None, Device::Cpu) => {
                Self::view_scatter_general(src, x_layout, view_layout, storage_len)?
            }
            (None, dev) => {
                let ints = |v: &[usize]| Value::Ints(v.iter().map(|&d| d as i64).collect());
                let args = [
                    Value::Tensor(src),
                    ints(x_layout.shape()),
                    ints(x_layout.stride()),
                    Value::Int(x_layout.offset() as i64),
                    ints(view_layout.shape()),
                    ints(view_layout.stride()),
                    Value::Int(view_layout.offset() as i64),
                    Value::Int(storage_len as i64),
                ];
                op::no_grad(|| device::call1("view_scatter", dev, &args))?
            }
        };
        Ok(out.record(&[src], || Op::ViewScatter {
            src: src.clone(),
            x_layout: x_layout.clone(),
            view_layout: view_layout.clone(),
            storage_len,
        }))
    }

    /// `view_scatter` when neither layout overlaps itself, so no element receives two values:
    /// a reshape of a contiguous tensor or a permutation of its dims (transpose, squeeze...)
    /// is the gradient itself seen through another layout (no copy); otherwise the gradient
    /// is copied into a zeroed buffer spanning `x`'s elements, in the source dtype.
    fn view_scatter_disjoint(
        src: &Tensor,
        x_layout: &Layout,
        view_layout: &Layout,
    ) -> Option<Tensor> {
        let n = x_layout.elem_count();
        if n == 0 || !x_layout.is_non_overlapping() || !view_layout.is_non_overlapping() {
            return None;
        }
        let start = x_layout.offset();
        if x_layout.is_contiguous() && view_layout.offset() == start {
            if src.is_contiguous() && view_layout.is_contiguous() && view_layout.elem_count() == n {
                let l = Layout::contiguous(x_layout.shape()).with_offset(src.layout().offset());
                return Some(Tensor::from_storage(src.storage().clone(), l));
            }
            if let Some(l) = permuted_onto(x_layout, view_layout, src.layout()) {
                return Some(Tensor::from_storage(src.storage().clone(), l));
            }
        }
        let span = x_layout.storage_extent() - start;
        if span > 2 * n {
            return None;
        }
        let dst_view = view_layout.with_offset(view_layout.offset().checked_sub(start)?);
        if dst_view.storage_extent() > span {
            return None;
        }
        let dev = src.device();
        if !dev.is_native() {
            // The same copy into a zeroed buffer, by torch on the tensor's device.
            let ints = |v: &[usize]| Value::Ints(v.iter().map(|&d| d as i64).collect());
            let args = [
                Value::Tensor(src),
                Value::Int(span as i64),
                ints(dst_view.shape()),
                ints(dst_view.stride()),
                Value::Int(dst_view.offset() as i64),
            ];
            let buf = device::call1("view_scatter_disjoint", dev, &args).ok()?;
            return Some(Tensor::from_storage(
                buf.storage().clone(),
                x_layout.with_offset(0),
            ));
        }
        Some(with_dtype!(src.dtype(), T, {
            let mut buf = vec![T::zero(); span];
            copy::copy_strided(
                src.storage().as_slice::<T>(),
                src.layout(),
                &mut buf,
                &dst_view,
            );
            Tensor::from_storage(Storage::from_vec(buf), x_layout.with_offset(0))
        }))
    }

    /// `view_scatter` for overlapping layouts (expand, as_strided): values meeting on one
    /// storage element are summed in f64.
    fn view_scatter_general(
        src: &Tensor,
        x_layout: &Layout,
        view_layout: &Layout,
        storage_len: usize,
    ) -> Result<Tensor> {
        op::no_grad(|| -> Result<Tensor> {
            let vals = src.to_vec_as::<f64>();
            let mut buf = vec![0f64; storage_len];
            // The first value lands as is (keeping a -0.0 gradient -0.0, as torch does); more
            // views of the same element add up.
            let mut hit = vec![false; storage_len];
            for (o, v) in view_layout.offsets().zip(&vals) {
                if hit[o] {
                    buf[o] += v;
                } else {
                    buf[o] = *v;
                    hit[o] = true;
                }
            }
            // When x itself overlaps (an expanded tensor), one of the elements sharing a memory
            // location takes the whole sum: x's own backward then adds them up exactly once.
            let gathered: Vec<f64> = x_layout
                .offsets()
                .map(|o| {
                    if std::mem::take(&mut hit[o]) {
                        buf[o]
                    } else {
                        0.0
                    }
                })
                .collect();
            Ok(Tensor::from_vec(gathered, x_layout.shape())?.to_dtype(src.dtype()))
        })
    }

    /// A contiguous copy that is never recorded (gradient buffers, scratch results).
    pub fn contiguous_copy(&self) -> Tensor {
        op::no_grad(|| self.deep_copy())
    }

    /// Whether this handle is the only reference to a tensor without history that alone uses
    /// a buffer we allocated, laid out densely from its start: then the tensor can become
    /// another tensor's `.grad` as it is, with nobody else able to see later writes to it
    /// (torch's gradient accumulation steals such gradients instead of copying them).
    pub fn is_sole_dense_owner(&self) -> bool {
        Arc::strong_count(&self.0) == 1
            && Arc::weak_count(&self.0) == 0
            && Arc::strong_count(&self.0.storage) == 1
            && self.0.storage.owner().is_none()
            && self.0.layout.contiguous_offsets() == Some((0, self.0.storage.len()))
            && !self.0.grad.has_node.load(Ordering::Relaxed)
    }

    pub fn storage(&self) -> &Arc<Storage> {
        &self.0.storage
    }
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    pub fn dtype(&self) -> DType {
        self.0.storage.dtype()
    }
    pub fn device(&self) -> crate::device::Device {
        self.0.storage.device()
    }
    pub fn shape(&self) -> &[usize] {
        self.0.layout.shape()
    }
    pub fn stride(&self) -> &[usize] {
        self.0.layout.stride()
    }
    pub fn dims(&self) -> usize {
        self.0.layout.dims()
    }
    pub fn elem_count(&self) -> usize {
        self.0.layout.elem_count()
    }
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }
    pub fn dim(&self, dim: i64) -> Result<usize> {
        self.0.layout.dim(dim)
    }

    /// A dim that must exist. `dim` lets a 0-d tensor name dim 0 or -1 (torch's reductions
    /// accept that); ops that index into the dim call this instead and refuse 0-d tensors
    /// with torch's IndexError.
    pub fn existing_dim(&self, dim: i64) -> Result<usize> {
        if self.dims() == 0 {
            return Err(Error::Index(format!(
                "Dimension specified as {dim} but tensor has no dimensions"
            )));
        }
        self.dim(dim)
    }

    /// Like `existing_dim`, with the RuntimeError torch's `op` raises for a 0-d tensor.
    pub fn dim_of_nd(&self, op: &str, dim: i64) -> Result<usize> {
        if self.dims() == 0 {
            return Err(Error::runtime(format!(
                "{op} expects at least a 1-dimensional tensor (got a 0-d tensor and dim {dim})"
            )));
        }
        self.dim(dim)
    }

    /// The elements in row-major order as a `Vec<T>`; `T` must be the tensor's dtype.
    /// Elements on a device come to the host first.
    pub fn to_vec<T: Elem>(&self) -> Vec<T> {
        if !self.0.storage.is_host() {
            let host = self
                .on_host()
                .unwrap_or_else(|e| panic!("cannot copy a tensor to the host: {e}"));
            return host.to_vec();
        }
        copy::gather(self.0.storage.as_slice::<T>(), &self.0.layout)
    }

    /// The tensor itself when our kernels can read it, else a copy in host memory.
    pub fn on_host(&self) -> Result<Tensor> {
        if self.0.storage.is_host() {
            return Ok(self.clone());
        }
        device::to_device(self, Device::Cpu)
    }

    /// This tensor's values on `device` (itself when already there); differentiable.
    pub fn to_device(&self, target: Device) -> Result<Tensor> {
        if self.device() == target {
            return Ok(self.clone());
        }
        let out = device::to_device(self, target)?;
        Ok(out.record(&[self], || Op::ToDevice { x: self.clone() }))
    }

    /// A contiguous slice when the layout allows it (no copy), else `None`.
    pub fn as_contiguous_slice<T: Elem>(&self) -> Option<&[T]> {
        let (s, e) = self.0.layout.contiguous_offsets()?;
        Some(&self.0.storage.as_slice::<T>()[s..e])
    }

    /// Elements as a Vec<T>, converting from the tensor's dtype when needed.
    pub fn to_vec_as<T: Elem>(&self) -> Vec<T> {
        with_dtype!(self.dtype(), S, {
            let v = self.to_vec::<S>();
            copy::cast::<S, T>(&v)
        })
    }

    /// The tensor itself when contiguous, else a contiguous copy.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        self.deep_copy()
    }

    /// A fresh contiguous copy (`clone()` in torch terms).
    pub fn deep_copy(&self) -> Tensor {
        let out = match self.device() {
            Device::Cpu => with_dtype!(self.dtype(), T, {
                Tensor::from_vec(self.to_vec::<T>(), self.shape()).expect("same size")
            }),
            dev => device::call1("clone", dev, &[Value::Tensor(self)])
                .unwrap_or_else(|e| panic!("torch backend clone failed: {e}")),
        };
        out.record(&[self], || Op::Clone { x: self.clone() })
    }

    /// `clone()` as torch does it: a dense, non-overlapping layout (e.g. a transpose) keeps its
    /// strides; anything else becomes contiguous.
    pub fn clone_preserving_strides(&self) -> Tensor {
        let n = self.dims();
        let mut perm: Vec<usize> = (0..n).collect();
        perm.sort_by_key(|&d| std::cmp::Reverse(self.stride()[d]));
        let outer_first =
            self.with_layout(self.layout().permute(&perm).expect("valid permutation"));
        if !outer_first.is_contiguous() || perm.iter().enumerate().all(|(i, &p)| i == p) {
            return self.deep_copy();
        }
        let copy = outer_first.deep_copy();
        let mut inverse = vec![0; n];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        copy.with_layout(copy.layout().permute(&inverse).expect("valid permutation"))
    }

    /// Converts to another dtype (a copy unless the dtype is already right).
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        let out = op::no_grad(|| self.cast_impl(dtype));
        out.record(&[self], || Op::Cast { x: self.clone() })
    }

    fn cast_impl(&self, dtype: DType) -> Tensor {
        if let Device::Torch { .. } = self.device() {
            return device::call1(
                "to_dtype",
                self.device(),
                &[Value::Tensor(self), Value::DType(dtype)],
            )
            .unwrap_or_else(|e| panic!("torch backend cast failed: {e}"));
        }
        with_dtype!(self.dtype(), S, {
            let v = self.to_vec::<S>();
            with_dtype!(dtype, D, {
                Tensor::from_vec(copy::cast::<S, D>(&v), self.shape()).expect("same size")
            })
        })
    }

    /// The single element as f64 (for `.item()` of floats and as a generic accessor).
    pub fn item_f64(&self) -> Result<f64> {
        self.check_single("item")?;
        if !self.0.storage.is_host() {
            return self.on_host()?.item_f64();
        }
        Ok(with_dtype!(self.dtype(), T, {
            self.0.storage.as_slice::<T>()[self.0.layout.offset()].to_f64()
        }))
    }

    pub fn item_i64(&self) -> Result<i64> {
        self.check_single("item")?;
        if !self.0.storage.is_host() {
            return self.on_host()?.item_i64();
        }
        Ok(with_dtype!(self.dtype(), T, {
            self.0.storage.as_slice::<T>()[self.0.layout.offset()].to_i64()
        }))
    }

    fn check_single(&self, op: &str) -> Result<()> {
        if self.elem_count() != 1 {
            return Err(Error::runtime(format!(
                "a Tensor with {} elements cannot be converted to Scalar ({op} needs exactly one element; shape {:?})",
                self.elem_count(),
                self.shape()
            )));
        }
        Ok(())
    }

    /// Copies `src` (broadcast to our shape, cast to our dtype) into our elements in place.
    pub fn copy_(&self, src: &Tensor) -> Result<()> {
        self.write_guard(|| self.copy_impl(src))
    }

    fn copy_impl(&self, src: &Tensor) -> Result<()> {
        let l = self.layout();
        if l.elem_count() > 0
            && l.shape()
                .iter()
                .zip(l.stride())
                .any(|(&d, &s)| d > 1 && s == 0)
        {
            return Err(Error::runtime(format!(
                "unsupported operation: more than one element of the written-to tensor refers to a single memory location (shape {:?}, stride {:?}). Please clone() the tensor before performing the operation.",
                l.shape(),
                l.stride()
            )));
        }
        let src = src.broadcast_as(self.shape()).map_err(|_| {
            Error::runtime(format!(
                "The size of tensor a ({:?}) must match the size of tensor b ({:?}): copy_ broadcasts the source to the destination's shape",
                self.shape(),
                src.shape()
            ))
        })?;
        if let Device::Torch { .. } = self.device() {
            // torch's copy_ moves between devices and casts as it goes.
            device::call(
                "copy_",
                self.device(),
                &[Value::Tensor(self), Value::Tensor(&src)],
            )?;
            self.0.storage.bump_version();
            return Ok(());
        }
        let src = src.on_host()?.to_dtype(self.dtype());
        with_dtype!(self.dtype(), T, {
            // Straight from the source's memory when it is contiguous and shares none with
            // ours; else through a staging copy.
            let staged: Vec<T>;
            let values = match src.as_contiguous_slice::<T>() {
                Some(v) if !src.0.storage.overlaps(&self.0.storage) => v,
                _ => {
                    staged = src.to_vec::<T>();
                    &staged
                }
            };
            copy::scatter_into(&self.0.storage, &self.0.layout, values);
        });
        Ok(())
    }

    /// Writes an already computed result (same shape, any dtype castable to ours) into self.
    /// torch refuses to write a float result into an integer tensor in place.
    pub fn assign_result(&self, op: &str, result: &Tensor) -> Result<()> {
        let (from, to) = (result.dtype(), self.dtype());
        // torch's canCast: no float -> integer, no number -> bool; widths may shrink.
        let ok = (to.is_float() || !from.is_float()) && (to != DType::Bool || from == DType::Bool);
        if !ok {
            return Err(Error::runtime(format!(
                "result type {} can't be cast to the desired output type {} (in-place {op})",
                from, to
            )));
        }
        self.copy_(result)
    }
}

/// When `view` shows the same elements as the contiguous `x` with its dims permuted (size-1
/// dims may come and go), the layout that reads `x`'s elements out of a gradient laid out as
/// `grad` (shaped like the view).
fn permuted_onto(x: &Layout, view: &Layout, grad: &Layout) -> Option<Layout> {
    let mut stride = vec![0; x.dims()];
    let mut matched = 0;
    for ((&size, &vs), &gs) in view.shape().iter().zip(view.stride()).zip(grad.stride()) {
        if size == 1 {
            continue;
        }
        let d = (0..x.dims()).find(|&d| x.shape()[d] == size && x.stride()[d] == vs)?;
        stride[d] = gs;
        matched += 1;
    }
    let wanted = x.shape().iter().filter(|&&s| s > 1).count();
    (matched == wanted).then(|| Layout::new(x.shape().to_vec(), stride, grad.offset()))
}
