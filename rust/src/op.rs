//! The recorded graph: grad mode, one `Op` variant per differentiable primitive, and the `Node`
//! a result tensor points to. Ops are recorded only when grad mode is on and an input requires
//! grad; what a node saves is only what its backward formula (in `backprop.rs`) reads.

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::storage::Storage;
use crate::tensor::math::{BinaryOp, UnaryOp};
use crate::tensor::reduce::ReduceOp;
use crate::tensor::{Tensor, TensorIndex, WeakTensor};
use std::cell::Cell;
use std::sync::{Arc, Mutex};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record the graph on this thread (torch's grad mode is per thread too).
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Sets grad mode for this thread and returns the previous mode.
pub fn set_grad_enabled(enabled: bool) -> bool {
    GRAD_ENABLED.with(|g| g.replace(enabled))
}

/// Restores the previous grad mode when dropped.
pub struct GradModeGuard(bool);

impl GradModeGuard {
    pub fn new(enabled: bool) -> Self {
        GradModeGuard(set_grad_enabled(enabled))
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        set_grad_enabled(self.0);
    }
}

/// Runs `f` with recording off (the internals of an op, the backward pass without
/// `create_graph`).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _g = GradModeGuard::new(false);
    f()
}

/// A differentiable primitive with the inputs (and saved values) its backward needs.
pub enum Op {
    Binary {
        op: BinaryOp,
        lhs: Tensor,
        rhs: Tensor,
        out: Tensor,
    },
    Unary {
        op: UnaryOp,
        x: Tensor,
        out: Tensor,
    },
    Reduce {
        op: ReduceOp,
        x: Tensor,
        dims: Vec<i64>,
        keepdim: bool,
        out: Tensor,
    },
    Var {
        x: Tensor,
        dims: Vec<i64>,
        correction: f64,
        keepdim: bool,
        sqrt: bool,
        out: Tensor,
    },
    MaxDim {
        x: Tensor,
        dim: usize,
        keepdim: bool,
        indices: Tensor,
    },
    Softmax {
        x: Tensor,
        out: Tensor,
        dim: i64,
        log: bool,
    },
    Cumsum {
        x: Tensor,
        dim: i64,
    },
    /// Any movement op: the result is `x`'s storage seen through `layout`.
    View {
        x: Tensor,
        layout: Layout,
        name: &'static str,
    },
    /// The adjoint of `View`: sums a view-shaped gradient back onto `x_layout`'s elements.
    ViewScatter {
        src: Tensor,
        x_layout: Layout,
        view_layout: Layout,
        storage_len: usize,
    },
    Matmul {
        a: Tensor,
        b: Tensor,
    },
    /// `x @ w.T + b` with `x`'s batch dims folded into one GEMM.
    Linear {
        x: Tensor,
        w: Tensor,
        b: Option<Tensor>,
    },
    Cat {
        xs: Vec<Tensor>,
        dim: usize,
    },
    Gather {
        x: Tensor,
        dim: i64,
        index: Tensor,
    },
    ScatterAdd {
        base: Tensor,
        dim: i64,
        index: Tensor,
        src: Tensor,
    },
    Index {
        x: Tensor,
        index: Vec<TensorIndex>,
    },
    IndexPut {
        base: Tensor,
        index: Vec<TensorIndex>,
        values: Tensor,
        accumulate: bool,
    },
    Where {
        cond: Tensor,
        a: Tensor,
        b: Tensor,
    },
    Cast {
        x: Tensor,
    },
    /// A move to another device (`to(device)`): the gradient moves back.
    ToDevice {
        x: Tensor,
    },
    Clone {
        x: Tensor,
    },
    /// An in-place op through a view: the base's new value is the old base with the view's
    /// elements replaced by `src` (torch's CopySlices).
    CopySlices {
        base: Tensor,
        src: Tensor,
        base_layout: Layout,
        view_layout: Layout,
        storage_len: usize,
    },
    /// Fused layer norm over the trailing dims `shape`; `mean`/`rstd` are per row.
    LayerNorm {
        x: Tensor,
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        mean: Tensor,
        rstd: Tensor,
        shape: Vec<usize>,
        eps: f64,
    },
    /// Fused cross-entropy of logits (N, C) against class indices; `lse` holds each row's
    /// logsumexp, `denom` the mean reduction's total weight.
    CrossEntropy {
        x: Tensor,
        target: Tensor,
        weight: Option<Tensor>,
        ignore_index: i64,
        smoothing: f64,
        reduction: crate::tensor::nn::Reduction,
        lse: Vec<f64>,
        denom: f64,
    },
    /// Fused binary cross-entropy of probabilities against targets of the same shape; the
    /// weight (broadcast to the input's shape) takes no gradient.
    BinaryCrossEntropy {
        x: Tensor,
        target: Tensor,
        weight: Option<Tensor>,
        reduction: crate::tensor::nn::Reduction,
    },
    /// Fused scaled dot-product attention over (n, l, e) slices; `mask` is additive.
    Attention {
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Option<Tensor>,
        causal: bool,
        scale: f64,
        /// Dropout multipliers (0 or 1/(1-p)) on the weights, when dropout was applied.
        keep: Option<Tensor>,
        out: Tensor,
        lse: Tensor,
    },
    /// A Python `autograd.Function` (or any external backward): called with the output grads.
    External {
        inputs: Vec<Tensor>,
        backward: ExternalBackward,
    },
}

pub type ExternalBackward = Arc<dyn Fn(&[Tensor]) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

impl Op {
    /// Replaces every input by an alias (see `Tensor::alias`).
    fn alias_inputs(&mut self) {
        use Op::*;
        let a = |t: &mut Tensor| *t = t.alias();
        match self {
            Binary { lhs, rhs, .. } => {
                a(lhs);
                a(rhs);
            }
            Unary { x, .. }
            | Reduce { x, .. }
            | Var { x, .. }
            | MaxDim { x, .. }
            | Cumsum { x, .. }
            | Softmax { x, .. }
            | View { x, .. }
            | Gather { x, .. }
            | Index { x, .. }
            | Cast { x }
            | ToDevice { x }
            | Clone { x }
            | CrossEntropy { x, .. } => a(x),
            ViewScatter { src, .. } => a(src),
            Matmul { a: p, b: q } | Where { a: p, b: q, .. } => {
                a(p);
                a(q);
            }
            Linear { x, w, b } => {
                a(x);
                a(w);
                b.iter_mut().for_each(a);
            }
            Cat { xs, .. } | External { inputs: xs, .. } => xs.iter_mut().for_each(a),
            ScatterAdd { base, src, .. } | CopySlices { base, src, .. } => {
                a(base);
                a(src);
            }
            IndexPut { base, values, .. } => {
                a(base);
                a(values);
            }
            LayerNorm {
                x, weight, bias, ..
            } => {
                a(x);
                weight.iter_mut().for_each(a);
                bias.iter_mut().for_each(a);
            }
            Attention { q, k, v, .. } => {
                a(q);
                a(k);
                a(v);
            }
            BinaryCrossEntropy { x, target, .. } => {
                a(x);
                a(target);
            }
        }
    }

    /// Lets go of the values the backward formula never reads, keeping husks in their place
    /// (see `Tensor::husk`): the operands of an addition or subtraction, the factor whose
    /// partner takes no gradient, the branches of a `where`, the input of a cast, clone or
    /// move; and every binary result but a quotient's or a power's. Without this, each
    /// intermediate of a forward pass would live until the backward (the input of a dropout,
    /// the branch of a residual sum).
    fn release_unread(&mut self) {
        use Op::*;
        let h = |t: &mut Tensor| *t = t.husk();
        match self {
            Binary { op, lhs, rhs, out } => {
                match op {
                    BinaryOp::Add | BinaryOp::Sub => {
                        h(lhs);
                        h(rhs);
                    }
                    BinaryOp::Mul => {
                        // d(a·b)/da reads b, d(a·b)/db reads a: a factor is only read for
                        // the gradient of the other.
                        let (a_grad, b_grad) = (lhs.requires_grad(), rhs.requires_grad());
                        if !b_grad {
                            h(lhs);
                        }
                        if !a_grad {
                            h(rhs);
                        }
                    }
                    _ => {}
                }
                if !matches!(op, BinaryOp::Div | BinaryOp::Pow) {
                    h(out);
                }
            }
            Where { a, b, .. } => {
                h(a);
                h(b);
            }
            Cast { x } | Clone { x } | ToDevice { x } => h(x),
            _ => {}
        }
    }

    /// The tensors gradients flow to, in order.
    pub fn inputs(&self) -> Vec<Tensor> {
        use Op::*;
        match self {
            Binary { lhs, rhs, .. } => vec![lhs.clone(), rhs.clone()],
            Unary { x, .. }
            | Reduce { x, .. }
            | Var { x, .. }
            | MaxDim { x, .. }
            | Cumsum { x, .. }
            | Softmax { x, .. } => vec![x.clone()],
            View { x, .. }
            | Gather { x, .. }
            | Index { x, .. }
            | Cast { x }
            | ToDevice { x }
            | Clone { x } => vec![x.clone()],
            ViewScatter { src, .. } => vec![src.clone()],
            Matmul { a, b } => vec![a.clone(), b.clone()],
            Linear { x, w, b } => [x, w].into_iter().chain(b).cloned().collect(),
            Cat { xs, .. } => xs.clone(),
            ScatterAdd { base, src, .. } => vec![base.clone(), src.clone()],
            IndexPut { base, values, .. } => vec![base.clone(), values.clone()],
            Where { a, b, .. } => vec![a.clone(), b.clone()],
            LayerNorm {
                x, weight, bias, ..
            } => std::iter::once(x)
                .chain(weight)
                .chain(bias)
                .cloned()
                .collect(),
            CrossEntropy { x, .. } => vec![x.clone()],
            CopySlices { base, src, .. } => vec![base.clone(), src.clone()],
            Attention { q, k, v, .. } => vec![q.clone(), k.clone(), v.clone()],
            BinaryCrossEntropy { x, target, .. } => vec![x.clone(), target.clone()],
            External { inputs, .. } => inputs.clone(),
        }
    }
}

/// The backward node of a result tensor (its `grad_fn`).
/// Where one input's gradient goes: the input tensor and its history (node) when the op was
/// recorded. An in-place op later gives the tensor a new node; this edge keeps the old one.
#[derive(Clone)]
pub struct Edge {
    /// The input as the graph keeps it (an alias: same values and history).
    pub tensor: Tensor,
    pub node: Option<Arc<Node>>,
    /// The input object itself, for its hooks and `retain_grad`, if it is still alive.
    pub owner: WeakTensor,
}

impl Edge {
    /// The key of this gradient slot in a backward pass: the node for a result, the tensor
    /// itself for a leaf.
    pub fn slot(&self) -> usize {
        match &self.node {
            Some(n) => Arc::as_ptr(n) as *const u8 as usize,
            None => self.tensor.id(),
        }
    }
}

pub struct Node {
    pub name: &'static str,
    /// Where gradients go. Emptied together with the formula's data when the graph is freed,
    /// so a finished backward releases every intermediate even while the output lives on.
    edges: Mutex<Vec<Edge>>,
    /// The formula's data; `None` once freed by a backward without `retain_graph`.
    op: Mutex<Option<Op>>,
    /// Storage versions of the inputs when recorded: an in-place change is caught at backward.
    versions: Vec<(Arc<Storage>, u64)>,
    /// For a view: the tensor object at the root of the chain of views (what an in-place op
    /// through the view must rebase).
    view_root: Option<WeakTensor>,
}

impl Node {
    pub fn new(name: &'static str, mut op: Op) -> Arc<Node> {
        let owners: Vec<WeakTensor> = op.inputs().iter().map(|t| t.downgrade()).collect();
        let view_root = match &op {
            Op::View { x, .. } => Some(
                x.node()
                    .and_then(|n| n.view_root.clone())
                    .unwrap_or_else(|| x.downgrade()),
            ),
            _ => None,
        };
        op.alias_inputs();
        op.release_unread();
        let edges = op
            .inputs()
            .into_iter()
            .zip(owners)
            .map(|(tensor, owner)| Edge {
                node: tensor.node(),
                tensor,
                owner,
            })
            .collect();
        let versions = saved_versions(&op);
        Arc::new(Node {
            name,
            view_root,
            edges: Mutex::new(edges),
            op: Mutex::new(Some(op)),
            versions,
        })
    }

    /// Runs `f` on the op and hands back the edges its result flows along; with `free`, a
    /// node that saved values gives up its op and edges (moved out, not copied).
    pub fn with_op<R>(
        &self,
        free: bool,
        f: impl FnOnce(&Op) -> Result<R>,
    ) -> Result<(R, Vec<Edge>)> {
        let mut guard = self.op.lock().unwrap_or_else(|e| e.into_inner());
        let op = guard.as_ref().ok_or_else(|| {
            Error::runtime(format!(
                "Trying to backward through the graph a second time (or directly access saved tensors after they have already been freed) at {}. Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through the graph a second time or if you need to access saved tensors after calling backward.",
                self.name
            ))
        })?;
        for (storage, v) in &self.versions {
            if storage.version() != *v {
                return Err(Error::runtime(format!(
                    "one of the variables needed for gradient computation has been modified by an inplace operation: it is an input of {}, at version {} (expected version {v}). Hint: the backtrace further above shows the operation that failed to compute its gradient; avoid modifying that tensor in place (clone it first).",
                    self.name,
                    storage.version()
                )));
            }
        }
        let r = f(op)?;
        // Like torch, only nodes that saved values are spent by a backward: a second backward
        // through additions, views or casts still works without retain_graph.
        let saves = !self.versions.is_empty() || matches!(op, Op::External { .. });
        let mut edges = self.edges.lock().unwrap_or_else(|e| e.into_inner());
        let edges = if free && saves {
            *guard = None;
            std::mem::take(&mut *edges)
        } else {
            edges.clone()
        };
        Ok((r, edges))
    }

    /// For a view node: the live tensor object at the root of its chain of views.
    pub fn view_root(&self) -> Option<Tensor> {
        Tensor::upgrade(self.view_root.as_ref()?)
    }

    /// The edges gradients flow along (empty once the graph was freed).
    pub fn edges(&self) -> Vec<Edge> {
        self.with_edges(|e| e.to_vec())
    }

    /// Runs `f` on the edges without copying them (`f` must not touch this node).
    pub fn with_edges<R>(&self, f: impl FnOnce(&[Edge]) -> R) -> R {
        f(&self.edges.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Edge {
    /// The edge to `t` as it is now.
    pub fn of(t: Tensor) -> Edge {
        Edge {
            node: t.node(),
            owner: t.downgrade(),
            tensor: t,
        }
    }
}

/// The tensors whose values the backward formula reads, with their storage versions now.
fn saved_versions(op: &Op) -> Vec<(Arc<Storage>, u64)> {
    use Op::*;
    let saved: Vec<&Tensor> = match op {
        Binary {
            op: bop,
            lhs,
            rhs,
            out,
        } => match bop {
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Rem => vec![],
            BinaryOp::Div | BinaryOp::Pow => vec![lhs, rhs, out],
            _ => vec![lhs, rhs],
        },
        // Like torch, a unary op keeps only what its formula reads: the result (exp, tanh,
        // sigmoid, relu, sqrt, ...) or the input (sin, log, gelu, ...).
        Unary { op: uop, x, out } => {
            use UnaryOp::*;
            match uop {
                Exp | Sqrt | Rsqrt | Tanh | Sigmoid | Relu | Reciprocal | Erfinv => vec![out],
                Neg | Sign | Floor | Ceil | Round | Trunc | LogicalNot | BitNot => vec![],
                _ => vec![x],
            }
        }
        Reduce { x, out, .. } | Var { x, out, .. } => vec![x, out],
        MaxDim { x, .. } => vec![x],
        Softmax { out, .. } => vec![out],
        Matmul { a, b } => vec![a, b],
        Where { cond, .. } => vec![cond],
        Gather { index, .. } | ScatterAdd { index, .. } => vec![index],
        LayerNorm { x, weight, .. } => std::iter::once(x).chain(weight).collect(),
        CrossEntropy { x, .. } => vec![x],
        BinaryCrossEntropy {
            x, target, weight, ..
        } => [x, target].into_iter().chain(weight).collect(),
        Attention { q, k, v, out, .. } => vec![q, k, v, out],
        _ => vec![],
    };
    saved
        .into_iter()
        .map(|t| (t.storage().clone(), t.storage().version()))
        .collect()
}

/// torch's grad_fn name for a primitive.
pub fn node_name(op: &Op) -> &'static str {
    use Op::*;
    match op {
        // torch names a power with a number exponent PowBackward0 (a constant 0-dim tensor
        // exponent is taken for a number here).
        Binary {
            op: BinaryOp::Pow,
            rhs,
            ..
        } if rhs.dims() == 0 && !rhs.requires_grad() => "PowBackward0",
        Binary { op, .. } => match op {
            BinaryOp::Add => "AddBackward0",
            BinaryOp::Sub => "SubBackward0",
            BinaryOp::Mul => "MulBackward0",
            BinaryOp::Div => "DivBackward0",
            BinaryOp::Pow => "PowBackward1",
            BinaryOp::Maximum => "MaximumBackward0",
            BinaryOp::Minimum => "MinimumBackward0",
            BinaryOp::Rem => "RemainderBackward0",
            _ => "BinaryBackward0",
        },
        Unary { op, .. } => match op {
            UnaryOp::Neg => "NegBackward0",
            UnaryOp::Abs => "AbsBackward0",
            UnaryOp::Exp => "ExpBackward0",
            UnaryOp::Log => "LogBackward0",
            UnaryOp::Log1p => "Log1PBackward0",
            UnaryOp::Sqrt => "SqrtBackward0",
            UnaryOp::Rsqrt => "RsqrtBackward0",
            UnaryOp::Sin => "SinBackward0",
            UnaryOp::Cos => "CosBackward0",
            UnaryOp::Tanh => "TanhBackward0",
            UnaryOp::Sigmoid => "SigmoidBackward0",
            UnaryOp::Relu => "ReluBackward0",
            UnaryOp::Gelu | UnaryOp::GeluTanh => "GeluBackward0",
            UnaryOp::Silu => "SiluBackward0",
            UnaryOp::Reciprocal => "ReciprocalBackward0",
            UnaryOp::Erf => "ErfBackward0",
            UnaryOp::Erfinv => "ErfinvBackward0",
            UnaryOp::Sign => "SignBackward0",
            UnaryOp::Floor => "FloorBackward0",
            UnaryOp::Ceil => "CeilBackward0",
            UnaryOp::Round => "RoundBackward0",
            UnaryOp::Trunc => "TruncBackward0",
            UnaryOp::LogicalNot | UnaryOp::BitNot => "NotBackward0",
        },
        Reduce { op, dims, .. } => match (op, dims.is_empty()) {
            (ReduceOp::Sum, true) => "SumBackward0",
            (ReduceOp::Sum, false) => "SumBackward1",
            (ReduceOp::Mean, true) => "MeanBackward0",
            (ReduceOp::Mean, false) => "MeanBackward1",
            (ReduceOp::Prod, _) => "ProdBackward0",
            (ReduceOp::Max, _) => "AmaxBackward0",
            (ReduceOp::Min, _) => "AminBackward0",
            (ReduceOp::LogSumExp, _) => "LogsumexpBackward0",
            _ => "ReduceBackward0",
        },
        Var { sqrt, .. } => {
            if *sqrt {
                "StdBackward0"
            } else {
                "VarBackward0"
            }
        }
        MaxDim { .. } => "MaxBackward0",
        Softmax { log, .. } => {
            if *log {
                "LogSoftmaxBackward0"
            } else {
                "SoftmaxBackward0"
            }
        }
        Cumsum { .. } => "CumsumBackward0",
        View { name, .. } => name,
        ViewScatter { .. } => "AsStridedScatterBackward0",
        Matmul { .. } => "MmBackward0",
        // torch records a 2-D linear as addmm/mm and a batched one as the view of its result.
        Linear { x, b, .. } => match (x.dims(), b.is_some()) {
            (2, true) => "AddmmBackward0",
            (2, false) => "MmBackward0",
            _ => "UnsafeViewBackward0",
        },
        Cat { .. } => "CatBackward0",
        Gather { .. } => "GatherBackward0",
        ScatterAdd { .. } => "ScatterAddBackward0",
        Index { .. } => "IndexBackward0",
        IndexPut { .. } => "IndexPutBackward0",
        Where { .. } => "WhereBackward0",
        Cast { .. } | ToDevice { .. } => "ToCopyBackward0",
        Clone { .. } => "CloneBackward0",
        LayerNorm { .. } => "NativeLayerNormBackward0",
        CopySlices { .. } => "CopySlices",
        CrossEntropy { .. } => "NllLossBackward0",
        BinaryCrossEntropy { .. } => "BinaryCrossEntropyBackward0",
        Attention { .. } => "ScaledDotProductFlashAttentionForCpuBackward0",
        External { .. } => "BackwardCFunction",
    }
}
