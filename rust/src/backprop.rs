//! Reverse mode: order the recorded nodes once, then run one exhaustive `match` over the ops,
//! each arm the gradient formula of one primitive written with ordinary tensor ops (so that
//! `create_graph` records the backward pass too).

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::op::{self, Edge, GradModeGuard, Op};
use crate::tensor::math::{Arg, BinaryOp as B, UnaryOp as U};
use crate::tensor::nn;
use crate::tensor::reduce::ReduceOp as R;
use crate::tensor::{Scalar, Tensor};
use std::cell::RefCell;
// Gradient slots are keyed by addresses: a fast non-cryptographic hash suits them.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

/// Where the gradients of a backward pass go.
pub enum Sink<'a> {
    /// `tensor.backward()`: accumulate into the leaves' `.grad`.
    Leaves,
    /// `autograd.grad(outputs, inputs)`: return the gradients of these tensors.
    Inputs(&'a [Tensor]),
    /// `tensor.backward(inputs=[...])`: accumulate into the `.grad` of these tensors only.
    LeavesIn(&'a [Tensor]),
}

/// Work queued during a backward pass, run once the pass has finished (torch's
/// `queue_callback`): data-parallel training finishes its gradient reductions there.
pub type FinalCallback = Box<dyn FnOnce() -> Result<()> + Send>;

thread_local! {
    /// One queue per backward pass running on this thread (a hook may start another).
    static FINAL_CALLBACKS: RefCell<Vec<Vec<FinalCallback>>> = const { RefCell::new(Vec::new()) };
}

/// Queues `cb` to run when the innermost backward pass running on this thread ends.
pub fn queue_callback(cb: FinalCallback) -> Result<()> {
    FINAL_CALLBACKS.with(|c| match c.borrow_mut().last_mut() {
        Some(queue) => {
            queue.push(cb);
            Ok(())
        }
        None => Err(Error::runtime(
            "Final callbacks can only be installed during backward pass (queue_callback was called outside of one)",
        )),
    })
}

/// Pops this pass's callback queue even when the pass fails.
struct CallbackScope;

impl CallbackScope {
    fn enter() -> Self {
        FINAL_CALLBACKS.with(|c| c.borrow_mut().push(Vec::new()));
        CallbackScope
    }
    /// The next queued callback, if any (callbacks may queue more).
    fn next(&self) -> Option<FinalCallback> {
        FINAL_CALLBACKS.with(|c| {
            let mut c = c.borrow_mut();
            let queue = c.last_mut()?;
            (!queue.is_empty()).then(|| queue.remove(0))
        })
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        FINAL_CALLBACKS.with(|c| c.borrow_mut().pop());
    }
}

/// Runs backward from `roots` (each with its incoming gradient), then the callbacks queued
/// during the pass. Returns the gradients for `Sink::Inputs` (None where an input is
/// unreachable), nothing for `Sink::Leaves`.
pub fn backward(
    roots: &[(Tensor, Tensor)],
    sink: Sink,
    retain_graph: bool,
    create_graph: bool,
) -> Result<Vec<Option<Tensor>>> {
    let scope = CallbackScope::enter();
    // Gradients take the dtypes the recorded casts give them: autocast is off in backward.
    let out = crate::autocast::off(|| run_backward(roots, sink, retain_graph, create_graph))?;
    while let Some(cb) = scope.next() {
        cb()?;
    }
    Ok(out)
}

fn run_backward(
    roots: &[(Tensor, Tensor)],
    sink: Sink,
    retain_graph: bool,
    create_graph: bool,
) -> Result<Vec<Option<Tensor>>> {
    for (t, _) in roots {
        if !t.requires_grad() {
            return Err(Error::runtime(
                "element 0 of tensors does not require grad and does not have a grad_fn",
            ));
        }
    }
    let order = topo_order(roots.iter().map(|(t, _)| Edge::of(t.clone())));
    // Gradient slots are keyed by node (a result's history at the time it was used) or by
    // the tensor itself for leaves; `wanted` holds the slots of the tensors asked for now.
    let slot_now = |t: &Tensor| Edge::of(t.clone()).slot();
    let wanted: HashSet<usize> = match &sink {
        Sink::Inputs(ts) | Sink::LeavesIn(ts) => ts.iter().map(slot_now).collect(),
        Sink::Leaves => HashSet::new(),
    };
    let mut grads: HashMap<usize, Tensor> = HashMap::new();
    let _mode = GradModeGuard::new(create_graph);
    for (t, g) in roots {
        accumulate(&mut grads, &Edge::of(t.clone()), g.clone())?;
    }
    let mut results: HashMap<usize, Tensor> = HashMap::new();
    for edge in order {
        let slot = edge.slot();
        let Some(mut g) = grads.remove(&slot) else {
            continue;
        };
        // Hooks and retain_grad belong to the tensor object, in its current version.
        let owner = Tensor::upgrade(&edge.owner);
        let t = owner.as_ref().unwrap_or(&edge.tensor);
        let current = match &edge.node {
            None => true,
            Some(n) => owner.as_ref().is_some_and(|o| o.is_current(n)),
        };
        if current {
            for hook in t.hooks() {
                if let Some(new) = hook(&g)? {
                    g = new;
                }
            }
        }
        if matches!(sink, Sink::Inputs(_)) && wanted.contains(&slot) {
            results.insert(slot, g.clone());
        }
        let Some(node) = &edge.node else {
            let stores = match &sink {
                Sink::Leaves => true,
                Sink::LeavesIn(_) => wanted.contains(&slot),
                Sink::Inputs(_) => false,
            };
            if stores && t.requires_grad() {
                store_grad(t, g)?;
                for hook in t.post_accumulate_hooks() {
                    hook(t)?;
                }
            }
            continue;
        };
        let into_grad = current
            && match &sink {
                Sink::Leaves => t.retains_grad(),
                Sink::LeavesIn(_) => t.retains_grad() || wanted.contains(&slot),
                Sink::Inputs(_) => false,
            };
        if into_grad {
            store_grad(t, g.clone())?;
        }
        let (input_grads, edges) = node.with_op(!retain_graph, |o| grad_of(o, &g))?;
        for (input, ig) in edges.iter().zip(input_grads) {
            if let Some(ig) = ig {
                if input.node.is_some() || input.tensor.requires_grad() {
                    accumulate(&mut grads, input, ig)?;
                }
            }
        }
    }
    Ok(match sink {
        Sink::Inputs(ts) => ts.iter().map(|t| results.remove(&slot_now(t))).collect(),
        Sink::Leaves | Sink::LeavesIn(_) => vec![],
    })
}

/// Gradient slots reachable from the roots, each after every slot that uses it.
fn topo_order(roots: impl Iterator<Item = Edge>) -> Vec<Edge> {
    let mut seen = HashSet::new();
    let mut post = Vec::new();
    // Iterative DFS: (edge, children pushed?) so deep graphs cannot overflow the stack.
    let mut stack: Vec<(Edge, bool)> = roots.map(|e| (e, false)).collect();
    stack.reverse();
    while let Some((e, expanded)) = stack.pop() {
        if expanded {
            post.push(e);
            continue;
        }
        if !seen.insert(e.slot()) {
            continue;
        }
        stack.push((e.clone(), true));
        if let Some(node) = &e.node {
            node.with_edges(|edges| {
                for input in edges.iter().rev() {
                    let tracked = input.node.is_some() || input.tensor.requires_grad();
                    if tracked && !seen.contains(&input.slot()) {
                        stack.push((input.clone(), false));
                    }
                }
            });
        }
    }
    post.reverse();
    post
}

fn accumulate(grads: &mut HashMap<usize, Tensor>, e: &Edge, g: Tensor) -> Result<()> {
    let g = fit(&e.tensor, g)?;
    let total = match grads.remove(&e.slot()) {
        Some(prev) => prev.binary_t(B::Add, &g)?,
        None => g,
    };
    grads.insert(e.slot(), total);
    Ok(())
}

/// `.grad += g` (a fresh contiguous tensor the first time, like torch: `g` itself when nothing
/// else can see it, else a copy).
/// Atomic per tensor: backward passes running in several threads into one leaf all add up.
fn store_grad(t: &Tensor, g: Tensor) -> Result<()> {
    let g = fit(t, g)?;
    t.update_grad(|prev| match prev {
        Some(prev) => prev.binary_t(B::Add, &g),
        None => Ok(if op::is_grad_enabled() || g.is_sole_dense_owner() {
            g
        } else {
            g.contiguous_copy()
        }),
    })
}

/// A gradient in the tensor's dtype and shape.
fn fit(t: &Tensor, g: Tensor) -> Result<Tensor> {
    let g = if g.dtype() != t.dtype() {
        g.to_dtype(t.dtype())
    } else {
        g
    };
    if g.shape() != t.shape() {
        return sum_to(&g, t.shape());
    }
    Ok(g)
}

/// Sums a broadcast gradient back to `shape` (the adjoint of broadcasting).
pub fn sum_to(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let extra = g.dims() - shape.len();
    let mut dims: Vec<i64> = (0..extra as i64).collect();
    for (i, &s) in shape.iter().enumerate() {
        if s == 1 && g.shape()[extra + i] != 1 {
            dims.push((extra + i) as i64);
        }
    }
    let s = if dims.is_empty() {
        g.clone()
    } else {
        g.reduce(R::Sum, &dims, true, None)?
    };
    let target: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    s.reshape(&target)
}

fn scalar(v: f64, dt: DType) -> Tensor {
    Tensor::scalar(Scalar::Float(v), dt)
}

fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.binary_t(B::Mul, b)
}

fn muls(a: &Tensor, v: f64) -> Result<Tensor> {
    a.binary_s(B::Mul, Scalar::Float(v))
}

/// Re-inserts reduced dims (size 1) so a reduced gradient broadcasts against the input.
fn unsqueeze_dims(g: &Tensor, x: &Tensor, dims: &[i64], keepdim: bool) -> Result<Tensor> {
    if keepdim || x.dims() == 0 {
        return Ok(g.clone());
    }
    let nd = x.dims();
    let mut ds: Vec<usize> = if dims.is_empty() {
        (0..nd).collect()
    } else {
        crate::shape::normalize_dims(dims, nd)?
    };
    ds.sort_unstable();
    let mut out = g.clone();
    for d in ds {
        out = out.unsqueeze(d as i64)?;
    }
    Ok(out)
}

/// A saved output, or (when this backward is itself recorded, `create_graph`) the output
/// recomputed from the inputs, so that second derivatives see how it depends on them. Saved
/// outputs are kept detached: a result holding its own node would be a reference cycle.
fn live(out: &Tensor, recompute: impl FnOnce() -> Result<Tensor>) -> Result<Tensor> {
    if op::is_grad_enabled() {
        recompute()
    } else {
        Ok(out.clone())
    }
}

/// The gradient of each input of `op`, given the gradient `g` of its output.
fn grad_of(op: &Op, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    Ok(match op {
        Op::Binary { op, lhs, rhs, out } => {
            let (a, b) = (lhs, rhs);
            // Only a quotient and a power read their result (the graph keeps no other).
            let result = || live(out, || a.binary_t(*op, b));
            let (ga, gb) = match op {
                B::Add => (g.clone(), g.clone()),
                B::Sub => (g.clone(), g.unary(U::Neg)?),
                B::Mul => {
                    // A factor whose partner takes no gradient was not kept (`release_unread`).
                    let ga = a.requires_grad().then(|| mul(g, b)).transpose()?;
                    let gb = b.requires_grad().then(|| mul(g, a)).transpose()?;
                    return Ok(vec![ga, gb]);
                }
                B::Div => {
                    let out = &result()?;
                    let ga = g.binary_t(B::Div, b)?;
                    // -g * a / b^2 = -ga * out / a ... computed directly for a == 0.
                    let gb = mul(&ga, out)?.unary(U::Neg)?;
                    (ga, gb)
                }
                B::Pow => {
                    let out = &result()?;
                    // d/da a^b = b * a^(b-1);  d/db a^b = a^b * ln(a) (0 where a == 0 and b >= 0).
                    // In the result's dtype: a Python-number base (int64) must not drop to f32.
                    let (a, b) = (&a.to_dtype(out.dtype()), &b.to_dtype(out.dtype()));
                    let bm1 = b.binary_s(B::Sub, Scalar::Int(1))?;
                    let ga = mul(&mul(g, b)?, &a.binary_t(B::Pow, &bm1)?)?;
                    // An exponent of 0 gives 0 even at a == 0 (where a^(b-1) is inf), as torch.
                    let ga = Tensor::where_(
                        &b.binary_s(B::Eq, Scalar::Int(0))?,
                        Arg::tensor(&scalar(0.0, ga.dtype())),
                        Arg::tensor(&ga),
                    )?;
                    let lna = a.unary(U::Log)?;
                    let zero = a
                        .binary_s(B::Eq, Scalar::Int(0))?
                        .binary_t(B::LogicalAnd, &b.binary_s(B::Ge, Scalar::Int(0))?)?;
                    let d = mul(out, &lna)?;
                    let d = Tensor::where_(
                        &zero,
                        Arg::tensor(&scalar(0.0, d.dtype())),
                        Arg::tensor(&d),
                    )?;
                    (ga, mul(g, &d)?)
                }
                B::Maximum | B::Minimum => {
                    // Ties split the gradient in half; the side that loses gets none; with a
                    // NaN neither side loses, so both get all of it (torch's formula).
                    let eq = a.binary_t(B::Eq, b)?;
                    let shared = Tensor::where_(&eq, Arg::tensor(&muls(g, 0.5)?), Arg::tensor(g))?;
                    let (a_loses, b_loses) = if *op == B::Maximum {
                        (a.binary_t(B::Lt, b)?, a.binary_t(B::Gt, b)?)
                    } else {
                        (a.binary_t(B::Gt, b)?, a.binary_t(B::Lt, b)?)
                    };
                    let z = scalar(0.0, g.dtype());
                    let keep = |loses: &Tensor| {
                        Tensor::where_(loses, Arg::tensor(&z), Arg::tensor(&shared))
                    };
                    (keep(&a_loses)?, keep(&b_loses)?)
                }
                B::Rem => {
                    let q = a.binary_t(B::FloorDiv, b)?;
                    (g.clone(), mul(g, &q)?.unary(U::Neg)?)
                }
                _ => {
                    return Err(Error::runtime(format!(
                        "the derivative of {} is not implemented",
                        op.name()
                    )))
                }
            };
            vec![Some(ga), Some(gb)]
        }
        Op::Unary { op, x, out } => {
            if let Some(gx) = nn::unary_backward_from_output(*op, g, out)? {
                return Ok(vec![Some(gx)]);
            }
            let out = &live(out, || x.unary(*op))?;
            let one = |t: &Tensor| scalar(1.0, t.dtype());
            let gx = match op {
                U::Neg => g.unary(U::Neg)?,
                U::Abs => mul(g, &x.unary(U::Sign)?)?,
                U::Sign | U::Floor | U::Ceil | U::Round | U::Trunc => muls(g, 0.0)?,
                U::Exp => mul(g, out)?,
                U::Log => g.binary_t(B::Div, x)?,
                U::Log1p => g.binary_t(B::Div, &x.binary_s(B::Add, Scalar::Int(1))?)?,
                U::Sqrt => g.binary_t(B::Div, &muls(out, 2.0)?)?,
                U::Rsqrt => mul(&muls(g, -0.5)?, &mul(&mul(out, out)?, out)?)?,
                U::Sin => mul(g, &x.unary(U::Cos)?)?,
                U::Cos => mul(g, &x.unary(U::Sin)?.unary(U::Neg)?)?,
                U::Tanh => mul(g, &one(out).binary_t(B::Sub, &mul(out, out)?)?)?,
                U::Sigmoid => mul(g, &mul(out, &one(out).binary_t(B::Sub, out)?)?)?,
                U::Relu => {
                    // torch masks where out <= 0, so a NaN passes its gradient through.
                    let off = out.binary_s(B::Le, Scalar::Int(0))?;
                    Tensor::where_(&off, Arg::tensor(&scalar(0.0, g.dtype())), Arg::tensor(g))?
                }
                U::Gelu | U::GeluTanh if !op::is_grad_enabled() => {
                    nn::gelu_backward(g, x, *op == U::GeluTanh)?
                }
                U::Gelu => {
                    // Φ(x) + x φ(x), with Φ the normal CDF and φ its density.
                    let erf = muls(x, std::f64::consts::FRAC_1_SQRT_2)?.unary(U::Erf)?;
                    let cdf = muls(&erf, 0.5)?.binary_s(B::Add, Scalar::Float(0.5))?;
                    let pdf = muls(&mul(x, x)?, -0.5)?.unary(U::Exp)?;
                    let pdf = muls(&pdf, 1.0 / (2.0 * std::f64::consts::PI).sqrt())?;
                    mul(g, &cdf.binary_t(B::Add, &mul(x, &pdf)?)?)?
                }
                U::Erfinv => {
                    // d/dy erfinv(y) = sqrt(pi)/2 * exp(erfinv(y)^2)
                    let d = muls(
                        &mul(out, out)?.unary(U::Exp)?,
                        std::f64::consts::PI.sqrt() / 2.0,
                    )?;
                    mul(g, &d)?
                }
                U::Erf => {
                    let d = muls(
                        &muls(&mul(x, x)?, -1.0)?.unary(U::Exp)?,
                        2.0 / std::f64::consts::PI.sqrt(),
                    )?;
                    mul(g, &d)?
                }
                U::GeluTanh => {
                    let k = (2.0 / std::f64::consts::PI).sqrt();
                    let x2 = mul(x, x)?;
                    let inner = muls(&x.binary_t(B::Add, &muls(&mul(&x2, x)?, 0.044715)?)?, k)?;
                    let t = inner.unary(U::Tanh)?;
                    let dinner = muls(
                        &muls(&x2, 3.0 * 0.044715)?.binary_s(B::Add, Scalar::Int(1))?,
                        k,
                    )?;
                    let left = muls(&t.binary_s(B::Add, Scalar::Int(1))?, 0.5)?;
                    let sech2 = one(&t).binary_t(B::Sub, &mul(&t, &t)?)?;
                    let right = mul(&muls(x, 0.5)?, &mul(&sech2, &dinner)?)?;
                    mul(g, &left.binary_t(B::Add, &right)?)?
                }
                U::Silu => {
                    let s = x.unary(U::Sigmoid)?;
                    let d = mul(
                        &s,
                        &one(&s).binary_t(B::Add, &mul(x, &one(&s).binary_t(B::Sub, &s)?)?)?,
                    )?;
                    mul(g, &d)?
                }
                U::Reciprocal => mul(g, &mul(out, out)?)?.unary(U::Neg)?,
                U::LogicalNot | U::BitNot => return Ok(vec![None]),
            };
            vec![Some(gx)]
        }
        Op::Reduce {
            op,
            x,
            dims,
            keepdim,
            out,
        } => {
            let out = &live(out, || x.reduce(*op, dims, *keepdim, None))?;
            let gk = unsqueeze_dims(g, x, dims, *keepdim)?;
            let ok = unsqueeze_dims(out, x, dims, *keepdim)?;
            let gx =
                match op {
                    R::Sum => gk.broadcast_as(x.shape())?,
                    R::Mean => {
                        let n = (x.elem_count().max(1) / ok.elem_count().max(1)) as f64;
                        muls(&gk, 1.0 / n)?.broadcast_as(x.shape())?
                    }
                    R::Prod => {
                        // out / x, except at zeros: a lone zero of its slice gets the product of
                        // the others, a zero that has company gets 0 (torch's prod_backward).
                        let zero = x.binary_s(B::Eq, Scalar::Int(0))?;
                        let one = scalar(1.0, x.dtype());
                        let others = Tensor::where_(&zero, Arg::tensor(&one), Arg::tensor(x))?
                            .reduce(R::Prod, dims, true, None)?;
                        let zeros = zero.to_dtype(x.dtype()).reduce(R::Sum, dims, true, None)?;
                        let at_zero = Tensor::where_(
                            &zeros.binary_s(B::Eq, Scalar::Int(1))?,
                            Arg::tensor(&others),
                            Arg::tensor(&scalar(0.0, x.dtype())),
                        )?;
                        let d = Tensor::where_(
                            &zero,
                            Arg::tensor(&at_zero),
                            Arg::tensor(&ok.binary_t(B::Div, x)?),
                        )?;
                        mul(&gk, &d)?
                    }
                    R::Max | R::Min => {
                        let hit = x.binary_t(B::Eq, &ok)?.to_dtype(g.dtype());
                        let count = hit.reduce(R::Sum, dims, true, None)?;
                        mul(&gk, &hit)?.binary_t(B::Div, &count)?
                    }
                    R::LogSumExp => mul(&gk, &x.binary_t(B::Sub, &ok)?.unary(U::Exp)?)?,
                    R::All | R::Any => return Ok(vec![None]),
                };
            vec![Some(gx)]
        }
        Op::Var {
            x,
            dims,
            correction,
            keepdim,
            sqrt,
            out,
        } => {
            let out = &live(out, || x.var(dims, *correction, *keepdim, *sqrt))?;
            let gk = unsqueeze_dims(g, x, dims, *keepdim)?;
            let mean = x.reduce(R::Mean, dims, true, None)?;
            let n = (x.elem_count().max(1) / gk.elem_count().max(1)) as f64;
            // No degrees of freedom left: torch's 2 / 0 makes the gradient inf * 0 = NaN.
            let mut gx = mul(
                &gk,
                &muls(&x.binary_t(B::Sub, &mean)?, 2.0 / (n - correction).max(0.0))?,
            )?;
            if *sqrt {
                // A zero std passes no gradient (torch masks the 0 / 0).
                let ok = unsqueeze_dims(out, x, dims, *keepdim)?;
                gx = Tensor::where_(
                    &ok.binary_s(B::Eq, Scalar::Int(0))?,
                    Arg::tensor(&scalar(0.0, gx.dtype())),
                    Arg::tensor(&gx.binary_t(B::Div, &muls(&ok, 2.0)?)?),
                )?;
            }
            vec![Some(gx)]
        }
        Op::MaxDim {
            x,
            dim,
            keepdim,
            indices,
        } => {
            let d = *dim as i64;
            let (gk, ik) = if *keepdim || x.dims() == 0 {
                (g.clone(), indices.clone())
            } else {
                (g.unsqueeze(d)?, indices.unsqueeze(d)?)
            };
            let zeros = Tensor::full_on(x.shape(), Scalar::Int(0), g.dtype(), g.device())?;
            vec![Some(zeros.scatter_add(d, &ik.contiguous_copy(), &gk)?)]
        }
        Op::Softmax { out, dim, log, .. } if !op::is_grad_enabled() => {
            vec![Some(out.softmax_backward(g, *dim, *log)?)]
        }
        Op::Softmax { x, out, dim, log } => {
            let out = &live(out, || x.softmax(*dim, *log))?;
            let gx = if *log {
                let s = g.reduce(R::Sum, &[*dim], true, None)?;
                g.binary_t(B::Sub, &mul(&out.unary(U::Exp)?, &s)?)?
            } else {
                let s = mul(g, out)?.reduce(R::Sum, &[*dim], true, None)?;
                mul(out, &g.binary_t(B::Sub, &s)?)?
            };
            vec![Some(gx)]
        }
        Op::Cumsum { x: _, dim } => {
            // Reverse cumulative sum: total - cumsum + g.
            let total = g.reduce(R::Sum, &[*dim], true, None)?;
            let c = g.cumsum(*dim, None)?;
            vec![Some(total.binary_t(B::Sub, &c)?.binary_t(B::Add, g)?)]
        }
        Op::View { x, layout, .. } => {
            let gx = Tensor::view_scatter(g, x.layout(), layout, x.storage().len())?;
            vec![Some(gx)]
        }
        Op::ViewScatter {
            src: _,
            x_layout,
            view_layout,
            storage_len,
        } => {
            // Adjoint: place g on x_layout's elements of a zero buffer, read it through the view.
            let buf = Tensor::view_scatter(
                g,
                &Layout::contiguous(&[*storage_len]),
                x_layout,
                *storage_len,
            )?;
            vec![Some(buf.as_view(view_layout.clone()))]
        }
        Op::Matmul { a, b } => {
            let ga = g.matmul(&b.transpose(-2, -1)?)?;
            let gb = a.transpose(-2, -1)?.matmul(g)?;
            vec![Some(sum_to(&ga, a.shape())?), Some(sum_to(&gb, b.shape())?)]
        }
        Op::Linear { x, w, b } => crate::tensor::linear::linear_backward(g, x, w, b.is_some())?,
        Op::Cat { xs, dim } => {
            let mut start = 0;
            let mut out = Vec::with_capacity(xs.len());
            for x in xs {
                if x.dims() == 1 && x.elem_count() == 0 && g.dims() != 1 {
                    out.push(None);
                    continue;
                }
                let n = x.shape()[*dim];
                out.push(Some(g.narrow(*dim as i64, start as i64, n as i64)?));
                start += n;
            }
            out
        }
        Op::Gather { x, dim, index } => {
            let zeros = Tensor::full_on(x.shape(), Scalar::Int(0), g.dtype(), g.device())?;
            vec![Some(zeros.scatter_add(*dim, index, g)?)]
        }
        Op::ScatterAdd {
            base: _,
            dim,
            index,
            src: _,
        } => vec![Some(g.clone()), Some(g.gather(*dim, index)?)],
        Op::Index { x, index } => {
            let zeros = Tensor::full_on(x.shape(), Scalar::Int(0), g.dtype(), g.device())?;
            vec![Some(zeros.index_put(index, g, true)?)]
        }
        Op::IndexPut {
            base: _,
            index,
            values,
            accumulate,
        } => {
            let gb = if *accumulate {
                g.clone()
            } else {
                g.index_put(index, &scalar(0.0, g.dtype()), false)?
            };
            let gv = sum_to(&g.index(index)?, values.shape())?;
            vec![Some(gb), Some(gv)]
        }
        Op::Where { cond, a: _, b: _ } => {
            let z = scalar(0.0, g.dtype());
            let ga = Tensor::where_(cond, Arg::tensor(g), Arg::tensor(&z))?;
            let gb = Tensor::where_(cond, Arg::tensor(&z), Arg::tensor(g))?;
            vec![Some(ga), Some(gb)]
        }
        Op::Cast { x } => vec![Some(g.to_dtype(x.dtype()))],
        Op::ToDevice { x } => vec![Some(g.to_device(x.device())?)],
        Op::Clone { .. } => vec![Some(g.clone())],
        Op::CopySlices {
            base_layout,
            view_layout,
            storage_len,
            ..
        } => {
            // The view's elements came from src; the rest of the base from the old base.
            let gsrc = Tensor::view_scatter(g, view_layout, base_layout, *storage_len)?;
            let mut covered = vec![false; *storage_len];
            for o in view_layout.offsets() {
                covered[o] = true;
            }
            let keep: Vec<f64> = base_layout
                .offsets()
                .map(|o| if covered[o] { 0.0 } else { 1.0 })
                .collect();
            let keep = Tensor::from_vec(keep, base_layout.shape())?
                .to_dtype(g.dtype())
                .to_device(g.device())?;
            vec![Some(mul(g, &keep)?), Some(gsrc)]
        }
        Op::LayerNorm {
            x,
            weight,
            bias,
            mean,
            rstd,
            shape,
            eps,
        } => {
            // Recorded ops under create_graph (on either backend), else the fused backward.
            let (gx, gw, gb) = if crate::op::is_grad_enabled() {
                nn::layer_norm_backward_composite(g, x, weight.as_ref(), shape, *eps)?
            } else if !x.device().is_native() {
                nn::layer_norm_backward_torch(g, x, weight.as_ref(), bias.as_ref(), shape, *eps)?
            } else {
                nn::layer_norm_backward(g, x, weight.as_ref(), mean, rstd, shape)?
            };
            let mut out = vec![Some(gx)];
            if weight.is_some() {
                out.push(Some(gw));
            }
            if bias.is_some() {
                out.push(Some(gb));
            }
            out
        }
        Op::CrossEntropy {
            x,
            target,
            weight,
            ignore_index,
            smoothing,
            reduction,
            lse,
            denom,
        } => {
            let (w, ii, s, r, d) = (
                weight.as_ref(),
                *ignore_index,
                *smoothing,
                *reduction,
                *denom,
            );
            let gx = if crate::op::is_grad_enabled() {
                // The torch backend's forward left the divisor to be found when needed.
                let d = if x.device().is_native() {
                    d
                } else {
                    nn::ce_denom(target, w, ii, x.shape()[1])
                };
                nn::cross_entropy_backward_composite(g, x, target, w, ii, s, r, d)?
            } else if !x.device().is_native() {
                nn::cross_entropy_backward_torch(g, x, target, w, ii, s, r)?
            } else {
                nn::cross_entropy_backward(g, x, target, w, ii, s, r, lse, d)?
            };
            vec![Some(gx)]
        }
        Op::Attention {
            q,
            k,
            v,
            mask,
            causal,
            scale,
            keep,
            out,
            lse,
        } => {
            let (m, kp) = (mask.as_ref(), keep.as_ref());
            let (gq, gk, gv) = if crate::op::is_grad_enabled() {
                nn::attention_backward_composite(g, q, k, v, m, *causal, *scale, kp)?
            } else if !q.device().is_native() {
                nn::attention_backward_torch(g, q, k, v, m, *causal, *scale, kp)?
            } else {
                nn::attention_backward(g, q, k, v, m, *causal, *scale, kp, out, lse)?
            };
            vec![Some(gq), Some(gk), Some(gv)]
        }
        Op::BinaryCrossEntropy {
            x,
            target,
            weight,
            reduction,
        } => {
            let want_target = target.requires_grad();
            let (w, r) = (weight.as_ref(), *reduction);
            let (gx, gt) = if crate::op::is_grad_enabled() || !x.device().is_native() {
                nn::binary_cross_entropy_backward_composite(g, x, target, w, r, want_target)?
            } else {
                nn::binary_cross_entropy_backward(g, x, target, w, r, want_target)?
            };
            vec![Some(gx), gt]
        }
        Op::External { backward, .. } => backward(std::slice::from_ref(g))?,
    })
}
