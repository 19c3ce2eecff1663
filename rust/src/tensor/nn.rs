//! Fused neural-network ops (layer norm, cross-entropy, binary cross-entropy) and the fused
//! optimizer updates: shape and dtype checks, recording, and the composite backward used when
//! the backward pass is itself recorded (`create_graph=True`).

use crate::device::{self, Value};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::elementwise::map2;
use crate::kernels::fused::{self, BceRange, CrossEntropySpec};
use crate::kernels::optim::{self as optk, AdamHyper, SgdHyper};
use crate::op::{self, Op};
use crate::tensor::math::{wrap_scalar, Arg, BinaryOp as B, UnaryOp as U};
use crate::tensor::reduce::ReduceOp as R;
use crate::tensor::{Scalar, Tensor};

/// How a loss reduces its per-element values (torch's `reduction=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Mean,
    Sum,
}

impl Reduction {
    /// The torch backend's code for the reduction (0 none, 1 sum, 2 mean).
    pub fn code(self) -> i64 {
        match self {
            Reduction::None => 0,
            Reduction::Sum => 1,
            Reduction::Mean => 2,
        }
    }
    pub fn parse(s: &str) -> Result<Reduction> {
        match s {
            "none" => Ok(Reduction::None),
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            _ => Err(Error::Value(format!(
                "{s} is not a valid value for reduction (expected 'none', 'mean' or 'sum')"
            ))),
        }
    }
}

/// The dtype a fused kernel computes in: f32/f64 as they are, half types through f32.
fn compute_dtype(d: DType) -> DType {
    if d == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

fn from_f64s(v: Vec<f64>, shape: &[usize], dt: DType) -> Result<Tensor> {
    Ok(Tensor::from_vec(v, shape)?.to_dtype(dt))
}

impl Tensor {
    // *** layer norm ***

    /// Layer norm over the trailing dims `shape`, with optional elementwise affine `weight`
    /// and `bias` (shaped `shape`).
    pub fn layer_norm(
        &self,
        shape: &[usize],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        if crate::autocast::wants_f32_on_gpu(&[Some(self), weight, bias]) {
            use crate::autocast::upcast;
            let (x, w, b) = (upcast(self), weight.map(upcast), bias.map(upcast));
            return crate::autocast::off(|| x.layer_norm(shape, w.as_ref(), b.as_ref(), eps));
        }
        let k = shape.len();
        let nd = self.dims();
        if k == 0 || k > nd || self.shape()[nd - k..] != *shape {
            return Err(Error::runtime(format!(
                "Given normalized_shape={shape:?}, expected input with shape [*, {}], but got input of size{:?}",
                shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                self.shape()
            )));
        }
        if !self.dtype().is_float() {
            return Err(Error::runtime(format!(
                "layer_norm expects a floating point input, got {}",
                self.dtype()
            )));
        }
        for (name, p) in [("weight", weight), ("bias", bias)] {
            if let Some(p) = p {
                if p.shape() != shape {
                    return Err(Error::runtime(format!(
                        "layer_norm: {name} of shape {:?} does not match normalized_shape {shape:?}",
                        p.shape()
                    )));
                }
                if p.dtype() != self.dtype() {
                    return Err(Error::runtime(format!(
                        "layer_norm: expected {name} to have the input's dtype {}, but got {}",
                        self.dtype(),
                        p.dtype()
                    )));
                }
            }
        }
        let (out, mean, rstd) = match device::op_device("layer_norm", &[self])? {
            None => op::no_grad(|| layer_norm_fwd(self, shape, weight, bias, eps))?,
            Some(dev) => {
                let args = [
                    Value::Tensor(self),
                    Value::Ints(shape.iter().map(|&d| d as i64).collect()),
                    Value::OptTensor(weight),
                    Value::OptTensor(bias),
                    Value::Float(eps),
                ];
                let out = device::call1("layer_norm", dev, &args)?;
                // torch's backward recomputes what it needs: nothing saved here.
                let none = Tensor::zeros(&[0], self.dtype())?;
                (out, none.clone(), none)
            }
        };
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        Ok(out.record(&inputs, || Op::LayerNorm {
            x: self.clone(),
            weight: weight.cloned(),
            bias: bias.cloned(),
            mean,
            rstd,
            shape: shape.to_vec(),
            eps,
        }))
    }

    // *** cross-entropy ***

    /// Cross-entropy of logits `self` (N, C) against class indices `target` (N,), torch's
    /// `cross_entropy` with `weight`, `ignore_index`, `label_smoothing` and `reduction`.
    pub fn cross_entropy(
        &self,
        target: &Tensor,
        weight: Option<&Tensor>,
        ignore_index: i64,
        smoothing: f64,
        reduction: Reduction,
    ) -> Result<Tensor> {
        if self.dims() != 2 || target.dims() != 1 || target.shape()[0] != self.shape()[0] {
            return Err(Error::Value(format!(
                "Expected input batch_size ({}) to match target batch_size ({}): cross_entropy takes input (N, C) and target (N,), got input {:?} and target {:?}",
                self.shape().first().copied().unwrap_or(0),
                target.shape().first().copied().unwrap_or(0),
                self.shape(),
                target.shape()
            )));
        }
        if target.dtype() != DType::I64 {
            return Err(Error::runtime(format!(
                "expected scalar type Long but found {} (cross_entropy class-index targets must be int64; use target.long())",
                target.dtype().scalar_name()
            )));
        }
        let c = self.shape()[1];
        if let Some(w) = weight {
            if w.shape() != [c] {
                return Err(Error::runtime(format!(
                    "weight tensor should be defined either for all {c} classes or no classes but got weight tensor of shape: {:?}",
                    w.shape()
                )));
            }
        }
        if !(0.0..=1.0).contains(&smoothing) {
            return Err(Error::runtime(format!(
                "label_smoothing must be between 0.0 and 1.0. Got: {smoothing}"
            )));
        }
        if let Some(dev) = device::op_device("cross_entropy", &[self])? {
            let args = ce_values(self, target, weight, ignore_index, smoothing, reduction);
            let out = op::no_grad(|| device::call1("cross_entropy", dev, &args))?;
            return Ok(out.record(&[self], || Op::CrossEntropy {
                x: self.clone(),
                target: target.clone(),
                weight: weight.map(|w| w.detach()),
                ignore_index,
                smoothing,
                reduction,
                lse: vec![],
                denom: 0.0,
            }));
        }
        let (loss_rows, lse, denom) =
            op::no_grad(|| ce_fwd(self, target, weight, ignore_index, smoothing))?;
        let dt = self.dtype();
        let out = match reduction {
            Reduction::None => from_f64s(loss_rows, &[self.shape()[0]], dt)?,
            Reduction::Sum => from_f64s(vec![loss_rows.iter().sum()], &[], dt)?,
            Reduction::Mean => from_f64s(vec![loss_rows.iter().sum::<f64>() / denom], &[], dt)?,
        };
        Ok(out.record(&[self], || Op::CrossEntropy {
            x: self.clone(),
            target: target.contiguous_copy(),
            weight: weight.map(|w| w.detach()),
            ignore_index,
            smoothing,
            reduction,
            lse,
            denom,
        }))
    }

    // *** binary cross-entropy ***

    /// Binary cross-entropy of probabilities `self` against `target` (the same shape), torch's
    /// `binary_cross_entropy`: `-w·(t·ln x + (1 − t)·ln(1 − x))` with each log clamped at −100;
    /// `weight` broadcasts to the input's shape and takes no gradient (as in torch).
    pub fn binary_cross_entropy(
        &self,
        target: &Tensor,
        weight: Option<&Tensor>,
        reduction: Reduction,
    ) -> Result<Tensor> {
        if target.shape() != self.shape() {
            let example = if self.elem_count() == 1 {
                let d = self.dims();
                format!(", e.g. torch.tensor({}1.0{})", "[".repeat(d), "]".repeat(d))
            } else {
                String::new()
            };
            return Err(Error::Value(format!(
                "Using a target size (torch.Size({:?})) that is different to the input size (torch.Size({:?})) is deprecated. Please ensure they have the same size. To fix it, reshape the target with target.view_as(input), or create it with the input's shape {:?}{example}.",
                target.shape(),
                self.shape(),
                self.shape()
            )));
        }
        if !self.dtype().is_float() {
            return Err(Error::NotImplemented(format!(
                "\"binary_cross_entropy\" not implemented for '{}': it needs a floating point input; convert it first, e.g. input.float()",
                self.dtype().scalar_name()
            )));
        }
        if target.dtype() != self.dtype() {
            return Err(Error::runtime(format!(
                "Found dtype {} but expected {}: binary_cross_entropy needs a target of the input's dtype; use target.to(input.dtype)",
                target.dtype().scalar_name(),
                self.dtype().scalar_name()
            )));
        }
        let weight = match weight {
            Some(w) => Some(w.detach().broadcast_as(self.shape())?),
            None => None,
        };
        let out = match device::op_device("binary_cross_entropy", &[self, target])? {
            Some(dev) => {
                let args = [
                    Value::Tensor(self),
                    Value::Tensor(target),
                    Value::OptTensor(weight.as_ref()),
                    Value::Int(reduction.code()),
                ];
                op::no_grad(|| device::call1("binary_cross_entropy", dev, &args))?
            }
            None => op::no_grad(|| bce_fwd(self, target, weight.as_ref(), reduction))?,
        };
        Ok(out.record(&[self, target], || Op::BinaryCrossEntropy {
            x: self.clone(),
            target: target.clone(),
            weight,
            reduction,
        }))
    }
}

/// The elements of a tensor made contiguous just before.
fn dense<T: crate::dtype::Elem>(t: &Tensor) -> &[T] {
    t.as_contiguous_slice::<T>().expect("contiguous")
}

/// The compute dtype of a binary cross-entropy and its operands in it, contiguous.
fn bce_operands(
    x: &Tensor,
    t: &Tensor,
    w: Option<&Tensor>,
) -> (DType, Tensor, Tensor, Option<Tensor>) {
    let cd = compute_dtype(x.dtype());
    let dense = |v: &Tensor| v.to_dtype(cd).contiguous();
    (cd, dense(x), dense(t), w.map(dense))
}

fn bce_fwd(x: &Tensor, t: &Tensor, w: Option<&Tensor>, reduction: Reduction) -> Result<Tensor> {
    let (cd, xs, ts, ws) = bce_operands(x, t, w);
    macro_rules! run {
        ($T:ty) => {{
            let slice = dense::<$T>;
            let mut out = vec![<$T>::default(); x.elem_count()];
            fused::bce_fwd(slice(&xs), slice(&ts), ws.as_ref().map(slice), &mut out).map_err(
                |which| {
                    Error::runtime(match which {
                        BceRange::Input => "all elements of input should be between 0 and 1",
                        BceRange::Target => "all elements of target should be between 0 and 1",
                    })
                },
            )?;
            Tensor::from_vec(out, x.shape())?
        }};
    }
    let loss = if cd == DType::F64 {
        run!(f64)
    } else {
        run!(f32)
    };
    // The reductions are the ordinary ones, so their rounding is theirs.
    let loss = match reduction {
        Reduction::None => loss,
        Reduction::Sum => loss.reduce(R::Sum, &[], false, None)?,
        Reduction::Mean => loss.reduce(R::Mean, &[], false, None)?,
    };
    Ok(loss.to_dtype(x.dtype()))
}

/// The fused binary cross-entropy backward: the gradients of the input and, when `want_target`,
/// of the target.
pub fn binary_cross_entropy_backward(
    g: &Tensor,
    x: &Tensor,
    t: &Tensor,
    w: Option<&Tensor>,
    reduction: Reduction,
    want_target: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let (cd, xs, ts, ws) = bce_operands(x, t, w);
    let gs = g.to_dtype(cd).contiguous();
    let n = x.elem_count();
    macro_rules! run {
        ($T:ty) => {{
            let slice = dense::<$T>;
            let mut gx = vec![<$T>::default(); n];
            let mut gt = want_target.then(|| vec![<$T>::default(); n]);
            let div = (reduction == Reduction::Mean).then_some(n as $T);
            fused::bce_bwd(
                slice(&xs),
                slice(&ts),
                ws.as_ref().map(slice),
                slice(&gs),
                div,
                &mut gx,
                gt.as_deref_mut(),
            );
            (
                Tensor::from_vec(gx, x.shape())?,
                gt.map(|gt| Tensor::from_vec(gt, x.shape())).transpose()?,
            )
        }};
    }
    let (gx, gt) = if cd == DType::F64 {
        run!(f64)
    } else {
        run!(f32)
    };
    let dt = x.dtype();
    Ok((gx.to_dtype(dt), gt.map(|gt| gt.to_dtype(dt))))
}

/// Binary cross-entropy's backward as recorded tensor ops (`create_graph=True`, and the torch
/// backend): the fused formulas, op by op.
pub fn binary_cross_entropy_backward_composite(
    g: &Tensor,
    x: &Tensor,
    t: &Tensor,
    w: Option<&Tensor>,
    reduction: Reduction,
    want_target: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let finish = |v: Tensor| -> Result<Tensor> {
        let v = match w {
            Some(w) => v.binary_t(B::Mul, w)?,
            None => v,
        };
        match reduction {
            Reduction::Mean => v.binary_s(B::Div, Scalar::Int(x.elem_count() as i64)),
            _ => Ok(v),
        }
    };
    let one_minus_x = x.unary(U::Neg)?.binary_s(B::Add, Scalar::Int(1))?;
    let eps = wrap_scalar(Scalar::Float(1e-12));
    let eps = Arg {
        tensor: &eps,
        wrapped: true,
    };
    let denom = one_minus_x.binary_t(B::Mul, x)?.clamp(Some(eps), None)?;
    let gx = finish(
        g.binary_t(B::Mul, &x.binary_t(B::Sub, t)?)?
            .binary_t(B::Div, &denom)?,
    )?;
    let gt = if want_target {
        let logit = x.binary_t(B::Div, &one_minus_x)?.unary(U::Log)?;
        Some(finish(logit.unary(U::Neg)?.binary_t(B::Mul, g)?)?)
    } else {
        None
    };
    Ok((gx, gt))
}

fn layer_norm_fwd(
    x: &Tensor,
    shape: &[usize],
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let cd = compute_dtype(x.dtype());
    let n: usize = shape.iter().product();
    let rows = x.elem_count() / n.max(1);
    let xs = x.to_dtype(cd).contiguous();
    let ws = w.map(|w| w.to_dtype(cd).contiguous());
    let bs = b.map(|b| b.to_dtype(cd).contiguous());
    macro_rules! run {
        ($T:ty) => {{
            let mut y = vec![<$T>::default(); x.elem_count()];
            let mut mean = vec![<$T>::default(); rows];
            let mut rstd = vec![<$T>::default(); rows];
            fused::layer_norm_fwd(
                xs.as_contiguous_slice::<$T>().expect("contiguous"),
                ws.as_ref()
                    .map(|w| w.as_contiguous_slice::<$T>().expect("contiguous")),
                bs.as_ref()
                    .map(|b| b.as_contiguous_slice::<$T>().expect("contiguous")),
                n,
                eps,
                &mut y,
                &mut mean,
                &mut rstd,
            );
            (
                Tensor::from_vec(y, x.shape())?,
                Tensor::from_vec(mean, &[rows])?,
                Tensor::from_vec(rstd, &[rows])?,
            )
        }};
    }
    let (y, mean, rstd) = if cd == DType::F64 {
        run!(f64)
    } else {
        run!(f32)
    };
    Ok((y.to_dtype(x.dtype()), mean, rstd))
}

/// The fused layer-norm backward: gradients for x and, when present, weight and bias.
pub fn layer_norm_backward(
    g: &Tensor,
    x: &Tensor,
    w: Option<&Tensor>,
    mean: &Tensor,
    rstd: &Tensor,
    shape: &[usize],
) -> Result<(Tensor, Tensor, Tensor)> {
    let cd = mean.dtype();
    let n: usize = shape.iter().product();
    let gs = g.to_dtype(cd).contiguous();
    let xs = x.to_dtype(cd).contiguous();
    let ws = w.map(|w| w.to_dtype(cd).contiguous());
    macro_rules! run {
        ($T:ty) => {{
            let mut gx = vec![<$T>::default(); x.elem_count()];
            let (gw, gb) = fused::layer_norm_bwd(
                gs.as_contiguous_slice::<$T>().expect("contiguous"),
                xs.as_contiguous_slice::<$T>().expect("contiguous"),
                ws.as_ref()
                    .map(|w| w.as_contiguous_slice::<$T>().expect("contiguous")),
                mean.as_contiguous_slice::<$T>().expect("contiguous"),
                rstd.as_contiguous_slice::<$T>().expect("contiguous"),
                n,
                &mut gx,
            );
            (Tensor::from_vec(gx, x.shape())?, gw, gb)
        }};
    }
    let (gx, gw, gb) = if cd == DType::F64 {
        run!(f64)
    } else {
        run!(f32)
    };
    let pdt = w.map_or(x.dtype(), |w| w.dtype());
    Ok((
        gx.to_dtype(x.dtype()),
        from_f64s(gw, shape, pdt)?,
        from_f64s(gb, shape, pdt)?,
    ))
}

/// Layer norm's backward written with recorded tensor ops, for `create_graph=True`: the
/// statistics are recomputed from `x` so their dependence on `x` is differentiated too.
pub fn layer_norm_backward_composite(
    g: &Tensor,
    x: &Tensor,
    w: Option<&Tensor>,
    shape: &[usize],
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let nd = x.dims() as i64;
    let norm_dims: Vec<i64> = (nd - shape.len() as i64..nd).collect();
    let batch_dims: Vec<i64> = (0..nd - shape.len() as i64).collect();
    let mean = x.reduce(R::Mean, &norm_dims, true, None)?;
    let xc = x.binary_t(B::Sub, &mean)?;
    let var = xc
        .binary_t(B::Mul, &xc)?
        .reduce(R::Mean, &norm_dims, true, None)?;
    let rstd = var.binary_s(B::Add, Scalar::Float(eps))?.unary(U::Rsqrt)?;
    let xhat = xc.binary_t(B::Mul, &rstd)?;
    let gxh = match w {
        Some(w) => g.binary_t(B::Mul, w)?,
        None => g.clone(),
    };
    let a = gxh.reduce(R::Mean, &norm_dims, true, None)?;
    let b = gxh
        .binary_t(B::Mul, &xhat)?
        .reduce(R::Mean, &norm_dims, true, None)?;
    let inner = gxh
        .binary_t(B::Sub, &a)?
        .binary_t(B::Sub, &xhat.binary_t(B::Mul, &b)?)?;
    let gx = rstd.binary_t(B::Mul, &inner)?;
    let sum_batch = |t: Tensor| -> Result<Tensor> {
        if batch_dims.is_empty() {
            Ok(t)
        } else {
            t.reduce(R::Sum, &batch_dims, false, None)
        }
    };
    let gw = sum_batch(g.binary_t(B::Mul, &xhat)?)?;
    let gb = sum_batch(g.clone())?;
    Ok((gx, gw, gb))
}

type CeForward = (Vec<f64>, Vec<f64>, f64);

fn ce_fwd(
    x: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    ignore_index: i64,
    smoothing: f64,
) -> Result<CeForward> {
    let c = x.shape()[1];
    let rows = x.shape()[0];
    let tv = target.to_vec::<i64>();
    let wv = weight.map(|w| w.to_vec_as::<f64>());
    let spec = CrossEntropySpec {
        target: &tv,
        weight: wv.as_deref(),
        ignore_index,
        smoothing,
    };
    let mut loss = vec![0f64; rows];
    let mut lse = vec![0f64; rows];
    let xs = x.to_dtype(compute_dtype(x.dtype())).contiguous();
    let r = if xs.dtype() == DType::F64 {
        let s = xs.as_contiguous_slice::<f64>().expect("contiguous");
        fused::cross_entropy_fwd(s, c, &spec, &mut loss, &mut lse)
    } else {
        let s = xs.as_contiguous_slice::<f32>().expect("contiguous");
        fused::cross_entropy_fwd(s, c, &spec, &mut loss, &mut lse)
    };
    let denom = r.map_err(|t| Error::Index(format!("Target {t} is out of bounds (the input has {c} classes, so targets must lie in [0, {c}) or equal ignore_index={ignore_index}).")))?;
    Ok((loss, lse, denom))
}

/// The divisor of a mean cross-entropy: the summed weights of the targets that count.
pub fn ce_denom(target: &Tensor, weight: Option<&Tensor>, ignore_index: i64, c: usize) -> f64 {
    let wv = weight.map(|w| w.to_vec_as::<f64>());
    target
        .to_vec::<i64>()
        .iter()
        .filter(|&&t| t != ignore_index && t >= 0 && (t as usize) < c)
        .map(|&t| wv.as_ref().map_or(1.0, |w| w[t as usize]))
        .sum()
}

/// The per-row scale of the incoming gradient `g` for a cross-entropy reduction.
fn ce_scale(g: &Tensor, rows: usize, reduction: Reduction, denom: f64) -> Vec<f64> {
    match reduction {
        Reduction::None => g.to_vec_as::<f64>(),
        Reduction::Sum => vec![g.to_vec_as::<f64>()[0]; rows],
        Reduction::Mean => vec![g.to_vec_as::<f64>()[0] / denom; rows],
    }
}

/// The fused cross-entropy backward (gradient for the logits).
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_backward(
    g: &Tensor,
    x: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    ignore_index: i64,
    smoothing: f64,
    reduction: Reduction,
    lse: &[f64],
    denom: f64,
) -> Result<Tensor> {
    let (rows, c) = (x.shape()[0], x.shape()[1]);
    let tv = target.to_vec::<i64>();
    let wv = weight.map(|w| w.to_vec_as::<f64>());
    let spec = CrossEntropySpec {
        target: &tv,
        weight: wv.as_deref(),
        ignore_index,
        smoothing,
    };
    let scale = ce_scale(g, rows, reduction, denom);
    let xs = x.to_dtype(compute_dtype(x.dtype())).contiguous();
    let gx = if xs.dtype() == DType::F64 {
        let mut gx = vec![0f64; rows * c];
        let s = xs.as_contiguous_slice::<f64>().expect("contiguous");
        fused::cross_entropy_bwd(s, c, &spec, lse, &scale, &mut gx);
        Tensor::from_vec(gx, x.shape())?
    } else {
        let mut gx = vec![0f32; rows * c];
        let s = xs.as_contiguous_slice::<f32>().expect("contiguous");
        fused::cross_entropy_bwd(s, c, &spec, lse, &scale, &mut gx);
        Tensor::from_vec(gx, x.shape())?
    };
    Ok(gx.to_dtype(x.dtype()))
}

/// Cross-entropy's backward as recorded tensor ops (`create_graph=True`):
/// `scale·(coef·softmax(x) − q)` with the constant target distribution `q`.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_backward_composite(
    g: &Tensor,
    x: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    ignore_index: i64,
    smoothing: f64,
    reduction: Reduction,
    denom: f64,
) -> Result<Tensor> {
    let (rows, c) = (x.shape()[0], x.shape()[1]);
    let tv = target.to_vec::<i64>();
    let wv: Vec<f64> = weight.map_or(vec![1.0; c], |w| w.to_vec_as::<f64>());
    let w_all: f64 = wv.iter().sum();
    let mut q = vec![0f64; rows * c];
    let mut coef = vec![0f64; rows];
    for (i, &t) in tv.iter().enumerate() {
        if t == ignore_index {
            continue;
        }
        let wt = wv[t as usize];
        coef[i] = (1.0 - smoothing) * wt + smoothing / c as f64 * w_all;
        for j in 0..c {
            q[i * c + j] = smoothing / c as f64 * wv[j];
        }
        q[i * c + t as usize] += (1.0 - smoothing) * wt;
    }
    let dt = x.dtype();
    let q = from_f64s(q, &[rows, c], dt)?.to_device(x.device())?;
    let coef = from_f64s(coef, &[rows, 1], dt)?.to_device(x.device())?;
    let p = x.softmax(1, false)?;
    let d = coef.binary_t(B::Mul, &p)?.binary_t(B::Sub, &q)?;
    let scale = match reduction {
        Reduction::None => g.unsqueeze(1)?,
        Reduction::Sum => g.clone(),
        Reduction::Mean => g.binary_s(B::Div, Scalar::Float(denom))?,
    };
    scale.binary_t(B::Mul, &d)
}

// *** fused optimizer steps ***

fn check_pair(what: &str, i: usize, p: &Tensor, s: &Tensor) -> Result<()> {
    if s.shape() != p.shape() || s.dtype() != p.dtype() || !s.is_contiguous() {
        return Err(Error::runtime(format!(
            "fused optimizer step: {what} of parameter {i} must be a contiguous {} tensor of shape {:?}, got {} {:?} (contiguous: {})",
            p.dtype(),
            p.shape(),
            s.dtype(),
            s.shape(),
            s.is_contiguous()
        )));
    }
    Ok(())
}

fn check_param(i: usize, p: &Tensor) -> Result<()> {
    if !p.is_contiguous() || !matches!(p.dtype(), DType::F32 | DType::F64) {
        return Err(Error::runtime(format!(
            "fused optimizer step: parameter {i} must be a contiguous float32/float64 tensor, got {} of shape {:?} (contiguous: {})",
            p.dtype(),
            p.shape(),
            p.is_contiguous()
        )));
    }
    Ok(())
}

/// The storage range of a tensor already checked to be contiguous.
fn range(t: &Tensor) -> std::ops::Range<usize> {
    let (s, e) = t.layout().contiguous_offsets().expect("checked contiguous");
    s..e
}

/// The gradient as a contiguous tensor of the parameter's dtype.
fn grad_like(i: usize, p: &Tensor, g: &Tensor) -> Result<Tensor> {
    if g.shape() != p.shape() {
        return Err(Error::runtime(format!(
            "fused optimizer step: gradient of parameter {i} has shape {:?}, the parameter {:?}",
            g.shape(),
            p.shape()
        )));
    }
    Ok(g.to_dtype(p.dtype()).contiguous())
}

/// Applies one Adam/AdamW step to every parameter (`steps[i]` is its step count after the
/// increment). `max_exp_avg_sqs` is given for amsgrad.
pub fn adam_step(
    params: &[Tensor],
    grads: &[Tensor],
    exp_avgs: &[Tensor],
    exp_avg_sqs: &[Tensor],
    max_exp_avg_sqs: Option<&[Tensor]>,
    steps: &[f64],
    hyper: AdamHyper,
) -> Result<()> {
    let all: Vec<&Tensor> = params.iter().chain(exp_avgs).chain(exp_avg_sqs).collect();
    if let Some(dev) = device::op_device("adam step", &all)? {
        let mut gs = Vec::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            check_param(i, p)?;
            check_pair("exp_avg", i, p, &exp_avgs[i])?;
            check_pair("exp_avg_sq", i, p, &exp_avg_sqs[i])?;
            if let Some(mx) = max_exp_avg_sqs {
                check_pair("max_exp_avg_sq", i, p, &mx[i])?;
            }
            let g = grad_like(i, p, &grads[i])?;
            check_distinct(p, &[&g, &exp_avgs[i], &exp_avg_sqs[i]])?;
            gs.push(g);
        }
        let h = hyper;
        let args = [
            Value::Tensors(params.to_vec()),
            Value::Tensors(gs),
            Value::Tensors(exp_avgs.to_vec()),
            Value::Tensors(exp_avg_sqs.to_vec()),
            Value::Tensors(max_exp_avg_sqs.map_or(vec![], |m| m.to_vec())),
            Value::Floats(steps.to_vec()),
            Value::Float(h.lr),
            Value::Float(h.beta1),
            Value::Float(h.beta2),
            Value::Float(h.eps),
            Value::Float(h.weight_decay),
            Value::Bool(h.decoupled),
            Value::Bool(max_exp_avg_sqs.is_some()),
            Value::Bool(h.maximize),
        ];
        device::call("adam_step", dev, &args)?;
        for t in all {
            t.storage().bump_version();
        }
        return Ok(());
    }
    for (i, p) in params.iter().enumerate() {
        check_param(i, p)?;
        check_pair("exp_avg", i, p, &exp_avgs[i])?;
        check_pair("exp_avg_sq", i, p, &exp_avg_sqs[i])?;
        if let Some(mx) = max_exp_avg_sqs {
            check_pair("max_exp_avg_sq", i, p, &mx[i])?;
        }
        let g = grad_like(i, p, &grads[i])?;
        let h = AdamHyper {
            step: steps[i],
            ..hyper
        };
        macro_rules! run {
            ($T:ty) => {{
                // SAFETY: the parameter and its states are distinct contiguous buffers (states
                // are created by the optimizer), and no other slice of them is alive here.
                unsafe {
                    let pp = &mut p.storage().as_mut_slice::<$T>()[range(p)];
                    let m = &mut exp_avgs[i].storage().as_mut_slice::<$T>()[range(&exp_avgs[i])];
                    let v =
                        &mut exp_avg_sqs[i].storage().as_mut_slice::<$T>()[range(&exp_avg_sqs[i])];
                    let mx = max_exp_avg_sqs
                        .map(|mx| &mut mx[i].storage().as_mut_slice::<$T>()[range(&mx[i])]);
                    let gs = g.as_contiguous_slice::<$T>().expect("contiguous");
                    optk::adam_step(pp, gs, m, v, mx, h);
                }
            }};
        }
        check_distinct(p, &[&g, &exp_avgs[i], &exp_avg_sqs[i]])?;
        if p.dtype() == DType::F64 {
            run!(f64)
        } else {
            run!(f32)
        }
    }
    Ok(())
}

fn check_distinct(p: &Tensor, others: &[&Tensor]) -> Result<()> {
    if others.iter().any(|o| o.same_storage(p)) {
        return Err(Error::runtime(
            "fused optimizer step: a parameter shares memory with its gradient or state",
        ));
    }
    Ok(())
}

/// Applies one SGD step to every parameter; momentum buffers that are `None` are created
/// (torch's first step) and returned.
pub fn sgd_step(
    params: &[Tensor],
    grads: &[Tensor],
    bufs: &[Option<Tensor>],
    hyper: SgdHyper,
) -> Result<Vec<Option<Tensor>>> {
    let mut out = Vec::with_capacity(params.len());
    let ps: Vec<&Tensor> = params.iter().collect();
    if let Some(dev) = device::op_device("sgd step", &ps)? {
        let (mut gs, mut bs, mut fresh) = (vec![], vec![], vec![]);
        for (i, p) in params.iter().enumerate() {
            check_param(i, p)?;
            let g = grad_like(i, p, &grads[i])?;
            check_distinct(p, &[&g])?;
            gs.push(g);
            let b = match (&bufs[i], hyper.momentum != 0.0) {
                (_, false) => None,
                (Some(b), true) => {
                    check_pair("momentum_buffer", i, p, b)?;
                    Some(b.clone())
                }
                (None, true) => Some(device::call1("zeros_like", dev, &[Value::Tensor(p)])?),
            };
            fresh.push(bufs[i].is_none());
            bs.push(b.clone().unwrap_or_else(|| p.clone()));
            out.push(b);
        }
        let h = hyper;
        let args = [
            Value::Tensors(params.to_vec()),
            Value::Tensors(gs),
            Value::Tensors(bs),
            Value::Bools(fresh),
            Value::Float(h.lr),
            Value::Float(h.momentum),
            Value::Float(h.dampening),
            Value::Float(h.weight_decay),
            Value::Bool(h.nesterov),
            Value::Bool(h.maximize),
        ];
        device::call("sgd_step", dev, &args)?;
        for p in params.iter().chain(out.iter().flatten()) {
            p.storage().bump_version();
        }
        return Ok(out);
    }
    for (i, p) in params.iter().enumerate() {
        check_param(i, p)?;
        let g = grad_like(i, p, &grads[i])?;
        let (buf, fresh) = match (&bufs[i], hyper.momentum != 0.0) {
            (_, false) => (None, false),
            (Some(b), true) => {
                check_pair("momentum_buffer", i, p, b)?;
                (Some(b.clone()), false)
            }
            (None, true) => (Some(Tensor::zeros(p.shape(), p.dtype())?), true),
        };
        check_distinct(p, &[&g])?;
        macro_rules! run {
            ($T:ty) => {{
                // SAFETY: parameter and buffer are distinct contiguous buffers; no other slice
                // of them is alive here.
                unsafe {
                    let pp = &mut p.storage().as_mut_slice::<$T>()[range(p)];
                    let b = buf
                        .as_ref()
                        .map(|b| &mut b.storage().as_mut_slice::<$T>()[range(b)]);
                    let gs = g.as_contiguous_slice::<$T>().expect("contiguous");
                    optk::sgd_step(pp, gs, b, fresh, hyper);
                }
            }};
        }
        if p.dtype() == DType::F64 {
            run!(f64)
        } else {
            run!(f32)
        }
        out.push(buf);
    }
    Ok(out)
}

// *** attention ***

use crate::kernels::attention::{self as attk, AttnDims, AttnSaved, MaskView};

fn attn_dims(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<AttnDims> {
    let ok = q.dims() == 3
        && k.dims() == 3
        && v.dims() == 3
        && k.shape()[0] == q.shape()[0]
        && v.shape()[0] == q.shape()[0]
        && q.shape()[2] == k.shape()[2]
        && v.shape()[1] == k.shape()[1];
    if !ok {
        return Err(Error::runtime(format!(
            "attention expects query (N, L, E), key (N, S, E) and value (N, S, Ev), got {:?}, {:?} and {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        )));
    }
    Ok(AttnDims {
        n: q.shape()[0],
        lq: q.shape()[1],
        lk: k.shape()[1],
        e: q.shape()[2],
        ev: v.shape()[2],
    })
}

fn mask_view<'a, T: crate::dtype::Elem>(m: &'a Tensor) -> MaskView<'a, T> {
    let st = m.stride();
    MaskView {
        data: m.storage().as_slice::<T>(),
        offset: m.layout().offset(),
        stride: [st[0], st[1], st[2]],
    }
}

impl Tensor {
    /// Fused `softmax(scale·q·kᵀ + mask)·v` over (N, L, E) slices; `mask` is additive (q's
    /// dtype, viewed as (N, L, S), broadcast dims with stride 0); `causal` masks keys after
    /// each query (torch's top-left aligned `is_causal`); `keep` (N, L, S), when given, holds
    /// the dropout multipliers (0 or 1/(1-p)) applied to the attention weights.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        causal: bool,
        scale: f64,
        keep: Option<&Tensor>,
    ) -> Result<Tensor> {
        if let Some(dt) = crate::autocast::lower_dtype(&[q, k, v]) {
            use crate::autocast::cast;
            let (q, k, v) = (cast(q, dt), cast(k, dt), cast(v, dt));
            let (mask, keep) = (mask.map(|m| cast(m, dt)), keep.map(|m| cast(m, dt)));
            return crate::autocast::off(|| {
                Tensor::attention(&q, &k, &v, mask.as_ref(), causal, scale, keep.as_ref())
            });
        }
        let d = attn_dims(q, k, v)?;
        let dt = q.dtype();
        if !dt.is_float() || k.dtype() != dt || v.dtype() != dt {
            return Err(Error::runtime(format!(
                "Expected query, key, and value to have the same floating dtype, but got query.dtype: {}, key.dtype: {} and value.dtype: {} instead.",
                q.dtype(),
                k.dtype(),
                v.dtype()
            )));
        }
        // Both per-weight tensors are seen as (N, L, S) in q's dtype.
        for (what, t) in [
            ("the additive mask", mask),
            ("the dropout multipliers", keep),
        ] {
            if let Some(t) = t {
                if t.shape() != [d.n, d.lq, d.lk] || t.dtype() != dt {
                    return Err(Error::runtime(format!(
                        "attention: {what} must be {dt} of shape {:?}, got {} {:?}",
                        [d.n, d.lq, d.lk],
                        t.dtype(),
                        t.shape()
                    )));
                }
            }
        }
        // Kept for backward in the compute dtype; no copy when it is already laid out so.
        let keep = keep.map(|kp| kp.to_dtype(compute_dtype(dt)).contiguous().detach());
        let (out, lse) = match device::op_device("attention", &[q, k, v])? {
            None => op::no_grad(|| attention_fwd(d, q, k, v, mask, causal, scale, keep.as_ref()))?,
            Some(dev) => {
                let args = attention_values(q, k, v, mask, causal, scale, keep.as_ref());
                let out = op::no_grad(|| device::call1("attention", dev, &args))?;
                (out, Tensor::zeros(&[0], dt)?)
            }
        };
        let result = out.to_dtype(dt);
        Ok(result.record(&[q, k, v], || Op::Attention {
            q: q.clone(),
            k: k.clone(),
            v: v.clone(),
            mask: mask.map(|m| m.detach()),
            causal,
            scale,
            keep,
            out,
            lse,
        }))
    }
}

#[allow(clippy::too_many_arguments)]
fn attention_fwd(
    d: AttnDims,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f64,
    keep: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let cd = compute_dtype(q.dtype());
    let (qs, ks, vs) = (
        q.to_dtype(cd).contiguous(),
        k.to_dtype(cd).contiguous(),
        v.to_dtype(cd).contiguous(),
    );
    let ms = mask.map(|m| m.to_dtype(cd));
    macro_rules! run {
        ($T:ty) => {{
            let mut out = vec![<$T>::default(); d.n * d.lq * d.ev];
            let mut lse = vec![<$T>::default(); d.n * d.lq];
            attk::attention_fwd(
                d,
                qs.as_contiguous_slice::<$T>().expect("contiguous"),
                ks.as_contiguous_slice::<$T>().expect("contiguous"),
                vs.as_contiguous_slice::<$T>().expect("contiguous"),
                ms.as_ref().map(mask_view::<$T>),
                causal,
                scale,
                keep.map(|kp| kp.as_contiguous_slice::<$T>().expect("contiguous")),
                &mut out,
                &mut lse,
            );
            (
                Tensor::from_vec(out, &[d.n, d.lq, d.ev])?,
                Tensor::from_vec(lse, &[d.n, d.lq])?,
            )
        }};
    }
    Ok(if cd == DType::F64 {
        run!(f64)
    } else {
        run!(f32)
    })
}

/// The fused attention backward: gradients of q, k and v.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    g: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f64,
    keep: Option<&Tensor>,
    out: &Tensor,
    lse: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let d = attn_dims(q, k, v)?;
    let cd = out.dtype();
    let (qs, ks, vs, gs) = (
        q.to_dtype(cd).contiguous(),
        k.to_dtype(cd).contiguous(),
        v.to_dtype(cd).contiguous(),
        g.to_dtype(cd).contiguous(),
    );
    let ms = mask.map(|m| m.to_dtype(cd));
    macro_rules! run {
        ($T:ty) => {{
            let mut gq = vec![<$T>::default(); d.n * d.lq * d.e];
            let mut gk = vec![<$T>::default(); d.n * d.lk * d.e];
            let mut gv = vec![<$T>::default(); d.n * d.lk * d.ev];
            let saved = AttnSaved {
                q: qs.as_contiguous_slice::<$T>().expect("contiguous"),
                k: ks.as_contiguous_slice::<$T>().expect("contiguous"),
                v: vs.as_contiguous_slice::<$T>().expect("contiguous"),
                out: out.as_contiguous_slice::<$T>().expect("contiguous"),
                lse: lse.as_contiguous_slice::<$T>().expect("contiguous"),
                mask: ms.as_ref().map(mask_view::<$T>),
                causal,
                scale,
                keep: keep.map(|kp| kp.as_contiguous_slice::<$T>().expect("contiguous")),
            };
            let gsl = gs.as_contiguous_slice::<$T>().expect("contiguous");
            attk::attention_bwd(d, &saved, gsl, &mut gq, &mut gk, &mut gv);
            (
                Tensor::from_vec(gq, q.shape())?,
                Tensor::from_vec(gk, k.shape())?,
                Tensor::from_vec(gv, v.shape())?,
            )
        }};
    }
    let (gq, gk, gv) = if cd == DType::F64 {
        run!(f64)
    } else {
        run!(f32)
    };
    Ok((
        gq.to_dtype(q.dtype()),
        gk.to_dtype(k.dtype()),
        gv.to_dtype(v.dtype()),
    ))
}

/// Attention's backward as recorded tensor ops (`create_graph=True`).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_composite(
    g: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f64,
    keep: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (lq, lk) = (q.shape()[1], k.shape()[1]);
    let mut s = q
        .matmul(&k.transpose(1, 2)?)?
        .binary_s(B::Mul, Scalar::Float(scale))?;
    if let Some(m) = mask {
        s = s.binary_t(B::Add, m)?;
    }
    if causal {
        let tri: Vec<f64> = (0..lq * lk)
            .map(|ij| {
                if ij % lk > ij / lk {
                    f64::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let tri = from_f64s(tri, &[lq, lk], s.dtype())?.to_device(s.device())?;
        s = s.binary_t(B::Add, &tri)?;
    }
    let p = s.softmax(-1, false)?;
    let (pk, dp) = match keep {
        Some(kp) => {
            let kp = kp.to_dtype(p.dtype());
            let dp = g.matmul(&v.transpose(1, 2)?)?.binary_t(B::Mul, &kp)?;
            (p.binary_t(B::Mul, &kp)?, dp)
        }
        None => (p.clone(), g.matmul(&v.transpose(1, 2)?)?),
    };
    let gv = pk.transpose(1, 2)?.matmul(g)?;
    let delta = dp.binary_t(B::Mul, &p)?.reduce(R::Sum, &[-1], true, None)?;
    let ds = p
        .binary_t(B::Mul, &dp.binary_t(B::Sub, &delta)?)?
        .binary_s(B::Mul, Scalar::Float(scale))?;
    let gq = ds.matmul(k)?;
    let gk = ds.transpose(1, 2)?.matmul(q)?;
    Ok((gq, gk, gv))
}

/// GELU's gradient `g · gelu'(x)` in one fused pass (backward without `create_graph`).
pub fn gelu_backward(g: &Tensor, x: &Tensor, tanh: bool) -> Result<Tensor> {
    if let Some(dev) = device::op_device("gelu_backward", &[g, x])? {
        let g = g.broadcast_as(x.shape())?.to_dtype(x.dtype());
        let args = [Value::Tensor(&g), Value::Tensor(x), Value::Bool(tanh)];
        return device::call1("gelu_backward", dev, &args);
    }
    let cd = compute_dtype(x.dtype());
    let gs = g.broadcast_as(x.shape())?.to_dtype(cd).contiguous();
    let xs = x.to_dtype(cd).contiguous();
    macro_rules! run {
        ($T:ty) => {{
            let mut out = vec![<$T>::default(); x.elem_count()];
            fused::gelu_bwd(
                gs.as_contiguous_slice::<$T>().expect("contiguous"),
                xs.as_contiguous_slice::<$T>().expect("contiguous"),
                tanh,
                &mut out,
            );
            Tensor::from_vec(out, x.shape())?
        }};
    }
    let out = if cd == DType::F64 {
        run!(f64)
    } else {
        run!(f32)
    };
    Ok(out.to_dtype(g.dtype()))
}

/// The gradient of ReLU, sigmoid or tanh from the op's output, as one pass over `(out, g)`
/// with torch's arithmetic (`out <= 0 ? 0 : g`, `g * (1 - out) * out`, `g * (1 - out * out)`).
/// `None` where the recorded formula must run instead: a backward that is itself recorded,
/// the torch backend, other dtypes or ops.
pub fn unary_backward_from_output(op: U, g: &Tensor, out: &Tensor) -> Result<Option<Tensor>> {
    let fused = matches!(op, U::Relu | U::Sigmoid | U::Tanh)
        && matches!(out.dtype(), DType::F32 | DType::F64)
        && g.dtype() == out.dtype()
        && !op::is_grad_enabled();
    if !fused || device::op_device("unary_backward", &[g, out])?.is_some() {
        return Ok(None);
    }
    let g = g.broadcast_as(out.shape())?;
    macro_rules! run {
        ($T:ty) => {{
            let y = (out.storage().as_slice::<$T>(), out.layout());
            let gs = (g.storage().as_slice::<$T>(), g.layout());
            let v = match op {
                U::Relu => map2(y, gs, |y: $T, g: $T| if y <= 0.0 { 0.0 } else { g }),
                U::Sigmoid => map2(y, gs, |y: $T, g: $T| g * (1.0 - y) * y),
                _ => map2(y, gs, |y: $T, g: $T| g * (1.0 - y * y)),
            };
            Tensor::from_vec(v, out.shape())?
        }};
    }
    Ok(Some(if out.dtype() == DType::F64 {
        run!(f64)
    } else {
        run!(f32)
    }))
}

// *** the fused ops on the torch backend: forward and backward take the same arguments
// (backward the incoming gradient first); torch's autograd over the same op is the backward ***

fn ce_values<'a>(
    x: &'a Tensor,
    target: &'a Tensor,
    weight: Option<&'a Tensor>,
    ignore_index: i64,
    smoothing: f64,
    reduction: Reduction,
) -> [Value<'a>; 6] {
    [
        Value::Tensor(x),
        Value::Tensor(target),
        Value::OptTensor(weight),
        Value::Int(ignore_index),
        Value::Float(smoothing),
        Value::Int(reduction.code()),
    ]
}

#[allow(clippy::too_many_arguments)]
fn attention_values<'a>(
    q: &'a Tensor,
    k: &'a Tensor,
    v: &'a Tensor,
    mask: Option<&'a Tensor>,
    causal: bool,
    scale: f64,
    keep: Option<&'a Tensor>,
) -> [Value<'a>; 7] {
    [
        Value::Tensor(q),
        Value::Tensor(k),
        Value::Tensor(v),
        Value::OptTensor(mask),
        Value::Bool(causal),
        Value::Float(scale),
        Value::OptTensor(keep),
    ]
}

/// `g` followed by the forward's arguments.
fn with_grad<'a>(g: &'a Tensor, args: impl IntoIterator<Item = Value<'a>>) -> Vec<Value<'a>> {
    std::iter::once(Value::Tensor(g)).chain(args).collect()
}

pub fn layer_norm_backward_torch(
    g: &Tensor,
    x: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    shape: &[usize],
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let args = [
        Value::Tensor(g),
        Value::Tensor(x),
        Value::OptTensor(w),
        Value::OptTensor(b),
        Value::Ints(shape.iter().map(|&d| d as i64).collect()),
        Value::Float(eps),
    ];
    let [gx, gw, gb] = device::call_n("layer_norm_backward", x.device(), &args)?;
    Ok((gx, gw, gb))
}

#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_backward_torch(
    g: &Tensor,
    x: &Tensor,
    target: &Tensor,
    weight: Option<&Tensor>,
    ignore_index: i64,
    smoothing: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    let args = with_grad(
        g,
        ce_values(x, target, weight, ignore_index, smoothing, reduction),
    );
    device::call1("cross_entropy_backward", x.device(), &args)
}

#[allow(clippy::too_many_arguments)]
pub fn attention_backward_torch(
    g: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    causal: bool,
    scale: f64,
    keep: Option<&Tensor>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let args = with_grad(g, attention_values(q, k, v, mask, causal, scale, keep));
    let [gq, gk, gv] = device::call_n("attention_backward", q.device(), &args)?;
    Ok((gq, gk, gv))
}
